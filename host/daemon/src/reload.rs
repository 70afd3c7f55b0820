//! Hot reload: watches the plugins folder and, once changes settle, has the
//! host scan it again ([`weft::Host::reload_plugins`]). Adding, replacing or
//! removing a `.wasm` (or its `.toml` manifest) takes effect without a
//! restart; runs already executing keep the task types they started with.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use weft::Host;

/// How long the folder must be quiet before it is scanned: a file being
/// copied in produces a burst of events.
const SETTLE: Duration = Duration::from_millis(250);

/// Watch the host's plugins folder until `stop` fires.
pub(crate) fn watch(host: Arc<Host>, stop: CancellationToken) -> Result<(), notify::Error> {
    let Some(dir) = host.plugins_dir().map(Path::to_path_buf) else {
        return Ok(());
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the files (as the reload does) is not a change.
        if let Ok(event) = event
            && matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            )
            && event
                .paths
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "wasm" || e == "toml"))
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::info!(dir = %dir.display(), "watching the plugins folder");
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = rx.recv() => if changed.is_none() { return },
            }
            // Wait for the burst to end.
            loop {
                match tokio::time::timeout(SETTLE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if let Err(e) = host.reload_plugins().await {
                tracing::warn!(error = %e, "cannot rescan the plugins folder");
            }
        }
    });
    Ok(())
}
