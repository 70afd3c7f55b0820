//! The `weft` binary end to end: what a user types, what they see, and the exit
//! codes scripts rely on.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use weft_tests::{EXAMPLE_PLUGIN, PluginDir, ROOT};

fn weft(args: &[&str]) -> Output {
    let data = tempfile::tempdir().unwrap();
    weft_in(data.path(), args)
}

/// Run `weft` with `data` as its data directory.
fn weft_in(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("WEFT_DATA_DIR", data)
        .current_dir(ROOT)
        .env("WEFT_CACHE_DIR", weft_tests::cache_dir())
        .env_remove("WEFT_PLUGINS_DIR")
        .output()
        .expect("weft runs")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_json_prints_status_leaf_outputs_and_stats() {
    let out = weft(&[
        "run",
        "examples/hello.json",
        "--input",
        r#"{"text": "weft, warp, loom"}"#,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = stdout_json(&out);
    assert_eq!(v["status"], "succeeded");
    assert_eq!(
        v["outputs"],
        json!({"count": {"value": 4}, "log": {"message": "weft and warp: 3 parts"}})
    );
    assert_eq!(v["stats"]["tasks_executed"], 4);
    assert_eq!(v["stats"]["cache_hits"], 0);
    assert!(v["stats"]["run_ms"].as_f64().unwrap() > 0.0);

    let out = weft(&[
        "run",
        "examples/hello.json",
        "--input",
        r#"{"text": "a,b"}"#,
        "--json",
        "--all-outputs",
    ]);
    let v = stdout_json(&out);
    assert_eq!(
        v["outputs"]["split"],
        json!({"parts": ["a", "b"], "count": 2})
    );
}

#[test]
fn chain_1000_bench_graph_computes_1000() {
    let out = weft(&["run", "examples/bench/chain-1000.json", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = stdout_json(&out);
    assert_eq!(v["outputs"], json!({"t999": {"value": 1000}}));
    assert_eq!(v["stats"]["tasks_executed"], 1000);
}

#[test]
fn fanout_1000_bench_graph_merges_every_branch() {
    let out = weft(&["run", "examples/bench/fanout-1000.json", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let merged = &stdout_json(&out)["outputs"]["merge"];
    assert_eq!(merged.as_object().unwrap().len(), 1000);
    assert_eq!(merged["f0"], 2);
    assert_eq!(merged["f999"], 2);
}

#[test]
fn failed_run_exits_1_and_names_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.json");
    std::fs::write(
        &g,
        r#"{"tasks":[{"id":"div","type":"math.divide","defaults":{"a":1,"b":0}}]}"#,
    )
    .unwrap();
    let out = weft(&["run", g.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v["status"], "failed");
    assert_eq!(v["failures"][0]["node"], "div");
    assert_eq!(
        v["failures"][0]["error"],
        "invalid input: division by zero (b is 0)"
    );
}

#[test]
fn run_refuses_a_graph_that_waits_even_inside_a_loop_saying_where() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("ask.json");
    let body = json!({"tasks": [{"id": "ask", "type": "wait"}], "dataflows": []});
    let g = json!({"tasks": [{"id": "chat", "type": "while",
        "config": {"condition": "false", "max_iterations": 2}, "graph": body}]});
    std::fs::write(&graph, g.to_string()).unwrap();
    let out = weft(&["run", graph.to_str().unwrap(), "--input", "{}"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("node chat[…]/ask waits for a signal"),
        "{said}"
    );
    assert!(said.contains("weft serve"), "{said}");
}

#[test]
fn validate_reports_every_problem_with_its_place_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("bad.json");
    std::fs::write(
        &g,
        r#"{"tasks":[{"id":"a","type":"math.add-onee"},{"id":"b","type":"text.join"}],
            "dataflows":[{"sourceTaskId":"b","sourceTaskPortId":"text","targetTaskId":"c","targetTaskPortId":"x"}]}"#,
    )
    .unwrap();
    let out = weft(&["validate", g.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let file = g.display().to_string();
    assert!(err.contains(&format!("{file}: tasks[0] (node \"a\"): unknown task type `math.add-onee` (did you mean `math.add-one`?)")), "{err}");
    assert!(
        err.contains(&format!(
            "{file}: dataflows[0] (b.text → c.x): no node \"c\" in the graph"
        )),
        "{err}"
    );

    std::fs::write(&g, "{\"tasks\": [}").unwrap();
    let out = weft(&["validate", g.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{file}:1:12: malformed JSON")),
        "{}",
        stderr(&out)
    );

    let out = weft(&["validate", "examples/hello.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok (4 nodes, 4 dataflows)"), "{text}");
    assert!(
        text.contains("expects from the run's input: split.text"),
        "{text}"
    );
}

#[test]
fn missing_run_input_is_refused_before_running() {
    let out = weft(&["run", "examples/hello.json", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("required input `text` of `text.split`"),
        "{}",
        stderr(&out)
    );
    let out = weft(&["run", "examples/hello.json", "--input", "[1]"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--input must be a JSON object"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tasks_json_lists_standard_and_folder_plugins_with_schemas() {
    let out = weft(&["tasks", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = stdout_json(&out);
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for id in [
        "text.split",
        "text.join",
        "text.template",
        "text.regex-match",
        "text.regex-replace",
        "json.pick",
        "json.path",
        "json.merge",
        "math.add-one",
        "util.delay",
        "util.debug-log",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let split = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "text.split")
        .unwrap();
    for key in [
        "id",
        "version",
        "title",
        "category",
        "description",
        "input_schema",
        "output_schema",
        "side_effects",
        "cacheable",
        "plugin",
    ] {
        assert!(split.get(key).is_some(), "key {key} missing");
    }
    assert_eq!(split["plugin"], "std-text");
    assert_eq!(
        split["input_schema"]["properties"]["text"]["type"],
        "string"
    );
    assert!(!ids.contains(&"example.shout"));

    // A component dropped into a plugins folder shows up and runs.
    let dir = PluginDir::new().add("example", EXAMPLE_PLUGIN);
    let plugins = dir.path().to_str().unwrap();
    let out = weft(&["tasks", "--json", "--plugins", plugins]);
    let all = stdout_json(&out);
    let shout = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "example.shout")
        .expect("example.shout listed");
    assert_eq!(shout["plugin"], "example");
    let g = Path::new(plugins).join("g.json");
    std::fs::write(&g, r#"{"tasks":[{"id":"s","type":"example.shout"}]}"#).unwrap();
    let out = weft(&[
        "run",
        g.to_str().unwrap(),
        "--plugins",
        plugins,
        "--input",
        r#"{"text":"hey"}"#,
        "--json",
    ]);
    assert_eq!(stdout_json(&out)["outputs"]["s"], json!({"text": "HEY!"}));

    let out = weft(&["tasks"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("text.split 0.1.0 — Split text [cacheable] (std-text)"),
        "{text}"
    );
    assert!(
        text.contains("in:  text: string, separator?: string"),
        "{text}"
    );
}

#[test]
fn plugins_lists_load_errors() {
    let dir = PluginDir::new().file("broken.wasm", b"nope");
    let out = weft(&["plugins", "--plugins", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("broken (") && text.contains("FAILED: not a loadable WASI 0.2 component"),
        "{text}"
    );
    assert!(text.contains("std-math (builtin)"), "{text}");
}

#[test]
fn runs_persist_and_their_event_log_reads_back() {
    let data = tempfile::tempdir().unwrap();
    let out = weft_in(
        data.path(),
        &[
            "run",
            "examples/hello.json",
            "--input",
            r#"{"text":"x, y"}"#,
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout_json(&out)["run_id"].as_str().unwrap().to_string();
    let runs = stdout_json(&weft_in(data.path(), &["runs", "--json"]));
    assert_eq!(runs[0]["run_id"], run_id.as_str());
    assert_eq!(runs[0]["status"], "succeeded");
    let out = weft_in(data.path(), &["events", &run_id, "--json"]);
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert_eq!(events[0]["type"], "run_started");
    assert_eq!(events.last().unwrap()["status"], "succeeded");
    let after = weft_in(data.path(), &["events", &run_id, "--json", "--after", "10"]);
    assert_eq!(
        String::from_utf8_lossy(&after.stdout).lines().count(),
        events.len() - 10
    );
    // What a node started with: its defaults and what split gave it.
    let out = weft_in(data.path(), &["status", &run_id, "--input", "shout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let input = stdout_json(&out);
    assert_eq!(input["parts"], json!(["x", "y"]));
    assert_eq!(input["count"], 2);
    assert!(
        input["template"]
            .as_str()
            .unwrap()
            .starts_with("{{parts.0}}")
    );
    let out = weft_in(data.path(), &["status", &run_id, "--input", "nope"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("node `nope`"), "{}", stderr(&out));
    let out = weft_in(data.path(), &["resume", &run_id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already ended"), "{}", stderr(&out));

    // Pruned: nothing younger than the rule, then everything ended of the
    // status asked, with its events.
    let out = weft_in(
        data.path(),
        &["runs", "prune", "--older-than", "1h", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The run is younger than the rule: the pass stops before it.
    assert_eq!(stdout_json(&out), json!({"scanned": 0, "deleted": 0}));
    let out = weft_in(
        data.path(),
        &["runs", "prune", "--older-than", "0s", "--status", "failed"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 0 of 1 runs"));
    let out = weft_in(
        data.path(),
        &["runs", "prune", "--older-than", "0s", "--json"],
    );
    assert_eq!(stdout_json(&out), json!({"scanned": 1, "deleted": 1}));
    assert_eq!(
        stdout_json(&weft_in(data.path(), &["runs", "--json"])),
        json!([])
    );
    let out = weft_in(data.path(), &["runs", "prune", "--older-than", "3y"]);
    assert!(
        stderr(&out).contains("one of s, m, h, d, w"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn second_run_is_served_from_the_cache_and_the_cache_can_be_inspected_and_cleared() {
    let data = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "examples/hello.json",
        "--input",
        r#"{"text":"p, q"}"#,
        "--json",
    ];
    let first = stdout_json(&weft_in(data.path(), &args));
    assert_eq!(first["stats"]["cache_hits"], 0);
    let second = stdout_json(&weft_in(data.path(), &args));
    assert_eq!(second["outputs"], first["outputs"]);
    // split, shout and count are cacheable; util.debug-log is not.
    assert_eq!(second["stats"]["cache_hits"], 3);
    assert_eq!(second["stats"]["tasks_executed"], 1);
    let mut no_cache = args.to_vec();
    no_cache.push("--no-cache");
    assert_eq!(
        stdout_json(&weft_in(data.path(), &no_cache))["stats"]["cache_hits"],
        0
    );

    let stats = stdout_json(&weft_in(data.path(), &["cache", "stats", "--json"]));
    let types: Vec<&str> = stats
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["task_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["math.add-one", "text.split", "text.template"]);
    let out = weft_in(data.path(), &["cache", "clear", "--type", "text.split"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "removed 1 cached outputs"
    );
    let third = stdout_json(&weft_in(data.path(), &args));
    assert_eq!(third["stats"]["cache_hits"], 2);
}

#[test]
fn queues_come_from_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "[queues.slow]\nconcurrency = 1\ntasks = [\"util.delay\"]\n",
    )
    .unwrap();
    let g = dir.path().join("g.json");
    std::fs::write(
        &g,
        r#"{"tasks":[{"id":"a","type":"util.delay","defaults":{"ms":30}},
                     {"id":"b","type":"util.delay","defaults":{"ms":30}},
                     {"id":"c","type":"math.add-one","defaults":{"value":1},"config":{"queue":"slow"}}]}"#,
    )
    .unwrap();
    let (g, c) = (g.to_str().unwrap(), config.to_str().unwrap());
    let out = weft(&["run", g, "--config", c, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["status"], "succeeded");

    let out = weft(&["run", g, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown queue `slow`"),
        "{}",
        stderr(&out)
    );

    // A graph cannot take a task type out of the queue the operator put it in.
    let fast = dir.path().join("fast.toml");
    std::fs::write(
        &fast,
        "[queues.slow]\nconcurrency = 1\ntasks = [\"util.delay\"]\n[queues.fast]\nconcurrency = 64\n",
    )
    .unwrap();
    let escape = dir.path().join("escape.json");
    std::fs::write(
        &escape,
        r#"{"tasks":[{"id":"a","type":"util.delay","defaults":{"ms":1},"config":{"queue":"fast"}}]}"#,
    )
    .unwrap();
    let out = weft(&[
        "run",
        escape.to_str().unwrap(),
        "--config",
        fast.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "task type `util.delay` goes through queue `slow` (the operator's [queues.slow] tasks); \
             a node cannot route it through `fast`"
        ),
        "{}",
        stderr(&out)
    );

    std::fs::write(&config, "[queues.slow]\nconcurrency = \"one\"\n").unwrap();
    let out = weft(&["run", g, "--config", c]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("weft.toml is invalid"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_missing_onnx_runtime_is_a_clear_error_not_a_crash() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("weft.toml");
    std::fs::write(
        &config,
        "[models.local]\nprovider = \"onnx\"\nkind = \"embedding\"\nmodel = \"model.onnx\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["models", "check", "--config"])
        .arg(&config)
        .env("WEFT_DATA_DIR", data.path())
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("WEFT_ONNXRUNTIME")
        .env("WEFT_CACHE_DIR", weft_tests::cache_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("local: model unavailable") && text.contains("weft models pull minilm"),
        "{text}"
    );
    // The host itself still starts and lists the model.
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["models", "--json", "--config"])
        .arg(&config)
        .env("WEFT_DATA_DIR", data.path())
        .output()
        .unwrap();
    let list = stdout_json(&out);
    assert_eq!(list[0]["id"], "local");
    assert_eq!(list[0]["provider"], "onnx");
    assert_eq!(list[0]["kind"], "embedding");
}

/// Serve `app` on a free loopback port, on a thread of its own; the address.
fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// Serves `/model.bin`; the first plain GET breaks off halfway, a Range GET
/// gets the rest.
fn serve_model_file(content: Vec<u8>) -> String {
    use axum::body::{Body, Bytes};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::Response;
    let content = std::sync::Arc::new(content);
    let app = axum::Router::new().route(
        "/model.bin",
        axum::routing::get(move |headers: HeaderMap| {
            let content = content.clone();
            async move {
                let start = headers
                    .get("range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes="))
                    .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok());
                match start {
                    Some(start) => Response::builder()
                        .status(StatusCode::PARTIAL_CONTENT)
                        .header("content-length", content.len() - start)
                        .body(Body::from(content[start..].to_vec()))
                        .unwrap(),
                    None => {
                        let half = Bytes::from(content[..content.len() / 2].to_vec());
                        let chunks: Vec<Result<Bytes, std::io::Error>> =
                            vec![Ok(half), Err(std::io::Error::other("connection lost"))];
                        Response::builder()
                            .header("content-length", content.len())
                            .body(Body::from_stream(futures::StreamExt::then(
                                futures::stream::iter(chunks),
                                |c| async move {
                                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                                    c
                                },
                            )))
                            .unwrap()
                    }
                }
            }
        }),
    );
    format!("http://{}/model.bin", serve_on_loopback(app))
}

#[test]
fn models_pull_resumes_an_interrupted_download_and_checks_its_sha256() {
    use sha2::Digest;
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let sha = hex::encode(sha2::Sha256::digest(&content));
    let url = serve_model_file(content.clone());
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("weft.toml");
    let write = |sha: &str| {
        std::fs::write(
            &config,
            format!(
                "[models.m]\nprovider = \"onnx\"\nkind = \"embedding\"\nmodel = \"model.bin\"\n\
                 files = [{{ url = \"{url}\", sha256 = \"{sha}\", name = \"model.bin\" }}]\n"
            ),
        )
        .unwrap()
    };
    let pull = || {
        Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["models", "pull", "m", "--config"])
            .arg(&config)
            .env("WEFT_DATA_DIR", data.path())
            .output()
            .unwrap()
    };
    let target = data.path().join("models/m/model.bin");

    write(&sha);
    let first = pull();
    assert_eq!(first.status.code(), Some(2));
    assert!(
        stderr(&first).contains("interrupted (run again to resume)"),
        "{}",
        stderr(&first)
    );
    assert!(!target.exists());
    let second = pull();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("model.bin: downloaded (resumed) and verified"),
        "{}",
        stderr(&second)
    );
    assert_eq!(std::fs::read(&target).unwrap(), content);
    let third = pull();
    assert!(
        stderr(&third).contains("already there"),
        "{}",
        stderr(&third)
    );

    // A checksum that does not match: refused, nothing left behind.
    std::fs::remove_file(&target).unwrap();
    write(&"0".repeat(64));
    pull(); // the first attempt breaks off halfway
    let bad = pull();
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("expected 0000"), "{}", stderr(&bad));
    assert!(!target.exists() && !data.path().join("models/m/model.bin.part").exists());
}

/// What a hostile or broken download server cannot do: send more than the
/// file may have, take credentials to another host on a redirect, or lead the
/// client to write outside the models folder; and one download of a file runs
/// at a time.
#[test]
fn downloads_keep_their_limits() {
    use axum::http::HeaderMap;
    // Host B records the headers it gets; host A redirects there.
    let seen: std::sync::Arc<std::sync::Mutex<Vec<HeaderMap>>> = Default::default();
    let record = seen.clone();
    let b = serve_on_loopback(axum::Router::new().route(
        "/file",
        axum::routing::get(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(headers);
                vec![7u8; 1_000]
            }
        }),
    ));
    let to_b = format!("http://localhost:{}/file", b.port());
    let sent_to_a: std::sync::Arc<std::sync::Mutex<Vec<HeaderMap>>> = Default::default();
    let record_a = sent_to_a.clone();
    let a = serve_on_loopback(
        axum::Router::new()
            .route(
                "/file",
                axum::routing::get(move |headers: HeaderMap| {
                    record_a.lock().unwrap().push(headers);
                    let to_b = to_b.clone();
                    async move { axum::response::Redirect::temporary(&to_b) }
                }),
            )
            .route(
                "/endless",
                axum::routing::get(|| async { vec![0u8; 5_000] }),
            ),
    );
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("weft.toml");
    let pull = |id: &str, url: &str, name: &str, extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[models.{id}]\nprovider = \"onnx\"\nkind = \"embedding\"\nmodel = \"x.onnx\"\n\
                 files = [{{ url = \"{url}\", sha256 = \"{}\", name = \"{name}\"{extra} }}]\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["models", "pull", id, "--config"])
            .arg(&config)
            .env("WEFT_DATA_DIR", data.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        stderr(&out)
    };

    // Credentials in the URL are not taken along to another host.
    let e = pull(
        "m",
        &format!("http://user:secret@127.0.0.1:{}/file", a.port()),
        "f.bin",
        "",
    );
    assert!(
        e.contains("SHA-256"),
        "it was fetched through the redirect: {e}"
    );
    let to_a = sent_to_a.lock().unwrap().clone();
    assert!(
        to_a[0].get("authorization").is_some(),
        "the first host got them"
    );
    let headers = seen.lock().unwrap().clone();
    assert_eq!(headers.len(), 1);
    assert!(
        headers[0].get("authorization").is_none(),
        "{:?}",
        headers[0]
    );

    // More than max_bytes: cut off, nothing left behind.
    let endless = format!("http://127.0.0.1:{}/endless", a.port());
    let e = pull("m", &endless, "big.bin", ", max_bytes = 4000");
    assert!(e.contains("larger than its max_bytes (4000 bytes)"), "{e}");
    let folder = data.path().join("models/m");
    assert!(!folder.join("big.bin").exists() && !folder.join("big.bin.part").exists());

    // Names from the configuration stay inside the models folder.
    let e = pull("m", &endless, "../../escape.bin", "");
    assert!(e.contains("is not a plain file name"), "{e}");
    assert!(!data.path().join("escape.bin").exists());

    // One download of a file at a time, across processes.
    std::fs::create_dir_all(&folder).unwrap();
    let lock = std::fs::File::create(folder.join(".busy.bin.lock")).unwrap();
    lock.lock().unwrap();
    let e = pull("m", &endless, "busy.bin", "");
    assert!(
        e.contains("being downloaded by another task or process"),
        "{e}"
    );
}

#[test]
fn traces_are_exported_with_otlp_when_an_endpoint_is_set() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    /// (path, content type, body) of each request.
    type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Vec<u8>)>>>;
    let received: Requests = Default::default();
    let sink = received.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                sink.lock()
                    .unwrap()
                    .push((uri.path().to_string(), kind, body.to_vec()));
                ""
            }
        },
    );
    let collector = format!("http://{}", serve_on_loopback(app));
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "run",
            "examples/hello.json",
            "--ephemeral",
            "--input",
            r#"{"text": "a, b"}"#,
        ])
        .current_dir(ROOT)
        .env("WEFT_DATA_DIR", data.path())
        .env("WEFT_CACHE_DIR", weft_tests::cache_dir())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)
        .env("OTEL_SERVICE_NAME", "weft-test")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = received.lock().unwrap();
    assert!(!got.is_empty(), "no traces were exported");
    let (path, kind, body) = &got[0];
    assert_eq!(path, "/v1/traces");
    assert_eq!(kind, "application/x-protobuf");
    let has = |s: &str| {
        got.iter()
            .any(|(_, _, b)| b.windows(s.len()).any(|w| w == s.as_bytes()))
    };
    assert!(
        has("weft-test") && has("task") && has("split") && has("text.template"),
        "{} bytes",
        body.len()
    );
}

#[test]
fn graph_export_and_fmt() {
    let dir = tempfile::tempdir().unwrap();
    // Workglow's shape in, Weft's out; and Weft's in, Workglow's out.
    let workglow = dir.path().join("wg.json");
    std::fs::write(
        &workglow,
        json!({"tasks": [{"id": "a", "type": "math.add-one", "defaults": {"value": 1},
                          "config": {"timeout": 2500, "title": "first"}}], "dataflows": []})
        .to_string(),
    )
    .unwrap();
    let path = workglow.to_str().unwrap();
    let out = weft(&["graph", "export", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let weft_json = stdout_json(&out);
    assert_eq!(
        weft_json["tasks"][0]["config"],
        json!({"timeout_ms": 2500, "title": "first"})
    );
    let out = weft(&["graph", "export", "--format", "workglow", path]);
    assert_eq!(
        stdout_json(&out)["tasks"][0]["config"],
        json!({"timeout": 2500, "title": "first"})
    );

    // fmt refuses to turn a Workglow file into Weft's shape behind its back.
    let out = weft(&["graph", "fmt", path]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is in Workglow's shape"),
        "{}",
        stderr(&out)
    );

    // It canonicalises a Weft file; --check says which are not canonical.
    let messy = dir.path().join("messy.json");
    std::fs::write(
        &messy,
        r#"{"dataflows":[],"tasks":[{"type":"math.add-one","id":"a"}]}"#,
    )
    .unwrap();
    let messy = messy.to_str().unwrap();
    let out = weft(&["graph", "fmt", "--check", messy]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not canonical"), "{}", stderr(&out));
    assert!(weft(&["graph", "fmt", messy]).status.success());
    let out = weft(&["graph", "fmt", "--check", messy]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(messy).unwrap();
    assert!(
        text.starts_with("{\n  \"tasks\": [\n    {\n      \"id\": \"a\""),
        "{text}"
    );

    // codegen writes builder code over this host's task types, or the
    // ones a `weft tasks --json` listing names.
    let out = weft(&["graph", "codegen", "--lang", "python", messy]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("Workflow(tasks)\n        .add(\"math.add-one\")\n        .named(\"a\")"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let listing = dir.path().join("tasks.json");
    std::fs::write(&listing, r#"[{"id": "text.split"}]"#).unwrap();
    let listing = listing.to_str().unwrap();
    let out = weft(&[
        "graph", "codegen", "--lang", "js", "--tasks", listing, messy,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("node `a`: unknown task type `math.add-one`"),
        "{}",
        stderr(&out)
    );
}

/// Completion scripts and man pages come from the command definitions, so
/// every command is in them; `--version` names the plugin contract; an
/// error is said once.
#[test]
fn completions_man_pages_and_version_cover_every_command() {
    let text = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();
    for (shell, marker) in [
        ("bash", "_weft()"),
        ("zsh", "#compdef weft"),
        ("fish", "complete -c weft"),
    ] {
        let out = weft(&["completions", shell]);
        assert!(out.status.success(), "{}", stderr(&out));
        let script = text(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["schedules", "dead-letters", "serve", "completions"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let out = weft(&["completions", "tcsh"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("possible values"), "{}", stderr(&out));

    let out = weft(&["man"]);
    assert!(text(&out).contains(".TH weft 1"), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let out = weft(&["man", "--dir", &dir.path().display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(dir.path().join("weft-schedules.1")).unwrap();
    assert!(page.contains(".TH weft-schedules 1"), "{page}");
    assert!(page.contains("pause"), "{page}");

    let out = weft(&["--version"]);
    assert!(
        text(&out).contains("(plugins: WIT weft:plugin@"),
        "{}",
        text(&out)
    );

    let out = weft(&["run", "/no/such/graph.json"]);
    let err = stderr(&out);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert!(
        err.contains("cannot read graph /no/such/graph.json"),
        "{err}"
    );
}

/// `weft doctor` reports every feature's requirement, found or with its fix:
/// here, ONNX Runtime missing, then present.
#[test]
fn doctor_says_what_is_missing_and_how_to_get_it() {
    let data = tempfile::tempdir().unwrap();
    let doctor = |runtime: &Path, json: bool| {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["doctor"])
            .args(json.then_some("--json"))
            .env("WEFT_DATA_DIR", data.path())
            .env("WEFT_ONNXRUNTIME", runtime)
            .env_remove("ORT_DYLIB_PATH")
            .current_dir(ROOT)
            .output()
            .expect("weft runs");
        assert!(out.status.success(), "{}", stderr(&out));
        out
    };
    let check = |findings: &Value, name: &str| -> Value {
        let list = findings.as_array().unwrap();
        list.iter()
            .find(|f| f["check"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let gone = stdout_json(&doctor(Path::new("/no/libonnxruntime.so"), true));
    let onnx = check(&gone, "ONNX Runtime");
    assert_eq!(onnx["ok"], false, "{onnx}");
    assert!(
        onnx["fix"]
            .as_str()
            .unwrap()
            .contains("weft models pull minilm"),
        "{onnx}"
    );
    let store = check(&gone, "store");
    assert_eq!(store["ok"], true, "{store}");
    assert!(
        store["detail"].as_str().unwrap().contains("weft.redb"),
        "{store}"
    );
    for name in [
        "wasm target",
        "componentize-py",
        "componentize-js",
        "data folder",
        "listen address",
    ] {
        check(&gone, name);
    }

    // The runtime the test setup fetched (tests/run.sh).
    let lib = Path::new(ROOT).join(".weft/onnxruntime/libonnxruntime.so.1.31.1");
    let there = stdout_json(&doctor(&lib, true));
    assert_eq!(check(&there, "ONNX Runtime")["ok"], true, "{there}");
    // As text: one line per check, each saying ok or no.
    let text = String::from_utf8(doctor(&lib, false).stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        gone.as_array().unwrap().len(),
        "{text}"
    );
    assert!(
        text.lines()
            .all(|l| l.starts_with("ok ") || l.starts_with("no ")),
        "{text}"
    );
    assert!(text.contains("ok  ONNX Runtime"), "{text}");
}

#[test]
fn storage_plugins_keep_is_listed_read_and_removed_by_the_operator() {
    let data = tempfile::tempdir().unwrap();
    let plugins = PluginDir::new().add("kv", weft_tests::STORAGE);
    let graph = data.path().join("put.json");
    let put = json!({"tasks": [{"id": "p", "type": "kv.put",
        "defaults": {"key": "greeting", "value": "hello"}}]});
    std::fs::write(&graph, put.to_string()).unwrap();
    let dir = plugins.path().to_str().unwrap();
    let out = weft_in(
        data.path(),
        &["run", graph.to_str().unwrap(), "--plugins", dir],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = weft_in(data.path(), &["storage", "ls"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("plugin.kv  1 keys  13 bytes"),
        "{said} {}",
        stderr(&out)
    );
    let out = weft_in(data.path(), &["storage", "ls", "plugin.kv", "gr"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "greeting\n");
    let out = weft_in(data.path(), &["storage", "get", "plugin.kv", "greeting"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    // Another user's storage is another space.
    let out = weft_in(data.path(), &["storage", "ls", "--user", "ann"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let out = weft_in(data.path(), &["storage", "rm", "plugin.kv", "greeting"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = weft_in(data.path(), &["storage", "get", "plugin.kv", "greeting"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no key `greeting` in namespace `plugin.kv`"),
        "{}",
        stderr(&out)
    );
}
