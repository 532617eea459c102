//! One file per subcommand.

mod bench;
mod floor;
mod probes;
mod replay;
mod report;
mod session;
mod top;
mod watch;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Watch(args) => watch::run(args, watch::Output { events: true, record: None }),
        Command::Record(args) => {
            watch::run(args.watch, watch::Output { events: args.events, record: Some(args.file) })
        }
        Command::Replay(args) => replay::run(args),
        Command::Probes(args) => probes::run(args),
        Command::Top(args) => top::run(args),
        Command::Serve(args) => watch::serve(args),
        Command::Report(args) => report::run(args),
        Command::BenchPipeline(args) => bench::run(&args),
        Command::BenchFloor => floor::run(),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into a buffer first: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "tracer", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            Ok(())
        }
        Command::Man { dir } => man(dir.as_deref()),
    }
}

/// The man pages: tracer(1) on stdout, or every page (tracer(1) names tracer-watch(1) and the
/// others) written into `dir`.
fn man(dir: Option<&std::path::Path>) -> Result<()> {
    use anyhow::Context as _;
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the man page directory {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    eprintln!(
        "tracer: wrote man pages into {} (view with: man -l {}/tracer.1)",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Binds the metrics endpoint and serves it in the background. `live`: processes whose events
/// carry only a pid so far may be named from /proc (not for a recording from elsewhere).
/// `totals`: the kernel's host totals, served as the `tcp_flow_host_` families.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    per_connection: bool,
    live: bool,
    max_connections: usize,
    totals: Option<std::sync::Arc<crate::events::totals::KernelTotals>>,
) -> Result<crate::metrics::SharedMetrics> {
    use crate::metrics::{self, host::HostTotals, Metrics, Scraped, SharedMetrics};
    let mut metrics =
        Metrics::new(per_connection).with_proc_names(live).with_live_connections(max_connections);
    if let Some(totals) = totals {
        metrics.add_collector(Scraped::new(HostTotals(totals)));
    }
    let shared = SharedMetrics::new(metrics);
    let listener = metrics::bind(addr).await?;
    let bound = listener.local_addr().unwrap_or(addr);
    eprintln!("tracer: Prometheus metrics on http://{bound}/metrics");
    tokio::spawn(metrics::serve(listener, shared.clone()));
    Ok(shared)
}

/// The reader of our output went away (`tracer replay rec | head`): the end of the output, not
/// an error to report.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
