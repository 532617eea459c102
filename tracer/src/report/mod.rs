//! Per-connection plots of a recording (HTML with inline SVG, or SVG files).

use anyhow::{bail, Result};

use crate::cli::ReportArgs;

pub fn run(_args: ReportArgs) -> Result<()> {
    bail!("tracer report is not available yet")
}
