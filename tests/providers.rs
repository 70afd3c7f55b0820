//! Provider plugins: components exporting `weft:plugin/provider` serve
//! models (`[models.ID] provider = "plugin:NAME"`) to every task through the
//! `models` import. Real parts: the example provider built from source,
//! speaking the OpenAI wire format over wasi:http to a real HTTP server on
//! loopback; a misbehaving provider to see instances kept, limited and
//! recycled.

use crate::common;
use crate::fake_api;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use weft::Host;
use weft::events::EventKind;
use weft::providers::{GenerateOptions, ModelConfig, ModelError, ModelKind, Prompt, ProviderKind};
use weft_tests::{EXAMPLE_PROVIDER, PROVIDER_MISBEHAVE, PluginDir};

/// Model `name` of provider plugin `plugin`, with `settings`.
fn served_by(plugin: &str, kind: ModelKind, name: &str, settings: Value) -> ModelConfig {
    let Value::Object(settings) = settings else {
        panic!("settings are an object")
    };
    ModelConfig {
        provider: ProviderKind::Plugin(plugin.into()),
        model: name.into(),
        settings,
        ..ModelConfig::local(kind, Path::new(""))
    }
}

/// Every model granted (the calls come from the test, not a plugin).
fn all() -> Vec<String> {
    vec!["*".to_string()]
}

#[tokio::test]
async fn a_rust_provider_plugin_serves_embeddings_and_streamed_generation_to_tasks() {
    let (fake, base) = fake_api::fake_provider().await;
    let plugins = PluginDir::new()
        .add("openai-compat", EXAMPLE_PROVIDER)
        .manifest(
            "openai-compat",
            &format!("[grants]\nhttp = [\"{base}\"]\n[config]\napi_key = {{ env = \"HOME\" }}\n"),
        );
    let settings = json!({"base_url": format!("{base}/v1")});
    let host = common::builder(Some(plugins.path()))
        .model(
            "chat",
            served_by(
                "openai-compat",
                ModelKind::Generation,
                "test-model",
                settings.clone(),
            ),
        )
        .model(
            "vectors",
            served_by(
                "openai-compat",
                ModelKind::Embedding,
                "test-embed",
                settings,
            ),
        )
        .build()
        .await
        .unwrap();
    let report = host
        .plugins()
        .into_iter()
        .find(|p| p.name == "openai-compat")
        .unwrap();
    assert!(
        report.provider && report.tasks.is_empty() && report.error.is_none(),
        "{report:?}"
    );

    let graph = common::graph(json!({
        "tasks": [
            {"id": "say", "type": "ai.text-generation", "defaults": {"model": "chat"}},
            {"id": "embed", "type": "ai.text-embedding", "defaults": {"model": "vectors"}},
            {"id": "info", "type": "ai.model-info", "defaults": {"model": "vectors"}}
        ],
        "dataflows": []
    }));
    let (result, events) = common::run(
        &host,
        &graph,
        json!({"prompt": "Greet me", "texts": ["a", "bbb"]}),
    )
    .await;
    assert_eq!(
        result.outputs["say"]["text"], "Hello world",
        "{:?}",
        result.failures
    );
    assert_eq!(result.outputs["say"]["tokens"], 3);
    assert_eq!(result.outputs["say"]["finish_reason"], "end");
    // The fake answers [text length, index], out of order: the plugin sorts.
    assert_eq!(
        result.outputs["embed"]["vectors"],
        json!([[1.0, 0.0], [3.0, 1.0]])
    );
    assert_eq!(result.outputs["info"]["provider"], "plugin:openai-compat");
    let streamed: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Progress {
                node,
                message: Some(m),
                ..
            } if node == "say" => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, vec!["Hel", "lo", " world"]);

    // What reached the API: the model's own name, streaming, the key from
    // the plugin's configuration.
    let seen = fake.seen.lock().unwrap().clone();
    let chat = seen
        .iter()
        .find(|(p, _, _)| p == "/v1/chat/completions")
        .unwrap();
    assert_eq!(chat.2["model"], "test-model");
    assert_eq!(chat.2["stream"], true);
    assert_eq!(chat.2["messages"][0]["content"], "Greet me");
    let key = std::env::var("HOME").unwrap();
    assert_eq!(chat.1["authorization"], format!("Bearer {key}").as_str());
    let embed = seen.iter().find(|(p, _, _)| p == "/v1/embeddings").unwrap();
    assert_eq!(
        embed.2,
        json!({"model": "test-embed", "input": ["a", "bbb"]})
    );
}

