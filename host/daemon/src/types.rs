//! The HTTP API's request and response bodies. The handlers produce and
//! read exactly these types, the OpenAPI document is generated from them
//! (utoipa), and the CLI's client reads answers into them: one definition
//! for the server, the document and the client. This module must not know
//! how a request is handled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use weft::events::{NodeStatus, RunStatus};

/// Every error answer: `{"error": message}`, with the list of problems when
/// a graph or input is invalid.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, naming the field, limit or resource.
    pub error: String,
    /// For an invalid graph or input: every problem, each with its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
}

/// `POST /v1/runs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// A graph (object, in Workglow's shape) or the name of a saved graph.
    #[schema(schema_with = graph_or_name)]
    pub graph: Value,
    /// With a saved graph: its version (default: the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The run's input, given to the root nodes.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub input: Value,
    /// Submitting again with the same key (per user) returns the first run.
    /// The `Idempotency-Key` header works too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Preview instead of run: only the nodes without effects or calls to
    /// models or the network run (reading, not filling, the output cache);
    /// the answer (200, a `Preview`) comes when it ends; nothing is stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
}

/// `graph` of a submission: an object, or a saved graph's name.
fn graph_or_name() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Object))
        .item(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(
            "A graph (object, in Workglow's shape) or the name of a saved graph.",
        ))
        .build();
    Schema::OneOf(one_of)
}

/// `POST /v1/runs` answered 200: the run an idempotency key already
/// started, or, for a preview, the preview.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema is used
pub enum SubmitAnswer {
    /// The run already started.
    Submitted(Submitted),
    /// The preview.
    Preview(Preview),
}

/// The answer to a preview.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Preview {
    /// How it ended.
    #[schema(value_type = RunState)]
    pub status: RunStatus,
    /// Every node's state.
    #[schema(value_type = HashMap<String, NodeState>)]
    pub nodes: BTreeMap<String, NodeStatus>,
    /// The output of every node that ran.
    #[schema(value_type = Object)]
    pub outputs: BTreeMap<String, Value>,
    /// The input each node not run would have received.
    #[schema(value_type = Object)]
    pub previewed: BTreeMap<String, Value>,
    /// Nodes that failed (or were skipped or cancelled).
    pub failures: Vec<NodeError>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// The answer to a submission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// The run's id.
    pub run_id: String,
    /// Its state now.
    #[schema(value_type = RunState)]
    pub status: RunStatus,
    /// True when the idempotency key named a run submitted before.
    pub existing: bool,
}

/// A run's state.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used: it documents `RunStatus`
pub enum RunState {
    /// Not finished.
    Running,
    /// Every node completed.
    Succeeded,
    /// At least one node failed.
    Failed,
    /// Cancelled.
    Cancelled,
}

/// A node's state.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used: it documents `NodeStatus`
pub enum NodeState {
    /// Waiting for its inputs.
    Pending,
    /// Executing.
    Running,
    /// Waiting for its next attempt.
    Retrying,
    /// A `wait` node waiting for its signal (or its timeout).
    Waiting,
    /// Finished with an output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Not run: something it depends on failed.
    Skipped,
    /// Stopped by a cancellation.
    Cancelled,
    /// Not run, and not a failure: every dataflow into it was disabled (a
    /// branch not taken, an error port's other side).
    Disabled,
}

/// A dataflow's state, in a run's events.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used: it documents `DataflowStatus`
pub enum DataflowState {
    /// Its source has not ended.
    Pending,
    /// Its value was delivered.
    Completed,
    /// Its source failed: nothing was delivered.
    Skipped,
    /// Not taken (a branch, an error port's other side).
    Disabled,
}

/// A log line's severity.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used: it documents `LogLevel`
pub enum LogSeverity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One event of a run: the `data` of each Server-Sent Event of
/// `GET /v1/runs/{id}/events` (whose SSE `id` is `seq` and SSE `event` is
/// `type`). Documents `weft::events::Event`; the contract test checks the
/// events a daemon sends against it.
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used
pub struct RunEvent {
    /// The run.
    pub run_id: String,
    /// 1, 2, 3, … per run, without gaps.
    pub seq: u64,
    /// When, ms since the Unix epoch.
    pub time_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: RunEventKind,
}

