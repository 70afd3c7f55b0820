//! Graph → code → graph: `weft graph codegen` writes Rust, Python and
//! JavaScript builder code for every example graph, every graph in
//! `tests/graphs/` and every graph Workglow writes (`workglow/cases.mjs`);
//! each is run (Rust compiled against this build's `weft-core`, Python
//! with `sdk/python-graph`, JavaScript with `sdk/js-graph`) and must give
//! the graph back, canonicalised.

use crate::cases;
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use weft::graph::Graph;
use weft::workflow::codegen::{Lang, generate};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every graph to round-trip: (name, graph).
fn graphs() -> Vec<(String, Graph)> {
    let mut all = Vec::new();
    for dir in ["examples", "tests/graphs"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            let name = format!("{dir}/{}", f.file_name().unwrap().to_string_lossy());
            all.push((name, Graph::from_file(&f).unwrap()));
        }
    }
    for case in cases::workglow_cases() {
        let name = format!("workglow: {}", case["name"].as_str().unwrap());
        let graph = Graph::from_json(&case["json"].to_string(), &name).unwrap();
        all.push((name, graph));
    }
    all
}

/// The graphs a program printed, each followed by a line `----`.
fn printed(out: std::process::Output, what: &str) -> Vec<Graph> {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split("\n----\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| Graph::from_json(s, what).unwrap_or_else(|e| panic!("{what}: {e}\n{s}")))
        .collect()
}

/// Each file run as a script with the task list; what each printed.
fn run_scripts(program: &str, files: &[PathBuf], tasks: &Path, env: (&str, &Path)) -> Vec<Graph> {
    files
        .iter()
        .map(|f| {
            let out = Command::new(program)
                .arg(f)
                .arg(tasks)
                .env(env.0, env.1)
                .output()
                .unwrap_or_else(|e| panic!("{program} runs: {e}"));
            let mut graphs = printed(out, &f.display().to_string());
            assert_eq!(graphs.len(), 1, "{}", f.display());
            graphs.remove(0)
        })
        .collect()
}

/// The generated Rust, compiled as one program (each graph a module)
/// against the `weft-core` this test was built with; what it printed.
fn run_rust(dir: &Path, sources: &[String], tasks: &Path) -> Vec<Graph> {
    let mut main = String::from("extern crate weft_core as weft;\n");
    for (i, code) in sources.iter().enumerate() {
        std::fs::write(dir.join(format!("g{i}.rs")), code).unwrap();
        main.push_str(&format!("#[path = \"g{i}.rs\"]\nmod g{i};\n"));
    }
    main.push_str("fn main() {\n    let text = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();\n");
    main.push_str("    let tasks: weft::workflow::TaskList = text.parse().unwrap();\n");
    for i in 0..sources.len() {
        main.push_str(&format!(
            "    println!(\"{{}}\\n----\", g{i}::graph(&tasks).unwrap().to_json_pretty());\n"
        ));
    }
    main.push_str("}\n");
    std::fs::write(dir.join("main.rs"), main).unwrap();
    // The newest weft-core library beside this test binary (others may be
    // left from earlier builds: the first that links wins).
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&deps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("libweft_core-") && name.ends_with(".rlib")
        })
        .collect();
    libs.sort_by_key(|p| std::cmp::Reverse(p.metadata().unwrap().modified().unwrap()));
    let bin = dir.join("rebuild");
    let mut errors = String::new();
    for lib in &libs {
        let out = Command::new("rustc")
            .current_dir(root())
            .args(["--edition", "2024", "-C", "debuginfo=0", "-L"])
            .arg(format!("dependency={}", deps.display()))
            .arg("--extern")
            .arg(format!("weft_core={}", lib.display()))
            .arg(dir.join("main.rs"))
            .arg("-o")
            .arg(&bin)
            .output()
            .expect("rustc runs");
        if out.status.success() {
            let run = Command::new(&bin).arg(tasks).output().unwrap();
            return printed(run, "the generated Rust");
        }
        errors.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    panic!("the generated Rust does not compile against {libs:?}:\n{errors}");
}

