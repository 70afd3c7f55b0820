// Headless Chromium from Debian's `chromium` package, driven by
// playwright-core (Playwright's own browser download cannot work here).
// Flags: no sandbox (CI runs as root), and none of Chromium's own network
// traffic, which a closed network refuses; shared memory in /tmp, not
// /dev/shm (small in containers).
import { chromium } from "playwright-core";

export const executablePath = process.env.WEFT_CHROMIUM ?? "/usr/bin/chromium";

export async function launch() {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

/// A page that fails the test on any console error or uncaught exception
/// (a Content-Security-Policy refusal among them).
/// Every page opened, to show on failure.
const opened = [];

export async function strictPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  opened.push(page);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.problems = problems;
  return page;
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

export const url = process.env.WEFT_URL;
const shots = new URL("./screenshots/", import.meta.url);

export async function screenshot(page, name) {
  const { mkdir } = await import("node:fs/promises");
  await mkdir(shots, { recursive: true });
  await page.screenshot({ path: new URL(`${name}.png`, shots).pathname, fullPage: true });
}

/// GET a path of the daemon's API as a client (not through the page).
export async function apiGet(path, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const r = await fetch(`${url}${path}`, { headers });
  check(r.ok, `GET ${path}: ${r.status}`);
  return r.json();
}

/// The run view lists every event of the run's log once, in order: 1..N
/// with N the number the daemon holds.
export async function checkEventsShownOnce(page, runId, token) {
  const seqs = await page.$$eval("[data-seq]", (items) => items.map((i) => Number(i.dataset.seq)));
  const run = await apiGet(`/v1/runs/${runId}`, token);
  check(seqs.length === run.events, `${seqs.length} events shown, the log holds ${run.events}`);
  seqs.forEach((s, i) => check(s === i + 1, `event ${i + 1} shown as ${s}: ${seqs.join(",")}`));
  return seqs.length;
}

/// Fail if the page logged an error or threw, but for what `expected`
/// matches (refusals the test caused).
export function checkNoProblems(page, expected) {
  const problems = page.problems.filter((p) => !expected?.test(p));
  check(problems.length === 0, `the page reported: ${problems.join("; ")}`);
}

/// Read one line from stdin (the test's answer).
export async function readLine() {
  const { createInterface } = await import("node:readline");
  const rl = createInterface({ input: process.stdin });
  const line = await new Promise((resolve) => rl.once("line", resolve));
  rl.close();
  return line;
}

/// Run a browser script: on failure, each open page's screenshot
/// (`failed-N.png`), address and reported errors are kept for the reader.
export async function script(body) {
  const browser = await launch();
  try {
    await body(browser);
  } catch (e) {
    for (const [i, page] of opened.entries()) {
      console.error(`page ${i}: ${page.url()}; reported: ${page.problems.join("; ") || "nothing"}`);
      await screenshot(page, `failed-${i}`).catch(() => {});
    }
    throw e;
  } finally {
    await browser.close();
  }
}