/// What a [`RunEvent`] says happened, by its `type`.
#[derive(ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used
pub enum RunEventKind {
    /// The run started (or resumed).
    RunStarted {
        /// How many nodes it has.
        nodes: u64,
        /// True when it continues after an interruption.
        #[serde(default)]
        resumed: bool,
        /// True for a preview.
        #[serde(default)]
        preview: bool,
    },
    /// The run ended.
    RunFinished {
        /// How.
        status: RunState,
        /// Why, when not its nodes' doing (a limit, a cancel).
        #[serde(default)]
        reason: Option<String>,
    },
    /// A node changed state.
    Node {
        /// The node.
        node: String,
        /// Its new state.
        status: NodeState,
        /// For `failed`, `skipped`, `cancelled`.
        #[serde(default)]
        error: Option<String>,
        /// For `completed`: the output came from the cache.
        #[serde(default)]
        cached: bool,
    },
    /// A dataflow changed state.
    Dataflow {
        /// Its position in the graph's `dataflows`.
        index: u64,
        /// Its new state.
        status: DataflowState,
    },
    /// A task reported progress.
    Progress {
        /// The node.
        node: String,
        /// In [0, 1].
        fraction: f32,
        /// What it is doing.
        #[serde(default)]
        message: Option<String>,
    },
    /// A task wrote a log line.
    Log {
        /// The node.
        node: String,
        /// Its severity.
        level: LogSeverity,
        /// The line.
        message: String,
    },
}

/// A run in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// Its state.
    #[schema(value_type = RunState)]
    pub status: RunStatus,
    /// Where its graph came from (`request graph`, `graph NAME@VERSION`, a file).
    pub origin: String,
    /// The saved graph it runs, if any.
    pub graph_name: Option<String>,
    /// Who submitted it (none for runs started from the CLI).
    pub owner: Option<String>,
    /// When it was created, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it last changed state.
    pub updated_ms: u64,
}

/// One node of a run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    /// Its state.
    #[schema(value_type = NodeState)]
    pub status: NodeStatus,
    /// Its attempt (1 for the first).
    pub attempt: u32,
    /// Its error, when it failed, was skipped or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When its next attempt is due, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at_ms: Option<u64>,
    /// For a map, fallback, reduce or while node: how many of its instances
    /// (elements, alternatives, iterations) have ended, by how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub instances: Option<weft::instance::InstanceCount>,
}

/// A failed (or skipped, cancelled) node, in a run's `errors`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeError {
    /// The node.
    pub node: String,
    /// Its state.
    #[schema(value_type = NodeState)]
    pub status: NodeStatus,
    /// What went wrong.
    pub error: String,
}

/// A run with every node's state, and its outputs once it ended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    /// The run.
    #[serde(flatten)]
    pub summary: RunSummary,
    /// Every node's state, by node id.
    pub nodes: BTreeMap<String, NodeView>,
    /// Every completed node's output, by node id (once the run ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<serde_json::Map<String, Value>>,
    /// The nodes that did not complete, with why.
    pub errors: Vec<NodeError>,
    /// How many events the run's log holds.
    pub events: u64,
}

/// `POST /v1/validate`: a graph and a run input to check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The graph (Weft's or Workglow's JSON; nodes may name your saved
    /// graphs as `graph:NAME`).
    #[schema(value_type = Object)]
    pub graph: Value,
    /// The run's input (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
}

/// A graph JSON format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GraphFormat {
    /// Weft's JSON, canonical.
    Weft,
    /// What Workglow's `toJSON()` writes.
    Workglow,
}

/// `POST /v1/convert` query.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConvertQuery {
    /// The format to write the graph in.
    #[param(inline)]
    pub to: GraphFormat,
}

/// `POST /v1/convert`: the graph in the format asked for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Converted {
    /// The graph.
    #[schema(value_type = Object)]
    pub graph: Value,
}

/// `POST /v1/validate`: what is wrong with a graph, if anything.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Validation {
    /// True when there are no problems: a submission would start.
    pub valid: bool,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

/// One problem in a graph, and where it is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// What is wrong, naming where.
    pub message: String,
    /// The node at this position of `tasks` (for a problem inside a
    /// compound node, the compound node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<usize>,
    /// The dataflow at this position of `dataflows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataflow: Option<usize>,
    /// These nodes, by id (a cycle).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// `GET /v1/runs/{id}/graph`: what a run executes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunGraph {
    /// The graph, as submitted (saved graphs its nodes use pinned in
    /// place); compound nodes' states are under `NODE/CHILD` ids.
    #[schema(value_type = Object)]
    pub graph: Value,
    /// The run's input.
    #[schema(value_type = Object)]
    pub input: Value,
}

/// `GET /v1/runs/{id}/nodes/{node}/input`: what a node started with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeInputView {
    /// The input, one value per port.
    #[schema(value_type = Object)]
    pub input: Value,
}

