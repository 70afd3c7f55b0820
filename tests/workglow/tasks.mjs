// Task classes that mirror Weft's standard tasks of the same type ids
// (plugins/math, plugins/text), so a graph runs the same in both.
import {
  Task, TaskRegistry, TaskInvalidInputError, registerBaseTasks, registerBuiltInTransforms,
} from "@workglow/task-graph";

const num = { type: "number" };
const object = (properties, required = []) => ({
  type: "object", properties, required, additionalProperties: false,
});

export class AddOne extends Task {
  static type = "math.add-one";
  static cacheable = true;
  static inputSchema() { return object({ value: num }, ["value"]); }
  static outputSchema() { return object({ value: num }); }
  async execute({ value }) { return { value: value + 1 }; }
}

export class Add extends Task {
  static type = "math.add";
  static inputSchema() { return object({ a: num, b: num }, ["a", "b"]); }
  static outputSchema() { return object({ value: num }); }
  async execute({ a, b }) { return { value: a + b }; }
}

export class Divide extends Task {
  static type = "math.divide";
  static inputSchema() { return object({ a: num, b: num }, ["a", "b"]); }
  static outputSchema() { return object({ value: num }); }
  async execute({ a, b }) {
    if (b === 0) throw new TaskInvalidInputError("division by zero (b is 0)");
    return { value: a / b };
  }
}

export class Template extends Task {
  static type = "text.template";
  static inputSchema() {
    return { type: "object", properties: { template: { type: "string" } },
             required: ["template"], additionalProperties: true };
  }
  static outputSchema() { return object({ text: { type: "string" } }); }
  async execute(input) {
    const text = input.template.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, k) => String(input[k]));
    return { text };
  }
}

for (const t of [AddOne, Add, Divide, Template]) TaskRegistry.registerTask(t);
// Workglow's own control-flow classes (GraphAsTask, MapTask, …) and edge
// transforms, which its JSON import needs registered.
registerBaseTasks();
registerBuiltInTransforms();
