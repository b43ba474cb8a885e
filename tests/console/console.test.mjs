// Browser tests of the city console and the merchant portal (`/console/`), in a real headless
// Chromium (Debian's `chromium`) driven by playwright-core, against the real wallet-server on a
// free port with a fresh SQLite database. Data is made through the API; then an admin and a
// merchant use the pages as people would (keyboard included), and what the pages show is checked
// against what the API answers. axe-core checks every page; each page's screenshot is kept.
//
// Run by scripts/test (after the cargo tests, which build target/debug/wallet-server):
//   cd tests/console && npm ci && npm test
// WALLET_SERVER_BIN picks another binary; WALLET_CONSOLE_SCREENSHOTS=docs writes the
// screenshots to docs/console/ (what docs/CONSOLE.md shows) instead of target/console-screenshots/.

import {describe, it, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {readFileSync, readdirSync, mkdirSync} from 'node:fs';
import {join} from 'node:path';
import {createRequire} from 'node:module';
import {chromium} from 'playwright-core';
import {Server, ROOT, PASSWORD, ADMIN_LOGIN} from './server.mjs';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const CONSOLE_DIR = join(ROOT, 'wallet-server/console');
const SHOTS_DIR = process.env.WALLET_CONSOLE_SCREENSHOTS === 'docs'
  ? join(ROOT, 'docs/console')
  : join(ROOT, 'target/console-screenshots');
/** The flags this machine's Chromium needs (no sandbox as root, no network beyond loopback). */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** The test clock: the first payments on 2030-03-14 at 10:00 KST, then the console is used the
 * next day (moved before any page logs in: a move of the clock ends the sessions it outlives). */
const DAY_ONE = '2030-03-14';
const DAY_ONE_CLOCK = '2030-03-14T01:00:00Z';
const DAY_TWO_CLOCK = '2030-03-15T01:00:00Z';
/** Citizens given an allowance by the uploaded file: more than one grants request's 1,000 lines. */
const GRANTEES = 1050;
/** How long a page has to show what a test waits for. */
const WAIT_MS = 15_000;

/**
 * A console module without imports, loaded as the browser loads it (an ES module), whatever
 * Node.js makes of a `.js` file outside a package of type module.
 */
function loadModule(name) {
  const source = readFileSync(join(CONSOLE_DIR, name), 'utf8');
  return import('data:text/javascript;charset=utf-8,' + encodeURIComponent(source));
}

let server;
let browser;
const data = {};
/**
 * Whether the server has the operations API the merchants, citizens and merchant portal pages
 * use (issue 19's, built beside the console): their tests are skipped, saying so, on a server
 * whose API document lacks it, and run as soon as it is there.
 */
let opsApi = false;

function needsOpsApi(test) {
  if (!opsApi) test.skip('the operations API (GET /v1/admin/merchants, …) is not in this server\'s /openapi.json yet');
  return !opsApi;
}

/**
 * Everything the console needs to be shown with: two shops, citizens, payments and a refund on
 * day one, then the clock on day two and a payment at each shop.
 */
async function makeCity() {
  let admin = await server.logIn(ADMIN_LOGIN);
  await server.ok(200, 'PUT', '/v1/admin/test-clock', {token: admin, body: {now: DAY_ONE_CLOCK}});
  admin = await server.logIn(ADMIN_LOGIN);
  await server.ok(200, 'PUT', '/v1/admin/policy', {token: admin, body: {
    cashback_rate: '0.1', cashback_monthly_spend_cap: '500000', monthly_charge_limit: '2000000',
    holding_limit: '3000000', merchant_fee_rate: '0.01'}});
  await server.ok(201, 'POST', '/v1/admin/cashback-budget/top-ups', {token: admin, body: {amount: '1000000'}, key: true});
  const shops = [['bakery', '정가네 빵집', '214-86-00001'], ['kimbap', '하늘김밥', '214-86-00002']];
  for (const [login, name, business_number] of shops) {
    await server.ok(201, 'POST', '/v1/admin/merchants', {token: admin, body: {
      login, password: PASSWORD, name, business_number, bank_account: `088-${login}-01`, category: 'food'}});
  }
  let bakery = await server.logIn('bakery');
  let kimbap = await server.logIn('kimbap');
  const citizens = {};
  for (const login of ['minji', 'junho', 'seoyeon']) {
    const created = await server.ok(201, 'POST', '/v1/citizens', {body: {login, password: PASSWORD}});
    const token = await server.logIn(login);
    await server.ok(201, 'POST', '/v1/wallet/charges', {token, body: {amount: '100000'}, key: true});
    citizens[login] = {...created, token};
  }
  const pay = async (citizen, shop, amount) => {
    const {code} = await server.ok(201, 'POST', '/v1/wallet/payment-codes', {token: citizens[citizen].token});
    return server.ok(201, 'POST', '/v1/payments', {token: shop, body: {payment_code: code, amount}, key: true});
  };
  const bakeryPayments = [await pay('minji', bakery, '12000'), await pay('junho', bakery, '8000')];
  const kimbapPayments = [await pay('seoyeon', kimbap, '4500')];
  await server.ok(201, 'POST', `/v1/payments/${bakeryPayments[1].payment_id}/refunds`, {token: bakery, body: {amount: '3000'}, key: true});
  await server.ok(200, 'PUT', '/v1/admin/test-clock', {token: admin, body: {now: DAY_TWO_CLOCK}});
  admin = await server.logIn(ADMIN_LOGIN);
  bakery = await server.logIn('bakery');
  kimbap = await server.logIn('kimbap');
  for (const login of Object.keys(citizens)) citizens[login].token = await server.logIn(login);
  await pay('minji', bakery, '5000');
  await pay('seoyeon', kimbap, '3000');
  Object.assign(data, {admin, bakery, kimbap, citizens, bakeryPayments, kimbapPayments});
}

/** Citizens for the grant file, registered in parallel (cheap argon2 on the test server). */
async function registerGrantees() {
  const wallets = [];
  const logins = Array.from({length: GRANTEES}, (_, index) => `grantee${String(index).padStart(4, '0')}`);
  for (let start = 0; start < logins.length; start += 8) {
    const created = await Promise.all(logins.slice(start, start + 8).map((login) =>
      server.ok(201, 'POST', '/v1/citizens', {body: {login, password: PASSWORD}})));
    wallets.push(...created.map((one) => one.wallet_id));
  }
  return wallets;
}

/** A page with its own context (its own sessionStorage), failing on script errors and CSP. */
async function openPage(problems) {
  const context = await browser.newContext({viewport: {width: 1280, height: 900}, acceptDownloads: true, locale: 'ko-KR'});
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    // A refused request is logged by Chromium as a failed resource load: that is the tests' doing.
    if (message.type() === 'error' && !/Failed to load resource: the server responded with a status of (4\d\d)/.test(text)) {
      problems.push(`console error: ${text}`);
    }
  });
  return page;
}