/// `GET /v1/runs` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs in this state.
    #[param(value_type = Option<RunState>)]
    pub status: Option<RunStatus>,
    /// Only runs of this saved graph (or with this origin).
    pub graph: Option<String>,
    /// Only runs created at or after, ms since the Unix epoch.
    pub since: Option<u64>,
    /// At most this many (1-1000, default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; none on the last.
    pub next_cursor: Option<String>,
}

/// `GET /v1/runs/{id}/events` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events after this sequence number (the `Last-Event-ID` header wins).
    pub after: Option<u64>,
}

/// `GET /v1/graphs/{name}` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// The version (default: the newest).
    pub version: Option<u32>,
}

/// A version of a saved graph, as saved.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GraphSaved {
    /// Its name.
    pub name: String,
    /// Its version (1 for the first save).
    pub version: u32,
    /// When it was saved, ms since the Unix epoch.
    pub saved_ms: u64,
}

/// `PUT /v1/graphs/{name}/sharing` body: whom to share a graph with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphSharing {
    /// Users who may read and run the graph (as `OWNER/NAME`), replacing
    /// the previous list; `[]` stops sharing.
    pub users: Vec<String>,
}

/// A saved graph, with the graph itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SavedGraphView {
    /// Its name.
    pub name: String,
    /// This version.
    pub version: u32,
    /// When this version was saved, ms since the Unix epoch.
    pub saved_ms: u64,
    /// Who saved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Users it is shared with (who may read and run it, never change it).
    #[serde(default)]
    pub shared_with: Vec<String>,
    /// The graph.
    #[schema(value_type = Object)]
    pub graph: Value,
}

/// A saved graph in a listing (its newest version).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GraphListing {
    /// Its name.
    pub name: String,
    /// Its newest version.
    pub version: u32,
    /// When that was saved.
    pub saved_ms: u64,
    /// Who saved it.
    pub owner: Option<String>,
    /// How many nodes it has.
    pub tasks: usize,
}

/// `GET /v1/dead-letters` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// The dead letters of at most this many failed runs (1-1000, default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of dead letters, newest run first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterPage {
    /// The failed nodes of the page's failed runs.
    pub dead_letters: Vec<DeadLetterView>,
    /// Pass as `cursor` for the next page; none on the last.
    pub next_cursor: Option<String>,
}

/// A failed node of a failed run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    /// `RUN_ID:NODE`, for `POST /v1/dead-letters/{id}/retry`.
    pub id: String,
    /// The run.
    pub run_id: String,
    /// The node.
    pub node: String,
    /// Its task type.
    pub task_type: String,
    /// How many attempts it had.
    pub attempts: u32,
    /// Each attempt's error, oldest first.
    pub errors: Vec<String>,
    /// When it failed for good, ms since the Unix epoch.
    pub failed_ms: u64,
}

/// A dead letter sent back to run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Redriven {
    /// The run, running again.
    pub run_id: String,
    /// The node that runs again.
    pub node: String,
    /// `running`.
    #[schema(value_type = RunState)]
    pub status: RunStatus,
}

/// A backup of the embedded store, written on an operator's request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupWritten {
    /// The file, on the daemon's machine.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A task type, as `weft tasks --json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskTypeView {
    /// Its id (`text.split`).
    pub id: String,
    /// Its version.
    pub version: String,
    /// Human title.
    pub title: String,
    /// Category.
    pub category: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its input.
    #[schema(value_type = Object)]
    pub input_schema: Value,
    /// JSON Schema of its output.
    #[schema(value_type = Object)]
    pub output_schema: Value,
    /// Whether it changes anything outside its output.
    pub side_effects: bool,
    /// Whether its outputs may be cached.
    pub cacheable: bool,
    /// Its default time limit.
    pub timeout_ms: u64,
    /// The plugin that provides it (`native` for tasks built into the host).
    pub plugin: String,
    /// Other names it answers to (Workglow's class names).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Each declared input and output port with the JSON types it allows
    /// (`{"input": {"value": ["integer"]}, "output": {…}}`): what the
    /// graph builders match ports by.
    #[schema(value_type = Object)]
    #[serde(default)]
    pub ports: Value,
}

