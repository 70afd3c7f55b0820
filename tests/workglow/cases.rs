//! The graphs Workglow writes: `tests/workglow/cases.mjs` run with the
//! pinned npm package (shared by `workglow.rs` and `codegen.rs`).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Each case: `{name, json, result}`, from Workglow (installing the pinned
/// package first if `tests/run.sh` has not).
pub fn workglow_cases() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workglow");
    if !dir.join("node_modules/@workglow/task-graph").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "npm ci in {} failed (node and npm are needed)",
            dir.display()
        );
    }
    let out = Command::new("node")
        .arg("cases.mjs")
        .current_dir(&dir)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "cases.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
