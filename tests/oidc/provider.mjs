// A real OpenID Connect provider for crates/server/tests/oidc.rs: node-oidc-provider,
// offline, on a free port of 127.0.0.1, with the clients and users named in a JSON
// fixture (argv[2]). Prints one line, {"issuer": "..."}, once it listens; runs until killed.
//
// Interactions are plain HTML forms (no JavaScript): a login form (any listed user, password
// "test") and a consent form, so the test drives them with ordinary HTTP requests.
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const fixture = JSON.parse(process.argv[2] ?? '{}');
const users = fixture.users ?? {};

const signing = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
signing.kid = 'test-rsa-1';
signing.use = 'sig';
signing.alg = 'RS256';

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: fixture.clients ?? [],
  jwks: { keys: [signing] },
  cookies: { keys: ['passport-oidc-test-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'family_name', 'given_name', 'identity_proofing_level', 'nhs_number'],
  },
  // Claims in the ID token itself (as NHS login does), not only from userinfo.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (_ctx, id) => (users[id]
    ? { accountId: id, claims: async () => ({ sub: id, ...users[id] }) }
    : undefined),
  ttl: {
    IdToken: fixture.idTokenTtl ?? 3600, AccessToken: 600, Interaction: 600, Session: 3600, Grant: 3600,
  },
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, body) {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!DOCTYPE html><html><body>${body}</body></html>`);
}

async function form(req) {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  return Object.fromEntries(new URLSearchParams(raw));
}

async function interaction(req, res) {
  const url = new URL(req.url, issuer);
  const [, , uid, action] = url.pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  const { prompt, params } = details;
  if (req.method === 'GET') {
    if (prompt.name === 'login') {
      return page(res, `<h1>Sign in to the test provider</h1>
<form method="post" action="/interaction/${escape(uid)}/login">
<input name="login"><input name="password" type="password"><button>Sign in</button></form>`);
    }
    return page(res, `<h1>Allow ${escape(params.client_id)}?</h1>
<form method="post" action="/interaction/${escape(uid)}/confirm"><button>Allow</button></form>`);
  }
  const body = await form(req);
  if (action === 'login') {
    if (!users[body.login] || body.password !== 'test') {
      return page(res, '<h1>Wrong user or password</h1>');
    }
    return provider.interactionFinished(req, res, { login: { accountId: body.login } }, { mergeWithLastSubmission: false });
  }
  if (action === 'confirm') {
    const { accountId } = details.session;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId, clientId: params.client_id });
    const missing = prompt.details ?? {};
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  res.writeHead(404).end();
}

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((e) => {
      console.error(e);
      res.writeHead(500).end(String(e.message));
    });
  } else {
    callback(req, res);
  }
});

console.log(JSON.stringify({ issuer }));
// The test reads only that first line: anything else goes to stderr.
console.log = console.error;
console.info = console.error;
