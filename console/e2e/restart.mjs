// A run view open while the daemon is killed (SIGKILL) and started again
// at the same address: the page reconnects by itself and finishes, showing
// every event of the run once. The test submitted RUN_ID (first → d0 →
// approve, a wait for the signal `go` → end), kills the daemon while the
// run waits and restarts it, answering on stdin; the page sends the signal.
import {
  check,
  checkEventsShownOnce,
  checkNoProblems,
  script,
  readLine,
  screenshot,
  strictPage,
  url,
} from "./browser.mjs";

const runId = process.env.RUN_ID;
await script(async (browser) => {
  const page = await strictPage(browser);
  await page.goto(`${url}/#/runs/${runId}`);
  await page.waitForSelector('.box[data-node-id="approve"][data-state="waiting"]', {
    timeout: 30_000,
  });
  await page.waitForSelector('tr[data-node-row="d0"][data-state="completed"]');
  console.log("KILL");
  await page.waitForSelector(".connection-reconnecting", { timeout: 30_000 });
  await screenshot(page, "run-reconnecting");
  console.log("RECONNECTING");
  check((await readLine()) === "RESTARTED", "the test restarted the daemon");

  // The resumed run waits again: answered from its node's panel.
  await page.waitForSelector(".connection-live", { timeout: 30_000 });
  await page.click('tr[data-node-row="approve"] button');
  const form = page.locator('form[aria-label="Send a signal"]');
  await form.waitFor({ timeout: 30_000 });
  await form.locator("textarea").fill('{"value": 10}');
  await form.locator('button[type="submit"]').click();
  // The signal's body is the wait's output (the form goes with the wait).
  await page.waitForSelector('tr[data-node-row="approve"][data-state="completed"]', { timeout: 30_000 });
  const output = await page.textContent('aside[aria-label="Node approve"] .node-output', { timeout: 30_000 });
  check(JSON.parse(output).value === 10, `the wait gives the signal's body: ${output}`);

  await page.waitForSelector("#run-title .state-succeeded", { timeout: 60_000 });
  await page.waitForSelector('tr[data-node-row="end"][data-state="completed"]');
  await page.waitForSelector(".connection-ended");
  const events = await checkEventsShownOnce(page, runId);
  const log = await page.textContent(".event-log");
  check(log.includes("run resumed"), "the resumed run's start is among the events");
  await screenshot(page, "run-after-restart");
  // Requests refused while the daemon was down are not the page's errors.
  checkNoProblems(page, /ERR_CONNECTION_REFUSED|Failed to load resource/);
  console.log(`PASS (${events} events, each once)`);
});
