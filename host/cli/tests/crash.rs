//! Crash tests: a real `weft` process is killed with SIGKILL at many points of a
//! run (including mid-commit), then `weft resume --all` finishes it. The outputs
//! must equal an uninterrupted run's, no completed node may run again, and the
//! event log must have no gap and no duplicate.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// Kill points during start-up; the others come after the run has started.
const STARTUP_KILLS: u64 = 6;

fn weft(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weft"));
    c.env("WEFT_DATA_DIR", data)
        .env("WEFT_CACHE_DIR", weft_tests::cache_dir())
        .env_remove("WEFT_PLUGINS_DIR")
        .current_dir(weft_tests::ROOT);
    c
}

fn json_of(c: &mut Command) -> Value {
    let out = c.output().expect("weft runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Reads `weft -v run`'s log until the run has started; what it wrote if it
/// never does.
fn wait_for_start(child: &mut Child, k: u64) {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let started = stderr.lines().map_while(Result::ok).any(|l| {
        let hit = l.contains("run started");
        seen.push(l);
        hit
    });
    assert!(
        started,
        "kill point {k}: weft never reported the run's start ({:?}); it wrote:\n{}",
        child.wait(),
        seen.join("\n")
    );
}

/// source → 4 parallel delays → merge → delay → stringify → log: ~250 ms of work.
fn graph() -> Value {
    let flow = |s: &str, sp: &str, t: &str, tp: &str| json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp});
    let mut tasks = vec![json!({"id": "src", "type": "math.add-one", "defaults": {"value": 1}})];
    let mut flows = Vec::new();
    for i in 0..4 {
        tasks.push(
            json!({"id": format!("d{i}"), "type": "util.delay", "defaults": {"ms": 40 + 30 * i}}),
        );
        flows.push(flow("src", "value", &format!("d{i}"), "value"));
        flows.push(flow(&format!("d{i}"), "value", "merge", &format!("v{i}")));
    }
    tasks.push(json!({"id": "merge", "type": "json.merge"}));
    tasks.push(json!({"id": "wait", "type": "util.delay", "defaults": {"ms": 80}}));
    tasks.push(json!({"id": "text", "type": "json.stringify"}));
    tasks.push(json!({"id": "log", "type": "util.debug-log"}));
    flows.push(flow("merge", "*", "wait", "value"));
    flows.push(flow("wait", "value", "text", "value"));
    flows.push(flow("text", "text", "log", "message"));
    json!({"tasks": tasks, "dataflows": flows})
}

