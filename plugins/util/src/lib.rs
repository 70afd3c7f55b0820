//! Standard tasks: utilities for building and debugging pipelines (`util.*`).
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use weft_sdk::{Context, Level, TaskDef, TaskError, Value};

#[derive(Deserialize, JsonSchema)]
struct DelayIn {
    /// How long to sleep, in milliseconds (at most one hour).
    ms: u64,
    /// Passed through to the output unchanged.
    #[serde(default)]
    value: Value,
}

#[derive(Serialize, JsonSchema)]
struct DelayOut {
    /// The input `value`, unchanged.
    value: Value,
    /// How long the task slept, in milliseconds.
    slept_ms: u64,
}

fn delay(input: DelayIn, ctx: &Context) -> Result<DelayOut, TaskError> {
    if input.ms > 3_600_000 {
        return Err(TaskError::invalid_input("ms is over one hour (3600000)"));
    }
    ctx.progress(0.0, Some("sleeping"));
    std::thread::sleep(std::time::Duration::from_millis(input.ms));
    ctx.progress(1.0, None);
    Ok(DelayOut {
        value: input.value,
        slept_ms: input.ms,
    })
}

#[derive(Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

#[derive(Deserialize, JsonSchema)]
struct DebugIn {
    /// What to log: a string as is, anything else as JSON.
    message: Value,
    /// Severity (default `info`).
    #[serde(default)]
    level: LogLevel,
}

#[derive(Serialize, JsonSchema)]
struct DebugOut {
    /// The input `message`, unchanged.
    message: Value,
}

fn debug_log(input: DebugIn, ctx: &Context) -> Result<DebugOut, TaskError> {
    let text = match &input.message {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let level = match input.level {
        LogLevel::Trace => Level::Trace,
        LogLevel::Debug => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warn => Level::Warn,
        LogLevel::Error => Level::Error,
    };
    ctx.log(level, &text);
    Ok(DebugOut {
        message: input.message,
    })
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum DateFormat {
    /// `2026-12-03T21:05:03.250Z`
    #[default]
    Iso,
    /// `12/3/2026`
    Date,
    /// `9:05:03 PM`
    Time,
    /// `12/3/2026, 9:05:03 PM`
    Datetime,
    /// Milliseconds since 1970-01-01T00:00:00Z, as text.
    Unix,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct DateIn {
    /// Date string, ISO 8601 timestamp, or Unix timestamp in milliseconds.
    value: String,
    /// Output format (default `iso`).
    #[serde(default)]
    format: DateFormat,
    /// Locale of `date`, `time` and `datetime`: only `en-US` (the default).
    #[serde(default)]
    locale: Option<String>,
    /// IANA time zone of `date`, `time` and `datetime` (default UTC).
    #[serde(default)]
    time_zone: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct DateOut {
    /// Formatted date string.
    result: String,
}

/// `value` as JavaScript's `new Date(value)` reads the forms Workglow's
/// schema names: digits are milliseconds since the epoch; an ISO 8601 date
/// is midnight UTC; an ISO 8601 date and time without an offset is read as
/// UTC (JavaScript takes the machine's zone).
fn parse_date(value: &str) -> Result<jiff::Timestamp, TaskError> {
    let invalid = || TaskError::invalid_input(format!("Invalid date: {value}"));
    let text = value.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = text.parse().map_err(|_| invalid())?;
        return jiff::Timestamp::from_millisecond(ms).map_err(|_| invalid());
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let civil = match text.parse::<jiff::civil::DateTime>() {
        Ok(dt) => dt,
        Err(_) => text
            .parse::<jiff::civil::Date>()
            .map_err(|_| invalid())?
            .into(),
    };
    civil
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|_| invalid())
}

/// Workglow's `DateFormatTask`, with `en-US` as the only locale.
fn date_format(i: DateIn, _: &Context) -> Result<DateOut, TaskError> {
    let ts = parse_date(&i.value)?;
    // JavaScript dates count whole milliseconds.
    let ms = ts.as_millisecond();
    let ts = jiff::Timestamp::from_millisecond(ms)
        .map_err(|e| TaskError::invalid_input(e.to_string()))?;
    if let Some(locale) = i
        .locale
        .as_deref()
        .filter(|l| !l.eq_ignore_ascii_case("en-US"))
    {
        return Err(TaskError::invalid_input(format!(
            "locale `{locale}` is not supported: dates are formatted in en-US only"
        )));
    }
    let zone = match &i.time_zone {
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|_| {
            TaskError::invalid_input(format!(
                "unknown time zone `{name}` (an IANA name such as `America/New_York`)"
            ))
        })?,
        None => jiff::tz::TimeZone::UTC,
    };
    let utc = ts.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let local = ts.to_zoned_datetime(zone);
    let date = || format!("{}/{}/{}", local.month(), local.day(), local.year());
    let time = || {
        let hour = local.hour();
        let (h12, half) = match hour {
            0 => (12, "AM"),
            1..=11 => (hour, "AM"),
            12 => (12, "PM"),
            _ => (hour - 12, "PM"),
        };
        format!("{h12}:{:02}:{:02} {half}", local.minute(), local.second())
    };
    let result = match i.format {
        DateFormat::Iso => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            utc.year(),
            utc.month(),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second(),
            utc.millisecond()
        ),
        DateFormat::Unix => ms.to_string(),
        DateFormat::Date => date(),
        DateFormat::Time => time(),
        DateFormat::Datetime => format!("{}, {}", date(), time()),
    };
    Ok(DateOut { result })
}

#[derive(Deserialize, JsonSchema)]
struct SplitIn {
    /// An array, split into one output per element; any other value is
    /// one element.
    #[serde(default)]
    input: Value,
}

/// `output_0`, `output_1`, … one per element of `input`, in order (Workglow's
/// `SplitTask`): the ports exist only once the array is known, so the
/// output schema is open.
fn split(i: SplitIn, _: &Context) -> Result<serde_json::Map<String, Value>, TaskError> {
    let items = match i.input {
        Value::Array(items) => items,
        one => vec![one],
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(n, v)| (format!("output_{n}"), v))
        .collect())
}

fn tasks() -> Vec<TaskDef> {
    vec![
        TaskDef::new("util.date-format", date_format)
            .title("Date format")
            .description(
                "Parses `value` (ISO 8601 or Unix milliseconds) and writes it as `format` → result.",
            )
            .category("Utility"),
        TaskDef::new("util.split", split)
            .title("Split")
            .description(
                "Splits the array `input` into one output per element: `output_0`, `output_1`, …",
            )
            .category("Utility"),
        TaskDef::new("util.delay", delay)
            .title("Delay")
            .description(
                "Sleeps `ms` milliseconds, then passes `value` through. For tests and demos.",
            )
            .not_cacheable(),
        TaskDef::new("util.debug-log", debug_log)
            .title("Debug log")
            .description("Logs `message` at `level` through the host's log, and passes it through.")
            .not_cacheable(),
    ]
}

weft_sdk::export_plugin!(tasks);
