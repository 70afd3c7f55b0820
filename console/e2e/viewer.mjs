// The run viewer, task catalog and plugins page, read-only and live, on a
// daemon without tokens (loopback). The test submitted RUN_ID (first → d0 →
// d1 → end, input 1), FAILED_RUN_ID (one json.parse of bad text) and
// COMPOUND_RUN_ID (outer, a compound of a → b, → after), and put a file
// that is no component in the plugins folder.
import {
  apiGet,
  check,
  checkEventsShownOnce,
  checkNoProblems,
  script,
  screenshot,
  strictPage,
  url,
} from "./browser.mjs";

const runId = process.env.RUN_ID;
const failedRunId = process.env.FAILED_RUN_ID;
const compoundRunId = process.env.COMPOUND_RUN_ID;
await script(async (browser) => {
  const page = await strictPage(browser);

  // The runs list, newest first, links to the run.
  await page.goto(`${url}/#/runs`);
  await page.waitForSelector(`tr[data-run-id="${runId}"]`);
  await screenshot(page, "runs");
  await page.click(`tr[data-run-id="${runId}"] a`);
  check(page.url().endsWith(`#/runs/${runId}`), `the link opens the run: ${page.url()}`);

  // Every node turns completed, drawn and listed; the run succeeds.
  for (const node of ["first", "d0", "d1", "end"]) {
    await page.waitForSelector(`.box[data-node-id="${node}"][data-state="completed"]`, {
      timeout: 30_000,
    });
    await page.waitForSelector(`tr[data-node-row="${node}"][data-state="completed"]`);
  }
  await page.waitForSelector("#run-title .state-succeeded");
  await page.waitForSelector(".connection-ended");

  // From the keyboard: the node table's button opens the leaf's details,
  // with its output.
  await page.focus('tr[data-node-row="end"] button');
  await page.keyboard.press("Enter");
  const output = await page.textContent('aside[aria-label="Node end"] .node-output');
  check(JSON.parse(output).value === 3, `the leaf's output is {value: 3}: ${output}`);
  // And the input it started with: what the last delay passed on.
  const input = await page.textContent('aside[aria-label="Node end"] .node-input');
  check(JSON.parse(input).value === 2, `the leaf's input is {value: 2}: ${input}`);
  // Clicking a drawn node selects it too.
  await page.click('.box[data-node-id="d0"]');
  await page.waitForSelector('aside[aria-label="Node d0"]');
  const logs = await page.textContent('aside[aria-label="Node d0"] .logs');
  check(logs.includes("progress"), `d0's progress events are listed: ${logs}`);
  await checkEventsShownOnce(page, runId);
  await screenshot(page, "run");

  // A failed run names the failed node and its error.
  await page.goto(`${url}/#/runs/${failedRunId}`);
  await page.waitForSelector('tr[data-node-row="parse"][data-state="failed"]');
  await page.click('tr[data-node-row="parse"] button');
  const error = await page.textContent('aside[aria-label="Node parse"] [role="alert"]');
  const expected = (await apiGet(`/v1/runs/${failedRunId}`)).nodes.parse.error;
  check(error === expected, `the node's error is shown: ${error}`);
  await screenshot(page, "run-failed");
  // Re-driven (a dead letter): it runs again, and fails again, in view.
  await page.click('button:has-text("Re-drive this node")');
  await page.waitForSelector(".event-log >> text=run resumed", { timeout: 30_000 });
  await page.waitForSelector("#run-title .state-failed");
  await page.waitForSelector(".connection-ended");
  await checkEventsShownOnce(page, failedRunId);

  // A compound node is a box around its nodes; closed, one box with their
  // state; opened again.
  await page.goto(`${url}/#/runs/${compoundRunId}`);
  await page.waitForSelector('.box[data-node-id="outer/b"][data-state="completed"]', { timeout: 30_000 });
  await page.waitForSelector('.compound[data-node-id="outer"]');
  await page.click('button[aria-label="Collapse outer"]');
  await page.waitForSelector('.box[data-node-id="outer"][data-state="completed"]');
  check(!(await page.isVisible('.box[data-node-id="outer/a"]')), "a closed compound hides its nodes");
  await screenshot(page, "run-compound-closed");
  await page.click('button[aria-label="Expand outer"]');
  await page.waitForSelector('.box[data-node-id="outer/a"][data-state="completed"]');

  // The catalog: search narrows the list; a task shows its ports.
  await page.goto(`${url}/#/tasks`);
  const total = (await apiGet("/v1/tasks")).length;
  await page.waitForSelector("li[data-task-id]");
  await page.fill('input[type="search"]', "add-one");
  const shown = await page.$$eval("li[data-task-id]", (l) => l.map((i) => i.dataset.taskId));
  check(shown.includes("math.add-one"), `search finds math.add-one: ${shown}`);
  check(shown.length < total, `search narrows ${total} task types: ${shown.length}`);
  await page.click('li[data-task-id="math.add-one"] a');
  const port = await page.textContent('.ports[data-direction="input"] [data-port="value"]');
  check(/number/.test(port) && /required/.test(port), `the input port is described: ${port}`);
  await screenshot(page, "tasks");

  // Plugins: the built-in ones loaded, the broken file with its error.
  await page.goto(`${url}/#/plugins`);
  await page.waitForSelector('tr[data-plugin="broken"]');
  const broken = await page.textContent('tr[data-plugin="broken"]');
  check(broken.includes("failed to load"), `the broken plugin's error is shown: ${broken}`);
  const math = await page.textContent('tr[data-plugin="std-math"]');
  check(math.includes("loaded") && math.includes("math.add-one"), `std-math: ${math}`);
  await screenshot(page, "plugins");

  // Metrics: the daemon's own counters, as /metrics gives them.
  await page.goto(`${url}/#/metrics`);
  const sample = 'weft_runs_finished_total{status="succeeded"}';
  await page.waitForSelector(`tr[data-sample='${sample}']`);
  const counted = Number((await page.textContent(`tr[data-sample='${sample}'] .number`)).replaceAll(",", ""));
  const text = await (await fetch(`${url}/metrics`)).text();
  const served = Number(text.split("\n").find((l) => l.startsWith(sample)).split(" ").pop());
  check(counted === served && counted >= 1, `succeeded runs: shown ${counted}, served ${served}`);
  checkNoProblems(page);

  // A narrow window: the same run, its navigation and node table usable.
  const narrow = await strictPage(browser, { width: 420, height: 800 });
  await narrow.goto(`${url}/#/runs/${runId}`);
  await narrow.waitForSelector('tr[data-node-row="end"][data-state="completed"]');
  check(await narrow.isVisible('nav a[href="#/tasks"]'), "the navigation shows when narrow");
  await screenshot(narrow, "run-narrow");
  checkNoProblems(narrow);

  // An address that is not valid percent-encoding names no run; the page
  // says so instead of failing.
  const odd = await strictPage(browser);
  await odd.goto(`${url}/#/runs/%E0%A4%A`);
  const said = await odd.textContent('#run-title ~ [role="alert"]');
  check(said.includes("no run"), `a malformed address names no run: ${said}`);
  checkNoProblems(odd, /status of 404/);
  console.log("PASS");
});
