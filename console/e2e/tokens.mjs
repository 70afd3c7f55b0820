// A daemon with tokens: the console asks for one, refuses a wrong one, and
// shows each user only their own runs. RUN_ID is ALICE's.
import { check, checkNoProblems, script, screenshot, strictPage, url } from "./browser.mjs";

const runId = process.env.RUN_ID;

async function useToken(page, token) {
  if (!(await page.isVisible('form[aria-label="Token"]'))) await page.click(".token-button");
  await page.fill('form[aria-label="Token"] input', token);
  await page.click('form[aria-label="Token"] button[type="submit"]');
}

await script(async (browser) => {
  const page = await strictPage(browser);
  await page.goto(`${url}/#/runs`);
  // Nothing to show without a token: the page asks for one.
  await page.waitForSelector('form[aria-label="Token"]');
  await screenshot(page, "token");

  // A wrong token is refused: asked again, with the daemon's message.
  await useToken(page, "not-a-token-of-anyone");
  await page.waitForSelector('form[aria-label="Token"]');
  await page.waitForSelector('[role="alert"]');
  check(!(await page.isVisible("table.runs")), "no runs are listed with a wrong token");

  // Bob sees none of Alice's runs, and cannot open hers by its address.
  await useToken(page, process.env.BOB);
  await page.waitForSelector("text=No runs.");
  await page.goto(`${url}/#/runs/${runId}`);
  const refusal = await page.textContent('#run-title ~ [role="alert"]', { timeout: 10_000 });
  check(refusal.includes("no run"), `Bob is told there is no such run: ${refusal}`);
  check(!(await page.isVisible(".graph")), "Bob sees nothing of Alice's graph");

  // Alice sees her run.
  await useToken(page, process.env.ALICE);
  await page.waitForSelector("#run-title .state-succeeded");
  await page.waitForSelector('tr[data-node-row="end"][data-state="completed"]');
  await screenshot(page, "run-as-alice");
  // The refused requests are the test's doing, not the page's errors.
  checkNoProblems(page, /status of (401|404)/);
  console.log("PASS");
});
