// The demo region in a real browser, following docs/DEMO.md alone: every row of its sign-in
// table signs in (password, then a code from the row's TOTP secret for staff), and every
// page that account can reach by following links from its home page opens and passes
// axe-core (WCAG 2.2 A/AA): a breadth-first crawl, each kind of page once per account (a
// path with its ids taken out: one child's passport stands for every child's).
// Started by crates/server/tests/browser.rs on a server running `--demo`:
//
//   node tests/browser/demo.mjs <base-url>        (from the repository's root)
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { CHROMIUM, axeRun, base32ToHex, checker, totp } from './harness.mjs';

const [base] = process.argv.slice(2);
if (!base) {
  console.error('usage: node demo.mjs <base-url>');
  process.exit(2);
}
const origin = new URL(base).origin;

/// The rows of docs/DEMO.md's sign-in table: role, sector, organisation, username,
/// password, TOTP secret ('' for family members).
function demoRows() {
  const lines = readFileSync('docs/DEMO.md', 'utf8').split('\n');
  const head = lines.findIndex((l) => l.startsWith('| role | sector | organisation | username | password | TOTP secret |'));
  if (head < 0) throw new Error('docs/DEMO.md has no sign-in table');
  const rows = [];
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim().replace(/^`|`$/g, ''));
    const [role, sector, organisation, username, password, secret] = cells;
    rows.push({ role, sector, organisation, username, password, secret: /^[A-Z2-7]+$/.test(secret) ? secret : '' });
  }
  return rows;
}

// Links that are not pages to look at: signing out, files (PDF, ZIP, photos), the card
// link a holder opens, and the static assets.
const NOT_A_PAGE = [/^\/sign-out/, /\/pdf$/, /\/copy$/, /\/card-links\/card/, /\/photo/, /^\/card\//, /^\/assets\//, /^\/static\//];
// A bound on each account's crawl, so a fault that makes links multiply cannot run the test
// for ever; reaching it fails the test (every page must be looked at).
const PAGES_PER_ACCOUNT = 60;

const { check, failures, total } = checker();

async function axe(page, name) {
  const result = await axeRun(page);
  for (const v of result.violations) {
    console.log(`  axe ${name}: ${v.id} (${v.impact}): ${v.help}`);
    for (const n of v.nodes.slice(0, 3)) console.log(`      ${n.target.join(' ')}`);
  }
  check(result.violations.length === 0, `axe WCAG 2.2 A/AA: ${name}`);
}

async function signIn(page, row) {
  await page.goto(`${base}/sign-in`);
  await page.fill('#email', row.username);
  await page.fill('#password', row.password);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[type=submit]')]);
  if (row.secret) {
    check(page.url() === `${base}/sign-in/code`, `${row.username}: asked for a security code`);
    await page.fill('#code', totp(base32ToHex(row.secret)));
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[type=submit]')]);
  }
  check(page.url() === `${base}/`, `${row.username} (${row.role}, ${row.sector}) signs in (at ${page.url()})`);
  check(await page.locator('#signed-in-name').count() === 1, `${row.username}: home page, signed in`);
}

/// The kind of page `path` is: its ids (UUIDs, long tokens, numbers as in `demo-child-7`)
/// and query values taken out, so `/passport/<id>/section/allergies` is one kind whichever
/// child it is.
function kindOf(path) {
  const url = new URL(path, origin);
  const segments = url.pathname
    .split('/')
    .map((s) => (/^[0-9a-f-]{16,}$/i.test(s) || /^(?=.*\d)[A-Za-z0-9_-]{22,}$/.test(s) ? ':id' : s.replace(/\d+/g, '#')));
  const keys = [...url.searchParams.keys()].sort().join('&');
  return segments.join('/') + (keys ? `?${keys}` : '');
}

/// The same-origin pages the current page links to, in order, without repeats.
async function linkedPages(page) {
  const hrefs = await page.$$eval('a[href]', (as) => as.filter((a) => !a.hasAttribute('download')).map((a) => a.href));
  const seen = new Set();
  const out = [];
  for (const href of hrefs) {
    const url = new URL(href);
    if (url.origin !== origin) continue;
    const path = url.pathname + url.search;
    if (NOT_A_PAGE.some((re) => re.test(url.pathname)) || seen.has(path) || path === '/') continue;
    seen.add(path);
    out.push(path);
  }
  return out;
}

const browser = await chromium.launch(CHROMIUM);
try {
  const rows = demoRows();
  check(rows.length >= 30, `docs/DEMO.md lists the demo sign-ins (${rows.length} rows)`);
  for (const row of rows) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, row);
    await axe(page, `${row.username} home`);
    // Breadth first from the home page: each kind of page once.
    const seen = new Set([kindOf('/')]);
    const queue = [];
    const enqueue = (paths) => {
      for (const path of paths) {
        const kind = kindOf(path);
        if (seen.has(kind)) continue;
        seen.add(kind);
        queue.push(path);
      }
    };
    enqueue(await linkedPages(page));
    let visited = 0;
    while (queue.length && visited < PAGES_PER_ACCOUNT) {
      const path = queue.shift();
      visited += 1;
      const resp = await page.goto(`${base}${path}`);
      const type = resp.headers()['content-type'] || '';
      if (!type.startsWith('text/html')) continue;
      check(resp.status() === 200, `${row.username}: ${path} opens (${resp.status()})`);
      await axe(page, `${row.username} ${path}`);
      enqueue(await linkedPages(page));
    }
    check(queue.length === 0, `${row.username}: every reachable kind of page looked at (${visited} pages; ${queue.length} left past the bound of ${PAGES_PER_ACCOUNT})`);
    console.log(`  ${row.username}: ${visited} kinds of page`);
    await context.close();
  }
} catch (e) {
  failures.push(String(e && e.stack || e));
  console.log(`FAIL ${e && e.stack || e}`);
} finally {
  await browser.close();
}

console.log(`\n${total() - failures.length}/${total()} demo browser checks passed`);
process.exit(failures.length ? 1 : 0);
