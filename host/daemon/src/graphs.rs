//! Saved graphs belong to the user who saved them. Each user's names live
//! in their own namespace in the store (`USER/NAME`; a name never holds a
//! `/`), so nobody can replace or delete another user's graph, and a
//! submission by name runs the submitter's own. Sharing is explicit: the
//! owner lists the users who may also read and run it, as `OWNER/NAME`
//! (each new version keeps the list). A graph saved before namespaces (under
//! a bare `NAME`) stays visible to the user recorded as its owner. This
//! module owns that mapping; it knows nothing of HTTP.

use weft::store::{RunStore, SavedGraph, StoreError};

use super::auth::User;

/// Where `user`'s graph `name` is kept in the store.
fn key(user: &User, name: &str) -> String {
    format!("{}/{name}", user.0)
}

/// `saved` as its owner names it.
fn shown(mut saved: SavedGraph, user: &User) -> SavedGraph {
    let prefix = format!("{}/", user.0);
    if let Some(name) = saved.name.strip_prefix(&prefix) {
        saved.name = name.to_string();
    }
    saved
}

/// A graph saved before namespaces, if `user` saved it.
async fn legacy(
    store: &dyn RunStore,
    user: &User,
    name: &str,
    version: Option<u32>,
) -> Result<Option<SavedGraph>, StoreError> {
    let found = store.graph_get(name, version).await?;
    Ok(found.filter(|g| g.owner.as_deref() == Some(user.0.as_str())))
}

/// Save a new version of `user`'s graph `name`, shared with the users the
/// newest version was shared with.
pub(crate) async fn save(
    store: &dyn RunStore,
    user: &User,
    name: &str,
    graph: weft::graph::Graph,
) -> Result<SavedGraph, StoreError> {
    let shared_with = match store.graph_get(&key(user, name), None).await? {
        Some(newest) => newest.shared_with,
        None => Vec::new(),
    };
    let saved = store
        .graph_put(&key(user, name), graph, Some(user.0.clone()), shared_with)
        .await?;
    Ok(shown(saved, user))
}

/// Share `user`'s graph `name` with `users` (replacing whom it was shared
/// with): a new version of the same graph. `None` if there is no such graph.
pub(crate) async fn share(
    store: &dyn RunStore,
    user: &User,
    name: &str,
    mut users: Vec<String>,
) -> Result<Option<SavedGraph>, StoreError> {
    let Some(newest) = store.graph_get(&key(user, name), None).await? else {
        return Ok(None);
    };
    users.retain(|u| *u != user.0);
    users.sort();
    users.dedup();
    let saved = store
        .graph_put(&key(user, name), newest.graph, Some(user.0.clone()), users)
        .await?;
    Ok(Some(shown(saved, user)))
}

/// Graph `name` as `user` may see it: their own `NAME`, or `OWNER/NAME` when
/// its owner shared it with them; the given version, or the newest.
pub(crate) async fn find(
    store: &dyn RunStore,
    user: &User,
    name: &str,
    version: Option<u32>,
) -> Result<Option<SavedGraph>, StoreError> {
    if let Some((owner, own_name)) = name.split_once('/') {
        if owner == user.0 {
            return Box::pin(find(store, user, own_name, version)).await;
        }
        let found = store.graph_get(name, version).await?;
        return Ok(found.filter(|g| g.shared_with.contains(&user.0)));
    }
    match store.graph_get(&key(user, name), version).await? {
        Some(saved) => Ok(Some(shown(saved, user))),
        None => legacy(store, user, name, version).await,
    }
}

/// Delete every version of `user`'s graph `name`; false if there was none.
pub(crate) async fn delete(
    store: &dyn RunStore,
    user: &User,
    name: &str,
) -> Result<bool, StoreError> {
    if store.graph_delete(&key(user, name)).await? {
        return Ok(true);
    }
    match legacy(store, user, name, None).await? {
        Some(_) => store.graph_delete(name).await,
        None => Ok(false),
    }
}

