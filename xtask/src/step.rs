//! One line per step: `xtask: building the kernel programs... done in 41 s`. What a step's
//! commands print goes to a log under `target/xtask/`, shown in full only when the step fails.

use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::setup;

pub struct Step {
    log: PathBuf,
    started: Instant,
}

impl Step {
    /// Prints `xtask: <label>...` and starts an empty log, `target/xtask/<name>.log`.
    pub fn start(label: &str, name: &str) -> Result<Step> {
        let dir = setup::target_dir()?.join("xtask");
        fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        let log = dir.join(format!("{name}.log"));
        File::create(&log).with_context(|| format!("failed to create {}", log.display()))?;
        eprint!("xtask: {label}... ");
        // The line stays open until the step ends; a failed flush only delays it.
        let _ = std::io::stderr().flush();
        Ok(Step { log, started: Instant::now() })
    }

    /// Runs `cmd` with its output added to the log. When it fails, the step ends: the log is
    /// printed and the error names the command and the log.
    pub fn run(&self, cmd: &mut Command) -> Result<()> {
        let open = || {
            OpenOptions::new()
                .append(true)
                .open(&self.log)
                .with_context(|| format!("failed to open {}", self.log.display()))
        };
        let mut log = open()?;
        writeln!(log, "$ {}", command_line(cmd))
            .with_context(|| format!("failed to write {}", self.log.display()))?;
        let status = cmd
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(log)
            .status()
            .with_context(|| format!("failed to start {}", command_line(cmd)))?;
        if status.success() {
            return Ok(());
        }
        eprintln!("failed after {}; its log:", human(self.started.elapsed()));
        match fs::read_to_string(&self.log) {
            Ok(text) => eprint!("{text}"),
            Err(err) => eprintln!("(cannot read {}: {err})", self.log.display()),
        }
        bail!(
            "`{}` failed ({status}); its output is above and in {}",
            command_line(cmd),
            self.log.display()
        )
    }

    /// Ends the line with the time the step took.
    pub fn done(self) {
        eprintln!("done in {}", human(self.started.elapsed()));
    }
}

/// The program and its arguments, as one would type them.
fn command_line(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// "0.4 s", "41 s", "3 min 5 s".
fn human(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1} s")
    } else if secs < 120.0 {
        format!("{secs:.0} s")
    } else {
        let whole = elapsed.as_secs();
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(Duration::from_millis(420)), "0.4 s");
        assert_eq!(human(Duration::from_secs(41)), "41 s");
        assert_eq!(human(Duration::from_secs(185)), "3 min 5 s");
    }

    #[test]
    fn command_lines_read_as_typed() {
        let mut cmd = Command::new("cargo");
        cmd.args(["fmt", "--all", "--check"]);
        assert_eq!(command_line(&cmd), "cargo fmt --all --check");
    }
}
