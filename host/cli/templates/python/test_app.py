"""Runs with plain Python: `python3 -m unittest` (the SDK's host imports are
stubbed, the task functions are ordinary functions)."""
import sys
import types
import unittest

# Stub the component bindings so the module imports outside wasm.
for name in ["componentize_py_types", "wit_world", "wit_world.exports", "wit_world.imports"]:
    sys.modules.setdefault(name, types.ModuleType(name))
sys.modules["componentize_py_types"].Err = type("Err", (Exception,), {})
sys.modules["wit_world.exports"].Task = object
for part in ["config", "log", "models", "progress", "storage", "types", "vectors"]:
    mod = types.ModuleType(f"wit_world.imports.{part}")
    sys.modules[f"wit_world.imports.{part}"] = mod
    setattr(sys.modules["wit_world.imports"], part, mod)
sys.modules["wit_world.imports.log"].Level = types.SimpleNamespace(TRACE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4)
sys.modules["wit_world.imports.log"].log = lambda level, message: None
sys.modules["wit_world.imports.types"].TaskType = lambda **kw: kw

import app  # noqa: E402


class GreetTest(unittest.TestCase):
    def test_greets_by_name(self):
        ctx = app.Context("r", "n", 1, "r/n")
        self.assertEqual(app.greet(app.Input("loom"), ctx).greeting, "Hello, loom!")


if __name__ == "__main__":
    unittest.main()