/// The newest version of each of `user`'s graphs, then of those shared with
/// them (named `OWNER/NAME`).
pub(crate) async fn list(store: &dyn RunStore, user: &User) -> Result<Vec<SavedGraph>, StoreError> {
    let prefix = format!("{}/", user.0);
    let all = store.graph_list().await?;
    let (own, shared): (Vec<SavedGraph>, Vec<SavedGraph>) = all
        .into_iter()
        .filter(|g| {
            g.name.starts_with(&prefix)
                || (!g.name.contains('/') && g.owner.as_deref() == Some(user.0.as_str()))
                || g.shared_with.contains(&user.0)
        })
        .partition(|g| !g.shared_with.contains(&user.0));
    Ok(own
        .into_iter()
        .map(|g| shown(g, user))
        .chain(shared)
        .collect())
}

/// The prefix of a node type naming a saved graph: `graph:NAME`,
/// `graph:NAME@VERSION`, `graph:OWNER/NAME@VERSION` (a graph shared with
/// the user).
pub(crate) const SAVED: &str = "graph:";

/// Why saved graphs named as node types cannot be put in place.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExpandError {
    /// No such graph (or version) for this user.
    #[error("node `{node}`: no saved graph `{name}`{}", .version.map(|v| format!(" version {v}")).unwrap_or_default())]
    NotFound {
        node: String,
        name: String,
        version: Option<u32>,
    },
    /// `graph:NAME@VERSION` with a version that is not a number.
    #[error("node `{node}`: `{ty}` is not `graph:NAME` or `graph:NAME@VERSION`")]
    BadName { node: String, ty: String },
    /// Saved graphs that use each other.
    #[error("saved graphs use each other in a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
    /// Too many nodes once saved graphs are put in place.
    #[error("more than {max} nodes once the saved graphs it uses are put in place")]
    TooLarge { max: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `graph` with every node whose type names a saved graph (`graph:NAME`,
/// `graph:NAME@VERSION`) replaced by a compound node holding that graph as
/// `user` finds it, recursively (inside compound nodes and subgraph bodies
/// too). Without a version the newest is taken now, so a run is pinned to
/// the versions it was submitted with; the node's `name` says which
/// (`graph:NAME@3`) unless it has one. Saved graphs that use each other are
/// refused with the cycle named.
pub(crate) async fn expand(
    host: &weft::Host,
    user: &User,
    graph: weft::graph::Graph,
) -> Result<weft::graph::Graph, ExpandError> {
    let max = host.graph_sizes().nodes;
    let mut budget = Budget { left: max, max };
    expand_in(
        host.store().as_ref(),
        user,
        graph,
        &mut Vec::new(),
        &mut budget,
    )
    .await
}

/// The nodes a graph may still gain as saved graphs are put in place.
struct Budget {
    left: usize,
    max: usize,
}

fn expand_in<'a>(
    store: &'a dyn RunStore,
    user: &'a User,
    mut graph: weft::graph::Graph,
    path: &'a mut Vec<String>,
    budget: &'a mut Budget,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<weft::graph::Graph, ExpandError>> + Send + 'a>,
> {
    Box::pin(async move {
        budget.left = budget
            .left
            .checked_sub(graph.tasks.len())
            .ok_or(ExpandError::TooLarge { max: budget.max })?;
        for node in &mut graph.tasks {
            if let Some(inner) = node.graph.take() {
                node.graph = Some(Box::new(
                    expand_in(store, user, *inner, path, budget).await?,
                ));
            }
            let Some(named) = node.task_type.strip_prefix(SAVED) else {
                continue;
            };
            let bad = || ExpandError::BadName {
                node: node.id.clone(),
                ty: node.task_type.clone(),
            };
            let (name, version) = match named.split_once('@') {
                Some((name, v)) => (name, Some(v.parse::<u32>().map_err(|_| bad())?)),
                None => (named, None),
            };
            let saved =
                find(store, user, name, version)
                    .await?
                    .ok_or_else(|| ExpandError::NotFound {
                        node: node.id.clone(),
                        name: name.to_string(),
                        version,
                    })?;
            let pinned = format!("{name}@{}", saved.version);
            if path.iter().any(|p| p.split('@').next() == Some(name)) {
                path.push(pinned);
                return Err(ExpandError::Cycle(std::mem::take(path)));
            }
            path.push(pinned.clone());
            let inner = expand_in(store, user, saved.graph, path, budget).await?;
            path.pop();
            node.task_type = weft::graph::COMPOUND.to_string();
            node.graph = Some(Box::new(inner));
            node.name.get_or_insert(format!("{SAVED}{pinned}"));
        }
        Ok(graph)
    })
}
