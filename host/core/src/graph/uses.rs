//! Use paths: where a node inside a subgraph's use sits in its run.
//! `chat[3]/ask` is node `ask` of use 3 of node `chat`'s body (an
//! iteration, element, step or alternative); `c/ask` is node `ask` inside
//! compound node `c` run whole; uses nest (`m[0]/inner[2]/ask`).
//!
//! Owns how such a path is read against a plan. A subgraph's run is not
//! stored, but its waits are, under their use paths, and signals name them
//! so; how is the runtime's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::{MAX_ELEMENTS, NodeKind, Plan, PlanNode};
use crate::task::Implementation;

/// The longest id a use path is read from: longer ones name no use (a
/// signal's name is shorter), and each is read in time linear in it.
pub const MAX_USE_PATH: usize = 2048;

/// The uses of one plan, to read use paths against. Each plan met (the
/// outermost one, the bodies) is indexed once, however many paths are
/// read: a plan of 100,000 nodes is not walked per path.
pub struct UsePaths<'p> {
    plan: &'p Plan,
    indexes: RefCell<HashMap<*const Plan, Rc<Index<'p>>>>,
}

/// A plan's nodes by id, and those that run subgraphs.
struct Index<'p> {
    nodes: HashMap<&'p str, &'p PlanNode>,
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
    /// The node `rest` names in `body`, if it is one.
    pub node: Option<&'p PlanNode>,
}

impl<'p> UsePaths<'p> {
    /// The uses of `plan`.
    pub fn new(plan: &'p Plan) -> Self {
        UsePaths {
            plan,
            indexes: RefCell::new(HashMap::new()),
        }
    }

    /// Read `id` through the uses it starts with; none if it starts with no
    /// use of this plan (or is longer than [`MAX_USE_PATH`]).
    pub fn read<'a>(&self, id: &'a str) -> Option<Reached<'p, 'a>> {
        if id.len() > MAX_USE_PATH {
            return None;
        }
        let (mut body, mut taken) = step(&self.index(self.plan).owners, id)?;
        while let Some((next, more)) = step(&self.index(body).owners, &id[taken..]) {
            body = next;
            taken += more;
        }
        let rest = &id[taken..];
        Some(Reached {
            path: &id[..taken - 1],
            body,
            rest,
            node: self.index(body).nodes.get(rest).copied(),
        })
    }

    fn index(&self, plan: &'p Plan) -> Rc<Index<'p>> {
        let mut indexes = self.indexes.borrow_mut();
        let index = indexes.entry(plan as *const Plan).or_insert_with(|| {
            Rc::new(Index {
                nodes: plan.nodes.iter().map(|n| (n.id.as_str(), n)).collect(),
                owners: plan
                    .nodes
                    .iter()
                    .filter(|n| !n.kind.subgraphs().is_empty() || graph_of(n).is_some())
                    .map(|n| (n.id.as_str(), n))
                    .collect(),
            })
        });
        index.clone()
    }
}

/// The subgraph a node runs whole (a compound node kept as one), if any.
fn graph_of(node: &PlanNode) -> Option<&Plan> {
    match (&node.kind, &node.task.implementation) {
        (NodeKind::Task, Implementation::Graph(sub)) => Some(&sub.plan),
        _ => None,
    }
}

/// One use at the start of `rest` (`id[k]/` or `id/`, `k` written as
/// Rust writes it: no sign, no leading zeros, and within the node's
/// uses): its body, and how many bytes of `rest` it takes.
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
        let digits = &rest[at + 1..close];
        let k: usize = digits.parse().ok()?;
        if k.to_string() != digits {
            return None;
        }
        return body_of(node, k).map(|plan| (plan, close + 2));
    }
    None
}

/// The plan of use `k` of `node`'s body: its `k`th alternative for a
/// fallback, its one body otherwise; none past the node's uses (a while's
/// `max_iterations`, a map's or reduce's most elements).
fn body_of(node: &PlanNode, k: usize) -> Option<&Plan> {
    let task = match &node.kind {
        NodeKind::Fallback(f) => &f.alternatives.get(k)?.0,
        NodeKind::While(w) if k >= w.max_iterations => return None,
        _ if k >= MAX_ELEMENTS => return None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Graph, WAIT};
    use crate::task::Registry;

    fn plan(graph: serde_json::Value) -> Plan {
        let graph: Graph = serde_json::from_value(graph).unwrap();
        Plan::new(&graph, &Registry::default(), "g.json", &Default::default()).unwrap()
    }

    #[test]
    fn a_use_path_reads_through_loops_and_names_the_node_inside() {
        let p = plan(serde_json::json!({"tasks": [
            {"id": "chat", "type": "while", "config": {"condition": "false", "max_iterations": 5},
             "graph": {"tasks": [{"id": "ask", "type": WAIT}]}}]}));
        let uses = UsePaths::new(&p);
        let reached = uses.read("chat[3]/ask").unwrap();
        assert_eq!((reached.path, reached.rest), ("chat[3]", "ask"));
        assert!(reached.node.is_some());
        // Not as Rust writes it, past the loop's steps, or no use at all.
        for wrong in [
            "chat[03]/ask",
            "chat[+3]/ask",
            "chat[5]/ask",
            "chat/ask",
            "ask",
            "x[0]/ask",
        ] {
            assert!(uses.read(wrong).is_none(), "{wrong}");
        }
        assert!(
            uses.read(&format!("chat[1]/{}", "a".repeat(MAX_USE_PATH)))
                .is_none()
        );
    }
}