#[tokio::test]
async fn a_provider_plugin_is_held_to_its_http_grants_and_its_429s_pause_the_model() {
    let (fake, base) = fake_api::fake_provider().await;
    // Granted another port only: the request is refused by the host.
    let plugins = PluginDir::new()
        .add("openai-compat", EXAMPLE_PROVIDER)
        .manifest(
            "openai-compat",
            "[grants]\nhttp = [\"http://127.0.0.1:1\"]\n",
        );
    let settings = json!({"base_url": format!("{base}/v1")});
    let host = common::builder(Some(plugins.path()))
        .model(
            "vectors",
            ModelConfig {
                // A call waits at most 1 s for the limiter.
                max_wait_ms: Some(1_000),
                ..served_by("openai-compat", ModelKind::Embedding, "m", settings)
            },
        )
        .build()
        .await
        .unwrap();
    let models = host.models();
    let texts = vec!["x".to_string()];
    let e = models
        .embed("t", &all(), "vectors", &texts)
        .await
        .unwrap_err();
    let ModelError::Unavailable(why) = &e else {
        panic!("{e}")
    };
    assert!(why.contains("HttpRequestDenied"), "{why}");
    assert_eq!(fake.hits(), 0, "nothing reached the server");

    // Granted: a 429 with Retry-After comes back as rate-limited, and the
    // model's limiter holds the next call without asking the API again.
    std::fs::write(
        plugins.path().join("openai-compat.toml"),
        format!("[grants]\nhttp = [\"{base}\"]\n"),
    )
    .unwrap();
    host.reload_plugins().await.unwrap();
    fake.script(&[fake_api::Reply::Status(429, Some(30))]);
    let e = models
        .embed("t", &all(), "vectors", &texts)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ModelError::RateLimited {
            retry_after_ms: 30_000
        }
    );
    let e = models
        .embed("t", &all(), "vectors", &texts)
        .await
        .unwrap_err();
    assert!(matches!(e, ModelError::RateLimited { .. }), "{e}");
    assert_eq!(fake.hits(), 1, "the pause kept the second call home");
}

/// A host whose model `counter` (and `refused`, whose settings make `load`
/// fail) is served by the misbehaving provider, with `manifest`.
async fn misbehaving(manifest: &str, timeout_ms: u64) -> (PluginDir, Host) {
    let plugins = PluginDir::new()
        .add("misbehave", PROVIDER_MISBEHAVE)
        .manifest("misbehave", manifest);
    let counter = ModelConfig {
        timeout_ms: Some(timeout_ms),
        ..served_by("misbehave", ModelKind::Embedding, "counter", json!({}))
    };
    let refused = served_by(
        "misbehave",
        ModelKind::Embedding,
        "counter",
        json!({"fail": true}),
    );
    let host = common::builder(Some(plugins.path()))
        .model("counter", counter)
        .model("refused", refused)
        .model(
            "absent",
            served_by("nobody", ModelKind::Embedding, "x", json!({})),
        )
        .build()
        .await
        .unwrap();
    (plugins, host)
}

/// `[calls, loads]` of the instance that served one `embed` of `text`.
async fn counted(host: &Host, text: &str) -> Result<(f32, f32), ModelError> {
    let v = host
        .models()
        .embed("t", &all(), "counter", &[text.to_string()])
        .await?;
    Ok((v[0][0], v[0][1]))
}

