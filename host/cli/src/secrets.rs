//! `weft secrets`: your secrets on a daemon (`/v1/secrets`), listed, set
//! and removed. A value is read from standard input (never from the command
//! line, where other users of the machine could see it) and never printed.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;

use crate::client::{Client, ServerArgs};
use weft_daemon::types::{SecretList, SecretRequest};

#[derive(Subcommand, Debug)]
pub enum SecretsAction {
    /// List your secrets: names and the plugins that may read them (the default).
    List,
    /// Set a secret from standard input (`weft secrets set TOKEN --plugin p < token.txt`).
    Set {
        /// Its name: 1–128 of [A-Za-z0-9._-].
        name: String,
        /// A plugin that may read it (repeat for more).
        #[arg(long = "plugin", required = true)]
        plugins: Vec<String>,
    },
    /// Remove a secret.
    Rm {
        /// The secret.
        name: String,
    },
}

pub async fn run(
    server: &ServerArgs,
    action: Option<SecretsAction>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(server)?;
    let mut out = std::io::stdout();
    match action.unwrap_or(SecretsAction::List) {
        SecretsAction::List => {
            let (_, list): (_, SecretList) = client
                .call(client.request(Method::GET, "/v1/secrets"))
                .await?;
            if json_out {
                writeln!(out, "{}", serde_json::to_string_pretty(&list.secrets)?)?;
            }
            for s in list.secrets.iter().filter(|_| !json_out) {
                writeln!(out, "{}  plugins: {}", s.name, s.plugins.join(", "))?;
            }
        }
        SecretsAction::Set { name, plugins } => {
            let value = read_value()?;
            let body = SecretRequest { value, plugins };
            let request = client
                .request(Method::PUT, &format!("/v1/secrets/{name}"))
                .json(&body);
            client.call_empty(request).await?;
            writeln!(out, "set secret {name}")?;
        }
        SecretsAction::Rm { name } => {
            let request = client.request(Method::DELETE, &format!("/v1/secrets/{name}"));
            client.call_empty(request).await?;
            writeln!(out, "removed secret {name}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The value on standard input, without the line end a shell adds.
fn read_value() -> anyhow::Result<String> {
    let mut value = String::new();
    std::io::stdin()
        .take(64 << 10 | 1)
        .read_to_string(&mut value)
        .context("cannot read the secret from standard input")?;
    let value = value.strip_suffix('\n').unwrap_or(&value);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        bail!("no secret on standard input: `weft secrets set NAME --plugin P < FILE`");
    }
    Ok(value.to_string())
}
