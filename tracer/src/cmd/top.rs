//! `tracer top`: a live full-screen table of connections.

use anyhow::{bail, Result};

use crate::cli::TopArgs;

pub fn run(_args: TopArgs) -> Result<()> {
    bail!("tracer top is not available yet")
}