async function logInWith(page, login, password = PASSWORD) {
  await page.goto(server.url + '/console/');
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill(password);
  await page.locator('form.login button[type="submit"]').click();
}

/** axe-core on the page as it is; fails on any serious or critical violation. */
async function checkAccessibility(page, name) {
  // Evaluated through the DevTools protocol, which the page's Content-Security-Policy does not
  // govern, so the page is checked with its real policy in force.
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() => window.axe.run(document, {resultTypes: ['violations']}));
  const serious = result.violations.filter((violation) => ['serious', 'critical'].includes(violation.impact));
  assert.deepEqual(serious.map((violation) => `${name}: ${violation.id} (${violation.impact}): ${violation.nodes.map((node) => node.target.join(' ')).join(', ')}`), []);
}

async function screenshot(page, name) {
  mkdirSync(SHOTS_DIR, {recursive: true});
  await page.screenshot({path: join(SHOTS_DIR, `${name}.png`), fullPage: true});
}

/** Goes to a page by its menu link and waits for its content. */
async function visit(page, name, title) {
  await page.locator(`nav a[href="#/${name}"]`).click();
  await page.locator('h1', {hasText: title}).waitFor({timeout: WAIT_MS});
  await page.locator('main .page:not([aria-busy])').waitFor({timeout: WAIT_MS});
  assert.equal(await page.locator('main .page [role="alert"]').count(), 0,
    `${name}: ${await page.locator('main .page [role="alert"]').allTextContents()}`);
}