/// A plugin found in the plugins folder (or built in).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginView {
    /// Its name.
    pub name: String,
    /// Where it came from (a file, or `builtin`).
    pub source: String,
    /// SHA-256 of its component.
    pub sha256: String,
    /// The task types it provides.
    pub tasks: Vec<String>,
    /// Whether it serves models (it exports `weft:plugin/provider`): a
    /// model configured with `provider = "plugin:NAME"`.
    #[serde(default)]
    pub provider: bool,
    /// Why it failed to load.
    pub error: Option<String>,
}

/// `PUT /v1/schedules/{name}`: a saved graph started with an input on a
/// cron pattern or at a fixed interval, as you.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// The saved graph: your own `NAME`, or `OWNER/NAME` shared with you.
    pub graph: String,
    /// Its version (default: the newest at each firing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The runs' input (a JSON object).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub input: Value,
    /// A cron pattern: five fields (`0 3 * * *`), or six with seconds
    /// first. Give this or `every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The time zone `cron` is read in, by IANA name (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A fixed interval (`15m`, `1h 30m`; at least `1s`), the first
    /// occurrence one interval from now. Give this or `cron`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Occurrences missed while no host ran: `skip`, `one` (the latest;
    /// the default) or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CatchUpPolicy>)]
    pub catch_up: Option<weft::schedule::CatchUp>,
    /// Make it paused.
    #[serde(default)]
    pub paused: bool,
}

/// What a schedule does about occurrences no host was up for.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used: it documents `CatchUp`
pub enum CatchUpPolicy {
    /// Drop occurrences more than a minute late.
    Skip,
    /// One run, for the latest.
    One,
    /// A run for each, oldest first.
    All,
}

/// A schedule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// The saved graph it starts.
    pub graph: String,
    /// That graph's version (none: the newest at each firing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The runs' input.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Its cron pattern, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The time zone of `cron`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Its interval in ms, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// What it does about missed occurrences.
    #[schema(value_type = CatchUpPolicy)]
    pub catch_up: weft::schedule::CatchUp,
    /// Paused: fires nothing until resumed.
    pub paused: bool,
    /// When it was made, ms since the Unix epoch.
    pub created_ms: u64,
    /// Its next occurrence, ms since the Unix epoch (none: never again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_ms: Option<u64>,
    /// Its latest firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<ScheduleFiring>,
}

/// A schedule's latest firing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleFiring {
    /// The occurrence, ms since the Unix epoch.
    pub at_ms: u64,
    /// The run it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Why it started none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/schedules`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    /// Your schedules, by name.
    pub schedules: Vec<ScheduleView>,
}

/// `POST /v1/runs/{id}/signals/{name}`: the signal was taken.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignalView {
    /// The run.
    pub run_id: String,
    /// The signal's name.
    pub signal: String,
    /// The wait nodes that take it (those for it that had not ended).
    pub nodes: Vec<String>,
}

/// `PUT /v1/secrets/{name}`: a secret's value and the plugins that may
/// read it (through their `config` import).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRequest {
    /// The value (at most 64 KiB). Never shown again.
    pub value: String,
    /// The plugins that may read it.
    pub plugins: Vec<String>,
}

impl std::fmt::Debug for SecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRequest")
            .field("value", &"…")
            .field("plugins", &self.plugins)
            .finish()
    }
}

/// One of a user's secrets: never its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretView {
    /// Its name.
    pub name: String,
    /// The plugins that may read it.
    pub plugins: Vec<String>,
    /// When it was last set, ms since the Unix epoch.
    pub updated_ms: u64,
}

/// `GET /v1/secrets`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretList {
    /// The user's secrets, by name.
    pub secrets: Vec<SecretView>,
}

/// One key-value namespace of the user's, with what it holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NamespaceView {
    /// `plugin.NAME` (a plugin's own) or `shared.NAME` (granted to plugins).
    pub namespace: String,
    /// Keys (expired ones until swept).
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// `GET /v1/storage`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NamespaceList {
    /// Your namespaces, by name.
    pub namespaces: Vec<NamespaceView>,
}

/// `GET /v1/storage/{namespace}`: a page of keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyPage {
    /// Keys in byte order.
    pub keys: Vec<String>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET /v1/storage/{namespace}?…` parameters.
#[derive(Debug, Clone, Deserialize, IntoParams)]
pub struct KeyQuery {
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// Only keys after this one (a page's `next`).
    pub after: Option<String>,
    /// Keys per page, 1 to 1000 (default 100).
    pub limit: Option<usize>,
}

/// `GET /v1/storage/{namespace}/{key}`: one value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ValueView {
    /// The key.
    pub key: String,
    /// Its version.
    pub version: u64,
    /// When it expires, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// The value, when it is UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The value in hex, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}
