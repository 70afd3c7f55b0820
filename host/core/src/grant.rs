//! What one user's runs may use of what the operator configured: data
//! folders, databases, models and queues, by name.
//!
//! A task type says which of its input ports name a resource
//! ([`crate::task::TaskType::resources`]); a run's grants are checked against
//! those ports at submit, where the graph or the run's input names the
//! resource, and again when the task starts, where the name arrived through
//! a dataflow. Model calls a plugin makes are checked as they are made. This
//! module decides; it must not know where grants are configured.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

/// A kind of resource a user is granted by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resource {
    /// A data folder (`[data.folders.NAME]`).
    Folder,
    /// A database (`[data.databases.NAME]`).
    Database,
    /// A model (`[models.NAME]`).
    Model,
    /// A queue a graph routes a node through (`[queues.NAME]`).
    Queue,
}

impl Resource {
    /// Its word in messages and in `grants` (`folders`, ...).
    pub fn plural(self) -> &'static str {
        match self {
            Resource::Folder => "folders",
            Resource::Database => "databases",
            Resource::Model => "models",
            Resource::Queue => "queues",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Resource::Folder => "folder",
            Resource::Database => "database",
            Resource::Model => "model",
            Resource::Queue => "queue",
        }
    }
}

/// Names granted of one kind: a list, `"*"` for every one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Allowed(Vec<String>);

impl Allowed {
    /// Every name.
    pub fn all() -> Self {
        Allowed(vec!["*".to_string()])
    }

    /// Whether `name` is granted.
    pub fn allows(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == "*" || n == name)
    }
}

/// A user's grants (`grants` of a `[[tokens]]` entry). Nothing is granted
/// unless listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Whose grants (for messages); set by whoever builds them.
    #[serde(skip)]
    pub user: Option<String>,
    /// Data folders.
    #[serde(default)]
    pub folders: Allowed,
    /// Databases.
    #[serde(default)]
    pub databases: Allowed,
    /// Models.
    #[serde(default)]
    pub models: Allowed,
    /// Queues a graph may route a node through (a task type's own queue,
    /// set by the operator, needs no grant).
    #[serde(default)]
    pub queues: Allowed,
}

/// A resource a user's grants do not include.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} `{name}` is not granted to {} (the operator lists it under grants.{} of the user's [[tokens]] entry)",
    .resource.singular(), .user.as_deref().map_or("this user".to_string(), |u| format!("user `{u}`")), .resource.plural()
)]
pub struct NotGranted {
    /// What kind.
    pub resource: Resource,
    /// Its name.
    pub name: String,
    /// The user.
    pub user: Option<String>,
}

impl Grants {
    /// Everything (runs without an owner, and the loopback operator).
    pub fn all() -> Self {
        Grants {
            user: None,
            folders: Allowed::all(),
            databases: Allowed::all(),
            models: Allowed::all(),
            queues: Allowed::all(),
        }
    }

    fn of(&self, resource: Resource) -> &Allowed {
        match resource {
            Resource::Folder => &self.folders,
            Resource::Database => &self.databases,
            Resource::Model => &self.models,
            Resource::Queue => &self.queues,
        }
    }

    /// Whether `name` of kind `resource` is granted.
    pub fn check(&self, resource: Resource, name: &str) -> Result<(), NotGranted> {
        match self.of(resource).allows(name) {
            true => Ok(()),
            false => Err(NotGranted {
                resource,
                name: name.to_string(),
                user: self.user.clone(),
            }),
        }
    }

    /// Check the resources named in `input` by the ports `ports` declares.
    /// A port without a string value is not checked (it may arrive later).
    pub fn check_ports(
        &self,
        ports: &[(String, Resource)],
        input: &Map<String, Value>,
    ) -> Result<(), NotGranted> {
        for (port, resource) in ports {
            if let Some(Value::String(name)) = input.get(port) {
                self.check(*resource, name)?;
            }
        }
        Ok(())
    }
}

/// Every user's grants, by user name (from the `[[tokens]]` entries).
#[derive(Debug, Clone, Default)]
pub struct UserGrants {
    /// `None`: no users are configured, and every run may use everything.
    by_user: Option<HashMap<String, Arc<Grants>>>,
}

impl UserGrants {
    /// Every run may use everything (no users configured).
    pub fn everyone() -> Self {
        UserGrants { by_user: None }
    }

    /// These users' grants; any other user is granted nothing.
    pub fn new(users: impl IntoIterator<Item = (String, Grants)>) -> Self {
        let by_user = users
            .into_iter()
            .map(|(user, mut grants)| {
                grants.user = Some(user.clone());
                (user, Arc::new(grants))
            })
            .collect();
        UserGrants {
            by_user: Some(by_user),
        }
    }

    /// The grants of a run owned by `owner`: everything for a run without
    /// an owner (started from the CLI) or when no users are configured;
    /// nothing for a user who is not (or no longer) configured.
    pub fn of(&self, owner: Option<&str>) -> Arc<Grants> {
        match (&self.by_user, owner) {
            (Some(users), Some(owner)) => users.get(owner).cloned().unwrap_or_else(|| {
                Arc::new(Grants {
                    user: Some(owner.to_string()),
                    ..Grants::default()
                })
            }),
            // Everything, still named after the owner (whose storage and
            // secrets a task uses).
            _ => Arc::new(Grants {
                user: owner.map(str::to_string),
                ..Grants::all()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ann() -> Grants {
        let mut g: Grants = toml_like(json!({"folders": ["reports"], "models": ["*"]}));
        g.user = Some("ann".into());
        g
    }

    fn toml_like(v: Value) -> Grants {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_what_is_listed_is_granted() {
        let g = ann();
        assert!(g.check(Resource::Folder, "reports").is_ok());
        assert!(
            g.check(Resource::Model, "anything").is_ok(),
            "* is every name"
        );
        let e = g.check(Resource::Database, "crm").unwrap_err();
        assert_eq!(
            e.to_string(),
            "database `crm` is not granted to user `ann` (the operator lists it under \
             grants.databases of the user's [[tokens]] entry)"
        );
        assert!(Grants::default().check(Resource::Queue, "q").is_err());
    }

    #[test]
    fn ports_are_checked_when_they_hold_a_name() {
        let ports = vec![("folder".to_string(), Resource::Folder)];
        let g = ann();
        let input = |v: Value| v.as_object().unwrap().clone();
        assert!(
            g.check_ports(&ports, &input(json!({"folder": "reports"})))
                .is_ok()
        );
        assert!(
            g.check_ports(&ports, &input(json!({"folder": "secrets"})))
                .is_err()
        );
        assert!(
            g.check_ports(&ports, &input(json!({}))).is_ok(),
            "not known yet"
        );
    }

    #[test]
    fn a_run_gets_its_owners_grants() {
        let users = UserGrants::new([("ann".to_string(), ann())]);
        assert!(
            users
                .of(Some("ann"))
                .check(Resource::Folder, "reports")
                .is_ok()
        );
        assert!(
            users
                .of(Some("gone"))
                .check(Resource::Folder, "reports")
                .is_err()
        );
        assert!(
            users.of(None).check(Resource::Database, "crm").is_ok(),
            "the CLI's"
        );
        let open = UserGrants::everyone();
        assert!(
            open.of(Some("local"))
                .check(Resource::Database, "crm")
                .is_ok()
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(serde_json::from_value::<Grants>(json!({"folder": ["x"]})).is_err());
    }
}
