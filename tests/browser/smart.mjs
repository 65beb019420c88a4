// A real SMART client library in a real browser: the npm package `fhirclient` in Debian's
// Chromium (playwright-core), against Passport's authorisation server. Started by
// crates/server/tests/authorize.rs (`smart_in_a_real_browser`), which runs the server,
// seeds a family with two children and registers this app as a public client:
//
//   node tests/browser/smart.mjs <fixture-json>
//
// fixture: { base, appPort, clientId, family: { email, password }, children: { mia, leo } }
//
// The app (smart-app/) is served here on 127.0.0.1:<appPort>. (a) EHR launch: the family
// member signs in, opens the app from Mia's passport (/launch), the app's
// FHIR.oauth2.authorize + ready run, and client.patient.read() returns Mia. (b) Standalone
// launch: the app starts on its own; Passport's picker offers the family's children; Leo
// is chosen. The approval page, the picker and the launch pages are checked with axe-core.
// Prints "ehr patient <id>" and "standalone patient <id>" for the Rust test.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];
const FHIR_CLIENT = readFileSync(join(here, 'node_modules/fhirclient/build/fhir-client.min.js'));
const APP_HTML = readFileSync(join(here, 'smart-app/app.html'));
const APP_JS = readFileSync(join(here, 'smart-app/app.js'));

const [fixtureJson] = process.argv.slice(2);
if (!fixtureJson) {
  console.error('usage: node smart.mjs <fixture-json>');
  process.exit(2);
}
const fx = JSON.parse(fixtureJson);
const base = fx.base;
const app = `http://127.0.0.1:${fx.appPort}`;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const failures = [];
let checks = 0;
function check(ok, what) {
  checks += 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

// The test app's static server.
const server = createServer((req, res) => {
  const path = new URL(req.url, app).pathname;
  const send = (type, body) => {
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  };
  if (['/launch.html', '/standalone.html', '/index.html'].includes(path)) return send('text/html; charset=utf-8', APP_HTML);
  if (path === '/app.js') return send('text/javascript', APP_JS);
  if (path === '/fhir-client.js') return send('text/javascript', FHIR_CLIENT);
  if (path === '/config.json') return send('application/json', JSON.stringify({ clientId: fx.clientId, iss: `${base}/fhir` }));
  res.writeHead(404);
  res.end();
});
await new Promise((ok) => server.listen(fx.appPort, '127.0.0.1', ok));

const browser = await chromium.launch({
  executablePath,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run',
  ],
});

async function axe(page, name) {
  // Injected through the DevTools protocol (not a <script>), so the page's CSP stays on.
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags } }),
    AXE_TAGS,
  );
  for (const v of result.violations) {
    console.log(`  axe ${name}: ${v.id} (${v.impact}): ${v.help}`);
    for (const n of v.nodes.slice(0, 3)) console.log(`      ${n.target.join(' ')}`);
  }
  check(result.violations.length === 0, `axe WCAG 2.2 A/AA: ${name} (${result.passes.length} rules pass)`);
}

/// Waits for the app's result (after FHIR.oauth2.ready and the patient read).
async function appResult(page) {
  await page.waitForURL(`${app}/index.html**`);
  await page.waitForSelector('#result[data-done]', { timeout: 20000 });
  const text = await page.textContent('#result');
  try {
    return JSON.parse(text);
  } catch {
    return { error: text };
  }
}

