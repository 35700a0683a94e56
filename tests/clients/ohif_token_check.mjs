// OHIF with a bearer token: open the basic viewer on a CT study with `?token=<JWT>` (OHIF then
// sends `Authorization: Bearer <JWT>` with every DICOMweb request), and first without one (the
// server must refuse). Writes report.json (each step's DICOMweb requests with status and whether
// they carried Authorization) and ct.png. Exits 1 when a step fails.
//
// node tests/clients/ohif_token_check.mjs --app URL --dicomweb ROOT --ct-study UID --token JWT --out DIR

import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    app: { type: 'string' },
    dicomweb: { type: 'string' },
    'ct-study': { type: 'string' },
    token: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    out: { type: 'string' },
  },
});
const timeout = 60000;
mkdirSync(args.out, { recursive: true });
const report = { steps: {}, error: null };
const save = () => writeFileSync(join(args.out, 'report.json'), JSON.stringify(report, null, 2));
let requests = [];

async function waitFor(page, description, predicate) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (predicate(requests)) return;
    await page.waitForTimeout(250);
  }
  throw new Error(`timed out waiting for ${description}`);
}

const profile = mkdtempSync(join(tmpdir(), 'ohif-token-profile-'));
let context;
let exitCode = 0;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  await context.route('**/*', (route) => {
    const { hostname, protocol } = new URL(route.request().url());
    if (protocol === 'data:' || protocol === 'blob:' || hostname === '127.0.0.1') return route.continue();
    return route.abort('blockedbyclient');
  });
  context.on('response', async (response) => {
    const request = response.request();
    if (!request.url().startsWith(args.dicomweb) || request.method() === 'OPTIONS') return;
    const headers = await request.allHeaders().catch(() => ({}));
    requests.push({ url: request.url(), status: response.status(), bearer: 'authorization' in headers });
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  const viewer = `${args.app}/viewer?StudyInstanceUIDs=${args['ct-study']}`;

  await page.goto(viewer);
  await waitFor(page, 'a refused request without a token', (seen) => seen.some((r) => r.status === 401));
  await page.goto('about:blank'); // no request of the first visit may still be answered
  await page.waitForTimeout(1000);
  report.steps['without-token'] = requests;

  requests = [];
  await page.goto(`${viewer}&token=${encodeURIComponent(args.token)}`);
  await page.locator('canvas').first().waitFor({ state: 'visible' });
  await waitFor(page, 'CT frames answered', (seen) => seen.some((r) => r.url.includes('/frames/') && r.status === 200));
  await page.waitForTimeout(2000); // the last frames' decode and draw
  report.steps['with-token'] = requests;
  await page.screenshot({ path: join(args.out, 'ct.png') });
} catch (error) {
  report.error = String(error?.stack ?? error).slice(0, 4000);
  exitCode = 1;
} finally {
  save();
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(exitCode);
