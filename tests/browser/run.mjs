// Browser tests for Passport's pages: drives Debian's Chromium with playwright-core and
// checks every page type with axe-core (WCAG 2.2 A/AA). Started by
// crates/server/tests/browser.rs, which runs the server and seeds the accounts:
//
//   node tests/browser/run.mjs <base-url> <fixture-json>
//
// fixture: { staff: { email, password, secretHex }, family: { email, password },
//            resetPath, resetPath2, more: { regional, orgAdmin, erClinician, officer, parent,
//            child, clinician, teacher, school } }
import { chromium } from 'playwright-core';
import { CHROMIUM, axeRun, checker, totp } from './harness.mjs';

const [base, fixtureJson] = process.argv.slice(2);
if (!base || !fixtureJson) {
  console.error('usage: node run.mjs <base-url> <fixture-json>');
  process.exit(2);
}
const fixture = JSON.parse(fixtureJson);
const origin = new URL(base).origin;

// A security code works once, so repeated sign-ins of one account within 30 s use the
// codes the server accepts for clock drift, oldest first (as the Rust tests do).
async function enterCode(page, secretHex) {
  const now = Math.floor(Date.now() / 1000);
  for (const offset of [-30, 0, 30]) {
    await page.fill('#code', totp(secretHex, now + offset));
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[type=submit]')]);
    if (page.url() === `${base}/`) return;
  }
  throw new Error('no security code was accepted');
}

// With PASSPORT_SCREENSHOTS=<dir>, the pages a user sees are saved there (docs/screenshots
// is made this way), at a phone's width where `phone` is set.
async function shot(page, name, phone = false) {
  const dir = process.env.PASSPORT_SCREENSHOTS;
  if (!dir) return;
  const size = page.viewportSize();
  if (phone) await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
  if (phone && size) await page.setViewportSize(size);
}

const { check, failures, total } = checker();

const browser = await chromium.launch(CHROMIUM);

/// A fresh context whose pages record every request to another host and every console
/// error (a CSP violation shows up there).
async function newPage({ javaScriptEnabled = true } = {}) {
  const context = await browser.newContext({ javaScriptEnabled });
  const page = await context.newPage();
  page.foreign = [];
  page.consoleErrors = [];
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(origin + '/') && !url.startsWith('data:')) page.foreign.push(url);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') page.consoleErrors.push(m.text());
  });
  return page;
}

async function axe(page, name) {
  const result = await axeRun(page);
  for (const v of result.violations) {
    console.log(`  axe ${name}: ${v.id} (${v.impact}): ${v.help}`);
    for (const n of v.nodes.slice(0, 3)) console.log(`      ${n.target.join(' ')}`);
  }
  check(result.violations.length === 0, `axe WCAG 2.2 A/AA: ${name} (${result.passes.length} rules pass)`);
}

function clean(page, name) {
  check(page.foreign.length === 0, `no request to another host: ${name} ${page.foreign.join(' ')}`);
  const csp = page.consoleErrors.filter((t) => /Content Security Policy|Refused to/.test(t));
  check(csp.length === 0, `no CSP violation: ${name} ${csp.join(' | ')}`);
}

async function styled(page, name) {
  const font = await page.evaluate(() => getComputedStyle(document.body).fontFamily);
  check(/Arial/.test(font), `NHS.UK styles load, Arial font: ${name} (${font})`);
  const headerBg = await page.evaluate(() => {
    const h = document.querySelector('.nhsuk-header');
    return h ? getComputedStyle(h).backgroundColor : '';
  });
  check(headerBg === 'rgb(0, 94, 184)', `NHS blue header: ${name} (${headerBg})`);
}

