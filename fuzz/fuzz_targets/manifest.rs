//! A plugin manifest (`x.toml` beside `x.wasm`): parsed or refused with a
//! message, never a panic; network grants likewise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft::plugin::manifest::{Manifest, NetGrant};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Manifest::parse(text, std::path::Path::new("/nonexistent/fuzz.toml"));
    let _ = NetGrant::parse(text);
});
