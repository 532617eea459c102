//! `tracer report FILE`: pictures of each connection's windows over time, from a recording.

use anyhow::Result;

use crate::cli::ReportArgs;

pub fn run(args: ReportArgs) -> Result<()> {
    crate::report::run(args)
}
