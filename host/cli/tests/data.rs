//! Data tasks through the `weft` binary: files only inside granted folders,
//! SQL on a real SQLite file and a real PostgreSQL database, parameters bound.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// Run a one-node graph with `config`; (status, output or error).
fn node(dir: &Path, task: &str, defaults: Value) -> (String, Value) {
    let graph = dir.join("g.json");
    std::fs::write(
        &graph,
        json!({"tasks": [{"id": "n", "type": task, "defaults": defaults}]}).to_string(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["run", "--json", "--ephemeral", "--config"])
        .arg(dir.join("weft.toml"))
        .arg(&graph)
        .env("WEFT_CACHE_DIR", weft_tests::cache_dir())
        .env("WEFT_DATA_DIR", dir.join(".weft"))
        .output()
        .unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("{}", String::from_utf8_lossy(&out.stderr));
    });
    let status = result["status"].as_str().unwrap().to_string();
    let value = if status == "succeeded" {
        result["outputs"]["n"].clone()
    } else {
        result["failures"][0]["error"].clone()
    };
    (status, value)
}

#[tokio::test]
async fn files_stay_inside_their_folders_and_sql_parameters_are_bound() {
    let pg = weft_tests::fresh_postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("in/sub")).unwrap();
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("in/notes.txt"), "weft\nwarp\n").unwrap();
    std::fs::write(d.join("in/sub/data.json"), r#"{"n": 3}"#).unwrap();
    std::fs::write(d.join("secret.txt"), "not yours").unwrap();
    std::os::unix::fs::symlink(d.join("secret.txt"), d.join("in/link.txt")).unwrap();
    std::fs::write(
        d.join("weft.toml"),
        format!(
            "[data.folders.in]\npath = \"in\"\n\n[data.folders.out]\npath = \"out\"\nwritable = true\n\n\
             [data.databases.lite]\nurl = \"sqlite://{}/db.sqlite?mode=rwc\"\n\n\
             [data.databases.pg]\nurl = \"{pg}\"\n",
            d.display()
        ),
    )
    .unwrap();

    // Files: read as lines or JSON, list, write; never outside the folder.
    let (s, v) = node(
        d,
        "data.file-read",
        json!({"folder": "in", "path": "notes.txt", "as": "lines"}),
    );
    assert_eq!(
        (s.as_str(), v),
        ("succeeded", json!({"lines": ["weft", "warp"]}))
    );
    let (_, v) = node(
        d,
        "data.file-read",
        json!({"folder": "in", "path": "sub/data.json", "as": "json"}),
    );
    assert_eq!(v, json!({"value": {"n": 3}}));
    let (_, v) = node(d, "data.file-list", json!({"folder": "in"}));
    assert_eq!(v, json!({"names": ["link.txt", "notes.txt", "sub"]}));
    for path in [
        "../secret.txt",
        "/etc/passwd",
        "link.txt",
        "sub/../../secret.txt",
    ] {
        let (s, e) = node(d, "data.file-read", json!({"folder": "in", "path": path}));
        assert_eq!(s, "failed", "{path} was read: {e}");
        assert!(
            e.as_str()
                .unwrap()
                .contains(&format!("path `{path}` escapes folder `in`")),
            "{e}"
        );
    }
    let (s, e) = node(
        d,
        "data.file-write",
        json!({"folder": "in", "path": "x.txt", "text": "x"}),
    );
    assert_eq!(s, "failed");
    assert!(
        e.as_str().unwrap().contains("folder `in` is read-only"),
        "{e}"
    );
    let (s, e) = node(d, "data.file-read", json!({"folder": "nope", "path": "x"}));
    assert!(
        s == "failed" && e.as_str().unwrap().contains("no folder `nope` is granted"),
        "{e}"
    );
    let (_, v) = node(
        d,
        "data.file-write",
        json!({"folder": "out", "path": "report.txt", "text": "done"}),
    );
    assert_eq!(v, json!({"bytes": 4}));
    assert_eq!(
        std::fs::read_to_string(d.join("out/report.txt")).unwrap(),
        "done"
    );

    // SQL: the same statements on SQLite and PostgreSQL; a hostile value is data.
    let hostile = "O'Brien'); DROP TABLE people; --";
    for (db, p1, p2) in [("lite", "?1", "?2"), ("pg", "$1", "$2")] {
        let (s, e) = node(
            d,
            "data.sql-execute",
            json!({"database": db,
            "sql": "CREATE TABLE people (id BIGINT, name TEXT)"}),
        );
        assert_eq!(s, "succeeded", "{db}: {e}");
        let (_, v) = node(
            d,
            "data.sql-execute",
            json!({"database": db,
            "sql": format!("INSERT INTO people (id, name) VALUES ({p1}, {p2})"), "params": [7, hostile]}),
        );
        assert_eq!(v, json!({"rows_affected": 1}), "{db}");
        let (_, v) = node(
            d,
            "data.sql-query",
            json!({"database": db,
            "sql": format!("SELECT id, name FROM people WHERE id = {p1}"), "params": [7]}),
        );
        assert_eq!(
            v,
            json!({"rows": [{"id": 7, "name": hostile}], "count": 1}),
            "{db}"
        );
        let (s, e) = node(
            d,
            "data.sql-query",
            json!({"database": db, "sql": "SELECT * FROM nowhere"}),
        );
        assert_eq!(s, "failed");
        assert!(
            e.as_str().unwrap().contains(&format!("database `{db}`")),
            "{e}"
        );
    }
    let (s, e) = node(
        d,
        "data.sql-query",
        json!({"database": "other", "sql": "SELECT 1"}),
    );
    assert!(
        s == "failed"
            && e.as_str()
                .unwrap()
                .contains("no database `other` is configured"),
        "{e}"
    );
}
