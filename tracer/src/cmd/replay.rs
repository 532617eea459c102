//! `tracer replay FILE`: a recording through the same pipeline as live tracing, without root.

use anyhow::Result;

use crate::{
    alerts::Thresholds,
    cli::ReplayArgs,
    output::{json::Json, terminal::Terminal, Show},
    pipeline::Pipeline,
    record::player::Player,
};

pub fn run(args: ReplayArgs) -> Result<()> {
    let thresholds = Thresholds::load(args.alerts.config.as_deref(), &args.alerts.alerts)?;
    let mut player = Player::open(&args.file)?;
    let mut pipeline = Pipeline::new(thresholds);
    let show = Show { events: !args.no_events, summary: !args.alerts.no_summary };
    if args.json {
        pipeline.add(Box::new(Json::new(show)));
    } else {
        eprintln!(
            "tracer: replaying {} (recorded on kernel {})",
            args.file.display(),
            player.header().kernel
        );
        pipeline.add(Box::new(Terminal::new(show)));
    }
    // The summary is as of the last thing recorded, so the output depends on the file alone.
    player.play_all(&mut pipeline)?;
    for note in player.notes() {
        eprintln!("tracer: warning: {note}");
    }
    match player.take_broken() {
        Some(broken) => Err(broken.into()),
        None => Ok(()),
    }
}
