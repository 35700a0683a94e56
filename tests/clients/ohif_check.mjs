// Drive the prebuilt OHIF viewer in headless Debian chromium (playwright-core, no bundled browser)
// against a DICOMweb server: the study list, a CT series in the basic viewer, a slide in the
// microscopy viewer. Takes a screenshot of each and writes report.json (steps, every DICOMweb
// request with its status, console errors). Exits 1 when a step fails; the screenshots' content
// is judged by the caller (tests/clients/test_ohif.py).
//
// node tests/clients/ohif_check.mjs --app http://127.0.0.1:A/viewer --dicomweb http://127.0.0.1:A/v1 \
//   --ct-study UID --slide-study UID [--landing http://127.0.0.1:A/] [--expect TEXT]... \
//   [--chromium /usr/bin/chromium] --out DIR
//
// With --landing, the server's start page comes first: its study list must show every --expect
// text, and the CT is opened by clicking its link there (rather than by going to the viewer's URL).

import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    app: { type: 'string' },
    dicomweb: { type: 'string' },
    landing: { type: 'string' },
    'ct-study': { type: 'string' },
    'slide-study': { type: 'string' },
    expect: { type: 'string', multiple: true, default: [] },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    out: { type: 'string' },
    'step-timeout': { type: 'string', default: '60000' },
  },
});
for (const name of ['app', 'dicomweb', 'ct-study', 'slide-study', 'out']) {
  if (!args[name]) {
    console.error(`ohif_check.mjs: --${name} is required`);
    process.exit(2);
  }
}
const stepTimeout = Number(args['step-timeout']);
const out = args.out;
mkdirSync(out, { recursive: true });

const report = { steps: [], requests: [], blocked: [], consoleErrors: [], pageErrors: [], error: null };
const started = Date.now();
const save = () => writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2));

// Everything the page asks of the DICOMweb server, with its answer; keyed by the request object
// so a response and a failure are matched to the same entry.
const pending = new Map();
let activity = 0; // bumped whenever a DICOMweb request starts or ends
const dicomwebRequests = () => report.requests;
const isDicomweb = (url) => url.startsWith(args.dicomweb);

function trackRequests(context) {
  context.on('request', (request) => {
    if (!isDicomweb(request.url())) return;
    const entry = {
      method: request.method(),
      url: request.url(),
      accept: request.headers()['accept'] ?? '',
      status: null,
      contentType: null,
      ms: null,
      at: Date.now() - started,
    };
    pending.set(request, entry);
    report.requests.push(entry);
    activity += 1;
  });
  context.on('response', (response) => {
    const entry = pending.get(response.request());
    if (!entry) return;
    entry.status = response.status();
    entry.contentType = response.headers()['content-type'] ?? null;
  });
  context.on('requestfinished', (request) => {
    const entry = pending.get(request);
    if (!entry) return;
    entry.ms = Date.now() - started - entry.at;
    pending.delete(request);
    activity += 1;
  });
  context.on('requestfailed', (request) => {
    const entry = pending.get(request);
    if (!entry) return;
    // Kept with status 0 when no answer came. net::ERR_ABORTED is the page cancelling a request
    // it no longer needs (a tile scrolled away); anything else is a transport failure.
    entry.status = entry.status ?? 0;
    entry.failure = request.failure()?.errorText ?? 'failed';
    pending.delete(request);
    activity += 1;
  });
}

// Wait until `predicate` holds for the DICOMweb requests answered so far, polling.
async function waitForRequests(page, description, predicate) {
  const deadline = Date.now() + stepTimeout;
  while (Date.now() < deadline) {
    if (predicate(dicomwebRequests())) return;
    await page.waitForTimeout(250);
  }
  throw new Error(`timed out waiting for ${description}`);
}

// Wait until no DICOMweb request has been started or finished for `quietMs`.
async function waitForQuiet(page, quietMs = 1500) {
  const deadline = Date.now() + stepTimeout;
  let last = -1;
  let since = Date.now();
  while (Date.now() < deadline) {
    if (activity !== last) {
      last = activity;
      since = Date.now();
    } else if (pending.size === 0 && Date.now() - since >= quietMs) {
      return;
    }
    await page.waitForTimeout(200);
  }
}

async function step(name, body) {
  const entry = { name, ok: false, ms: null, screenshot: null };
  report.steps.push(entry);
  const t0 = Date.now();
  try {
    await body(entry);
    entry.ok = true;
  } finally {
    entry.ms = Date.now() - t0;
    save();
  }
}

const frameRequests = (requests, study) =>
  requests.filter((r) => r.url.includes(`/studies/${study}/`) && r.url.includes('/frames/'));
const instanceOf = (url) => url.split('/instances/')[1]?.split('/')[0];

