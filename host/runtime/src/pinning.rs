//! Runs pinned to the components they started with.
//!
//! Owns the rule that a run goes on, after a restart, a hot reload or on
//! another host, on exactly the wasm components it was submitted with: every
//! component a host loads is kept in the store by its SHA-256
//! ([`archive`]); a run records the digest of each plugin its plan uses
//! ([`pins`]); resuming it, a plugin whose loaded component differs is
//! loaded again from the kept bytes, with the plugin's current manifest
//! ([`pinned_registry`]). A plugin no longer loaded, or bytes no longer
//! kept, is [`Unpinnable`]: the run cannot go on and is failed, naming the
//! plugin and digest. Kept components no run is pinned to any more are
//! deleted ([`ComponentPruner`]). It knows nothing of how runs execute.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::graph::Plan;
use crate::plugin::{Manifest, PluginHost, PluginSource};
use crate::store::{RunStore, StoreError};
use crate::task::{PluginReport, Registry};

/// Why a run cannot go on with the components it started with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}` (component sha256 {digest}) that the run started with {why}")]
pub struct Unpinnable {
    /// The plugin.
    pub plugin: String,
    /// The digest the run is pinned to.
    pub digest: String,
    /// What is wrong.
    pub why: String,
}

/// The digest of each plugin's component the plan uses, by plugin name
/// (its nodes, and the task types of maps, reduces, loops, fallbacks and
/// subgraphs, at every depth).
pub fn pins(plan: &Plan) -> BTreeMap<String, String> {
    let mut pins = BTreeMap::new();
    collect(plan, &mut pins);
    pins
}

fn collect(plan: &Plan, pins: &mut BTreeMap<String, String>) {
    for node in &plan.nodes {
        for task in std::iter::once(&node.task).chain(node.kind.bodies()) {
            if let Some(digest) = task.component() {
                pins.insert(task.plugin.clone(), digest.to_string());
            }
        }
        for inner in node.kind.subgraphs() {
            collect(inner, pins);
        }
    }
}

/// Keep each source's bytes in the store under their digest (once per
/// digest). A failure is logged: the plugin still loads, but a run pinned
/// to it could not resume elsewhere.
pub async fn archive(store: &dyn RunStore, sources: &[PluginSource]) {
    for source in sources {
        let digest = &source.digest;
        if let Err(e) = store.component_put(digest, source.bytes.clone()).await {
            tracing::warn!(plugin = %source.name, %digest, error = %e, "cannot keep the component for pinned runs");
        }
    }
}

/// Deletes the kept components nothing needs any more: no stored run is
/// pinned to them and this host has no plugin loaded from them. A digest
/// goes only when found unused on two passes in a row, so a run being
/// submitted meanwhile (its plan made, its record not yet stored) keeps it.
/// A component only another host sharing the store has loaded may go: that
/// host keeps it again at its next start or reload, and runs it executes
/// are unaffected.
#[derive(Debug, Default)]
pub struct ComponentPruner {
    unused_before: HashSet<String>,
}

impl ComponentPruner {
    /// One pass; returns the digests deleted.
    pub async fn pass(
        &mut self,
        store: &dyn RunStore,
        loaded: &Registry,
    ) -> Result<Vec<String>, StoreError> {
        let loaded: HashSet<&str> = loaded.plugins().iter().map(|r| r.sha256.as_str()).collect();
        let mut unused: HashSet<String> = store
            .components_unused()
            .await?
            .into_iter()
            .filter(|d| !loaded.contains(d.as_str()))
            .collect();
        let mut deleted = Vec::new();
        for digest in unused.intersection(&self.unused_before) {
            if store.component_delete_unused(digest).await? {
                deleted.push(digest.clone());
            }
        }
        for digest in &deleted {
            unused.remove(digest);
        }
        self.unused_before = unused;
        Ok(deleted)
    }
}

