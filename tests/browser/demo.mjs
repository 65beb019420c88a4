// The demo region in a real browser, following docs/DEMO.md alone: every row of its sign-in
// table signs in (password, then a code from the row's TOTP secret for staff), and every
// page that account's home page links to opens and passes axe-core (WCAG 2.2 A/AA).
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
const PAGES_PER_ACCOUNT = 12;

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
    const pages = (await linkedPages(page)).slice(0, PAGES_PER_ACCOUNT);
    for (const path of pages) {
      const resp = await page.goto(`${base}${path}`);
      const type = resp.headers()['content-type'] || '';
      if (!type.startsWith('text/html')) continue;
      check(resp.status() === 200, `${row.username}: ${path} opens (${resp.status()})`);
      await axe(page, `${row.username} ${path}`);
    }
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
