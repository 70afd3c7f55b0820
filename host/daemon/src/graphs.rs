//! Saved graphs belong to the user who saved them. Each user's names live
//! in their own namespace in the store (`USER/NAME`; a name never holds a
//! `/`), so nobody can read, replace or delete another user's graph, and a
//! submission by name runs the submitter's own. A graph saved before
//! namespaces (under a bare `NAME`) stays visible to the user recorded as
//! its owner. This module owns that mapping; it knows nothing of HTTP.

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

/// Save a new version of `user`'s graph `name`.
pub(crate) async fn save(
    store: &dyn RunStore,
    user: &User,
    name: &str,
    graph: weft::graph::Graph,
) -> Result<SavedGraph, StoreError> {
    let saved = store
        .graph_put(&key(user, name), graph, Some(user.0.clone()))
        .await?;
    Ok(shown(saved, user))
}

/// `user`'s graph `name`: the given version, or the newest.
pub(crate) async fn find(
    store: &dyn RunStore,
    user: &User,
    name: &str,
    version: Option<u32>,
) -> Result<Option<SavedGraph>, StoreError> {
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

/// The newest version of each of `user`'s graphs.
pub(crate) async fn list(store: &dyn RunStore, user: &User) -> Result<Vec<SavedGraph>, StoreError> {
    let prefix = format!("{}/", user.0);
    let all = store.graph_list().await?;
    let own = all.into_iter().filter(|g| {
        g.name.starts_with(&prefix)
            || (!g.name.contains('/') && g.owner.as_deref() == Some(user.0.as_str()))
    });
    Ok(own.map(|g| shown(g, user)).collect())
}
