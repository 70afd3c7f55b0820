//! Use paths: where a node inside a subgraph's use sits in its run.
//! `chat[3]/ask` is node `ask` of use 3 of node `chat`'s body (an
//! iteration, element, step or alternative); `c/ask` is node `ask` inside
//! compound node `c` run whole; uses nest (`m[0]/inner[2]/ask`).
//!
//! Owns how such a path is read against a plan. A subgraph's run is not
//! stored, but its waits are, under their use paths, and signals name them
//! so; how is the runtime's.

use std::collections::HashMap;

use super::{NodeKind, Plan, PlanNode};
use crate::task::Implementation;

/// The uses of one plan, to read use paths against.
pub struct UsePaths<'p> {
    /// The plan's nodes that run subgraphs, by id (a plan of 100,000
    /// nodes is indexed once, not walked per path).
    owners: HashMap<&'p str, &'p PlanNode>,
}

/// A use path read: the uses it walks through and what is left.
#[derive(Debug, Clone, Copy)]
pub struct Reached<'p, 'a> {
    /// The uses walked, `chat[3]` or `m[0]/inner[2]`.
    pub path: &'a str,
    /// The plan of the last use's body.
    pub body: &'p Plan,
    /// The rest of the path: a node id in `body`.
    pub rest: &'a str,
}

impl<'p> UsePaths<'p> {
    /// The uses of `plan`.
    pub fn new(plan: &'p Plan) -> Self {
        UsePaths {
            owners: owners(plan),
        }
    }

    /// Read `id` through the uses it starts with; none if it starts with no
    /// use of this plan.
    pub fn read<'a>(&self, id: &'a str) -> Option<Reached<'p, 'a>> {
        let (mut body, mut taken) = step(&self.owners, id)?;
        while let Some((next, more)) = step(&owners(body), &id[taken..]) {
            body = next;
            taken += more;
        }
        Some(Reached {
            path: &id[..taken - 1],
            body,
            rest: &id[taken..],
        })
    }
}

/// The nodes of `plan` that run subgraphs, by id.
fn owners(plan: &Plan) -> HashMap<&str, &PlanNode> {
    plan.nodes
        .iter()
        .filter(|n| !n.kind.subgraphs().is_empty() || graph_of(n).is_some())
        .map(|n| (n.id.as_str(), n))
        .collect()
}

/// The subgraph a node runs whole (a compound node kept as one), if any.
fn graph_of(node: &PlanNode) -> Option<&Plan> {
    match (&node.kind, &node.task.implementation) {
        (NodeKind::Task, Implementation::Graph(sub)) => Some(&sub.plan),
        _ => None,
    }
}

/// One use at the start of `rest` (`id[k]/` or `id/`): its body, and how
/// many bytes of `rest` it takes.
fn step<'p>(owners: &HashMap<&str, &'p PlanNode>, rest: &str) -> Option<(&'p Plan, usize)> {
    for (at, c) in rest.char_indices() {
        let Some(node) = (c == '[' || c == '/')
            .then(|| owners.get(&rest[..at]))
            .flatten()
        else {
            continue;
        };
        if c == '/' {
            return graph_of(node).map(|plan| (plan, at + 1));
        }
        let close = rest[at..].find("]/")? + at;
        let k: usize = rest[at + 1..close].parse().ok()?;
        return body_of(node, k).map(|plan| (plan, close + 2));
    }
    None
}

/// The plan of use `k` of `node`'s body: its `k`th alternative for a
/// fallback, its one body otherwise.
fn body_of(node: &PlanNode, k: usize) -> Option<&Plan> {
    let task = match &node.kind {
        NodeKind::Fallback(f) => &f.alternatives.get(k)?.0,
        kind => *kind.bodies().first()?,
    };
    match &task.implementation {
        Implementation::Graph(sub) => Some(&sub.plan),
        _ => None,
    }
}

/// Every wait node of `plan` and of the bodies it runs, by its id in a
/// run: `ask`, `chat[…]/ask` for a wait in every step of `chat`.
pub fn waits(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    collect_waits(plan, "", &mut out);
    out
}

fn collect_waits(plan: &Plan, at: &str, out: &mut Vec<String>) {
    for node in &plan.nodes {
        if matches!(node.kind, NodeKind::Wait(_)) {
            out.push(format!("{at}{}", node.id));
        }
        for body in node.kind.subgraphs() {
            collect_waits(body, &format!("{at}{}[…]/", node.id), out);
        }
        if let Some(body) = graph_of(node) {
            collect_waits(body, &format!("{at}{}/", node.id), out);
        }
    }
}
