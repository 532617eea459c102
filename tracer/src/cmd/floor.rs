//! `tracer bench-floor` (hidden): attaches programs that do nothing where the packet hooks and the
//! lifecycle hook attach, and waits for Ctrl-C. `cargo xtask bench --tools floor` runs it beside
//! the tracer, to show how much of the tracer's cost is these attach points' own, which no work
//! done in them can take away.

use anyhow::{Context as _, Result};
use aya::EbpfLoader;
use tokio::signal::unix::{signal, SignalKind};

use super::session::EBPF_OBJECT;
use crate::{
    kernel::{self, btf::KernelBtf},
    probes,
};

pub fn run() -> Result<()> {
    kernel::preflight()?;
    let btf = KernelBtf::load()?;
    let mut ebpf = EbpfLoader::new()
        .btf(btf.aya.as_ref().ok())
        .load(EBPF_OBJECT)
        .context("failed to load the eBPF object into the kernel")?;
    probes::attach_floor(&mut ebpf)
        .map_err(anyhow::Error::msg)
        .context("failed to attach the floor's programs")?;
    eprintln!(
        "tracer: attached; empty programs on cgroup_skb ingress and egress (cgroup-v2 root) and \
         inet_sock_set_state (Ctrl-C to stop)"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let mut sigint = signal(SignalKind::interrupt()).context("failed to watch for SIGINT")?;
        let mut sigterm = signal(SignalKind::terminate()).context("failed to watch for SIGTERM")?;
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        anyhow::Ok(())
    })?;
    // Detached as the programs' links close.
    drop(ebpf);
    eprintln!("tracer: detached");
    Ok(())
}
