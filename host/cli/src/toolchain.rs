//! Guest toolchains on demand: the pinned componentize-py and
//! componentize-js that `weft build` compiles Python and JavaScript plugins
//! with, installed from the package registries into the Weft cache folder
//! (`$WEFT_CACHE_DIR/tools`, else `~/.cache/weft/tools`) the first time a
//! build needs one, or by `weft toolchain install`. An install counts only
//! once it completed (a marker file written last): a failed or interrupted
//! one is removed and made again. (It is made in place: a Python venv
//! cannot be moved.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::Subcommand;

/// A pinned guest toolchain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Toolchain {
    /// Its command, and its name here.
    pub name: &'static str,
    /// The pinned version.
    pub version: &'static str,
    /// The plugins it builds.
    pub language: &'static str,
    /// The environment variable that names another copy to use instead.
    pub var: &'static str,
    /// What it installs with, and how to get that.
    needs: (&'static str, &'static str),
    /// The registry it comes from.
    registry: &'static str,
}

/// componentize-py, for Python plugins.
pub(crate) const PYTHON: Toolchain = Toolchain {
    name: "componentize-py",
    version: "0.25.1",
    language: "Python",
    var: "WEFT_COMPONENTIZE_PY",
    needs: (
        "python3",
        "install Python 3.11 or later, with its venv module",
    ),
    registry: "PyPI",
};

/// componentize-js, for JavaScript plugins.
pub(crate) const JAVASCRIPT: Toolchain = Toolchain {
    name: "componentize-js",
    version: "0.23.0",
    language: "JavaScript",
    var: "WEFT_COMPONENTIZE_JS",
    needs: ("npm", "install Node.js 20 or later (with npm)"),
    registry: "npm",
};

const ALL: [Toolchain; 2] = [PYTHON, JAVASCRIPT];

/// Written into an install folder when the install completed.
const COMPLETE: &str = ".weft-complete";

#[derive(Subcommand, Debug)]
pub enum ToolchainAction {
    /// Each toolchain: where it is, or that it is not installed (the default).
    List,
    /// Install a toolchain (or both) into the cache folder.
    Install {
        /// `componentize-py` or `componentize-js`; none: both.
        name: Option<String>,
    },
    /// Remove an installed toolchain from the cache folder.
    Remove {
        /// `componentize-py` or `componentize-js`.
        name: String,
    },
}

impl Toolchain {
    fn by_name(name: &str) -> anyhow::Result<Toolchain> {
        ALL.into_iter().find(|t| t.name == name).with_context(|| {
            format!("no toolchain `{name}`: there are componentize-py and componentize-js")
        })
    }

    /// Where it is installed in the cache folder.
    fn dir(&self) -> anyhow::Result<PathBuf> {
        let cache = weft::plugin::engine::default_cache_dir()
            .context("no cache folder: set WEFT_CACHE_DIR or HOME")?;
        Ok(cache
            .join("tools")
            .join(format!("{}-{}", self.name, self.version)))
    }

    /// Its command inside an install folder.
    fn command_in(&self, dir: &Path) -> PathBuf {
        match self.name {
            "componentize-py" => dir.join("bin").join(self.name),
            _ => dir.join("node_modules/.bin").join(self.name),
        }
    }

    /// The installed copy in the cache folder, if there is a complete one.
    pub(crate) fn installed(&self) -> Option<PathBuf> {
        let dir = self.dir().ok()?;
        let command = self.command_in(&dir);
        (dir.join(COMPLETE).is_file() && command.is_file()).then_some(command)
    }

    /// Install it into the cache folder (nothing if it is there); its command.
    pub(crate) fn install(&self) -> anyhow::Result<PathBuf> {
        if let Some(command) = self.installed() {
            return Ok(command);
        }
        let (tool, how) = self.needs;
        if crate::doctor::on_path(tool).is_none() {
            bail!(
                "{} {} needs {tool}, which is not on the PATH: {how}",
                self.name,
                self.version
            );
        }
        let dir = self.dir()?;
        // What an interrupted install left.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        eprintln!(
            "installing {} {} from {} into {} (once; for {} plugins)…",
            self.name,
            self.version,
            self.registry,
            dir.display(),
            self.language
        );
        if let Err(e) = self.install_into(&dir) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        std::fs::write(dir.join(COMPLETE), self.version)
            .with_context(|| format!("cannot write into {}", dir.display()))?;
        Ok(self.command_in(&dir))
    }

    fn install_into(&self, dir: &Path) -> anyhow::Result<()> {
        let offline = format!("({} must be reachable)", self.registry);
        if self.name == "componentize-py" {
            step(
                Command::new("python3").args(["-m", "venv"]).arg(dir),
                "python3 -m venv",
                "",
            )?;
            let spec = format!("{}=={}", self.name, self.version);
            step(
                Command::new(dir.join("bin/pip")).args(["install", "--progress-bar", "on", &spec]),
                &format!("pip install {spec}"),
                &offline,
            )
        } else {
            let spec = format!("@bytecodealliance/{}@{}", self.name, self.version);
            step(
                Command::new("npm")
                    .args(["install", "--no-audit", "--no-fund", "--prefix"])
                    .arg(dir)
                    .arg(&spec),
                &format!("npm install {spec}"),
                &offline,
            )
        }
    }
}

/// Run one install step, its output on stderr (the registry tools' own
/// progress displays); a failure names the step.
fn step(command: &mut Command, what: &str, hint: &str) -> anyhow::Result<()> {
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}) {hint}");
    }
    Ok(())
}

/// `weft toolchain`.
pub fn main(action: Option<ToolchainAction>) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    match action.unwrap_or(ToolchainAction::List) {
        ToolchainAction::List => {
            for t in ALL {
                let at = match (std::env::var_os(t.var), t.installed()) {
                    (Some(path), _) => {
                        format!("{} (from {})", PathBuf::from(path).display(), t.var)
                    }
                    (None, Some(path)) => path.display().to_string(),
                    (None, None) => "not installed (weft build installs it when needed)".into(),
                };
                writeln!(out, "{} {} ({}): {at}", t.name, t.version, t.language)?;
            }
        }
        ToolchainAction::Install { name } => {
            let chosen = match name {
                Some(name) => vec![Toolchain::by_name(&name)?],
                None => ALL.to_vec(),
            };
            for t in chosen {
                let command = t.install()?;
                writeln!(out, "{} {}: {}", t.name, t.version, command.display())?;
            }
        }
        ToolchainAction::Remove { name } => {
            let t = Toolchain::by_name(&name)?;
            let dir = t.dir()?;
            if !dir.exists() {
                bail!(
                    "{} {} is not installed in {}",
                    t.name,
                    t.version,
                    dir.display()
                );
            }
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
            writeln!(out, "removed {}", dir.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
