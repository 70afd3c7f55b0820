//! `weft.toml`: loaded and checked or refused with a message, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("weft-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    });
    let path = dir.join("weft.toml");
    std::fs::write(&path, data).expect("write the file");
    if let Ok(config) = weft::config::Config::load(&path) {
        let _ = config.user_grants();
    }
});
