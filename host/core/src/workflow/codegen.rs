//! Graph → code: the builder code (Rust, Python or JavaScript) that
//! rebuilds a graph, for `weft graph codegen`.
//!
//! Owns the plan of builder steps for a graph: nodes in the graph's order,
//! each added with auto-connection where that makes exactly the graph's
//! next dataflows, after a `reset` and with explicit `connect`s otherwise;
//! ids given with `named` where the builder's own differs; bodies built in
//! scopes. Each dataflow is made in the graph's order, so running the code
//! gives the graph back identical. Rendering a step in each language is
//! the only part that knows the languages.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use serde_json::Value;

use super::ports::{Catalog, auto_flows, end_name};
use super::{Scope, fresh_id, is_kind};
use crate::graph::{Dataflow, Graph, Node};

/// The language to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A Rust function over `weft::workflow::Workflow`.
    Rust,
    /// A Python module over `weft_graph.Workflow`.
    Python,
    /// An ES module over `weft-graph`'s `Workflow`.
    JavaScript,
}

/// Why a graph cannot be written as builder code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodegenError {
    /// A node's type is neither a task type the catalog knows nor a kind.
    #[error("node `{node}`: unknown task type `{task_type}` (is its plugin loaded?)")]
    UnknownTaskType {
        /// The node.
        node: String,
        /// Its type.
        task_type: String,
    },
    /// Something the builders cannot express, located.
    #[error("{0}")]
    Unsupported(String),
}

