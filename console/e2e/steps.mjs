// A loop that asks at every step (the test submitted RUN_ID: a `while`
// node `loop` whose body adds one and waits for the signal `more`,
// `{go}`): the page lists each step's wait as it comes and answers it,
// by its name at the step, until the run succeeds.
import { check, checkNoProblems, script, screenshot, strictPage, url } from "./browser.mjs";

const runId = process.env.RUN_ID;
await script(async (browser) => {
  const page = await strictPage(browser);
  await page.goto(`${url}/#/runs/${runId}`);
  for (const [step, go] of [
    [0, true],
    [1, false],
  ]) {
    const wait = page.locator(`[data-step-wait="loop[${step}]/ask"]`);
    await wait.waitFor({ timeout: 30_000 });
    const heading = await wait.locator("h3 code").textContent();
    check(heading === `loop[${step}]/more`, `step ${step} waits for its own signal: ${heading}`);
    // What the step waits on: its input, the value the step made.
    const input = await wait.locator(".node-input").textContent({ timeout: 30_000 });
    check(JSON.parse(input).value === step + 1, `step ${step} shows its input: ${input}`);
    if (step === 0) await screenshot(page, "run-step-wait");
    await wait.locator("textarea").fill(JSON.stringify({ go }));
    await wait.locator('button[type="submit"]').click();
    // Sent: said so, or the step stopped waiting first (its form gone with
    // it, as the run's events come). A refused signal stays, and times out.
    await Promise.race([
      wait.locator('[role="status"]', { hasText: "sent" }).waitFor({ timeout: 30_000 }),
      wait.waitFor({ state: "detached", timeout: 30_000 }),
    ]);
  }
  await page.waitForSelector("#run-title .state-succeeded", { timeout: 60_000 });
  check((await page.locator("[data-step-wait]").count()) === 0, "no wait is left");
  checkNoProblems(page);
  console.log("PASS");
});
