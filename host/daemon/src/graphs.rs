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