fn outputs(status: &Value) -> HashMap<String, Value> {
    status["nodes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["output"].clone()))
        .collect()
}

#[test]
fn killed_runs_resume_to_the_same_result_with_a_clean_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.json");
    std::fs::write(&g, graph().to_string()).unwrap();
    let g = g.to_str().unwrap();

    // The reference: an uninterrupted run.
    let reference_dir = dir.path().join("reference");
    let done = json_of(weft(&reference_dir).args(["run", g, "--json"]));
    assert_eq!(done["status"], "succeeded");
    let run_id = done["run_id"].as_str().unwrap();
    let reference = outputs(&json_of(
        weft(&reference_dir).args(["status", run_id, "--json"]),
    ));
    assert_eq!(
        reference["log"],
        json!({"message": "{\"v0\":2,\"v1\":2,\"v2\":2,\"v3\":2}"})
    );

    let (mut interrupted, mut kill_points) = (0, 0);
    for k in 0..60u64 {
        // Removed at the end of each kill point: each keeps the plugins'
        // components (~20 MB), too much to keep 60 of.
        let kept = tempfile::tempdir_in(dir.path()).unwrap();
        let data = kept.path().join(format!("kill-{k}"));
        let mut child = weft(&data)
            .args(["-v", "run", g, "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if k < STARTUP_KILLS {
            // Kill during start-up: before or while the run is recorded.
            std::thread::sleep(Duration::from_millis(k * 25));
        } else {
            // Wait for the run to start, then spread the kill points over the
            // run and its last commits (the run takes ~250 ms of delays).
            wait_for_start(&mut child, k);
            std::thread::sleep(Duration::from_millis((k - STARTUP_KILLS) * 5));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        kill_points += 1;

        let runs = json_of(weft(&data).args(["runs", "--json"]));
        let Some(run) = runs.as_array().and_then(|r| r.first()) else {
            continue; // killed before the run was recorded
        };
        let run_id = run["run_id"].as_str().unwrap().to_string();
        if run["status"] == "running" {
            interrupted += 1;
            let out = weft(&data)
                .args(["resume", "--all", "--json"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "resume failed at kill point {k}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let status = json_of(weft(&data).args(["status", &run_id, "--json"]));
        assert_eq!(status["status"], "succeeded", "kill point {k}");
        assert_eq!(
            outputs(&status),
            reference,
            "kill point {k}: outputs differ from an uninterrupted run"
        );

        let log = weft(&data)
            .args(["events", &run_id, "--json"])
            .output()
            .unwrap();
        let events: Vec<Value> = String::from_utf8_lossy(&log.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "kill point {k}: gap or duplicate in the event log"
        );
        let mut completed: HashMap<&str, usize> = HashMap::new();
        for e in events.iter().filter(|e| e["type"] == "node") {
            let node = e["node"].as_str().unwrap();
            match e["status"].as_str().unwrap() {
                "completed" => *completed.entry(node).or_default() += 1,
                "running" => assert!(
                    !completed.contains_key(node),
                    "kill point {k}: {node} ran again after completing"
                ),
                _ => {}
            }
        }
        assert_eq!(completed.len(), reference.len(), "kill point {k}");
        assert!(
            completed.values().all(|&n| n == 1),
            "kill point {k}: a node completed twice: {completed:?}"
        );
        let finished = events
            .iter()
            .filter(|e| e["type"] == "run_finished")
            .count();
        assert_eq!(finished, 1, "kill point {k}");
    }
    assert!(kill_points >= 50);
    assert!(
        interrupted >= 20,
        "only {interrupted} of {kill_points} kills interrupted a run: move the kill points"
    );
}

#[test]
fn a_scheduled_retry_survives_a_kill_and_happens_on_time_after_resume() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = weft_tests::PluginDir::new().add("misbehave", weft_tests::MISBEHAVE);
    let g = dir.path().join("g.json");
    std::fs::write(
        &g,
        r#"{"tasks":[{"id":"f","type":"bad.flaky","defaults":{"n":3000}}]}"#,
    )
    .unwrap();
    let (g, p) = (g.to_str().unwrap(), plugins.path().to_str().unwrap());
    let data = dir.path().join("data");

    let mut child = weft(&data)
        .args(["-v", "run", g, "--plugins", p, "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let scheduled = stderr
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("retry scheduled"));
    assert!(scheduled, "weft never scheduled the retry");
    // The retry is committed in the background (milliseconds); it is due in 3 s.
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();

    let runs = json_of(weft(&data).args(["runs", "--json"]));
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    let status = json_of(weft(&data).args(["status", &run_id, "--json"]));
    assert_eq!(status["nodes"]["f"]["status"], "retrying");
    assert_eq!(status["nodes"]["f"]["attempt"], 1);
    let due = status["nodes"]["f"]["retry_at_ms"]
        .as_u64()
        .expect("the due time is stored");

    let out = weft(&data)
        .args(["resume", "--all", "--plugins", p, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = json_of(weft(&data).args(["status", &run_id, "--json"]));
    assert_eq!(status["status"], "succeeded");
    assert_eq!(status["nodes"]["f"]["output"], json!({"value": 2}));
    let log = weft(&data)
        .args(["events", &run_id, "--json"])
        .output()
        .unwrap();
    let second_start = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "node" && e["status"] == "running")
        .nth(1)
        .expect("a second attempt")["time_ms"]
        .as_u64()
        .unwrap();
    assert!(
        second_start >= due,
        "the retry ran {} ms before it was due",
        due - second_start
    );
}

/// A map of 2,000 `util.delay` elements, killed at 10 points and resumed:
/// the same result as an uninterrupted run, a clean event log, and no element
/// run twice: the resumed attempt starts its count at the elements already
/// stored and ends at exactly 2,000 (each element it runs counts once).
#[test]
fn a_killed_map_resumes_at_the_elements_not_yet_completed() {
    const N: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("map.json");
    let graph = json!({"tasks": [
        {"id": "m", "type": "map", "config": {"task": "util.delay", "concurrency": 16, "over": ["value"]},
         "defaults": {"ms": 2, "value": (0..N).collect::<Vec<_>>()}},
        {"id": "total", "type": "math.sum"}
    ], "dataflows": [{"sourceTaskId": "m", "sourceTaskPortId": "value",
                      "targetTaskId": "total", "targetTaskPortId": "values"}]});
    std::fs::write(&g, graph.to_string()).unwrap();
    let g = g.to_str().unwrap();
    let want = json!({"value": N * (N - 1) / 2});

    let mut resumed_mid_map = 0;
    for k in 0..10u64 {
        // Removed at the end of each kill point: each keeps the plugins'
        // components (~20 MB), too much to keep 60 of.
        let kept = tempfile::tempdir_in(dir.path()).unwrap();
        let data = kept.path().join(format!("kill-{k}"));
        let mut child = weft(&data)
            .args(["-v", "run", g, "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_start(&mut child, k);
        std::thread::sleep(Duration::from_millis(20 + k * 40));
        let _ = child.kill();
        let _ = child.wait();

        let runs = json_of(weft(&data).args(["runs", "--json"]));
        let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
        let before = json_of(weft(&data).args(["status", &run_id, "--json"]));
        let stored = before["nodes"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(id, n)| id.starts_with("m[") && n["status"] == "completed")
            .count();
        if runs[0]["status"] == "running" {
            let out = weft(&data)
                .args(["resume", "--all", "--json"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "kill point {k}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if stored > 0 && stored < N {
                resumed_mid_map += 1;
            }
        }
        let status = json_of(weft(&data).args(["status", &run_id, "--json"]));
        assert_eq!(status["status"], "succeeded", "kill point {k}");
        assert_eq!(status["nodes"]["total"]["output"], want, "kill point {k}");
        let values = &status["nodes"]["m"]["output"]["value"];
        assert_eq!(values.as_array().unwrap().len(), N, "kill point {k}");
        assert!(
            values
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .all(|(i, v)| *v == json!(i))
        );

        let log = weft(&data)
            .args(["events", &run_id, "--json"])
            .output()
            .unwrap();
        let events: Vec<Value> = String::from_utf8_lossy(&log.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "kill point {k}: gap or duplicate"
        );
        let completed = events
            .iter()
            .filter(|e| e["type"] == "node" && e["node"] == "m" && e["status"] == "completed")
            .count();
        assert_eq!(completed, 1, "kill point {k}: the map completed once");
        let progress: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "progress" && e["node"] == "m")
            .filter_map(|e| e["message"].as_str())
            .collect();
        assert_eq!(
            progress.last(),
            Some(&"map 2,000 / 2,000"),
            "kill point {k}"
        );
        // Few progress events, not one per element.
        assert!(
            progress.len() < 200,
            "kill point {k}: {} progress events",
            progress.len()
        );
        // The resumed attempt counted the stored elements as done from its
        // first announcement on.
        if stored > 0 {
            let after_resume = events
                .iter()
                .skip_while(|e| e["type"] != "run_started" || e["resumed"] != true)
                .find(|e| e["type"] == "progress" && e["node"] == "m")
                .and_then(|e| e["fraction"].as_f64());
            if let Some(f) = after_resume {
                assert!(
                    f * N as f64 >= stored as f64 - 0.5,
                    "kill point {k}: restarted below {stored}"
                );
            }
        }
    }
    assert!(
        resumed_mid_map >= 3,
        "only {resumed_mid_map} kills landed inside the map: move the kill points"
    );
}