/// `current`, with each plugin whose loaded component is not the one
/// `pins` names replaced by that component, loaded again from the store.
pub async fn pinned_registry(
    current: Arc<Registry>,
    pins: &BTreeMap<String, String>,
    store: &dyn RunStore,
    plugins: &PluginHost,
) -> Result<Arc<Registry>, Unpinnable> {
    let mut replaced = Vec::new();
    for (plugin, digest) in pins {
        let unpinnable = |why: String| Unpinnable {
            plugin: plugin.clone(),
            digest: digest.clone(),
            why,
        };
        let loaded = current
            .plugins()
            .iter()
            .find(|r| r.name == *plugin && r.error.is_none());
        let Some(report) = loaded else {
            return Err(unpinnable("is no longer loaded".into()));
        };
        if report.sha256 == *digest {
            continue;
        }
        let bytes = match store.component_get(digest).await {
            Ok(Some(bytes)) if hex::encode(Sha256::digest(&bytes)) == *digest => bytes,
            Ok(_) => return Err(unpinnable("is no longer kept in the store".into())),
            Err(e) => return Err(unpinnable(format!("cannot be read from the store: {e}"))),
        };
        let source = PluginSource {
            name: plugin.clone(),
            origin: format!("{} (pinned sha256 {digest})", report.source),
            bytes: bytes.into(),
            digest: digest.clone(),
            manifest: manifest_of(report),
        };
        let types = plugins
            .load(source)
            .await
            .map_err(|e| unpinnable(format!("does not load again: {e}")))?
            .tasks;
        replaced.push((report.clone(), digest.clone(), types));
    }
    if replaced.is_empty() {
        return Ok(current);
    }
    let mut registry = Registry::new();
    for report in current.plugins() {
        if !replaced.iter().any(|(r, _, _)| r.name == report.name) {
            registry.carry_over(&current, report);
        }
    }
    registry.carry_native(&current);
    for (report, digest, types) in replaced {
        let tasks = types.iter().map(|t| t.id.clone()).collect();
        registry.insert_all(types).map_err(|e| Unpinnable {
            plugin: report.name.clone(),
            digest: digest.clone(),
            why: format!("conflicts with another plugin: {e}"),
        })?;
        registry.report(PluginReport {
            sha256: digest,
            tasks,
            ..report
        });
    }
    Ok(Arc::new(registry))
}

/// The manifest plugin `report` is loaded with now.
fn manifest_of(report: &PluginReport) -> Result<Manifest, crate::plugin::ManifestError> {
    if report.source == "builtin" {
        return Ok(PluginHost::standard_manifest(&report.name));
    }
    Manifest::for_component(Path::new(&report.source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prelude::*;
    use crate::store::{MemoryStore, NewRun, RunRecord, RunSpec};

    #[tokio::test]
    async fn components_go_when_unused_on_two_passes_in_a_row() {
        let store = MemoryStore::new();
        for digest in ["kept", "loose"] {
            store
                .component_put(digest, digest.as_bytes().to_vec().into())
                .await
                .unwrap();
        }
        let spec = RunSpec {
            graph: crate::graph::Graph::builder().task("a", "p.task").build(),
            origin: "g.json".into(),
            input: serde_json::json!({}),
            components: [("p".to_string(), "kept".to_string())].into(),
        };
        let run = RunRecord::new("r1", "g.json");
        store.create_run(NewRun::new(run, spec)).await.unwrap();
        let (registry, mut pruner) = (Registry::new(), ComponentPruner::default());

        assert!(pruner.pass(&store, &registry).await.unwrap().is_empty());
        assert_eq!(pruner.pass(&store, &registry).await.unwrap(), ["loose"]);
        assert!(store.component_get("loose").await.unwrap().is_none());
        // Once its run is deleted, the pinned one goes too (two passes later).
        store.delete_run("r1").await.unwrap();
        assert!(pruner.pass(&store, &registry).await.unwrap().is_empty());
        assert_eq!(pruner.pass(&store, &registry).await.unwrap(), ["kept"]);
    }
}