describe('the city console', () => {
before(async () => {
  server = await Server.start();
  browser = await chromium.launch({executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS});
  await makeCity();
  const document = await server.ok(200, 'GET', '/openapi.json');
  opsApi = ['/v1/admin/merchants', '/v1/admin/citizens/{login}/lock', '/v1/merchant/payments', '/v1/merchant/settlements']
    .every((path) => path in document.paths);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('the console files', () => {
  it('say every word in Korean and in English, and use no key they lack', async () => {
    const {DICTIONARIES} = await loadModule('i18n.js');
    const ko = Object.keys(DICTIONARIES.ko).sort();
    const en = Object.keys(DICTIONARIES.en).sort();
    assert.deepEqual(en, ko, 'the two languages have different keys');
    const files = ['', 'pages/'].flatMap((dir) => readdirSync(join(CONSOLE_DIR, dir)).filter((name) => name.endsWith('.js')).map((name) => dir + name));
    for (const file of files) {
      const text = readFileSync(join(CONSOLE_DIR, file), 'utf8');
      for (const [, key] of text.matchAll(/\bt\('([a-z_]+\.[a-z_]+)'\s*[,)]/g)) {
        assert.ok(key in DICTIONARIES.ko, `${file} uses ${key}, which is not in i18n.js`);
      }
      for (const [, key] of text.matchAll(/key: '([a-z_]+\.[a-z_]+)'/g)) {
        assert.ok(key in DICTIONARIES.ko, `${file} uses ${key}, which is not in i18n.js`);
      }
    }
  });

  it('cut a grant file into requests of at most 1,000 lines with keys that repeat for the same file', async () => {
    const grantFile = await loadModule('grant-file.js');
    const lines = Array.from({length: 2001}, (_, index) => `W-${index},${index + 1}`);
    const parsed = grantFile.parse(['wallet_id,amount', ...lines].join('\r\n') + '\r\n');
    assert.equal(parsed.lines.length, 2001);
    const requests = grantFile.requests(parsed.lines, 'ab'.repeat(32), 'program-1');
    assert.deepEqual(requests.map((request) => request.body.grants.length), [1000, 1000, 1]);
    assert.deepEqual(requests.map((request) => request.first), [2, 1002, 2002], 'first lines, the header being line 1');
    assert.equal(new Set(requests.map((request) => request.key)).size, 3);
    assert.deepEqual(grantFile.requests(parsed.lines, 'ab'.repeat(32), 'program-1').map((request) => request.key),
      requests.map((request) => request.key), 'the same file gets the same keys');
    assert.equal(grantFile.total(parsed.lines), 2001n * 2002n / 2n);
    const bad = grantFile.parse('wallet_id,amount\nW-1,100\nW-2,1.5\nW-1,3\nW-3\n');
    assert.deepEqual(bad.problems.map((problem) => [problem.key, problem.params.line]),
      [['grant.bad_amount', 3], ['grant.duplicate', 4], ['grant.bad_fields', 5]]);
    assert.equal(grantFile.parse('wallet,amount\nW-1,1\n').problems[0].key, 'grant.bad_header');
  });
});

describe('the server serves the console', () => {
  it('from memory, gzipped, with a strict Content-Security-Policy and no cookie', async () => {
    const response = await fetch(server.url + '/console/', {headers: {'Accept-Encoding': 'gzip'}});
    assert.equal(response.status, 200);
    const policy = response.headers.get('content-security-policy');
    assert.match(policy, /default-src 'self'/);
    assert.match(policy, /script-src 'self'(;|$)/);
    assert.match(policy, /style-src 'self'(;|$)/);
    assert.doesNotMatch(policy, /unsafe/);
    assert.equal(response.headers.get('set-cookie'), null);
    assert.equal(response.headers.get('content-encoding'), 'gzip');
    assert.match(await response.text(), /<script type="module" src="app.js"><\/script>/);
    const etag = response.headers.get('etag');
    const again = await fetch(server.url + '/console/', {headers: {'If-None-Match': etag}});
    assert.equal(again.status, 304);
    assert.equal((await fetch(server.url + '/console/no-such-file.js')).status, 404);
    assert.equal((await fetch(server.url + '/console/app.js', {method: 'POST'})).status, 405);
    const redirect = await fetch(server.url + '/console', {redirect: 'manual'});
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.get('location'), '/console/');
  });
});

describe('an admin', () => {
  const problems = [];
  let page;

  before(async () => {
    page = await openPage(problems);
  });

  after(async () => {
    await page?.context().close();
  });

  it('logs in by keyboard alone and sees the overview figures the API gives', async () => {
    await page.goto(server.url + '/console/');
    await checkAccessibility(page, 'login');
    await screenshot(page, 'login');
    // Tab from the top of the page until the login field has focus, then type and press Enter.
    for (let presses = 0; presses < 10; presses++) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement?.getAttribute('name') === 'login')) break;
    }
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'login');
    await page.keyboard.type(ADMIN_LOGIN);
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.locator('[data-testid="trial-balance-total"][data-value]:not([data-value=""])').waitFor({timeout: 45_000});
    const trial = await server.ok(200, 'GET', '/v1/admin/ledger/trial-balance', {token: data.admin});
    const budget = await server.ok(200, 'GET', '/v1/admin/cashback-budget', {token: data.admin});
    const status = await server.ok(200, 'GET', '/v1/admin/status', {token: data.admin});
    assert.equal(await page.getAttribute('[data-testid="trial-balance-total"]', 'data-value'), trial.total);
    assert.equal(trial.total, '0');
    assert.equal(await page.getAttribute('[data-testid="budget-remaining"]', 'data-value'), budget.remaining);
    assert.match(await page.textContent('[data-testid="budget-remaining"]'), new RegExp(budget.remaining.replace(/\B(?=(\d{3})+$)/g, ',')));
    assert.equal(await page.getAttribute('[data-testid="payments-today"]', 'data-value'), status.today.payments_amount);
    assert.equal(status.today.payments_amount, '8000', 'day two\'s payments');
    // The admin's own session and the five logins made by the test are live; the page reads it.
    const active = Number(await page.getAttribute('[data-testid="sessions-active"]', 'data-value'));
    assert.ok(active >= 1, `sessions-active ${active}`);
    assert.equal(await page.getAttribute('[data-testid="waiting-count"]', 'data-value'), '0');
    assert.equal(await page.locator('svg.chart polyline').count(), 2);
    // The chart is live: a second reading arrives within a few seconds and adds a point.
    await page.waitForFunction(() => document.querySelector('svg.chart polyline')?.getAttribute('points').split(' ').length >= 2,
      null, {timeout: WAIT_MS});
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
    await checkAccessibility(page, 'overview');
    await screenshot(page, 'overview');
  });

  it('sees the policy refused with the server\'s own message at the field, then saves a good one', async () => {
    await visit(page, 'policy', '정책');
    const rate = page.locator('input[name="cashback_rate"]');
    await rate.fill('1.5');
    await page.locator('main form button[type="submit"]').click();
    const fieldError = page.locator('input[name="cashback_rate"] ~ .field-error');
    await fieldError.waitFor({timeout: WAIT_MS});
    const current = await server.ok(200, 'GET', '/v1/admin/policy', {token: data.admin});
    const refused = await server.call('PUT', '/v1/admin/policy', {token: data.admin, body: {...current, cashback_rate: '1.5'}});
    assert.equal(refused.status, 422);
    assert.equal(await fieldError.textContent(), refused.body.error.message);
    assert.equal(await rate.getAttribute('aria-invalid'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'cashback_rate', 'focus goes to the field');
    assert.equal((await server.ok(200, 'GET', '/v1/admin/policy', {token: data.admin})).cashback_rate, '0.1', 'nothing changed');
    await checkAccessibility(page, 'policy with an error');
    await screenshot(page, 'policy');
    await rate.fill('0.05');
    await rate.press('Enter');
    await page.locator('main .success').waitFor({timeout: WAIT_MS});
    assert.equal((await server.ok(200, 'GET', '/v1/admin/policy', {token: data.admin})).cashback_rate, '0.05');
    assert.equal(await page.locator('input[name="cashback_rate"] ~ .field-error').isHidden(), true);
  });

  it('closes a day and downloads its settlement file, byte for byte the API\'s', async () => {
    await visit(page, 'settlements', '정산');
    assert.equal(await page.inputValue('input[name="business_date"]'), DAY_ONE, 'the day before the server\'s today');
    await page.locator('main form', {has: page.locator('input[name="business_date"]')}).locator('button[type="submit"]').click();
    const link = page.locator('[data-testid="settlement-csv"]');
    await link.waitFor({timeout: WAIT_MS});
    const closed = await server.ok(200, 'GET', `/v1/admin/settlements?from=${DAY_ONE}&to=${DAY_ONE}`, {token: data.admin});
    assert.equal(closed.items.length, 1, 'the page closed the day');
    assert.equal(await page.locator('main table caption', {hasText: DAY_ONE}).count() >= 1, true);
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const downloaded = readFileSync(await download.path());
    const served = await server.call('GET', `/v1/admin/settlements/${DAY_ONE}`, {token: data.admin, accept: 'text/csv'});
    assert.equal(served.status, 200);
    assert.ok(downloaded.equals(served.bytes), 'the downloaded file is the API\'s CSV');
    assert.match(downloaded.toString('utf8'), /^business_date,merchant_id,merchant_name/);
    assert.equal(download.suggestedFilename(), `settlement-${DAY_ONE}.csv`);
    await checkAccessibility(page, 'settlements');
    await screenshot(page, 'settlements');
  });

  it('creates a program, tops it up and grants it from a file of more than 1,000 lines, once', async () => {
    const wallets = await registerGrantees();
    await visit(page, 'programs', '사업');
    await page.fill('input[name="name"]', '청년 수당 2030');
    await page.fill('input[name="valid_days"]', '90');
    await page.locator('main form', {has: page.locator('input[name="valid_days"]')}).locator('button[type="submit"]').click();
    await page.locator('main table td', {hasText: '청년 수당 2030'}).waitFor({timeout: WAIT_MS});
    const program = (await server.ok(200, 'GET', '/v1/admin/programs', {token: data.admin})).items.find((one) => one.name === '청년 수당 2030');
    assert.ok(program, 'the page created the program');
    await page.fill('input[name="amount"]', '10000000');
    await page.locator('main form', {has: page.locator('input[name="amount"]')}).locator('button[type="submit"]').click();
    await page.locator('main form', {has: page.locator('input[name="amount"]')}).locator('.success').waitFor({timeout: WAIT_MS});
    assert.equal((await server.ok(200, 'GET', `/v1/admin/programs/${program.program_id}`, {token: data.admin})).budget.funded, '10000000');
    const file = ['wallet_id,amount', ...wallets.map((wallet, index) => `${wallet},${1000 + index}`)].join('\n') + '\n';
    const total = wallets.reduce((sum, _, index) => sum + 1000 + index, 0);
    const grantRequests = [];
    page.on('request', (request) => {
      if (request.method() === 'POST' && request.url().endsWith('/grants')) {
        grantRequests.push({lines: JSON.parse(request.postData()).grants.length, key: request.headers()['idempotency-key']});
      }
    });
    const upload = async () => {
      await page.setInputFiles('input[name="grant_file"]', {name: 'grants.csv', mimeType: 'text/csv', buffer: Buffer.from(file)});
      await page.locator('main form', {has: page.locator('input[name="grant_file"]')}).locator('button[type="submit"]').click();
      await page.locator('main form', {has: page.locator('input[name="grant_file"]')}).locator('.success').waitFor({timeout: 60_000});
    };
    await upload();
    assert.deepEqual(grantRequests.map((request) => request.lines), [1000, GRANTEES - 1000]);
    assert.match(await page.textContent('[data-testid="grant-progress"]'), /1,050/);
    let budget = (await server.ok(200, 'GET', `/v1/admin/programs/${program.program_id}`, {token: data.admin})).budget;
    assert.equal(budget.granted, String(total));
    await checkAccessibility(page, 'programs');
    await screenshot(page, 'programs');
    // The same file again (a double upload): the same keys, replayed, nobody granted twice.
    await upload();
    assert.deepEqual(grantRequests.slice(2).map((request) => request.key), grantRequests.slice(0, 2).map((request) => request.key));
    budget = (await server.ok(200, 'GET', `/v1/admin/programs/${program.program_id}`, {token: data.admin})).budget;
    assert.equal(budget.granted, String(total), 'granted once');
  });

  it('reads the audit log and the handover status', async () => {
    await visit(page, 'audit', '감사 기록');
    await page.locator('main table td', {hasText: '정책 변경'}).first().waitFor({timeout: WAIT_MS});
    await checkAccessibility(page, 'audit');
    await screenshot(page, 'audit');
    await visit(page, 'handover', '인계 상태');
    assert.match(await page.textContent('main'), /가져온 적 없음/);
    assert.match(await page.textContent('main'), new RegExp(DAY_ONE), 'the last settlement');
    await checkAccessibility(page, 'handover');
    await screenshot(page, 'handover');
    await visit(page, 'account', '내 계정');
    await checkAccessibility(page, 'account');
    await screenshot(page, 'account');
  });

  it('suspends a merchant, whose payments are then refused', async (test) => {
    if (needsOpsApi(test)) return;
    await visit(page, 'merchants', '가맹점');
    await page.fill('input[name="q"]', 'kim');
    await page.locator('form.search button[type="submit"]').click();
    await page.locator('main table td', {hasText: '하늘김밥'}).waitFor({timeout: WAIT_MS});
    assert.equal(await page.locator('main table td', {hasText: '정가네 빵집'}).count(), 0, 'the search is by prefix');
    await page.locator('main table button', {hasText: '정지'}).click();
    await page.fill('input[name="reason"]', '영업 정지 처분');
    await page.locator('form.reason button[type="submit"]').click();
    await page.locator('main table .badge-suspended').waitFor({timeout: WAIT_MS});
    const citizen = data.citizens.seoyeon;
    const {code} = await server.ok(201, 'POST', '/v1/wallet/payment-codes', {token: citizen.token});
    const refused = await server.call('POST', '/v1/payments', {token: data.kimbap, body: {payment_code: code, amount: '1000'}, key: true});
    assert.equal(refused.status, 422);
    assert.equal(refused.body.error.code, 'merchant_suspended');
    await checkAccessibility(page, 'merchants');
    await screenshot(page, 'merchants');
  });

  it('locks a citizen\'s wallet: the citizen\'s session ends and the login is refused', async (test) => {
    if (needsOpsApi(test)) return;
    await visit(page, 'citizens', '시민');
    await page.fill('input[name="q"]', 'junho');
    await page.locator('form.search button[type="submit"]').click();
    await page.getByRole('cell', {name: 'junho', exact: true}).waitFor({timeout: WAIT_MS});
    await page.locator('main table button', {hasText: '잠금'}).click();
    await page.fill('input[name="reason"]', '휴대폰 분실 신고');
    await page.locator('form.reason button[type="submit"]').click();
    await page.locator('main table .badge-locked').waitFor({timeout: WAIT_MS});
    await checkAccessibility(page, 'citizens');
    await screenshot(page, 'citizens');
    const wallet = await server.call('GET', '/v1/wallet', {token: data.citizens.junho.token});
    assert.equal(wallet.status, 401, 'the citizen\'s session ended');
    const login = await server.call('POST', '/v1/sessions', {body: {login: 'junho', password: PASSWORD}});
    assert.equal(login.status, 403);
    assert.equal(login.body.error.code, 'wallet_locked');
    // At the console's own login, the refusal is shown as the server gives it.
    const other = await openPage(problems);
    await logInWith(other, 'junho');
    await other.locator('form.login [role="alert"]').waitFor({timeout: WAIT_MS});
    assert.match(await other.textContent('form.login [role="alert"]'), new RegExp(login.body.error.message.slice(0, 20).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    await other.context().close();
  });

  it('switches to English and back', async () => {
    await page.locator('#lang-switch').click();
    await page.locator('nav a', {hasText: 'Overview'}).waitFor({timeout: WAIT_MS});
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    await checkAccessibility(page, 'a page in English');
    await page.locator('#lang-switch').click();
    await page.locator('nav a', {hasText: '개요'}).waitFor({timeout: WAIT_MS});
  });

  it('is sent back to the login with a message when the session ends', async () => {
    const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('wallet.console.session')).token);
    assert.equal(await page.evaluate(() => document.cookie), '', 'no cookie');
    await server.ok(204, 'DELETE', '/v1/sessions/current', {token});
    await page.locator('nav a[href="#/overview"]').click();
    await page.locator('[data-testid="login-notice"]').waitFor({timeout: WAIT_MS});
    assert.match(await page.textContent('[data-testid="login-notice"]'), /세션이 만료/);
    assert.equal(await page.locator('input[name="login"]').count(), 1);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('wallet.console.session')), null);
  });

  it('met no script error and no Content-Security-Policy refusal', () => {
    assert.deepEqual(problems, []);
  });
});

