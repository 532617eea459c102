//! tracer: why is this TCP transfer stalled? Kernel flow-control events, per connection.

mod alerts;
mod cli;
mod cmd;
mod events;
mod host;
mod kernel;
mod metrics;
mod output;
mod pipeline;
mod probes;
mod record;
mod report;
mod timeline;
mod top;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Before anything can start a thread (see host::clock).
    host::clock::init_local_offset();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap formats help, version and usage errors itself.
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if cmd::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tracer: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
