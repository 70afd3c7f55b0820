// The graph editor, by UI actions only: three add-one nodes from the
// catalog, one dataflow drawn by dragging from a port to a port and one
// added from the keyboard; the validation error shown on the right node,
// fixed, undone and redone; saved; run and watched to the end. Then a
// graph Workglow wrote (WORKGLOW_GRAPH, a file; WORKGLOW_RESULT its leaf
// outputs in Workglow) imported and run.
import { readFileSync } from "node:fs";
import { check, checkNoProblems, script, screenshot, strictPage, url } from "./browser.mjs";

const node = (id) => `.react-flow__node[data-id="${id}"]`;
const problems = async (page, id) => Number(await page.getAttribute(`${node(id)} .enode`, "data-problems"));

/// Wait until the drawing stops moving (the view fits new nodes in).
async function settled(page) {
  let last = "";
  for (let still = 0; still < 3; ) {
    await page.waitForTimeout(150);
    const now = await page.$eval(".react-flow__viewport", (v) => v.style.transform);
    still = now === last ? still + 1 : 0;
    last = now;
  }
}

async function waitValid(page, valid) {
  await page.waitForSelector(`.checks[data-valid="${valid}"]`, { timeout: 10_000 });
}

/// The output the run view shows for `id`, once the run ended.
async function leafOutput(page, id) {
  await page.waitForSelector("#run-title .state-succeeded", { timeout: 30_000 });
  await page.click(`tr[data-node-row="${id}"] button`);
  return JSON.parse(await page.textContent(`aside[aria-label="Node ${id}"] .node-output`));
}

