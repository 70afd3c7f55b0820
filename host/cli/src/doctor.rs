//! `weft doctor`: what this machine has for each feature, one line per
//! check, with the fix when something is missing. It changes nothing: it
//! looks (files, the PATH, a connection, a bind) and reports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use serde::Serialize;
use weft::setup::{Setup, StoreLocation};

/// One check's finding.
#[derive(Debug, Serialize)]
struct Finding {
    /// What was checked.
    check: &'static str,
    /// Whether it is there and usable.
    ok: bool,
    /// What was found.
    detail: String,
    /// How to get it, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        ok: true,
        detail: detail.into(),
        fix: None,
    }
}

fn missing(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        check,
        ok: false,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Run every check and print them (`--json`: one array).
pub async fn run(setup: &Setup, json_out: bool) -> anyhow::Result<ExitCode> {
    let findings = vec![
        wasm_target(),
        tool("python3", "python3", "install Python 3.11 or later"),
        componentize("componentize-py", crate::toolchain::PYTHON),
        tool("node", "node", "install Node.js 20 or later"),
        componentize("componentize-js", crate::toolchain::JAVASCRIPT),
        onnx_runtime(),
        default_model(setup.models_dir()),
        store(setup).await,
        plugins(setup.plugins_dir()),
        data_dir(setup.data_dir()),
        listen(setup.config().server.listen).await,
    ];
    let mut out = std::io::stdout();
    if json_out {
        writeln!(out, "{}", serde_json::to_string_pretty(&findings)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for f in &findings {
        let mark = if f.ok { "ok " } else { "no " };
        write!(out, "{mark} {:<16} {}", f.check, f.detail)?;
        match &f.fix {
            Some(fix) => writeln!(out, ": {fix}")?,
            None => writeln!(out)?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `name` on the PATH.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn wasm_target() -> Finding {
    const CHECK: &str = "wasm target";
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("wasm32-wasip2") => {
            ok(CHECK, "wasm32-wasip2 (Rust plugins)")
        }
        Ok(_) => missing(
            CHECK,
            "wasm32-wasip2 is not installed (Rust plugins)",
            "rustup target add wasm32-wasip2",
        ),
        Err(_) => missing(
            CHECK,
            "rustup not found (Rust plugins)",
            "install Rust with rustup (https://rustup.rs), then rustup target add wasm32-wasip2",
        ),
    }
}

fn tool(check: &'static str, name: &str, fix: &str) -> Finding {
    match on_path(name) {
        Some(path) => ok(check, path.display().to_string()),
        None => missing(check, format!("{name} not found on the PATH"), fix),
    }
}

/// A guest toolchain, found as `weft build` finds it.
fn componentize(check: &'static str, tool: crate::toolchain::Toolchain) -> Finding {
    match crate::project::find_tool(&tool, &[]) {
        Some(path) => ok(check, path.display().to_string()),
        None => missing(
            check,
            format!(
                "not installed (for {} plugins; weft build installs it when needed)",
                tool.language
            ),
            format!("weft toolchain install {} (or set {})", tool.name, tool.var),
        ),
    }
}

fn onnx_runtime() -> Finding {
    const CHECK: &str = "ONNX Runtime";
    match weft::providers::onnx_runtime() {
        Ok(_) => ok(CHECK, "loaded (local models)"),
        Err(e) => missing(CHECK, "not usable (local models)", e),
    }
}

fn default_model(models_dir: &Path) -> Finding {
    const CHECK: &str = "model minilm";
    let model = models_dir.join("minilm").join("model.onnx");
    if model.is_file() {
        return ok(CHECK, model.display().to_string());
    }
    missing(
        CHECK,
        format!("{} is missing (text embeddings)", model.display()),
        "weft models pull minilm",
    )
}

async fn store(setup: &Setup) -> Finding {
    const CHECK: &str = "store";
    match setup.store_location() {
        Err(e) => missing(CHECK, e.to_string(), "fix the configuration"),
        Ok(StoreLocation::Memory) => ok(CHECK, "in memory (nothing kept)"),
        Ok(StoreLocation::Redb(path)) => redb(&path),
        Ok(StoreLocation::Postgres(url)) => postgres(&url).await,
        Ok(other) => ok(CHECK, format!("{other:?}")),
    }
}

fn redb(path: &Path) -> Finding {
    const CHECK: &str = "store";
    if path.is_file() {
        return match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(_) => ok(CHECK, format!("{} (redb)", path.display())),
            Err(e) => missing(
                CHECK,
                format!("{}: {e}", path.display()),
                "run as the user who owns it, or set --data-dir",
            ),
        };
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let (existing, writable) = creatable(dir);
    match writable {
        true => ok(
            CHECK,
            format!("{} (redb, made on first use)", path.display()),
        ),
        false => missing(
            CHECK,
            format!(
                "{} cannot be created: {} is read-only",
                path.display(),
                existing.display()
            ),
            "set --data-dir to a folder you can write",
        ),
    }
}

/// Whether the database's server answers (connecting changes nothing).
async fn postgres(url: &str) -> Finding {
    const CHECK: &str = "store";
    let shown = url.split('@').next_back().unwrap_or(url);
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return missing(
            CHECK,
            "the database URL does not parse",
            "postgres://USER@HOST:PORT/DB",
        );
    };
    let host = parsed.host_str().unwrap_or("localhost").to_string();
    let port = parsed.port().unwrap_or(5432);
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => ok(CHECK, format!("PostgreSQL at {shown} answers")),
        Ok(Err(e)) => missing(
            CHECK,
            format!("PostgreSQL at {shown}: {e}"),
            "start the server, or fix --database-url",
        ),
        Err(_) => missing(
            CHECK,
            format!("PostgreSQL at {shown}: no answer in 3 s"),
            "start the server, or fix --database-url",
        ),
    }
}

fn plugins(dir: Option<PathBuf>) -> Finding {
    const CHECK: &str = "plugins folder";
    let Some(dir) = dir else {
        return ok(CHECK, "none set (standard tasks only)");
    };
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let wasm = entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
                .count();
            ok(CHECK, format!("{} ({wasm} plugins)", dir.display()))
        }
        Err(e) => missing(
            CHECK,
            format!("{}: {e}", dir.display()),
            format!("mkdir -p {}, or set --plugins", dir.display()),
        ),
    }
}

/// The nearest existing folder at or above `dir`, and whether it is
/// writable (so `dir` can be made there).
fn creatable(dir: &Path) -> (&Path, bool) {
    let existing = dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("."));
    let writable = std::fs::metadata(existing).is_ok_and(|m| !m.permissions().readonly());
    (existing, writable)
}

fn data_dir(dir: &Path) -> Finding {
    const CHECK: &str = "data folder";
    match creatable(dir).1 {
        true => ok(CHECK, dir.display().to_string()),
        false => missing(
            CHECK,
            format!("{} is not writable", dir.display()),
            "set --data-dir to a folder you can write",
        ),
    }
}

async fn listen(addr: std::net::SocketAddr) -> Finding {
    const CHECK: &str = "listen address";
    match tokio::net::TcpListener::bind(addr).await {
        Ok(_) => ok(CHECK, format!("{addr} is free (weft serve)")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => ok(
            CHECK,
            format!("{addr} is in use (a daemon already serving there?)"),
        ),
        Err(e) => missing(
            CHECK,
            format!("{addr}: {e}"),
            "set [server] listen or --listen to an address this user may bind",
        ),
    }
}
