//! Secrets on a real `weft serve`: a user's secret reaches the plugin they
//! granted it to, through its `config` import, and nobody else; its value
//! appears nowhere else: not in answers, the store file, the events or the
//! daemon's log.

#[path = "support/daemon.rs"]
mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;
use support::Daemon;
use weft_tests::{PluginDir, STORAGE};

const VALUE: &str = "sk-test-5ecret-VALUE-31337";
const KEY: &str = "8f3b1c0e9a7d6b5c4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

fn config() -> String {
    "[secrets]\nkey_file = \"secrets.key\"\n\n\
     [[tokens]]\nuser = \"ann\"\ntoken = \"ann-token-0123456789\"\n\n\
     [[tokens]]\nuser = \"bob\"\ntoken = \"bob-token-0123456789\"\n"
        .to_string()
}

fn digest_of(key: &str) -> Value {
    json!({"tasks": [{"id": "d", "type": "kv.config-digest", "defaults": {"key": key}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_the_granted_plugin_and_appears_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginDir::new().add("vault", STORAGE).manifest(
        "vault",
        "[config]\ntoken = { secret = \"API_TOKEN\" }\nother = { secret = \"OTHER\" }\n",
    );
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/secrets.key"), KEY).unwrap();
    let mut d = Daemon::start(dir.path(), plugins.path(), &config());
    let ann = d.as_user("ann-token-0123456789");
    let bob = d.as_user("bob-token-0123456789");

    let put = |name: &str, plugins: Value| {
        let body = json!({"value": VALUE, "plugins": plugins});
        let path = format!("/v1/secrets/{name}");
        let ann = ann.clone();
        async move { ann.call(Method::PUT, &path, Some(body)).await }
    };
    assert_eq!(
        put("API_TOKEN", json!(["vault"])).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        put("OTHER", json!(["someone-else"])).await.0,
        StatusCode::NO_CONTENT
    );
    let (code, bad) = put("no good", json!(["vault"])).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (_, listed) = ann.get("/v1/secrets").await;
    assert_eq!(listed["secrets"][0]["name"], "API_TOKEN");
    assert_eq!(listed["secrets"][0]["plugins"], json!(["vault"]));
    assert!(!listed.to_string().contains(VALUE));
    let (_, none) = bob.get("/v1/secrets").await;
    assert_eq!(none["secrets"], json!([]));

    // The granted plugin reads it (and shows only its digest).
    let id = ann.submit(digest_of("token"), json!({})).await;
    let run = ann.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let want = hex::encode(sha2::Sha256::digest(VALUE.as_bytes()));
    assert_eq!(run["outputs"]["d"]["sha256"], want);
    // Not for a plugin the user did not name, nor for another user.
    for (api, key) in [(&ann, "other"), (&bob, "token")] {
        let id = api.submit(digest_of(key), json!({})).await;
        let run = api.finished(&id).await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = run.to_string();
        assert!(
            error.contains("has not stored it or not granted it to plugin `vault`"),
            "{error}"
        );
        assert!(!error.contains(VALUE));
    }
    // Deleted, it is gone.
    let (code, _) = ann.call(Method::DELETE, "/v1/secrets/OTHER", None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = ann.call(Method::DELETE, "/v1/secrets/OTHER", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Nowhere else: the events, the store file, the log.
    let events = ann.events(&id, None, 10_000).await;
    assert!(!serde_json::to_string(&events).unwrap().contains(VALUE));
    d.signal("-KILL");
    d.wait(std::time::Duration::from_secs(10));
    let store = std::fs::read(dir.path().join("data/weft.redb")).unwrap();
    assert!(!store.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()));
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(!log.contains(VALUE));
    assert!(
        log.contains("secret set"),
        "the log says what happened, not the value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_the_daemon_keeps_no_secrets_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginDir::new();
    let d = Daemon::start(dir.path(), plugins.path(), "");
    let body = json!({"value": "x", "plugins": ["p"]});
    let (code, said) = d.call(Method::PUT, "/v1/secrets/T", Some(body)).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(
        said["error"].as_str().unwrap().contains("[secrets]"),
        "{said}"
    );
}