await script(async (browser) => {
  const page = await strictPage(browser);
  await page.goto(`${url}/#/graphs`);
  await page.click("text=New graph");
  await page.waitForSelector('nav[aria-label="Add a node"]');

  // Three nodes from the catalog.
  await page.fill('nav[aria-label="Add a node"] input', "add-one");
  for (let i = 0; i < 3; i++) await page.click('[data-add-task="math.add-one"]');
  for (const id of ["add-one", "add-one-2", "add-one-3"]) await page.waitForSelector(node(id));
  await settled(page);

  // A dataflow drawn with the mouse, port to port.
  await page
    .locator(`${node("add-one")} [data-port-out="value"] .react-flow__handle`)
    .dragTo(page.locator(`${node("add-one-2")} [data-port-in="value"] .react-flow__handle`));
  await page.waitForSelector('.react-flow__edge[data-id="df-0"]');

  // One added from the keyboard, in the node's inspector.
  await page.click(node("add-one-2"));
  const form = page.locator('form[aria-label="Add a dataflow"]');
  await form.locator("select").nth(1).selectOption("add-one-3");
  await form.locator("select").nth(2).selectOption("value");
  await form.locator('button[type="submit"]').focus();
  await page.keyboard.press("Enter");
  await page.waitForSelector('.react-flow__edge[data-id="df-1"]');

  // The first node lacks its input: the problem is on it, and only on it.
  await waitValid(page, false);
  await page.waitForFunction(
    (sel) => Number(document.querySelector(sel)?.dataset.problems) > 0,
    `${node("add-one")} .enode`,
  );
  check((await problems(page, "add-one-2")) === 0, "add-one-2 has no problem");
  check((await problems(page, "add-one-3")) === 0, "add-one-3 has no problem");
  const said = await page.textContent(`${node("add-one")} .enode-problem`);
  check(said.includes("value"), `the problem names the port: ${said}`);
  await screenshot(page, "editor-problem");

  // Fixed with a default; undone (the problem is back); redone.
  await page.click(node("add-one"));
  await page.fill('input[data-default-port="value"]', "1");
  await page.keyboard.press("Enter");
  await waitValid(page, true);
  check((await problems(page, "add-one")) === 0, "the fix clears the problem");
  await page.click(".react-flow__pane");
  await page.keyboard.press("Control+z");
  await waitValid(page, false);
  await page.click('button:has-text("Redo")');
  await waitValid(page, true);

  // A preview: values on the dataflows, states on the nodes.
  await page.click('div[role="toolbar"] button:has-text("Preview")');
  await page.waitForSelector(`${node("add-one-3")} [data-preview-state="completed"]`);
  const label = await page.textContent('.react-flow__edge[data-id="df-1"] .react-flow__edge-text');
  check(label === "value → value: 3", `the preview's value on add-one-2 → add-one-3: ${label}`);
  await screenshot(page, "editor-preview");

  // Saved, then run; every node completes; the leaf's output read.
  await page.fill('div[role="toolbar"] input', "three");
  await page.click('button:has-text("Save version")');
  await page.waitForSelector("text=Saved three version 1");
  await screenshot(page, "editor-valid");
  await page.click('div[role="toolbar"] button:has-text("Run")');
  await page.waitForURL(/#\/runs\//);
  for (const id of ["add-one", "add-one-2", "add-one-3"]) {
    await page.waitForSelector(`tr[data-node-row="${id}"][data-state="completed"]`, { timeout: 30_000 });
  }
  const out = await leafOutput(page, "add-one-3");
  check(out.value === 4, `1 + 1 + 1 + 1 = 4: ${JSON.stringify(out)}`);
  const run = await (await fetch(`${url}/v1/runs/${page.url().split("/").pop()}`)).json();
  check(run.graph_name === "three", `the run names the saved graph: ${run.graph_name}`);

  // The saved graph opens again from the list.
  await page.goto(`${url}/#/graphs`);
  await page.click('tr[data-graph="three"] a');
  await page.waitForSelector(node("add-one-3"));
  await waitValid(page, true);

  // A graph Workglow wrote, imported and run: the same leaf outputs.
  await page.goto(`${url}/#/editor`);
  await page.click("text=Import or export JSON");
  await page.fill('textarea[aria-label="Graph JSON to import"]', readFileSync(process.env.WORKGLOW_GRAPH, "utf8"));
  await page.click('button:has-text("Import")');
  await waitValid(page, true);
  await screenshot(page, "editor-workglow");
  // Exported again as Workglow's JSON: Workglow's shape (defaults on every
  // node), the same nodes.
  await page.selectOption('.import-export select', "workglow");
  await page.waitForFunction(() =>
    document.querySelector('textarea[aria-label="This graph\'s JSON"]')?.value.includes('"defaults"'),
  );
  const exported = JSON.parse(await page.inputValue('textarea[aria-label="This graph\'s JSON"]'));
  const imported = JSON.parse(readFileSync(process.env.WORKGLOW_GRAPH, "utf8"));
  check(
    JSON.stringify(exported.tasks.map((t) => [t.id, t.type])) === JSON.stringify(imported.tasks.map((t) => [t.id, t.type])),
    `the export has the imported nodes: ${JSON.stringify(exported)}`,
  );
  check(exported.tasks.every((t) => typeof t.defaults === "object"), "Workglow's form has defaults on every node");
  await page.click('div[role="toolbar"] button:has-text("Run")');
  await page.waitForURL(/#\/runs\//);
  const expected = JSON.parse(process.env.WORKGLOW_RESULT);
  for (const [leaf, output] of Object.entries(expected)) {
    const got = await leafOutput(page, leaf);
    check(JSON.stringify(got) === JSON.stringify(output), `${leaf}: ${JSON.stringify(got)} ≠ Workglow's ${JSON.stringify(output)}`);
  }

  // Inside a compound node: opened, a node added and connected there, run.
  const compound = {
    tasks: [
      { id: "outer", type: "graph", graph: {
        tasks: [{ id: "a", type: "math.add-one", defaults: { value: 1 } }, { id: "b", type: "math.add-one" }],
        dataflows: [{ sourceTaskId: "a", sourceTaskPortId: "value", targetTaskId: "b", targetTaskPortId: "value" }] } },
      { id: "after", type: "math.add-one" },
    ],
    dataflows: [{ sourceTaskId: "outer", sourceTaskPortId: "value", targetTaskId: "after", targetTaskPortId: "value" }],
  };
  await page.goto(`${url}/#/editor`);
  await page.click("text=Import or export JSON");
  await page.fill('textarea[aria-label="Graph JSON to import"]', JSON.stringify(compound));
  await page.click('button:has-text("Import")');
  await waitValid(page, true);
  await page.click(node("outer"));
  await page.click('button:has-text("Open its graph")');
  await page.waitForSelector('nav[aria-label="Subgraph"] >> text=outer');
  await page.waitForSelector(node("b"));
  await page.fill('nav[aria-label="Add a node"] input', "add-one");
  await page.click('[data-add-task="math.add-one"]');
  await page.waitForSelector(node("add-one"));
  await page.click(node("b"));
  const inner = page.locator('form[aria-label="Add a dataflow"]');
  await inner.locator("select").nth(1).selectOption("add-one");
  await inner.locator('button[type="submit"]').click();
  await waitValid(page, true);
  await screenshot(page, "editor-subgraph");
  await page.click('nav[aria-label="Subgraph"] button:has-text("Graph")');
  await page.waitForSelector(node("after"));
  await page.click('div[role="toolbar"] button:has-text("Run")');
  await page.waitForURL(/#\/runs\//);
  await page.waitForSelector('tr[data-node-row="outer/add-one"]');
  const after = await leafOutput(page, "after");
  check(after.value === 5, `1 → a → b → add-one → after: ${JSON.stringify(after)}`);
  checkNoProblems(page);
  console.log("PASS");
});
