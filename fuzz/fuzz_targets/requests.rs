//! What a client sends the daemon: request bodies and query strings, parsed
//! or refused, never a panic; the Last-Event-ID header's number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_daemon::types::{DeadLettersQuery, GraphSharing, RunsQuery, SubmitRequest};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<SubmitRequest>(data);
    let _ = serde_json::from_slice::<GraphSharing>(data);
    let _ = serde_json::from_slice::<weft::graph::Graph>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_json::from_value::<RunsQuery>(query(text));
        let _ = serde_json::from_value::<DeadLettersQuery>(query(text));
        let _ = text.trim().parse::<u64>();
    }
});

/// `a=1&b=x` as a JSON object of strings (what a query extractor sees).
fn query(text: &str) -> serde_json::Value {
    let pairs = text.split('&').filter_map(|kv| kv.split_once('='));
    serde_json::Value::Object(
        pairs
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect(),
    )
}