#[tokio::test]
async fn a_provider_instance_is_kept_between_calls_and_recycled_when_it_traps() {
    let (plugins, host) = misbehaving("[limits]\nmemory_mib = 64\n", 1_000).await;
    // Kept: one load (when the model was first used), calls counted on.
    assert_eq!(counted(&host, "a").await.unwrap(), (1.0, 1.0));
    assert_eq!(counted(&host, "b").await.unwrap(), (2.0, 1.0));
    let info = host.models().info("counter").await.unwrap();
    assert_eq!(info.dimensions, Some(3));

    // A panic, a call over time, memory past the limit: each is an error
    // naming it, and the next call gets a fresh instance (counts restart).
    for (text, said) in [
        ("panic", "asked to panic"),
        ("spin", "timed out"),
        ("grow", "memory limit"),
    ] {
        let e = counted(&host, text).await.unwrap_err();
        let ModelError::Unavailable(why) = &e else {
            panic!("{text}: {e}")
        };
        assert!(
            why.contains(said) && why.contains("recycled"),
            "{text}: {why}"
        );
        assert_eq!(
            counted(&host, "a").await.unwrap(),
            (1.0, 1.0),
            "after {text}"
        );
    }

    // Every kind of call is served by the same instance.
    let models = host.models();
    let calls = models
        .count_tokens("t", &all(), "counter", "x")
        .await
        .unwrap();
    assert_eq!(
        calls, 2,
        "the instance started after `grow` served one call before"
    );

    // Bad settings: `load` says why, as an invalid request; a model of a
    // plugin that is not loaded says so.
    let e = models
        .embed("t", &all(), "refused", &["a".to_string()])
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ModelError::InvalidRequest("model `refused`: settings say fail".into())
    );
    let e = models
        .embed("t", &all(), "absent", &["a".to_string()])
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("plugin `nobody`, which is not loaded"),
        "{e}"
    );

    // A reload replaces the instances; a removed plugin stops serving.
    host.reload_plugins().await.unwrap();
    assert_eq!(counted(&host, "a").await.unwrap(), (1.0, 1.0));
    std::fs::remove_file(plugins.path().join("misbehave.wasm")).unwrap();
    host.reload_plugins().await.unwrap();
    let e = counted(&host, "a").await.unwrap_err();
    assert!(e.to_string().contains("not loaded"), "{e}");
}

#[tokio::test]
async fn generation_streams_chunk_by_chunk_and_a_stalled_stream_is_cut_off() {
    let plugins = PluginDir::new()
        .add("misbehave", PROVIDER_MISBEHAVE)
        .manifest("misbehave", "");
    let host = common::builder(Some(plugins.path()))
        .model(
            "words",
            ModelConfig {
                timeout_ms: Some(500),
                ..served_by("misbehave", ModelKind::Generation, "w", json!({}))
            },
        )
        .build()
        .await
        .unwrap();
    let models = host.models();
    let chunks = std::sync::Mutex::new(Vec::new());
    let sink = |t: &str| chunks.lock().unwrap().push(t.to_string());
    let prompt = Prompt::Text("count".into());
    let g = models
        .generate(
            "t",
            &all(),
            "words",
            &prompt,
            &GenerateOptions::default(),
            &sink,
        )
        .await
        .unwrap();
    assert_eq!(g.text, "one two three");
    assert_eq!(*chunks.lock().unwrap(), vec!["one", " two", " three"]);

    chunks.lock().unwrap().clear();
    let started = std::time::Instant::now();
    let spin = Prompt::Text("spin".into());
    let e = models
        .generate(
            "t",
            &all(),
            "words",
            &spin,
            &GenerateOptions::default(),
            &sink,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    assert_eq!(
        *chunks.lock().unwrap(),
        vec!["one"],
        "what came before the stall"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
