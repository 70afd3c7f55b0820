// {{name}}: a Weft plugin. Each task declares its input and output JSON
// Schemas and is a plain function.
import { defineTask, task, TaskError } from "./weft-sdk.js";

export function greet(input, ctx) {
  if (!input.name) throw TaskError.invalidInput("name is empty");
  ctx.log("info", "greeting");
  return { greeting: `Hello, ${input.name}!` };
}

defineTask(
  {
    id: "{{id}}.greet",
    title: "Greet",
    description: "Greets someone by name.",
    input: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
    output: { type: "object", properties: { greeting: { type: "string" } }, required: ["greeting"] },
  },
  greet,
);

export { task };
