// The seeds' JavaScriptTask as a Weft plugin: `code.javascript` runs a
// JavaScript snippet inside the wasm sandbox (SpiderMonkey, compiled into the
// component by componentize-js), under the same time and memory limits as any
// plugin. The snippet is a function body; `args` holds the task's `args`
// input; what it returns is the output's `result`.
//
//   weft new js-code --lang js && cp examples/plugin-js-code/app.js js-code/
//   weft build js-code && cp js-code/dist/js-code.wasm plugins/
import { defineTask, task, TaskError } from "./weft-sdk.js";

defineTask(
  {
    id: "code.javascript",
    title: "Run JavaScript",
    description:
      "Runs a JavaScript function body with `args` in scope, in the sandbox; its return value is the result.",
    input: {
      type: "object",
      properties: {
        code: { type: "string", description: "A function body, e.g. `return args.a + args.b`." },
        args: { type: "object", description: "Available to the code as `args`." },
      },
      required: ["code"],
    },
    output: {
      type: "object",
      properties: { result: { description: "What the code returned (JSON)." } },
      required: ["result"],
    },
    // The same code and arguments may give another result (Date, Math.random).
    cacheable: false,
  },
  (input, ctx) => {
    let fn;
    try {
      fn = new Function("args", "log", input.code);
    } catch (e) {
      throw TaskError.invalidInput(`the code does not parse: ${e.message}`);
    }
    const result = fn(input.args ?? {}, (message) => ctx.log("info", message));
    return { result: result === undefined ? null : result };
  },
);

export { task };
