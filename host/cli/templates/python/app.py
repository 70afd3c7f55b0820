"""{{name}}: a Weft plugin. Each task is a typed function; the SDK derives the
JSON Schemas from the dataclasses."""
from dataclasses import dataclass

from weft_sdk import Context, InvalidInput, Task, task  # noqa: F401  (Task is the plugin's export)


@dataclass
class Input:
    name: str


@dataclass
class Output:
    greeting: str


@task("{{id}}.greet", title="Greet")
def greet(input: Input, ctx: Context) -> Output:
    """Greets someone by name."""
    if not input.name:
        raise InvalidInput("name is empty")
    ctx.log("info", "greeting")
    return Output(f"Hello, {input.name}!")