try {
  // Sign-in page, empty.
  const page = await newPage();
  let resp = await page.goto(`${base}/sign-in`);
  check(resp.status() === 200, 'sign-in page loads');
  check((await page.title()) === 'Sign in – Passport', `sign-in title: ${await page.title()}`);
  await styled(page, 'sign-in');
  await axe(page, 'sign-in (empty)');

  // With errors.
  await page.click('button[type=submit]');
  await page.waitForLoadState();
  check((await page.title()).startsWith('Error: '), 'error title has the Error: prefix');
  check(await page.locator('.nhsuk-error-summary a[href="#email"]').count() === 1, 'error summary links to the email field');
  check(await page.locator('#email-error').count() === 1, 'inline error on the email field');
  await axe(page, 'sign-in (with errors)');

  // Full staff sign-in: password, then a TOTP code computed here.
  await page.fill('#email', fixture.staff.email);
  await page.fill('#password', fixture.staff.password);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/sign-in/code`);
  check(true, 'password accepted; TOTP step shown');
  await axe(page, 'TOTP step');
  await page.fill('#code', '000000');
  await page.click('button[type=submit]');
  await page.waitForLoadState();
  check(await page.locator('#code-error').count() === 1, 'a wrong code is refused with an inline error');
  await axe(page, 'TOTP step (with errors)');
  await enterCode(page, fixture.staff.secretHex);
  const who = await page.textContent('#signed-in-as');
  check(/You are signed in as .*\(Clinician, /.test(who), `home page: ${who.trim()}`);
  await styled(page, 'home');
  await axe(page, 'home');

  // Sign out.
  await page.click('text=Sign out');
  await page.waitForURL(`${base}/sign-in?signed-out`);
  check(await page.locator('text=You have signed out.').count() === 1, 'signed out');
  clean(page, 'sign-in flow');

  // CSRF: a tampered token is refused with a helpful page.
  const p2 = await newPage();
  await p2.goto(`${base}/sign-in`);
  await p2.fill('#email', fixture.family.email);
  await p2.fill('#password', fixture.family.password);
  await p2.evaluate(() => { document.querySelector('input[name=csrf_token]').value = 'tampered'; });
  const [csrfResp] = await Promise.all([
    p2.waitForResponse((r) => r.url() === `${base}/sign-in` && r.request().method() === 'POST'),
    p2.click('button[type=submit]'),
  ]);
  check(csrfResp.status() === 403, `tampered CSRF token refused (${csrfResp.status()})`);
  check(await p2.locator('h1', { hasText: 'Your form could not be sent' }).count() === 1, 'CSRF refusal page explains');
  await axe(p2, 'CSRF refusal');
  clean(p2, 'CSRF');

  // Without JavaScript: a family member signs in.
  const p3 = await newPage({ javaScriptEnabled: false });
  await p3.goto(`${base}/sign-in`);
  await p3.fill('#email', fixture.family.email);
  await p3.fill('#password', fixture.family.password);
  await p3.click('button[type=submit]');
  await p3.waitForURL(`${base}/`);
  check(/family member/.test(await p3.textContent('#signed-in-as')), 'sign-in works without JavaScript');
  clean(p3, 'no-JS sign-in');

  // Password reset page.
  const p4 = await newPage();
  resp = await p4.goto(`${base}${fixture.resetPath}`);
  check(resp.status() === 200, 'reset page loads');
  await axe(p4, 'password reset');
  await p4.fill('#password', 'short');
  await p4.fill('#confirm', 'short');
  await p4.click('button[type=submit]');
  await p4.waitForLoadState();
  check((await p4.title()).startsWith('Error: '), 'reset errors: Error: title');
  await axe(p4, 'password reset (with errors)');
  await p4.fill('#password', 'a long new passphrase');
  await p4.fill('#confirm', 'a long new passphrase');
  await p4.click('button[type=submit]');
  await p4.waitForURL(`${base}/sign-in?password-changed`);
  check(true, 'reset link redeemed');
  resp = await p4.goto(`${base}${fixture.resetPath}`);
  check(resp.status() === 410, 'reset link is single-use');
  await axe(p4, 'used reset link');
  clean(p4, 'reset');

  // Family onboarding (crates/server/src/web/onboarding.rs): the staff invitation pages,
  // redemption, self-registration and the staff list of requests.
  const p5 = await newPage();
  await p5.goto(`${base}/sign-in`);
  await p5.fill('#email', fixture.staff.email);
  await p5.fill('#password', fixture.staff.password);
  await p5.click('button[type=submit]');
  await p5.waitForURL(`${base}/sign-in/code`);
  await enterCode(p5, fixture.staff.secretHex);
  resp = await p5.goto(`${base}/onboarding/invite`);
  check(resp.status() === 200, 'invite page loads');
  await axe(p5, 'invite a parent or carer');
  await p5.fill('#nhs_number', '123');
  await p5.click('button[type=submit]');
  await p5.waitForLoadState();
  check(await p5.locator('.nhsuk-error-summary a[href="#nhs_number"]').count() === 1, 'invite errors link to the field');
  await axe(p5, 'invite (with errors)');
  await p5.fill('#nhs_number', '943 476 5919');
  await p5.fill('#given', 'Mia');
  await p5.fill('#family', 'Jones');
  await p5.fill('#birth_date', '27/03/2019');
  await p5.click('button[type=submit]');
  await p5.waitForLoadState();
  check(await p5.locator('#check-answers').count() === 1, 'a new passport: check the details first');
  await axe(p5, 'check the child\'s details');
  await Promise.all([p5.waitForNavigation(), p5.click('#confirm-create')]);
  check(await p5.locator('#invitation-code').count() === 1, 'invitation code shown');
  check(await p5.locator('.passport-qr svg').count() === 1, 'QR code shown as inline SVG');
  await axe(p5, 'invitation created');
  const joinLink = await p5.getAttribute('#invitation-link', 'href');

  const p6 = await newPage();
  resp = await p6.goto(`${base}/join`);
  check(resp.status() === 200, 'join page loads');
  await axe(p6, 'join (enter a code)');
  resp = await p6.goto(joinLink);
  check(resp.status() === 200, 'join link loads');
  await axe(p6, 'join with a code');
  await p6.click('button[type=submit]');
  await p6.waitForLoadState();
  check((await p6.title()).startsWith('Error: '), 'join errors: Error: title');
  await axe(p6, 'join with a code (with errors)');

  const p7 = await newPage();
  resp = await p7.goto(`${base}/register`);
  check(resp.status() === 200, 'register page loads');
  await axe(p7, 'ask to join (self-registration)');
  await p7.click('button[type=submit]');
  await p7.waitForLoadState();
  check(await p7.locator('.nhsuk-error-summary a[href="#nhs_number"]').count() === 1, 'register errors link to the field');
  await axe(p7, 'ask to join (with errors)');
  await p7.fill('#name', 'Alex Jones');
  await p7.fill('#email', 'alex.jones@example.com');
  await p7.fill('#password', 'a long new passphrase');
  await p7.check('#relationship');
  await p7.fill('#nhs_number', '9434765919');
  await p7.fill('#birth_date', '27/03/2019');
  await p7.click('button[type=submit]');
  await p7.waitForLoadState();
  // A new sign-in waits for its email address to be verified (crates/server/tests/mail.rs
  // follows the emailed link); a signed-in family member asks at once.
  check(await p7.locator('h1', { hasText: 'Check your email' }).count() === 1, 'self-registration: check your email');
  await axe(p7, 'check your email');
  await p7.goto(`${base}/sign-in`);
  await p7.fill('#email', fixture.asker.email);
  await p7.fill('#password', fixture.asker.password);
  await p7.click('button[type=submit]');
  await p7.waitForURL(`${base}/`);
  resp = await p7.goto(`${base}/register`);
  check(resp.status() === 200, 'register page loads (signed in)');
  await p7.check('#relationship');
  await p7.fill('#nhs_number', '9434765919');
  await p7.fill('#birth_date', '27/03/2019');
  await p7.click('button[type=submit]');
  await p7.waitForLoadState();
  check(await p7.locator('h1', { hasText: 'Your request has been sent' }).count() === 1, 'self-registration sent');
  await axe(p7, 'request sent');

  resp = await p5.goto(`${base}/onboarding/requests`);
  check(resp.status() === 200, 'requests page loads');
  check(await p5.locator('#requests').count() === 1, 'the pending request is listed');
  await axe(p5, 'requests from families');
  clean(p5, 'onboarding (staff)');
  clean(p6, 'onboarding (join)');
  clean(p7, 'onboarding (register)');

  // Admin, emergency access, privacy review, sharing choices and the family's access log.
  const more = fixture.more;
  async function signInStaff(p, who) {
    await p.goto(`${base}/sign-in`);
    await p.fill('#email', who.email);
    await p.fill('#password', who.password);
    await p.click('button[type=submit]');
    await p.waitForURL(`${base}/sign-in/code`);
    await enterCode(p, who.secretHex);
  }
  const p8 = await newPage();
  await signInStaff(p8, more.regional);
  await axe(p8, 'home (regional admin links)');
  resp = await p8.goto(`${base}/admin/organisations`);
  check(resp.status() === 200, 'organisations page loads');
  await axe(p8, 'organisations');
  await p8.click('form[action="/admin/organisations"] button[type=submit]');
  await p8.waitForLoadState();
  check(await p8.locator('.nhsuk-error-summary a[href="#name"]').count() === 1, 'organisation errors link to the field');
  await axe(p8, 'organisations (with errors)');
  resp = await p8.goto(`${base}/admin/clients`);
  check(resp.status() === 200, 'connected systems page loads');
  await axe(p8, 'connected systems');
  await p8.fill('#name', 'GP system');
  await p8.check('#grant-client_credentials');
  await p8.fill('#scope', 'system/Patient.rs');
  await p8.click('form[action="/admin/clients"] button[type=submit]');
  await p8.waitForLoadState();
  check(await p8.locator('#client-secret').count() === 1, 'client secret shown once');
  await axe(p8, 'system registered');
  resp = await p8.goto(`${base}/admin/clients`);
  await axe(p8, 'connected systems (with a client)');
  clean(p8, 'regional admin');

  const p9 = await newPage();
  await signInStaff(p9, more.orgAdmin);
  resp = await p9.goto(`${base}/admin/staff`);
  check(resp.status() === 200, 'staff page loads');
  await axe(p9, 'staff');
  await p9.click('form[action="/admin/staff"] button[type=submit]');
  await p9.waitForLoadState();
  await axe(p9, 'staff (with errors)');
  await p9.fill('#name', 'Nia Nurse');
  await p9.fill('#email', 'nia@example.nhs.uk');
  await p9.selectOption('#role', 'nurse');
  await p9.click('form[action="/admin/staff"] button[type=submit]');
  await p9.waitForLoadState();
  check(await p9.locator('#reset-link').count() === 1, 'staff account created with a reset link');
  await axe(p9, 'staff account created');
  clean(p9, 'organisation admin');

  const p10 = await newPage();
  await signInStaff(p10, more.erClinician);
  resp = await p10.goto(`${base}/break-glass`);
  check(resp.status() === 200, 'emergency access page loads');
  await axe(p10, 'emergency access');
  await p10.click('form[action="/break-glass"] button[type=submit]');
  await p10.waitForLoadState();
  check(await p10.locator('.nhsuk-error-summary a[href="#reason"]').count() === 1, 'emergency access needs a reason');
  await axe(p10, 'emergency access (with errors)');
  await p10.fill('#nhs_number', more.child.nhs);
  await p10.fill('#birth_date', more.child.dob);
  await p10.fill('#reason', 'Unconscious in A&E');
  await p10.check('#confirm');
  await p10.click('form[action="/break-glass"] button[type=submit]');
  await p10.waitForLoadState();
  check(await p10.locator('#notice').count() === 1, 'emergency information shown with its expiry');
  await axe(p10, 'emergency information');
  clean(p10, 'break-glass');

  const p11 = await newPage();
  await signInStaff(p11, more.officer);
  resp = await p11.goto(`${base}/privacy`);
  check(resp.status() === 200, 'privacy review loads');
  check(await p11.locator('#grants').count() === 1, 'the emergency access is listed for review');
  await axe(p11, 'privacy review');
  resp = await p11.goto(`${base}/privacy?nhs_number=${more.child.nhs}`);
  check(await p11.locator('#access-log').count() === 1, 'access log of the child');
  await axe(p11, 'privacy review (access log)');
  resp = await p11.goto(`${base}/privacy?nhs_number=123`);
  await axe(p11, 'privacy review (with errors)');
  clean(p11, 'privacy');

  const p12 = await newPage();
  await p12.goto(`${base}/sign-in`);
  await p12.fill('#email', more.parent.email);
  await p12.fill('#password', more.parent.password);
  await p12.click('button[type=submit]');
  await p12.waitForURL(`${base}/`);
  await axe(p12, 'home (family links)');
  resp = await p12.goto(`${base}/passport/${more.child.id}/sharing`);
  check(resp.status() === 200, 'sharing choices load');
  check((await p12.locator('#sector-education').innerText()).includes('allergies'), 'the summary says in words what schools see');
  await axe(p12, 'sharing choices');
  await shot(p12, 'sharing-summary', true);
  // One question per page, by keyboard: what schools see.
  await p12.click('#sector-education a:has-text("Change")');
  await p12.waitForLoadState();
  check((await p12.locator('h1').innerText()).includes('What can schools'), 'one question: what schools see');
  await axe(p12, 'sharing: what schools see');
  await shot(p12, 'sharing-question', true);
  await p12.focus('button[type=submit]:has-text("Save choice")');
  await Promise.all([p12.waitForNavigation(), p12.keyboard.press('Enter')]);
  check(await p12.locator('#saved').count() === 1, 'sharing choices saved');
  await axe(p12, 'sharing choices (saved)');
  // An exception for one organisation of the care team.
  const firstOrg = p12.locator('#team a:has-text("Change")').first();
  if (await firstOrg.count() === 1) {
    await firstOrg.click();
    await p12.waitForLoadState();
    await axe(p12, 'sharing: what one organisation sees');
  }
  resp = await p12.goto(`${base}/passport/${more.child.id}/access-log`);
  check(resp.status() === 200, 'access log loads');
  check(await p12.locator('.emergency-access').count() === 1, 'emergency access shown to the family');
  await axe(p12, 'family access log');
  clean(p12, 'family pages');

  // The passport (issue 10): the parent adds an allergy with a coded substance and a
  // reaction; the school sees exactly the sharing preview; the clinician sees it waiting,
  // checks it and "what changed" empties; the parent's change makes it wait again; two
  // carers' edits give a conflict page; an item marked no longer true leaves the passport.
  const passport = `${base}/passport/${more.child.id}`;
  const fam = await newPage();
  await fam.goto(`${base}/sign-in`);
  await fam.fill('#email', more.parent.email);
  await fam.fill('#password', more.parent.password);
  await fam.click('button[type=submit]');
  await fam.waitForURL(`${base}/`);
  resp = await fam.goto(passport);
  check(resp.status() === 200, 'the passport loads for the parent');
  check(await fam.locator('#allergies-none').count() === 1, 'no allergy recorded yet: "None recorded"');
  check(await fam.locator('#sign-out').count() === 1, 'the header offers sign out');
  await axe(fam, 'passport (family)');
  resp = await fam.goto(`${passport}/add/allergy`);
  check(resp.status() === 200, 'the allergy form loads');
  await axe(fam, 'add an allergy');
  await fam.click('form[action$="/add/allergy"] button[type=submit]');
  await fam.waitForLoadState();
  check(await fam.locator('.nhsuk-error-summary a[href="#allergy-substance"]').count() === 1, 'missing substance: error summary');
  await axe(fam, 'add an allergy (with errors)');
  // Search as you type narrows the coded list; one match is chosen.
  check(await fam.locator('#allergy-substance-search').count() === 1, 'a search box for the substance list');
  await fam.fill('#allergy-substance-search', 'wasp');
  check((await fam.locator('#allergy-substance-search-status').innerText()).includes('1 match'), 'one match for "wasp"');
  check((await fam.$eval('#allergy-substance', (s) => s.options[s.selectedIndex].text)).includes('wasp sting'), 'the one match is chosen');
  await axe(fam, 'add an allergy (searching)');
  await fam.fill('#allergy-substance-search', '');
  await fam.selectOption('#allergy-substance', { label: 'Peanut' });
  await fam.selectOption('#allergy-reaction', 'other');
  await fam.fill('#allergy-reaction-other', 'Swollen lips');
  await fam.selectOption('#allergy-severity', 'severe');
  await fam.keyboard.press('Tab');
  await Promise.all([fam.waitForNavigation(), fam.click('form[action$="/add/allergy"] button[type=submit]')]);
  check(fam.url().startsWith(passport), `saved, back at the passport (${fam.url()})`);
  check((await fam.locator('#allergies').innerText()).includes('waiting for review'), 'the allergy waits for review');

  // A photo: a real JPEG drawn by the browser, with an Exif block saying where it was
  // taken spliced in; saved without it, and still drawn on the passport.
  resp = await fam.goto(`${passport}/photo`);
  check(resp.status() === 200, 'the photo page loads');
  await axe(fam, 'add a photo');
  const drawn = await fam.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 40; c.height = 40;
    const g = c.getContext('2d');
    g.fillStyle = '#005eb8'; g.fillRect(0, 0, 40, 40);
    g.fillStyle = '#ffeb3b'; g.fillRect(10, 10, 20, 20);
    return c.toDataURL('image/jpeg').split(',')[1];
  });
  const jpeg = Buffer.from(drawn, 'base64');
  const exifBody = Buffer.from('Exif\0\0MM\0*GPSLatitude 53.8N GPSLongitude 1.5W', 'latin1');
  const exif = Buffer.concat([Buffer.from([0xFF, 0xE1, 0, exifBody.length + 2]), exifBody]);
  const withPlace = Buffer.concat([jpeg.subarray(0, 2), exif, jpeg.subarray(2)]);
  await fam.setInputFiles('#photo', { name: 'mia.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('not a photo') });
  await Promise.all([fam.waitForNavigation(), fam.click('form[action$="/photo"] button[type=submit]')]);
  check(await fam.locator('.nhsuk-error-summary a[href="#photo"]').count() === 1, 'not a photo: error summary');
  await axe(fam, 'add a photo (with errors)');
  await shot(fam, 'photo-error', true);
  await fam.setInputFiles('#photo', { name: 'mia.jpg', mimeType: 'image/jpeg', buffer: withPlace });
  await Promise.all([fam.waitForNavigation(), fam.click('form[action$="/photo"] button[type=submit]')]);
  check(fam.url().startsWith(passport), `photo saved, back at the passport (${fam.url()})`);
  const photo = fam.locator('img.passport-photo');
  check(await photo.count() === 1, 'the photo is on the passport');
  check(await photo.evaluate((i) => i.complete && i.naturalWidth === 40), 'the cleaned photo still draws');
  await shot(fam, 'passport-family-photo', true);
  const served = await fam.evaluate(async (src) => {
    const b = new Uint8Array(await (await fetch(src)).arrayBuffer());
    return String.fromCharCode(...b);
  }, await photo.getAttribute('src'));
  check(!served.includes('GPS') && !served.includes('Exif'), 'where it was taken is gone');

  // The family asks for an organisation to be added to the care team.
  resp = await fam.goto(`${passport}/care-team`);
  check(resp.status() === 200, 'the care team loads for the family');
  await axe(fam, 'care team (family)');
  const askFor = await fam.$eval('#organisation', (s) => [...s.options].find((o) => o.value)?.value);
  if (askFor) {
    await fam.selectOption('#organisation', askFor);
    await Promise.all([fam.waitForNavigation(), fam.click('button[type=submit]:has-text("Ask to add")')]);
    check((await fam.locator('#requests').innerText()).includes('Waiting for an answer'), 'the request waits for the care team');
    await axe(fam, 'care team (family, request waiting)');
    await shot(fam, 'care-team-family', true);
  } else {
    check(false, 'an organisation to ask for');
  }

  // The school's staff see exactly what the preview shows.
  const sections = (p) => p.$$eval('section.passport-section', (ss) => ss.map((s) => [s.id,
    s.querySelector('.not-shared') ? 'not shared' : [...s.querySelectorAll('h3')].map((h) => h.textContent.trim()).join('|')]));
  resp = await fam.goto(`${passport}/sharing/${more.school}`);
  check(resp.status() === 200, 'the sharing preview loads');
  await axe(fam, 'sharing preview');
  const preview = await sections(fam);
  const school = await newPage();
  await signInStaff(school, more.teacher);
  resp = await school.goto(passport);
  check(resp.status() === 200, 'the school sees the passport');
  const seen = await sections(school);
  check(JSON.stringify(seen) === JSON.stringify(preview), `the school sees exactly the preview: ${JSON.stringify(seen)}`);
  check(JSON.stringify(seen).includes('Peanut'), 'the school sees the allergy (shared with schools by default)');
  await axe(school, 'passport (school)');
  clean(school, 'passport (school)');

  // The clinician checks it.
  const doc = await newPage();
  await signInStaff(doc, more.clinician);
  resp = await doc.goto(`${base}/passports`);
  check(resp.status() === 200, 'the clinician\'s list loads');
  await axe(doc, 'children in your care team');
  await doc.goto(passport);
  check(await doc.locator('#waiting-review').count() === 1, 'the clinician sees an item waiting for review');
  await axe(doc, 'passport (clinician)');
  await doc.goto(`${passport}/changes`);
  check((await doc.locator('main').innerText()).includes('Swollen lips'), 'what changed shows the reaction');
  await axe(doc, 'what changed');
  // The allergy and the photo wait: each is checked in turn.
  for (let n = 0; n < 5 && await doc.locator('.passport-change button[type=submit]').count() > 0; n++) {
    await Promise.all([doc.waitForNavigation(), doc.locator('.passport-change button[type=submit]').first().click()]);
  }
  check(await doc.locator('#nothing-changed').count() === 1, 'checked: what changed is empty');
  await doc.goto(`${passport}/care-team`);
  check(await doc.locator('#requests button:has-text("Agree")').count() === 1, 'the clinician can answer the family\'s request');
  await axe(doc, 'care team');
  await shot(doc, 'care-team');
  clean(doc, 'clinician pages');

  // The parent changes it: it waits again.
  await fam.goto(passport);
  check((await fam.locator('#allergies').innerText()).includes('Checked by Cara Carer'), 'the family sees who checked it');
  await Promise.all([fam.waitForNavigation(), fam.click('#allergies a:has-text("Change")')]);
  await axe(fam, 'change an allergy');
  const itemUrl = fam.url();
  // A second carer opens the same item at the same time.
  const fam2 = await newPage();
  await fam2.goto(`${base}/sign-in`);
  await fam2.fill('#email', more.parent.email);
  await fam2.fill('#password', more.parent.password);
  await fam2.click('button[type=submit]');
  await fam2.waitForURL(`${base}/`);
  await fam2.goto(itemUrl);
  await fam.selectOption('#allergy-severity', 'moderate');
  await Promise.all([fam.waitForNavigation(), fam.click('form[method=post] button[type=submit]:has-text("Save")')]);
  check((await fam.locator('#allergies').innerText()).includes('waiting for review'), 'changed by the family: waiting again');
  await fam2.selectOption('#allergy-severity', 'mild');
  const clash = await Promise.all([fam2.waitForNavigation(), fam2.click('form[method=post] button[type=submit]:has-text("Save")')]);
  check((await fam2.locator('h1').innerText()).includes('Someone else changed this item'), 'concurrent edit: a conflict page');
  await axe(fam2, 'conflict page');
  // No longer true: out of the current passport, in its history.
  await fam.goto(itemUrl);
  await Promise.all([fam.waitForNavigation(), fam.click('#no-longer-true')]);
  check(await fam.locator('#allergies-none').count() === 1, 'no longer true: not in the current passport');
  check((await fam.locator('#allergies').innerText()).includes('No longer current (1)'), 'kept in its history');
  clean(fam, 'passport (family)');

  // The emergency view, the card link, printing and the family's copy (issue 11).
  const fitsWidth = async (p, width) => {
    const size = p.viewportSize();
    await p.setViewportSize({ width, height: 700 });
    const fits = await p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    if (size) await p.setViewportSize(size);
    return fits;
  };
  resp = await fam.goto(`${passport}/emergency`);
  check(resp.status() === 200, 'the emergency view loads for the parent');
  await axe(fam, 'emergency view (family)');
  check(await fitsWidth(fam, 320), 'the emergency view needs no sideways scrolling at 320 px');
  resp = await fam.goto(`${passport}/card-links`);
  check(resp.status() === 200, 'the card links page loads');
  await axe(fam, 'card links');
  await Promise.all([fam.waitForNavigation(), fam.click('button:has-text("Make a card link")')]);
  check(await fam.locator('.nhsuk-error-summary a[href="#days"]').count() === 1, 'no length chosen: error summary');
  await axe(fam, 'card links (with errors)');
  await fam.check('input[name=days][value="31"]');
  await Promise.all([fam.waitForNavigation(), fam.click('button:has-text("Make a card link")')]);
  const cardUrl = (await fam.locator('#card-link-url').innerText()).trim();
  check(cardUrl.includes('/card/'), `a card link is shown once (${cardUrl.length} characters)`);
  await axe(fam, 'card link made');
  await shot(fam, 'card-link-made', true);
  // Whoever holds it: nobody signed in, in a browser of their own.
  const holder = await newPage();
  resp = await holder.goto(cardUrl);
  check(resp.status() === 200, 'the card link opens the emergency view');
  check((await holder.locator('main').innerText()).includes('Emergency information for'), 'the card link shows the emergency view');
  await axe(holder, 'emergency view (card link)');
  check(await fitsWidth(holder, 320), 'the card link\'s view fits 320 px');
  await shot(holder, 'emergency-view', true);
  resp = await fam.goto(`${passport}/print`);
  check(resp.status() === 200, 'the print page loads');
  await axe(fam, 'print the passport');
  resp = await fam.goto(`${passport}/download`);
  check(resp.status() === 200, 'the download page loads');
  await axe(fam, 'download a copy');
  // Stopped: the link shows nothing of the child.
  await fam.goto(`${passport}/card-links`);
  await Promise.all([fam.waitForNavigation(), fam.click('button:has-text("Stop this link")')]);
  resp = await holder.goto(cardUrl);
  const stoppedText = await holder.locator('main').innerText();
  check(resp.status() === 404 && stoppedText.includes('does not work') && !stoppedText.includes('Emergency information for'), 'a stopped card link shows nothing of the child');
  await axe(holder, 'card link stopped');
  clean(holder, 'card link');
  clean(fam, 'emergency pages');

  // The regional admin's templates.
  const ra = await newPage();
  await signInStaff(ra, more.regional);
  resp = await ra.goto(`${base}/admin/templates`);
  check(resp.status() === 200, 'templates page loads');
  await axe(ra, 'templates');
  resp = await ra.goto(`${base}/admin/templates/epilepsy`);
  await axe(ra, 'template preview');
  clean(ra, 'templates');
} catch (e) {
  failures.push(String(e && e.stack || e));
  console.log(`FAIL ${e && e.stack || e}`);
} finally {
  await browser.close();
}

console.log(`\n${total() - failures.length}/${total()} browser checks passed`);
process.exit(failures.length ? 1 : 0);
