//! The live progress display of `weft run` on a terminal: a bar of finished
//! nodes, the running ones, and task log lines printed above it.

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use weft::events::{EventHub, EventKind, NodeStatus};
use weft::graph::Plan;

/// A running display; [`Display::finish`] waits for the run's last event.
pub struct Display {
    task: JoinHandle<()>,
}

impl Display {
    /// Follow `hub`'s events for a run of `plan`.
    pub fn start(hub: &EventHub, plan: &Plan) -> Display {
        let mut events = hub.subscribe();
        let bar = ProgressBar::new(plan.nodes.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} nodes {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        let task = tokio::spawn(async move {
            let mut running = 0usize;
            let mut failed = 0usize;
            while let Some(event) = events.recv().await {
                match event.kind {
                    EventKind::Node {
                        node,
                        status,
                        error,
                        ..
                    } => {
                        match status {
                            NodeStatus::Running => running += 1,
                            NodeStatus::Completed => {
                                running = running.saturating_sub(1);
                                bar.inc(1);
                            }
                            NodeStatus::Failed => {
                                running = running.saturating_sub(1);
                                failed += 1;
                                bar.inc(1);
                                line(&bar, &format!("✗ {node}: {}", error.unwrap_or_default()));
                            }
                            NodeStatus::Retrying => {
                                running = running.saturating_sub(1);
                                line(
                                    &bar,
                                    &format!(
                                        "↻ {node}: {} (will retry)",
                                        error.unwrap_or_default()
                                    ),
                                );
                            }
                            NodeStatus::Waiting => {
                                line(&bar, &format!("… {node}: waiting for its signal"));
                            }
                            NodeStatus::Skipped | NodeStatus::Cancelled | NodeStatus::Disabled => {
                                bar.inc(1)
                            }
                            _ => {}
                        }
                        let failed_note = if failed > 0 {
                            format!(", {failed} failed")
                        } else {
                            String::new()
                        };
                        bar.set_message(format!("({running} running{failed_note})"));
                    }
                    EventKind::Log {
                        node,
                        level,
                        message,
                    } => {
                        line(&bar, &format!("[{node}] {level}: {message}"));
                    }
                    EventKind::Progress {
                        node,
                        fraction,
                        message,
                    } => {
                        bar.set_message(format!(
                            "({running} running) {node}: {:.0}% {}",
                            fraction * 100.0,
                            message.unwrap_or_default()
                        ));
                    }
                    EventKind::RunFinished { .. } => break,
                    _ => {}
                }
            }
            bar.finish_and_clear();
        });
        Display { task }
    }

    /// Wait until the display has shown the end of the run.
    pub async fn finish(self) {
        let _ = self.task.await;
    }
}

fn line(bar: &ProgressBar, text: &str) {
    if bar.is_hidden() {
        eprintln!("{text}");
    } else {
        bar.println(text);
    }
}
