//! `tracer probes`: attach as `watch` would, print which hook serves each signal, detach.

use anyhow::Result;

use super::session::{describe, Options, Session};
use crate::cli::HookArgs;

pub fn run(args: HookArgs) -> Result<()> {
    let session = Session::start(&Options {
        hooks: args.hooks.into(),
        ports: Vec::new(),
        pid: None,
        window_shift: 0,
        every_connection: true,
        report_below_pct: tracer_common::config::DEFAULT_REPORT_BELOW_PCT,
        socket_map_entries: args.socket_map_entries,
    })?;
    let table = describe(&session.attached, &session.facts);
    std::io::Write::write_all(&mut std::io::stdout(), table.as_bytes())?;
    Ok(())
}