try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cspErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) cspErrors.push(m.text());
  });

  // Sign in as the family member.
  await page.goto(`${base}/sign-in`);
  await page.fill('#email', fx.family.email);
  await page.fill('#password', fx.family.password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/`);

  // (a) EHR launch from Mia's passport.
  await page.click('#open-an-app');
  await page.waitForURL(`${base}/launch`);
  await axe(page, 'open an app: choose a child');
  await page.click(`a[href="/launch?patient=${fx.children.mia}"]`);
  await page.waitForURL(`${base}/launch?patient=${fx.children.mia}`);
  await axe(page, 'open an app: the apps');
  await page.click('button:has-text("Open Growth Chart (browser)")');
  // fhirclient (launch.html) discovers the server and sends the browser to /oauth/authorize.
  await page.waitForURL(`${base}/oauth/authorize?**`);
  check(await page.locator('h1', { hasText: 'Allow Growth Chart (browser) to use Passport?' }).count() === 1, 'EHR launch: approval page');
  check(/Mia Jones/.test(await page.textContent('#child-in-context')), 'EHR launch: the approval names the launch child');
  await axe(page, 'approval (EHR launch)');
  await page.click('button[value=allow]');
  const ehr = await appResult(page);
  check(ehr.contextPatient === fx.children.mia, `EHR launch: token patient is Mia (${JSON.stringify(ehr)})`);
  check(ehr.resourceType === 'Patient' && ehr.id === fx.children.mia && ehr.given === 'Mia', 'EHR launch: client.patient.read() returns Mia');
  check(/^Person\//.test(ehr.fhirUser || ''), `EHR launch: fhirUser is the family member's Person (${ehr.fhirUser})`);
  console.log(`ehr patient ${ehr.id}`);

  // (b) Standalone launch: the app starts on its own; Passport asks which child.
  await page.goto(`${app}/standalone.html`);
  await page.waitForURL(`${base}/oauth/authorize?**`);
  check(await page.locator('h1', { hasText: 'Which child is this for?' }).count() === 1, 'standalone: patient picker');
  const labels = await page.locator('.nhsuk-radios__label').allTextContents();
  check(labels.length === 2 && labels.some((l) => /Mia Jones/.test(l)) && labels.some((l) => /Leo Jones/.test(l)), `standalone: the picker lists the family's two children (${labels.join(' | ')})`);
  await axe(page, 'patient picker');
  await page.click('button:has-text("Continue")');
  await page.waitForLoadState();
  check(await page.locator('.nhsuk-error-summary a[href="#patient"]').count() === 1, 'standalone: no choice gives an error linking to the field');
  await axe(page, 'patient picker (with errors)');
  await page.click('label:has-text("Leo Jones")');
  await page.click('button:has-text("Continue")');
  await page.waitForSelector('button[value=allow]');
  check(/Leo Jones/.test(await page.textContent('#child-in-context')), 'standalone: the approval names the chosen child');
  await axe(page, 'approval (standalone launch)');
  await page.click('button[value=allow]');
  const sa = await appResult(page);
  check(sa.contextPatient === fx.children.leo && sa.id === fx.children.leo, `standalone: client.patient.read() returns Leo (${JSON.stringify(sa)})`);
  console.log(`standalone patient ${sa.id}`);

  // Deny: the app gets access_denied.
  await page.goto(`${app}/standalone.html`);
  await page.waitForURL(`${base}/oauth/authorize?**`);
  await page.click('button[value=deny]');
  await page.waitForURL(`${app}/index.html**`);
  check(new URL(page.url()).searchParams.get('error') === 'access_denied', 'cancel on the picker: the app gets access_denied');

  check(cspErrors.length === 0, `no CSP violation on Passport's pages ${cspErrors.join(' | ')}`);
  await context.close();

  // Without JavaScript, the pages still work: sign-in with a way back, picker, approval.
  const nojs = await browser.newContext({ javaScriptEnabled: false });
  const p2 = await nojs.newPage();
  const req = new URL(`${base}/oauth/authorize`);
  const verifierChallenge = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: fx.clientId, redirect_uri: `${app}/index.html`,
    scope: 'launch/patient patient/*.rs', state: 'nojs', aud: `${base}/fhir`,
    code_challenge: verifierChallenge, code_challenge_method: 'S256',
  })) req.searchParams.set(k, v);
  await p2.goto(req.href);
  await p2.waitForURL(`${base}/sign-in?next=**`);
  // (No axe here: page.evaluate does not run with JavaScript off; the sign-in page is
  // checked by run.mjs.)
  check(await p2.locator('#sign-in-for-app').count() === 1, 'without JavaScript: signed out, the request goes to sign-in and says why');
  await p2.fill('#email', fx.family.email);
  await p2.fill('#password', fx.family.password);
  await p2.click('button[type=submit]');
  await p2.waitForURL(`${base}/oauth/authorize?**`);
  await p2.click('label:has-text("Mia Jones")');
  await p2.click('button:has-text("Continue")');
  await p2.waitForSelector('button[value=allow]');
  await p2.click('button[value=allow]');
  await p2.waitForURL(`${app}/index.html**`);
  const back = new URL(p2.url()).searchParams;
  check(back.get('state') === 'nojs' && (back.get('code') || '').length > 20, 'without JavaScript: signed in, chose, allowed; the app got a code');
  await nojs.close();
} catch (e) {
  failures.push(String(e && e.stack || e));
  console.log(`FAIL ${e && e.stack || e}`);
} finally {
  await browser.close();
  server.close();
}

console.log(`\n${checks - failures.length}/${checks} SMART browser checks passed`);
process.exit(failures.length ? 1 : 0);