#[tokio::test]
async fn generated_builder_code_rebuilds_every_graph_in_rust_python_and_javascript() {
    let host = common::host(None).await;
    let registry = host.registry();
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks.json");
    let listing: Vec<_> = registry.task_types().map(|t| t.to_json()).collect();
    std::fs::write(&tasks, serde_json::to_string(&listing).unwrap()).unwrap();
    // `import "weft-graph"` resolves to the SDK, as if installed.
    let modules = dir.path().join("node_modules");
    std::fs::create_dir(&modules).unwrap();
    std::os::unix::fs::symlink(root().join("sdk/js-graph"), modules.join("weft-graph")).unwrap();

    let graphs = graphs();
    assert!(graphs.len() >= 20, "{} graphs", graphs.len());
    let (mut rust, mut python, mut js) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (name, graph)) in graphs.iter().enumerate() {
        let code = |lang| {
            generate(graph, lang, &*registry, name).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        rust.push(code(Lang::Rust));
        let py = dir.path().join(format!("g{i}.py"));
        std::fs::write(&py, code(Lang::Python)).unwrap();
        python.push(py);
        let mjs = dir.path().join(format!("g{i}.mjs"));
        std::fs::write(&mjs, code(Lang::JavaScript)).unwrap();
        js.push(mjs);
    }
    let rebuilt = [
        ("Rust", run_rust(dir.path(), &rust, &tasks)),
        (
            "Python",
            run_scripts(
                "python3",
                &python,
                &tasks,
                ("PYTHONPATH", &root().join("sdk/python-graph")),
            ),
        ),
        (
            "JavaScript",
            run_scripts("node", &js, &tasks, ("NODE_PATH", &modules)),
        ),
    ];
    for (lang, got) in rebuilt {
        assert_eq!(got.len(), graphs.len(), "{lang}");
        for ((name, graph), back) in graphs.iter().zip(got) {
            assert_eq!(
                back.to_json_pretty(),
                graph.to_json_pretty(),
                "{lang} rebuilds {name}"
            );
        }
    }
    // Auto-connection is used where it makes the graph's dataflows.
    let chain = generate(
        &graphs_named(&graphs, "tests/graphs/chain.json"),
        Lang::Python,
        &*registry,
        "c",
    )
    .unwrap();
    assert!(!chain.contains("connect(\"add-one-1.value\""), "{chain}");
    assert!(
        chain.contains(".add(\"math.add-one\")\n        .named(\"twice\")"),
        "{chain}"
    );
}

fn graphs_named(graphs: &[(String, Graph)], name: &str) -> Graph {
    graphs.iter().find(|(n, _)| n == name).unwrap().1.clone()
}

#[tokio::test]
async fn what_the_builders_cannot_write_is_named() {
    use weft::workflow::codegen::CodegenError;
    let host = common::host(None).await;
    let registry = host.registry();
    let graph = common::graph(serde_json::json!({"tasks": [
        {"id": "m", "type": "map", "graph": {"tasks": [{"id": "x", "type": "plugin.gone"}]}}]}));
    let e = generate(&graph, Lang::Rust, &*registry, "g").unwrap_err();
    assert_eq!(
        e,
        CodegenError::UnknownTaskType {
            node: "m/x".into(),
            task_type: "plugin.gone".into()
        }
    );
    let graph = common::graph(serde_json::json!({"tasks": [
        {"id": "a", "type": "math.add-one"}, {"id": "b", "type": "math.add-one"}],
        "dataflows": [{"sourceTaskId": "a", "sourceTaskPortId": "v.x",
                       "targetTaskId": "b", "targetTaskPortId": "value"}]}));
    let e = generate(&graph, Lang::Python, &*registry, "g").unwrap_err();
    assert!(e.to_string().contains("port `v.x` has a `.`"), "{e}");
}
