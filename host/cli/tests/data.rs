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

/// Run `task` with `defaults`; the error message, or panic if it succeeded.
fn refusal(dir: &Path, task: &str, defaults: Value) -> String {
    let (s, e) = node(dir, task, defaults.clone());
    assert_eq!(s, "failed", "{task} {defaults} succeeded: {e}");
    e.as_str().unwrap().to_string()
}

#[tokio::test]
async fn sql_and_files_stay_inside_their_grants_and_limits() {
    let pg = weft_tests::fresh_postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("in")).unwrap();
    std::fs::write(d.join("in/big.txt"), "x".repeat(2_000)).unwrap();
    std::fs::write(d.join("in/small.txt"), "x".repeat(1_000)).unwrap();
    let lite = d.join("db.sqlite");
    std::fs::write(
        d.join("weft.toml"),
        format!(
            "[data.folders.in]\npath = \"in\"\nmax_read_bytes = 1000\n\n\
             [data.databases.lite]\nurl = \"sqlite://{lite}?mode=rwc\"\nmax_rows = 10\n\
             statement_timeout_ms = 300\n\n\
             [data.databases.ro]\nurl = \"sqlite://{lite}?mode=ro\"\n\n\
             [data.databases.pg]\nurl = \"{pg}\"\nmax_rows = 10\nmax_result_bytes = 400\n\
             statement_timeout_ms = 300\n",
            lite = lite.display()
        ),
    )
    .unwrap();

    // Files: a read stops at the folder's cap.
    let (s, _) = node(
        d,
        "data.file-read",
        json!({"folder": "in", "path": "small.txt"}),
    );
    assert_eq!(s, "succeeded", "exactly the cap is read");
    let e = refusal(
        d,
        "data.file-read",
        json!({"folder": "in", "path": "big.txt"}),
    );
    assert!(
        e.contains("larger than the folder's max_read_bytes (1000 bytes)"),
        "{e}"
    );

    let sql =
        |db: &str, task: &str, sql: &str| (task.to_string(), json!({"database": db, "sql": sql}));
    let (t, v) = sql(
        "lite",
        "data.sql-execute",
        "CREATE TABLE people (id BIGINT, name TEXT)",
    );
    assert_eq!(node(d, &t, v).0, "succeeded");
    let (t, v) = sql(
        "pg",
        "data.sql-execute",
        "CREATE TABLE people (id BIGINT, name TEXT)",
    );
    assert_eq!(node(d, &t, v).0, "succeeded");

    // One statement per call, on both.
    for db in ["lite", "pg"] {
        let (t, v) = sql(
            db,
            "data.sql-execute",
            "DELETE FROM people; DROP TABLE people",
        );
        let e = refusal(d, &t, v);
        assert!(e.contains(&format!("database `{db}`")), "{e}");
    }
    let (t, v) = sql("lite", "data.sql-execute", "SELECT 1; DROP TABLE people");
    assert!(refusal(d, &t, v).contains("one statement per call"));

    // SQLite: no other files, no native code, no settings changed.
    let other = d.join("other.sqlite");
    let copy = d.join("copy.sqlite");
    for (task, statement) in [
        (
            "data.sql-execute",
            format!("ATTACH DATABASE '{}' AS o", other.display()),
        ),
        (
            "data.sql-execute",
            format!("VACUUM INTO '{}'", copy.display()),
        ),
        (
            "data.sql-query",
            format!("VACUUM INTO '{}'", copy.display()),
        ),
        (
            "data.sql-query",
            "SELECT load_extension('/tmp/evil.so')".to_string(),
        ),
        (
            "data.sql-execute",
            "PRAGMA journal_mode = DELETE".to_string(),
        ),
        (
            "data.sql-execute",
            "PRAGMA writable_schema = ON".to_string(),
        ),
    ] {
        let (t, v) = sql("lite", task, &statement);
        let e = refusal(d, &t, v);
        assert!(e.contains("database `lite`"), "{statement}: {e}");
    }
    assert!(!other.exists() && !copy.exists(), "no file was created");
    for db in ["lite", "ro"] {
        let (t, v) = sql(
            db,
            "data.sql-execute",
            &format!("VACUUM INTO '{}'", copy.display()),
        );
        refusal(d, &t, v);
        assert!(!copy.exists(), "VACUUM INTO through {db} wrote a file");
    }
    let (t, v) = sql("lite", "data.sql-query", "PRAGMA table_info(people)");
    let (s, rows) = node(d, &t, v);
    assert_eq!(
        (s.as_str(), rows["count"].clone()),
        ("succeeded", json!(2)),
        "{rows}"
    );

    // A query only reads, on both.
    let (t, v) = sql(
        "lite",
        "data.sql-query",
        "INSERT INTO people VALUES (1, 'a') RETURNING id",
    );
    assert!(refusal(d, &t, v).contains("only read"));
    let (t, v) = sql(
        "pg",
        "data.sql-query",
        "INSERT INTO people VALUES (1, 'a') RETURNING id",
    );
    assert!(refusal(d, &t, v).contains("read-only transaction"));
    let (t, v) = sql(
        "ro",
        "data.sql-execute",
        "INSERT INTO people VALUES (1, 'a')",
    );
    refusal(d, &t, v);
    for db in ["lite", "pg"] {
        let (t, v) = sql(db, "data.sql-query", "SELECT count(*) AS n FROM people");
        assert_eq!(
            node(d, &t, v).1["rows"][0]["n"],
            json!(0),
            "{db}: nothing was written"
        );
    }

    // Rows, bytes and time are capped.
    let series = [
        (
            "lite",
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 11) SELECT n FROM s",
        ),
        ("pg", "SELECT generate_series(1, 11) AS n"),
    ];
    for (db, statement) in series {
        let (t, v) = sql(db, "data.sql-query", statement);
        let e = refusal(d, &t, v);
        assert!(e.contains("more than max_rows (10) rows"), "{db}: {e}");
    }
    let (t, v) = sql("pg", "data.sql-query", "SELECT repeat('x', 500) AS s");
    assert!(refusal(d, &t, v).contains("larger than max_result_bytes (400 bytes)"));
    let slow = [
        (
            "lite",
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s) SELECT count(*) FROM s",
        ),
        ("pg", "SELECT pg_sleep(30)"),
    ];
    for (db, statement) in slow {
        let started = std::time::Instant::now();
        let (t, v) = sql(db, "data.sql-query", statement);
        let e = refusal(d, &t, v);
        assert!(e.contains("statement_timeout_ms (300 ms)"), "{db}: {e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{db} was not stopped"
        );
    }
}