describe('a merchant', () => {
  const problems = [];
  let page;

  before(async () => {
    page = await openPage(problems);
  });

  after(async () => {
    await page?.context().close();
  });

  it('sees only its own sales and payments, and refunds one', async (test) => {
    if (needsOpsApi(test)) return;
    await logInWith(page, 'bakery');
    await page.locator('[data-testid="sales-payments"]').waitFor({timeout: WAIT_MS});
    assert.equal(await page.locator('nav a[href="#/policy"]').count(), 0, 'no admin page in the menu');
    // The server's today is day two; day one's sales are the bakery's two payments.
    await page.fill('input[name="date"]', DAY_ONE);
    await page.locator('main form.inline button[type="submit"]').click();
    await page.locator('[data-testid="sales-payments"][data-value="20000"]').waitFor({timeout: WAIT_MS});
    const shown = await page.locator('main table code').allTextContents();
    assert.deepEqual(shown.sort(), data.bakeryPayments.map((payment) => payment.payment_id).sort());
    assert.ok(!shown.includes(data.kimbapPayments[0].payment_id), 'another merchant\'s payment is not shown');
    await checkAccessibility(page, 'sales');
    await screenshot(page, 'portal-sales');
    const first = data.bakeryPayments[0];
    const row = page.locator('main table tr', {has: page.locator('code', {hasText: first.payment_id})});
    await row.locator('button').click();
    await page.fill('input[name="amount"]', '2000');
    await page.locator('form.reason button[type="submit"]').click();
    await page.locator('.row-actions .success').waitFor({timeout: WAIT_MS});
    // A refund counts on the day it is made: today, day two.
    const today = await server.ok(200, 'GET', '/v1/merchant/sales', {token: data.bakery});
    assert.equal(today.refunds_amount, '2000');
    assert.match(await row.textContent(), /2,000원/, 'the payment shows what was refunded');
  });

  it('sees its settlement with fee and net payable, and downloads it as the API gives it', async (test) => {
    if (needsOpsApi(test)) return;
    await visit(page, 'payouts', '정산 내역');
    const link = page.locator('[data-testid="settlement-csv"]');
    await link.waitFor({timeout: WAIT_MS});
    const query = `from=${(await page.inputValue('input[name="from"]'))}&to=${(await page.inputValue('input[name="to"]'))}`;
    const lines = await server.ok(200, 'GET', `/v1/merchant/settlements?${query}`, {token: data.bakery});
    assert.equal(lines.items.length, 1);
    assert.equal(lines.items[0].business_date, DAY_ONE);
    // 20,000 paid, 3,000 refunded on day one, a fee of 1% of payments: 200.
    assert.equal(lines.items[0].fee, '200');
    assert.equal(lines.items[0].net_payable, '16800');
    assert.match(await page.textContent('main table'), /16,800원/);
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const served = await server.call('GET', `/v1/merchant/settlements?${query}`, {token: data.bakery, accept: 'text/csv'});
    assert.ok(readFileSync(await download.path()).equals(served.bytes));
    assert.doesNotMatch(served.bytes.toString('utf8'), /하늘김밥|kimbap/, 'only its own lines');
    await checkAccessibility(page, 'payouts');
    await screenshot(page, 'portal-settlements');
  });

  it('met no script error and no Content-Security-Policy refusal', () => {
    assert.deepEqual(problems, []);
  });
});
});
