//! Loading plugins from a folder: what loads, what is refused and why, and the
//! sandbox a plugin runs in (no files, no env unless its manifest grants them).

use crate::common;

use serde_json::json;
use weft::events::RunStatus;
use weft_tests::{BAD_IMPORT, BAD_SCHEMA, EXAMPLE_PLUGIN, MISBEHAVE, PluginDir};

fn error_for(host: &weft::Host, name: &str) -> String {
    host.plugins()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no report for plugin {name}"))
        .error
        .unwrap_or_else(|| panic!("plugin {name} loaded but should not have"))
}

#[tokio::test]
async fn broken_plugins_are_reported_and_the_rest_load() {
    let dir = PluginDir::new()
        .add("a-example", EXAMPLE_PLUGIN)
        .add("b-example-again", EXAMPLE_PLUGIN)
        .add("bad-schema", BAD_SCHEMA)
        .add("bad-import", BAD_IMPORT)
        .file("garbage.wasm", b"\0asm but not really")
        .add("with-bad-manifest", EXAMPLE_PLUGIN)
        .manifest("with-bad-manifest", "[limits]\nmemory = 3\n");
    let host = common::host(Some(dir.path())).await;

    let dup = error_for(&host, "b-example-again");
    assert_eq!(
        dup,
        "task type `example.shout` is declared by both plugin `a-example` and plugin `b-example-again`"
    );
    let schema = error_for(&host, "bad-schema");
    assert!(
        schema.starts_with("task type `broken.schema`: input schema is not a valid JSON Schema"),
        "{schema}"
    );
    let import = error_for(&host, "bad-import");
    assert!(import.contains("does not fit the host"), "{import}");
    assert!(
        import.contains("acme:magic/wand"),
        "the error names the missing import: {import}"
    );
    let garbage = error_for(&host, "garbage");
    assert!(
        garbage.starts_with("not a loadable WASI 0.2 component"),
        "{garbage}"
    );
    let manifest = error_for(&host, "with-bad-manifest");
    assert!(
        manifest.contains("with-bad-manifest.toml is invalid")
            && manifest.contains("unknown field `memory`"),
        "{manifest}"
    );

    // The first copy of the example and the standard plugins serve.
    assert_eq!(
        host.registry().get("example.shout").unwrap().plugin,
        "a-example"
    );
    assert!(host.registry().get("math.add-one").is_some());
    assert!(host.registry().get("broken.schema").is_none());
    let g = common::graph(
        json!({"tasks": [{"id": "s", "type": "example.shout", "defaults": {"text": "hi"}}]}),
    );
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.outputs["s"], json!({"text": "HI!"}));
}

