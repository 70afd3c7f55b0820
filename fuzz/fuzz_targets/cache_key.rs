//! Any JSON input: its cache key is computed without panicking and is the
//! same after a round trip through text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_core::task::{NativeTask, Registry};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let mut reg = Registry::new();
    reg.register_native(NativeTask::new("t.any", |v, _| async move { Ok(v) }))
        .expect("valid task");
    let task = reg.get("t.any").expect("registered");
    let again: serde_json::Value =
        serde_json::from_str(&input.to_string()).expect("its own text parses");
    assert_eq!(
        weft_core::cache::key(task, &input, Some("u")),
        weft_core::cache::key(task, &again, Some("u"))
    );
});
