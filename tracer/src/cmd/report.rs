//! `tracer report FILE`: pictures of each connection's windows over time, from a recording.

use anyhow::Result;

use crate::{
    alerts::Thresholds,
    cli::{ReportArgs, ReportFormat},
    report::{self, Format},
};

pub fn run(args: ReportArgs) -> Result<()> {
    let thresholds = Thresholds::load(args.alerts.config.as_deref(), &args.alerts.alerts)?;
    let format = match args.format {
        ReportFormat::Html => Format::Html,
        ReportFormat::Svg => Format::Svg,
    };
    report::run(&args.file, args.out.as_deref(), format, thresholds)
}
