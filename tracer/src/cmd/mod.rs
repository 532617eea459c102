//! One file per subcommand.

mod probes;
mod session;
mod watch;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Watch(args) => watch::run(args),
        Command::Probes(args) => probes::run(args),
    }
}