/// `weft run --preview`: the pure nodes run, the file write does not (the
/// input it would get is shown), nothing is stored; a real run writes it.
#[test]
fn a_preview_never_runs_a_side_effect() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(
        d.join("weft.toml"),
        "[data.folders.out]\npath = \"out\"\nwritable = true\n",
    )
    .unwrap();
    let graph = d.join("g.json");
    std::fs::write(
        &graph,
        json!({
            "tasks": [
                {"id": "text", "type": "text.template", "defaults": {"template": "hello {{name}}"}},
                {"id": "write", "type": "data.file-write", "defaults": {"folder": "out", "path": "hello.txt"}},
                {"id": "after", "type": "util.debug-log"}
            ],
            "dataflows": [
                {"sourceTaskId": "text", "sourceTaskPortId": "text", "targetTaskId": "write", "targetTaskPortId": "text"},
                {"sourceTaskId": "write", "sourceTaskPortId": "*", "targetTaskId": "after", "targetTaskPortId": "message",
                 "transforms": [{"id": "stringify"}]}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let weft = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["run", "--json", "--config"])
            .arg(d.join("weft.toml"))
            .arg(&graph)
            .args(["--input", r#"{"name": "ada"}"#])
            .args(extra)
            .env("WEFT_CACHE_DIR", weft_tests::cache_dir())
            .env("WEFT_DATA_DIR", d.join(".weft"))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
    };
    let preview = weft(&["--preview"]);
    assert_eq!(preview["preview"], true);
    assert_eq!(preview["status"], "succeeded", "{preview}");
    assert_eq!(preview["outputs"]["text"], json!({"text": "hello ada"}));
    assert_eq!(preview["nodes"]["write"], "disabled");
    assert_eq!(preview["nodes"]["after"], "disabled");
    assert_eq!(
        preview["previewed"]["write"],
        json!({"folder": "out", "path": "hello.txt", "text": "hello ada"})
    );
    assert!(
        !d.join("out/hello.txt").exists(),
        "the preview wrote the file"
    );
    let runs = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["runs", "--json"])
        .env("WEFT_DATA_DIR", d.join(".weft"))
        .output()
        .unwrap();
    let runs: Value = serde_json::from_slice(&runs.stdout).unwrap_or(json!([]));
    assert_eq!(runs, json!([]), "a preview is not stored as a run");

    let run = weft(&[]);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        std::fs::read_to_string(d.join("out/hello.txt")).unwrap(),
        "hello ada"
    );
}
