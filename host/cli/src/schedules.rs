//! `weft schedules`: a daemon's schedules (`/v1/schedules`), listed, added,
//! paused, resumed and removed. Thin: one HTTP call each and a printout.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;

use crate::client::{Client, ServerArgs};
use weft::schedule::CatchUp;
use weft_daemon::types::{ScheduleList, ScheduleRequest, ScheduleView};

#[derive(Subcommand, Debug)]
pub enum SchedulesAction {
    /// List your schedules (the default).
    List,
    /// Add a schedule, or replace the one of that name.
    Add {
        /// Its name.
        name: String,
        /// The saved graph it starts (yours, or `OWNER/NAME` shared with you).
        #[arg(long)]
        graph: String,
        /// That graph's version (default: the newest at each firing).
        #[arg(long)]
        version: Option<u32>,
        /// A cron pattern, such as "0 3 * * *" (six fields: seconds first).
        #[arg(long, required_unless_present = "every", conflicts_with = "every")]
        cron: Option<String>,
        /// The time zone of --cron, by IANA name (default UTC).
        #[arg(long, requires = "cron")]
        time_zone: Option<String>,
        /// A fixed interval instead, such as 15m or "1h 30m".
        #[arg(long)]
        every: Option<String>,
        /// The runs' input: a JSON object (or @FILE).
        #[arg(long, default_value = "{}")]
        input: String,
        /// Occurrences missed while no daemon ran: skip, one (the latest) or all.
        #[arg(long, value_enum, default_value = "one")]
        catch_up: CatchUpArg,
        /// Add it paused.
        #[arg(long)]
        paused: bool,
    },
    /// Pause a schedule: it starts nothing until resumed.
    Pause {
        /// The schedule.
        name: String,
    },
    /// Resume a paused schedule (occurrences that passed meanwhile are skipped).
    Resume {
        /// The schedule.
        name: String,
    },
    /// Remove a schedule (the runs it started stay).
    Rm {
        /// The schedule.
        name: String,
    },
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum CatchUpArg {
    Skip,
    One,
    All,
}

impl From<CatchUpArg> for CatchUp {
    fn from(c: CatchUpArg) -> CatchUp {
        match c {
            CatchUpArg::Skip => CatchUp::Skip,
            CatchUpArg::One => CatchUp::One,
            CatchUpArg::All => CatchUp::All,
        }
    }
}

pub async fn run(
    server: &ServerArgs,
    action: Option<SchedulesAction>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    let path = |name: &str| format!("/v1/schedules/{name}");
    let one = match action.unwrap_or(SchedulesAction::List) {
        SchedulesAction::List => {
            let request = client.request(Method::GET, "/v1/schedules");
            let (_, list): (_, ScheduleList) = client.call(request).await?;
            return print_list(&list, json_out);
        }
        SchedulesAction::Add {
            name,
            graph,
            version,
            cron,
            time_zone,
            every,
            input,
            catch_up,
            paused,
        } => {
            let body = ScheduleRequest {
                graph,
                version,
                input: crate::read_input(&input)?,
                cron,
                time_zone,
                every,
                catch_up: Some(catch_up.into()),
                paused,
            };
            client.request(Method::PUT, &path(&name)).json(&body)
        }
        SchedulesAction::Pause { name } => {
            client.request(Method::POST, &format!("{}/pause", path(&name)))
        }
        SchedulesAction::Resume { name } => {
            client.request(Method::POST, &format!("{}/resume", path(&name)))
        }
        SchedulesAction::Rm { name } => {
            let request = client.request(Method::DELETE, &path(&name));
            client.call_empty(request).await?;
            writeln!(std::io::stdout(), "removed schedule {name}")?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let (_, schedule): (_, ScheduleView) = client.call(one).await?;
    print_list(
        &ScheduleList {
            schedules: vec![schedule],
        },
        json_out,
    )
}

fn print_list(list: &ScheduleList, json_out: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    if json_out {
        writeln!(out, "{}", serde_json::to_string_pretty(&list.schedules)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for s in &list.schedules {
        writeln!(out, "{}", line(s))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME  WHEN  graph G  next TIME [paused] [last: ...]`.
fn line(s: &ScheduleView) -> String {
    let when = match (&s.cron, &s.time_zone, s.every_ms) {
        (Some(cron), zone, _) => format!("cron \"{cron}\" {}", zone.as_deref().unwrap_or("UTC")),
        (None, _, Some(ms)) => format!("every {}", human_ms(ms)),
        _ => "?".into(),
    };
    let graph = match s.version {
        Some(v) => format!("{}@{v}", s.graph),
        None => s.graph.clone(),
    };
    let next = match (s.paused, s.next_ms) {
        (true, _) => "paused".to_string(),
        (false, Some(ms)) => format!("next {}", timestamp(ms)),
        (false, None) => "no next occurrence".to_string(),
    };
    let mut text = format!("{}  {when}  graph {graph}  {next}", s.name);
    if let Some(last) = &s.last {
        let what = match (&last.run_id, &last.error) {
            (_, Some(e)) => format!("error: {e}"),
            (Some(run), None) => format!("run {run}"),
            (None, None) => String::new(),
        };
        text.push_str(&format!("  last {} {what}", timestamp(last.at_ms)));
    }
    text
}

fn timestamp(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| format!("{ms} ms"), |t| t.to_string())
}

/// `1h 30m`, as an interval is written.
fn human_ms(ms: u64) -> String {
    format!("{:#}", jiff::SignedDuration::from_millis(ms as i64))
}
