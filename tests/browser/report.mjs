// The bureau's report in headless Chromium, driven by playwright-core (installed by
// tests/report_browser.rs into the target directory; it downloads no browser: it drives
// the system's /usr/bin/chromium). Reports what it saw as one line of JSON on stdout;
// the Rust test compares it with the ledger's figures.
//
//   node report.mjs '<json input>'
//   input: { playwright, chromium, mode: "file" | "live", screenshot, ...mode's fields }
//   file:  { url }                                    the written report, file://...
//   live:  { base, year, bureauToken, centerToken }   the server's HTTP page

import { createRequire } from 'node:module';

const input = JSON.parse(process.argv[2]);
const require = createRequire(`${input.playwright}/package.json`);
const { chromium } = require('playwright-core');

const TIMEOUT_MS = 20_000;

/// What a report page shows: its charts (figures with an inline SVG), its key totals
/// and counts as the page states them in data attributes, and anything that could load.
async function inspect(page) {
  return page.evaluate(() => {
    const charts = [...document.querySelectorAll('figure.chart')]
      .filter((figure) => figure.querySelector(':scope > svg') !== null)
      .map((figure) => figure.id);
    const totals = {};
    for (const cell of document.querySelectorAll('[id^="total-"][data-fen]')) {
      totals[cell.id] = cell.dataset.fen;
    }
    const counts = {};
    for (const cell of document.querySelectorAll('[id^="count-"][data-count]')) {
      counts[cell.id] = cell.dataset.count;
    }
    const centerNames = [...document.querySelectorAll('#center-table tbody tr[data-uscc]')].map(
      (row) => row.cells[0].firstChild.textContent,
    );
    return {
      title: document.title,
      charts,
      svgCount: document.querySelectorAll('figure.chart svg').length,
      totals,
      counts,
      reconciliationNone: document.getElementById('reconciliation-none') !== null,
      loadingElements: document.querySelectorAll('img, script, iframe, object, embed, link, image, use')
        .length,
      centerNames,
      poolPoints: Number(document.getElementById('chart-pool-use')?.dataset.points ?? 0),
      heading: document.querySelector('h1')?.textContent ?? '',
    };
  });
}

async function filePage(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const requests = [];
  context.on('request', (request) => requests.push(request.url()));
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  await page.goto(input.url, { waitUntil: 'load' });
  const seen = await inspect(page);
  await page.screenshot({ path: input.screenshot, fullPage: true });
  await context.close();
  return { requests, page: seen };
}

const pathOf = (url) => new URL(url).pathname;
const signinPost = (page) =>
  page.waitForResponse(
    (response) => response.request().method() === 'POST' && pathOf(response.url()) === '/signin',
  );

async function livePage(browser) {
  const { base, year } = input;
  const reportUrl = `${base}/report/${year}`;
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const requests = [];
  context.on('request', (request) => requests.push(request.url()));
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);

  // No session: the report redirects to the sign-in form.
  const first = await page.goto(reportUrl);
  const redirectedFrom = first.request().redirectedFrom();
  const noSession = {
    url: page.url(),
    status: first.status(),
    redirectedFrom: redirectedFrom ? redirectedFrom.url() : null,
    redirectStatus: redirectedFrom ? (await redirectedFrom.response()).status() : null,
    form: (await page.locator('form#signin').count()) === 1,
  };

  // A center's token is refused, and no cookie is set.
  await page.fill('#token', input.centerToken);
  const centerAnswer = signinPost(page);
  await page.click('#signin button[type=submit]');
  const centerResponse = await centerAnswer;
  await page.waitForLoadState('load');
  const center = {
    status: centerResponse.status(),
    message: (await page.textContent('#message')) ?? '',
    cookies: (await context.cookies()).length,
  };

  // The bureau's token: a session cookie, then the report.
  await page.goto(`${base}/signin?next=/report/${year}`);
  await page.fill('#token', input.bureauToken);
  const bureauAnswer = signinPost(page);
  await page.click('#signin button[type=submit]');
  const bureauResponse = await bureauAnswer;
  await page.waitForURL(reportUrl);
  await page.waitForLoadState('load');
  const reportResponse = await page.goto(reportUrl);
  const bureau = {
    signinStatus: bureauResponse.status(),
    url: page.url(),
    status: reportResponse.status(),
    csp: reportResponse.headers()['content-security-policy'] ?? null,
    cookies: (await context.cookies()).map((cookie) => ({
      name: cookie.name,
      httpOnly: cookie.httpOnly,
      sameSite: cookie.sameSite,
      secure: cookie.secure,
      valueLength: cookie.value.length,
    })),
    documentCookie: await page.evaluate(() => document.cookie),
    page: await inspect(page),
  };
  await page.screenshot({ path: input.screenshot, fullPage: true });

  // Sign out: the session is gone, the report redirects to the sign-in again.
  await page.click('form.signout button[type=submit]');
  await page.waitForURL(`${base}/signin`);
  await page.goto(reportUrl);
  const signedOut = { url: page.url(), cookies: (await context.cookies()).length };
  await context.close();
  return { requests, noSession, center, bureau, signedOut };
}

const browser = await chromium.launch({
  executablePath: input.chromium,
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  timeout: 30_000,
});
let result;
try {
  result = input.mode === 'file' ? await filePage(browser) : await livePage(browser);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
