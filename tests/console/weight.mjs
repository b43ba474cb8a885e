// The console's weight and speed, for docs/BENCHMARKS.md (scripts/bench-console runs it):
// a fresh browser (empty cache) opens /console/, an admin logs in, and the overview's figures
// appear. Prints, as JSON: the bytes transferred (as the network carried them: compressed
// bodies and headers) for the console's files and for the API's answers, the requests, and the
// milliseconds from the first request to the login form, and from pressing "log in" to the
// overview's figures on screen.
//
//   node weight.mjs URL LOGIN PASSWORD

import {chromium} from 'playwright-core';

const [url, login, password] = process.argv.slice(2);
if (!url || !login || !password) {
  console.error('usage: node weight.mjs URL LOGIN PASSWORD');
  process.exit(2);
}
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** How long the figures have to appear: far above any expected time, a bound not a goal. */
const FIGURES_TIMEOUT_MS = 120_000;

const browser = await chromium.launch({executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map();
  const totals = {console: {bytes: 0, requests: 0}, api: {bytes: 0, requests: 0}};
  cdp.on('Network.requestWillBeSent', (event) => urls.set(event.requestId, event.request.url));
  cdp.on('Network.loadingFinished', (event) => {
    const path = new URL(urls.get(event.requestId) ?? url).pathname;
    const kind = path.startsWith('/console') ? totals.console : totals.api;
    kind.bytes += event.encodedDataLength;
    kind.requests += 1;
  });
  const started = Date.now();
  await page.goto(url.replace(/\/$/, '') + '/console/');
  await page.locator('input[name="login"]').waitFor();
  const loginShownMs = Date.now() - started;
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', password);
  const pressed = Date.now();
  await page.locator('form.login button[type="submit"]').click();
  await page.locator('[data-testid="budget-remaining"]').waitFor({timeout: FIGURES_TIMEOUT_MS});
  const figuresMs = Date.now() - pressed;
  // Let the last responses finish before counting.
  await page.waitForLoadState('networkidle');
  console.log(JSON.stringify({loginShownMs, figuresMs, ...totals}));
} finally {
  await browser.close();
}