#[tokio::test]
async fn sdk_derives_schemas_from_rust_types() {
    let dir = PluginDir::new().add("example", EXAMPLE_PLUGIN);
    let host = common::host(Some(dir.path())).await;
    let t = host
        .registry()
        .get("example.count-words")
        .unwrap()
        .to_json();
    assert_eq!(t["title"], "Count words");
    assert_eq!(t["category"], "example");
    assert_eq!(t["version"], "0.1.0");
    assert_eq!(t["input_schema"]["properties"]["text"]["type"], "string");
    assert_eq!(t["input_schema"]["required"], json!(["text"]));
    assert_eq!(t["output_schema"]["properties"]["words"]["type"], "integer");
    assert_eq!(t["cacheable"], true);
    assert_eq!(t["side_effects"], false);
    // Input that does not fit is refused by the host before the task runs.
    let g = common::graph(
        json!({"tasks": [{"id": "c", "type": "example.count-words", "defaults": {"text": 5}}]}),
    );
    let plan = host.plan(&g, "g.json");
    let err = plan.unwrap_err().to_string();
    assert!(
        err.contains(
            "default for input port `text` is integer, but `example.count-words` expects string"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn sandbox_denies_env_and_files_unless_granted() {
    let dir = PluginDir::new().add("probe", MISBEHAVE);
    let host = common::host(Some(dir.path())).await;
    let g = common::graph(json!({"tasks": [
        {"id": "env", "type": "probe.env"},
        {"id": "ls", "type": "probe.list-dir"}
    ]}));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(
        result.outputs["env"],
        json!({"vars": {}}),
        "no environment without a grant"
    );
    assert!(common::error_of(&result, "ls").contains("cannot read /data"));

    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("hello.txt"), "hi").unwrap();
    let manifest = format!(
        "[grants]\nenv = [\"PATH\", \"WEFT_SURELY_UNSET_VAR\"]\n[[grants.folders]]\nhost = {:?}\nguest = \"/data\"\n",
        data.path().display().to_string()
    );
    let dir = PluginDir::new()
        .add("probe", MISBEHAVE)
        .manifest("probe", &manifest);
    let host = common::host(Some(dir.path())).await;
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    let path = std::env::var("PATH").unwrap();
    assert_eq!(
        result.outputs["env"],
        json!({"vars": {"PATH": path}}),
        "only granted variables that are set"
    );
    assert_eq!(result.outputs["ls"], json!({"names": ["hello.txt"]}));
}

#[tokio::test]
async fn folder_grants_cannot_reach_the_hosts_own_folders() {
    let grant = |host: &str| format!("[[grants.folders]]\nhost = {host:?}\nguest = \"/data\"\n");
    let cache = weft_tests::cache_dir();
    // (`..` holds the plugins folder, and may hold the cache too: either is
    // named.)
    for (host_folder, what) in [
        (".".to_string(), "the plugins folder"),
        ("..".to_string(), ""),
        (cache.display().to_string(), "the compiled-component cache"),
    ] {
        let dir = PluginDir::new()
            .add("probe", MISBEHAVE)
            .manifest("probe", &grant(&host_folder));
        let host = common::host(Some(dir.path())).await;
        let report = host
            .plugins()
            .into_iter()
            .find(|p| p.name == "probe")
            .unwrap();
        let error = report.error.unwrap_or_default();
        assert!(
            error.contains("overlaps") && error.contains(what),
            "{host_folder}: {error}"
        );
    }
    // A subfolder of the plugins folder is not a plugin: it may be granted.
    let dir = PluginDir::new().add("probe", MISBEHAVE);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let dir = dir.manifest("probe", &grant("data"));
    let host = common::host(Some(dir.path())).await;
    let report = host
        .plugins()
        .into_iter()
        .find(|p| p.name == "probe")
        .unwrap();
    assert_eq!(report.error, None);
}

#[tokio::test]
async fn task_sees_its_run_node_attempt_and_idempotency_key() {
    let dir = PluginDir::new().add("probe", MISBEHAVE);
    let host = common::host(Some(dir.path())).await;
    let g = common::graph(json!({"tasks": [{"id": "ctx", "type": "probe.context"}]}));
    let (result, _) = common::run(&host, &g, json!({})).await;
    assert_eq!(
        result.outputs["ctx"],
        json!({"run_id": "test-run", "node_id": "ctx", "attempt": 1, "idempotency_key": "test-run/ctx"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_denies_the_network_unless_the_address_is_granted() {
    // A real server on loopback that greets and closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = std::io::Write::write_all(&mut stream, b"hello from the host");
        }
    });
    let graph = common::graph(json!({"tasks": [
        {"id": "call", "type": "probe.connect", "defaults": {"addr": addr.to_string()}}
    ]}));

    // No grant: refused.
    let dir = PluginDir::new().add("probe", MISBEHAVE);
    let host = common::host(Some(dir.path())).await;
    let (result, _) = common::run(&host, &graph, json!({})).await;
    let err = common::error_of(&result, "call");
    assert!(err.contains(&format!("cannot connect to {addr}")), "{err}");

    // A grant for another port: still refused.
    let other = format!(
        "[grants]\nnetwork = [\"127.0.0.1:{}\"]\n",
        addr.port().wrapping_add(1)
    );
    let dir = PluginDir::new()
        .add("probe", MISBEHAVE)
        .manifest("probe", &other);
    let host = common::host(Some(dir.path())).await;
    let (result, _) = common::run(&host, &graph, json!({})).await;
    assert!(common::error_of(&result, "call").contains("cannot connect"));

    // Granted: it connects and reads.
    let granted = format!("[grants]\nnetwork = [\"127.0.0.1:{}\"]\n", addr.port());
    let dir = PluginDir::new()
        .add("probe", MISBEHAVE)
        .manifest("probe", &granted);
    let host = common::host(Some(dir.path())).await;
    let (result, _) = common::run(&host, &graph, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["call"]["text"], "hello from the host");

    // Names: an address grant resolves no name at all; a name grant resolves
    // that name only (the host resolves it), and its addresses connect.
    let by_name = |name: &str| {
        common::graph(json!({"tasks": [
            {"id": "call", "type": "probe.connect", "defaults": {"addr": format!("{name}:{}", addr.port())}}
        ]}))
    };
    let (result, _) = common::run(&host, &by_name("localhost"), json!({})).await;
    assert!(
        common::error_of(&result, "call").contains("cannot connect to localhost"),
        "an address grant resolved a name"
    );
    let named = format!("[grants]\nnetwork = [\"localhost:{}\"]\n", addr.port());
    let dir = PluginDir::new()
        .add("probe", MISBEHAVE)
        .manifest("probe", &named);
    let host = common::host(Some(dir.path())).await;
    let (result, _) = common::run(&host, &by_name("localhost"), json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    assert_eq!(result.outputs["call"]["text"], "hello from the host");
    // A name that is not granted is not even resolved: with the address it
    // would resolve to granted, connecting by that name still fails.
    let both = format!(
        "[grants]\nnetwork = [\"weft-granted.invalid:{p}\", \"127.0.0.1:{p}\"]\n",
        p = addr.port()
    );
    let dir2 = PluginDir::new()
        .add("probe", MISBEHAVE)
        .manifest("probe", &both);
    let host2 = common::host(Some(dir2.path())).await;
    let (result, _) = common::run(&host2, &by_name("localhost"), json!({})).await;
    let err = common::error_of(&result, "call");
    assert!(err.contains("cannot connect to localhost"), "{err}");
    let (result, _) = common::run(&host2, &graph, json!({})).await;
    assert_eq!(result.status, RunStatus::Succeeded, "{:?}", result.failures);
    for other in ["exfiltrate-this.weft-test.invalid", "LOCALHOST.localdomain"] {
        let (result, _) = common::run(&host, &by_name(other), json!({})).await;
        let err = common::error_of(&result, "call");
        assert!(
            err.contains(&format!("cannot connect to {other}")),
            "{other}: {err}"
        );
    }
    // Its addresses, not any address: the IP itself on another port is refused.
    let elsewhere = common::graph(json!({"tasks": [
        {"id": "call", "type": "probe.connect", "defaults": {"addr": format!("127.0.0.1:{}", addr.port() + 1)}}
    ]}));
    let (result, _) = common::run(&host, &elsewhere, json!({})).await;
    assert!(common::error_of(&result, "call").contains("cannot connect"));
}

/// A plugin is asked to `describe` itself once per component: the answer is
/// kept beside its compiled artifact and read at later starts (so no
/// instance is made for it), and still checked at every load.
#[tokio::test]
async fn a_plugins_description_is_kept_and_read_back_at_the_next_start() {
    let dir = PluginDir::new()
        .add("example", EXAMPLE_PLUGIN)
        .add("bad-schema", BAD_SCHEMA);
    let cache = tempfile::tempdir().unwrap();
    // The compiled standard plugins, so this test compiles none of them.
    for entry in std::fs::read_dir(weft_tests::cache_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::copy(&path, cache.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let start = || {
        weft::Host::builder()
            .engine_options(weft::plugin::EngineOptions {
                cache_dir: Some(cache.path().to_path_buf()),
                ..Default::default()
            })
            .plugins_dir(dir.path())
            .build()
    };
    let host = start().await.unwrap();
    assert_eq!(host.registry().get("example.shout").unwrap().title, "Shout");
    drop(host);

    let kept: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    let example = kept
        .iter()
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("example.shout")
        })
        .expect("the example plugin's description is kept");
    let text = std::fs::read_to_string(example).unwrap();
    std::fs::write(example, text.replace("\"Shout\"", "\"Shout, as kept\"")).unwrap();

    let host = start().await.unwrap();
    let shout = host.registry().get("example.shout").unwrap().clone();
    assert_eq!(shout.title, "Shout, as kept", "read back, not asked again");
    let schema = error_for(&host, "bad-schema");
    assert!(schema.contains("not a valid JSON Schema"), "{schema}");
    drop(host);

    // A record that does not parse is ignored: the plugin is asked again.
    std::fs::write(example, "not a description").unwrap();
    let host = start().await.unwrap();
    assert_eq!(host.registry().get("example.shout").unwrap().title, "Shout");
}