/// One builder call.
enum Step<'g> {
    Reset,
    Add(&'g Node),
    Open(Scope, &'g Node),
    Close(Scope),
    Named(&'g str),
    Label(&'g str),
    Config(Value),
    Connect(&'g Dataflow),
    FlowId(&'g str),
}

/// Builder code in `lang` that rebuilds `graph`, with the task types of
/// `catalog`; `origin` names the graph in the code's first comment.
pub fn generate(
    graph: &Graph,
    lang: Lang,
    catalog: &dyn Catalog,
    origin: &str,
) -> Result<String, CodegenError> {
    let mut steps = Vec::new();
    plan(graph, catalog, "", &mut steps)?;
    let mut out = String::new();
    let body = render(&steps, lang);
    match lang {
        Lang::Rust => rust_file(&mut out, origin, &body),
        Lang::Python => python_file(&mut out, origin, &body),
        Lang::JavaScript => js_file(&mut out, origin, &body),
    }
    Ok(out)
}

/// The steps that rebuild `graph` (a body when `at` names its node).
fn plan<'g>(
    graph: &'g Graph,
    catalog: &dyn Catalog,
    at: &str,
    steps: &mut Vec<Step<'g>>,
) -> Result<(), CodegenError> {
    let mut counts = HashMap::new();
    let mut taken: HashSet<&str> = HashSet::with_capacity(graph.tasks.len());
    let mut next = 0;
    let mut last: Option<&Node> = None;
    let flows = &graph.dataflows;
    for node in &graph.tasks {
        check_node(node, catalog, at)?;
        flush(flows, &mut next, &taken, steps, at)?;
        let auto = last.map_or_else(Vec::new, |prev| auto_flows(catalog, &[prev], node, &[]));
        let chained = !auto.is_empty() && flows[next..].starts_with(&auto);
        if last.is_some() && !chained {
            steps.push(Step::Reset);
        }
        let builder_id = fresh_id(&node.task_type, &mut counts, |id| taken.contains(id));
        if !taken.insert(&node.id) {
            return Err(unsupported(
                at,
                &format!("two nodes have the id `{}`", node.id),
            ));
        }
        match (&node.graph, Scope::of_type(&node.task_type)) {
            (Some(body), Some(scope)) => {
                steps.push(Step::Open(scope, node));
                plan(body, catalog, &format!("{at}{}/", node.id), steps)?;
                steps.push(Step::Close(scope));
            }
            (Some(_), None) => {
                let why = format!("node `{}` of type `{}` has a body", node.id, node.task_type);
                return Err(unsupported(at, &why));
            }
            (None, _) => steps.push(Step::Add(node)),
        }
        if builder_id != node.id {
            steps.push(Step::Named(&node.id));
        }
        if let Some(name) = &node.name {
            steps.push(Step::Label(name));
        }
        let config = serde_json::to_value(&node.config).unwrap_or_default();
        if config.as_object().is_some_and(|c| !c.is_empty()) {
            steps.push(Step::Config(config));
        }
        if chained {
            next += auto.len();
        }
        last = Some(node);
    }
    flush(flows, &mut next, &taken, steps, at)?;
    match flows.get(next) {
        None => Ok(()),
        Some(f) => Err(unsupported(
            at,
            &format!("dataflow `{f}` names a node that is not there"),
        )),
    }
}

/// `connect` each next dataflow whose two ends are there.
fn flush<'g>(
    flows: &'g [Dataflow],
    next: &mut usize,
    taken: &HashSet<&str>,
    steps: &mut Vec<Step<'g>>,
    at: &str,
) -> Result<(), CodegenError> {
    while let Some(f) = flows.get(*next) {
        if !taken.contains(f.source_task_id.as_str()) || !taken.contains(f.target_task_id.as_str())
        {
            return Ok(());
        }
        for port in [&f.source_task_port_id, &f.target_task_port_id] {
            if port.contains('.') {
                let why = format!(
                    "dataflow `{f}`: port `{port}` has a `.` (the builders name ends `node.port`)"
                );
                return Err(unsupported(at, &why));
            }
        }
        steps.push(Step::Connect(f));
        if let Some(id) = &f.id {
            steps.push(Step::FlowId(id));
        }
        *next += 1;
    }
    Ok(())
}

fn check_node(node: &Node, catalog: &dyn Catalog, at: &str) -> Result<(), CodegenError> {
    let known = catalog.ports(&node.task_type).is_some()
        || is_kind(&node.task_type)
        || (node.graph.is_some() && Scope::of_type(&node.task_type).is_some());
    if known {
        return Ok(());
    }
    Err(CodegenError::UnknownTaskType {
        node: format!("{at}{}", node.id),
        task_type: node.task_type.clone(),
    })
}

fn unsupported(at: &str, why: &str) -> CodegenError {
    if at.is_empty() {
        return CodegenError::Unsupported(why.to_string());
    }
    CodegenError::Unsupported(format!(
        "in the body of `{}`: {why}",
        at.trim_end_matches('/')
    ))
}

/// The chained calls, one per line, indented by scope.
fn render(steps: &[Step<'_>], lang: Lang) -> String {
    let base = match lang {
        Lang::Rust | Lang::Python => 8,
        Lang::JavaScript => 4,
    };
    let mut depth = 0;
    let mut out = String::new();
    for step in steps {
        if matches!(step, Step::Close(_)) {
            depth -= 1;
        }
        let call = call(step, lang);
        let _ = writeln!(out, "{:width$}.{call}", "", width = base + 4 * depth);
        if matches!(step, Step::Open(..)) {
            depth += 1;
        }
    }
    out
}

/// One step as a method call, without its dot.
fn call(step: &Step<'_>, lang: Lang) -> String {
    let value = |v: &Value| literal(v, lang);
    let string = |s: &str| literal(&Value::from(s), lang);
    match step {
        Step::Reset => "reset()".into(),
        Step::Add(node) => format!("add({}{})", string(&node.task_type), defaults(node, lang)),
        Step::Open(scope, node) => {
            let args = defaults(node, lang);
            format!(
                "{}({})",
                open_name(*scope, lang),
                args.trim_start_matches(", ")
            )
        }
        Step::Close(scope) => match lang {
            Lang::JavaScript => format!("end{}()", capitalised(end_name(*scope))),
            _ => format!("end_{}()", end_name(*scope)),
        },
        Step::Named(id) => format!("named({})", string(id)),
        Step::Label(name) => format!("label({})", string(name)),
        Step::Config(config) => format!("config({})", value(config)),
        Step::Connect(f) => {
            let from = string(&format!("{}.{}", f.source_task_id, f.source_task_port_id));
            let to = string(&format!("{}.{}", f.target_task_id, f.target_task_port_id));
            match (lang, f.transforms.is_empty()) {
                (Lang::Rust, _) | (_, false) => {
                    format!("connect({from}, {to}, {})", transforms(f, lang))
                }
                _ => format!("connect({from}, {to})"),
            }
        }
        Step::FlowId(id) => match lang {
            Lang::JavaScript => format!("flowId({})", string(id)),
            _ => format!("flow_id({})", string(id)),
        },
    }
}

/// `, defaults` for a call that adds `node`: left out where empty, but in
/// Rust (which has no optional arguments).
fn defaults(node: &Node, lang: Lang) -> String {
    let empty = node.defaults.as_object().is_some_and(|m| m.is_empty());
    match (lang, empty) {
        (Lang::Rust, _) | (_, false) => format!(", {}", literal(&node.defaults, lang)),
        _ => String::new(),
    }
}

fn open_name(scope: Scope, lang: Lang) -> &'static str {
    match (scope, lang) {
        (Scope::While, Lang::JavaScript) => "whileLoop",
        (Scope::While, _) => "while_loop",
        (Scope::Subgraph, _) => "subgraph",
        (Scope::Map, _) => "map",
        (Scope::Reduce, _) => "reduce",
        (Scope::Fallback, _) => "fallback",
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn transforms(f: &Dataflow, lang: Lang) -> String {
    if lang != Lang::Rust {
        let list = serde_json::to_value(&f.transforms).unwrap_or_default();
        return literal(&list, lang);
    }
    let items: Vec<String> = f
        .transforms
        .iter()
        .map(|t| {
            let params = t
                .params
                .as_ref()
                .map_or("None".into(), |p| format!("Some({})", literal(p, lang)));
            format!("Transform {{ id: {:?}.into(), params: {params} }}", t.id)
        })
        .collect();
    format!("vec![{}]", items.join(", "))
}

/// `v` as a literal of `lang`, on one line.
fn literal(v: &Value, lang: Lang) -> String {
    let mut out = String::new();
    write_literal(&mut out, v, lang);
    match lang {
        Lang::Rust if !v.is_string() => format!("json!({out})"),
        _ => out,
    }
}

fn write_literal(out: &mut String, v: &Value, lang: Lang) {
    match v {
        Value::Null => out.push_str(if lang == Lang::Python { "None" } else { "null" }),
        Value::Bool(b) => out.push_str(match (lang, b) {
            (Lang::Python, true) => "True",
            (Lang::Python, false) => "False",
            (_, true) => "true",
            (_, false) => "false",
        }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) if lang == Lang::Rust => {
            let _ = write!(out, "{s:?}");
        }
        Value::String(s) => out.push_str(&Value::from(s.as_str()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, item, lang);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(out, &Value::from(k.as_str()), lang);
                out.push_str(": ");
                write_literal(out, item, lang);
            }
            out.push('}');
        }
    }
}

fn rust_file(out: &mut String, origin: &str, body: &str) {
    let transform = if body.contains("Transform {") {
        "use weft::graph::transform::Transform;\n"
    } else {
        ""
    };
    let _ = write!(
        out,
        "//! Rebuilds `{origin}`: written by `weft graph codegen --lang rust`.\n\n\
         use weft::graph::Graph;\n{transform}\
         use weft::workflow::{{Catalog, Workflow, WorkflowError, json}};\n\n\
         /// The graph; `catalog` is a host's registry (`host.registry()`) or the\n\
         /// `TaskList` a daemon lists.\n\
         pub fn graph(catalog: &dyn Catalog) -> Result<Graph, WorkflowError> {{\n    \
         Workflow::new(catalog)\n{body}        .build()\n}}\n"
    );
}

fn python_file(out: &mut String, origin: &str, body: &str) {
    let _ = write!(
        out,
        "\"\"\"Rebuilds `{origin}`: written by `weft graph codegen --lang python`.\"\"\"\n\n\
         import json\nimport os\nimport sys\n\n\
         from weft_graph import Client, Workflow\n\n\n\
         def graph(tasks):\n    \
         \"\"\"The graph; `tasks` is what `weft tasks --json` (or `Client.tasks()`) lists.\"\"\"\n    \
         return (\n        Workflow(tasks)\n{body}        .to_json()\n    )\n\n\n\
         if __name__ == \"__main__\":\n    \
         if len(sys.argv) > 1:\n        with open(sys.argv[1]) as f:\n            tasks = json.load(f)\n    \
         else:\n        tasks = Client(os.environ.get(\"WEFT_URL\", \"http://127.0.0.1:8080\")).tasks()\n    \
         print(json.dumps(graph(tasks), indent=2))\n"
    );
}

fn js_file(out: &mut String, origin: &str, body: &str) {
    let _ = write!(
        out,
        "// Rebuilds `{origin}`: written by `weft graph codegen --lang js`.\n\
         import {{ readFileSync }} from \"node:fs\";\n\
         import {{ pathToFileURL }} from \"node:url\";\n\
         import {{ Client, Workflow }} from \"weft-graph\";\n\n\
         /** The graph; `tasks` is what `weft tasks --json` (or `client.tasks()`) lists. */\n\
         export function graph(tasks) {{\n  \
         return new Workflow(tasks)\n{body}    .toJSON();\n}}\n\n\
         if (import.meta.url === pathToFileURL(process.argv[1]).href) {{\n  \
         const tasks = process.argv[2]\n    ? JSON.parse(readFileSync(process.argv[2], \"utf8\"))\n    \
         : await new Client(process.env.WEFT_URL).tasks();\n  \
         console.log(JSON.stringify(graph(tasks), null, 2));\n}}\n"
    );
}
