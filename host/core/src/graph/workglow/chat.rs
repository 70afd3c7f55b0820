//! Workglow's `AiChatTask` and `AiChatWithKbTask` as Weft `while` nodes.
//! Workglow's tasks loop
//! inside one task, asking a person through its human connector between
//! turns; in Weft the loop is the graph's, so each turn is durable and each
//! reply is a signal: every step, `ai.chat` (grounded in knowledge bases:
//! `rag.chat`) answers the conversation, a
//! `wait` node `reply` takes the person's answer (`chat[3]/reply`, or
//! plain `reply` while it is the only one waiting), and `ai.chat-answer`
//! adds it and says whether the chat goes on.

use serde_json::{Map, Value, json};

use crate::graph::{MAX_ELEMENTS, WHILE};

/// The chat classes, and the task that answers each turn.
const CHATS: [(&str, &str); 2] = [("AiChatTask", "ai.chat"), ("AiChatWithKbTask", "rag.chat")];

/// The task that answers each turn of chat class `class`, if it is one.
pub(super) fn turn_of(class: &str) -> Option<&'static str> {
    CHATS.iter().find(|(c, _)| *c == class).map(|(_, t)| *t)
}

/// The most steps when `maxIterations` is not among the node's defaults
/// (one given by a dataflow is kept by `ai.chat-answer`; Workglow's
/// default, 100, too).
const MOST_STEPS: u64 = 10_000;

/// Rewrite `node`, a chat whose turns `turn` answers, into a `while` node
/// over the chat's body; its defaults and dataflows stay, as the loop's
/// input and output.
pub(super) fn to_weft(node: &mut Map<String, Value>, turn: &str, at: &str) -> Result<(), String> {
    let steps = match node.get("defaults").and_then(|d| d.get("maxIterations")) {
        None => MOST_STEPS,
        Some(n) => n
            .as_u64()
            .filter(|n| (1..=MAX_ELEMENTS as u64).contains(n))
            .ok_or_else(|| format!("{at}: `maxIterations` must be a whole number from 1"))?,
    };
    let mut config = match node.remove("config") {
        None => Map::new(),
        Some(Value::Object(config)) => config,
        Some(_) => return Err(format!("{at}: `config` is not an object")),
    };
    config.insert("condition".into(), json!("output.go == true"));
    config.insert("max_iterations".into(), json!(steps));
    node.insert("type".into(), json!(WHILE));
    node.insert("config".into(), Value::Object(config));
    node.insert("graph".into(), body(turn));
    Ok(())
}

/// One step of the chat whose turns `turn` answers.
fn body(turn: &str) -> Value {
    let flow = |s: &str, sp: &str, t: &str, tp: &str| json!({"sourceTaskId": s, "sourceTaskPortId": sp, "targetTaskId": t, "targetTaskPortId": tp});
    let answer = json!({
        "type": "object",
        "properties": {
            "action": {"enum": ["accept", "decline", "cancel"],
                       "description": "accept (the default) goes on; decline or cancel ends the chat"},
            "content": {"type": ["string", "array"],
                        "description": "The reply: text or content blocks; empty ends the chat"}
        },
        "additionalProperties": false
    });
    let mut flows = vec![
        flow("turn", "reply", "reply", "message"),
        flow("turn", "messages", "answer", "messages"),
        flow("turn", "text", "answer", "text"),
        flow("turn", "iterations", "answer", "iterations"),
        flow("turn", "maxIterations", "answer", "maxIterations"),
        flow("reply", "*", "answer", "*"),
    ];
    if turn == "rag.chat" {
        flows.push(flow("turn", "references", "answer", "references"));
        flows.push(flow(
            "turn",
            "contextReferences",
            "answer",
            "contextReferences",
        ));
    }
    json!({
        "tasks": [
            {"id": "turn", "type": turn},
            {"id": "reply", "type": "wait", "config": {"output_schema": answer}},
            {"id": "answer", "type": "ai.chat-answer"}
        ],
        "dataflows": flows
    })
}