// OHIF greets a first visit with a guided tour whose bubble covers part of the viewport.
async function dismissTour(page) {
  const skip = page.getByText('Skip all', { exact: true });
  if (await skip.isVisible().catch(() => false)) await skip.click().catch(() => {});
}

const profile = mkdtempSync(join(tmpdir(), 'ohif-check-profile-'));
let context;
let exitCode = 0;
try {
  // A persistent context on a fresh, throw-away profile: the same as a first visit.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  // Tests talk to 127.0.0.1 only: anything else the app would fetch (fonts, analytics) is
  // refused and recorded.
  await context.route('**/*', (route) => {
    const { hostname, protocol } = new URL(route.request().url());
    if (protocol === 'data:' || protocol === 'blob:' || hostname === '127.0.0.1' || hostname === 'localhost') {
      return route.continue();
    }
    report.blocked.push(route.request().url());
    return route.abort('blockedbyclient');
  });
  trackRequests(context);
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(stepTimeout);
  page.on('console', (message) => {
    if (message.type() === 'error') report.consoleErrors.push(message.text().slice(0, 500));
  });
  page.on('pageerror', (error) => report.pageErrors.push(String(error).slice(0, 500)));

  if (args.landing) {
    await step('landing-page', async (entry) => {
      await page.goto(args.landing);
      for (const text of args.expect) {
        await page.locator('#study-list td', { hasText: text }).first().waitFor({ state: 'visible' });
      }
      entry.screenshot = join(out, 'landing.png');
      await page.screenshot({ path: entry.screenshot });
    });
  }

  await step('study-list', async (entry) => {
    await page.goto(`${args.app}/`);
    for (const text of args.expect) {
      await page.getByText(text, { exact: false }).first().waitFor({ state: 'visible' });
    }
    entry.screenshot = join(out, 'study-list.png');
    await page.screenshot({ path: entry.screenshot });
  });

  await step('ct-viewer', async (entry) => {
    if (args.landing) {
      await page.goto(args.landing);
      await page.locator(`a.open-study[href*="${args['ct-study']}"]`).click();
      await page.waitForURL((url) => url.pathname.endsWith('/viewer') && url.search.includes(args['ct-study']));
    } else {
      await page.goto(`${args.app}/viewer?StudyInstanceUIDs=${args['ct-study']}`);
    }
    await page.locator('canvas').first().waitFor({ state: 'visible' });
    await waitForRequests(page, 'CT frames answered', (requests) =>
      frameRequests(requests, args['ct-study']).some((r) => r.status === 200));
    await waitForQuiet(page);
    await dismissTour(page);
    await page.waitForTimeout(1000); // the last frame's decode and draw
    entry.screenshot = join(out, 'ct.png');
    await page.screenshot({ path: entry.screenshot });
  });

  await step('microscopy-viewer', async (entry) => {
    await page.goto(`${args.app}/microscopy?StudyInstanceUIDs=${args['slide-study']}`);
    await waitForRequests(page, 'slide tiles answered', (requests) =>
      frameRequests(requests, args['slide-study']).filter((r) => r.status === 200).length >= 4);
    await waitForQuiet(page, 2000);
    await page.waitForTimeout(1500); // tiles decoded and composited
    await dismissTour(page);
    entry.screenshot = join(out, 'slide.png');
    await page.screenshot({ path: entry.screenshot });
  });

  // Zooming in makes the viewer fetch tiles of a finer pyramid level (another instance).
  await step('microscopy-zoom', async (entry) => {
    const levelsBefore = new Set(frameRequests(report.requests, args['slide-study']).map((r) => instanceOf(r.url)));
    const box = await page.locator('.ol-viewport').first().boundingBox();
    if (!box) throw new Error('no OpenLayers viewport in the microscopy viewer');
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    // Each wheel notch doubles the scale; three take the fitted overview (the coarsest level
    // here) past the base level's resolution, so base-level tiles are needed.
    for (let i = 0; i < 3; i += 1) {
      await page.mouse.wheel(0, -400);
      await page.waitForTimeout(300);
    }
    await waitForRequests(page, 'tiles of a finer level answered', (requests) =>
      frameRequests(requests, args['slide-study']).some(
        (r) => r.status === 200 && !levelsBefore.has(instanceOf(r.url))));
    await waitForQuiet(page, 2000);
    await page.waitForTimeout(1500);
    entry.screenshot = join(out, 'slide-zoomed.png');
    await page.screenshot({ path: entry.screenshot });
  });
} catch (error) {
  report.error = String(error?.stack ?? error).slice(0, 4000);
  exitCode = 1;
  // A picture of where it got stuck is the fastest diagnosis.
  try {
    const page = context?.pages()[0];
    if (page) await page.screenshot({ path: join(out, 'failure.png') });
  } catch {
    // the browser may be gone; the report says why
  }
} finally {
  report.ms = Date.now() - started;
  save();
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(exitCode);
