//! What every attaching command does first: check the host, resolve offsets, load, attach.

use anyhow::{Context as _, Result};
use aya::{maps::HashMap, Ebpf, EbpfLoader};
use tracer_common::config::{
    Config, DROP_CLASS_BEYOND_WINDOW, DROP_CLASS_OTHER, DROP_CLASS_PROTO_MEM, MAX_PORTS, NOMEM_PATH,
};

use crate::{
    events::decode::KernelFacts,
    host::{clock, mounts, procfs},
    kernel::{self, btf::KernelBtf, offsets},
    probes::{self, Attached},
};

/// The kernel programs, built by build.rs.
pub(super) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

pub struct Options {
    pub hooks: probes::Tiers,
    pub ports: Vec<u16>,
    pub pid: Option<u32>,
    pub window_shift: u8,
    /// Report every connection from its open; else quiet ones from their first flow-control
    /// moment, among them a window below `report_below_pct` % of its largest.
    pub every_connection: bool,
    pub report_below_pct: u8,
    /// Size of the SOCKS map (default config::MAX_SOCKETS).
    pub socket_map_entries: Option<u32>,
}

pub struct Session {
    pub ebpf: Ebpf,
    pub attached: Attached,
    pub facts: KernelFacts,
}

impl Session {
    pub fn start(opts: &Options) -> Result<Session> {
        kernel::preflight()?;
        if opts.ports.len() > MAX_PORTS as usize {
            anyhow::bail!(
                "at most {MAX_PORTS} --port filters are supported (got {})",
                opts.ports.len()
            );
        }
        // Parsed once here for every user: offsets, drop reasons, the loader and attach.
        let btf = KernelBtf::load()?;
        let offsets = offsets::resolve(&btf)?;
        // Tracepoints attach through tracefs; without it only their hook is lost (said later).
        let accept_ret_offset = mounts::tracefs_root()
            .ok()
            .and_then(|t| mounts::tracepoint_field_offset(&t, "syscalls/sys_exit_accept4", "ret"))
            .unwrap_or(Config::DEFAULT.accept_ret_offset);
        // The 6.6+ out-of-memory zero window (uncounted by TCPToZeroWindowAdv) comes with
        // the ICSK_ACK_NOMEM flag.
        let nomem = btf
            .enum_value("inet_csk_ack_state_t", "ICSK_ACK_NOMEM")
            .and_then(|bit| u8::try_from(bit).ok());
        let config = Config {
            pid: opts.pid.unwrap_or(0),
            port_filter: (!opts.ports.is_empty()) as u8,
            window_shift: opts.window_shift,
            kernel_features: if nomem.is_some() { NOMEM_PATH } else { 0 },
            accept_ret_offset,
            icsk_ack_nomem: nomem.unwrap_or(0),
            every_connection: opts.every_connection as u8,
            report_below_pct: opts.report_below_pct,
            ..Config::DEFAULT
        };
        let mut loader = EbpfLoader::new();
        // aya 0.14's EbpfLoader::new() parses vmlinux BTF itself; handing it ours keeps the
        // loader's relocations and the fentry/fexit attach on one copy.
        loader.btf(btf.aya.as_ref().ok());
        loader.override_global("OFFSETS", &offsets, true).override_global("CONFIG", &config, true);
        if let Some(entries) = opts.socket_map_entries {
            loader.map_max_entries("SOCKS", entries);
        }
        let mut ebpf =
            loader.load(EBPF_OBJECT).context("failed to load the eBPF object into the kernel")?;
        if !opts.ports.is_empty() {
            let mut ports: HashMap<_, u16, u8> =
                HashMap::try_from(ebpf.map_mut("PORTS").context("map PORTS is missing")?)?;
            for port in &opts.ports {
                ports.insert(port, 1, 0).context("failed to set the port filter")?;
            }
        }
        let drop_reasons = drop_reasons(&btf);
        let mut reasons: HashMap<_, u32, u8> = HashMap::try_from(
            ebpf.map_mut("DROP_REASONS").context("map DROP_REASONS is missing")?,
        )?;
        for (value, (_, class)) in &drop_reasons {
            reasons.insert(value, class, 0).context("failed to set the drop reasons")?;
        }
        let attached = probes::attach_all(&mut ebpf, opts.hooks, &btf)?;
        let names = drop_reasons.into_iter().map(|(value, (name, _))| (value, name)).collect();
        Ok(Session { ebpf, attached, facts: facts(names) })
    }
}

/// The kfree_skb drop reasons that mean "no receive space", resolved by name: their numbers
/// differ between kernels. Reasons this kernel lacks are skipped.
fn drop_reasons(btf: &KernelBtf) -> std::collections::HashMap<u32, (String, u8)> {
    let value = |name: &str| {
        let v = btf.enum_value("skb_drop_reason", &format!("SKB_DROP_REASON_{name}"))?;
        u32::try_from(v).ok()
    };
    let mut reasons: Vec<(&str, u8)> = vec![
        ("TCP_ZEROWINDOW", DROP_CLASS_OTHER),
        ("TCP_OVERWINDOW", DROP_CLASS_OTHER),
        ("PROTO_MEM", DROP_CLASS_PROTO_MEM),
        ("TCP_OFO_QUEUE_PRUNE", DROP_CLASS_OTHER),
    ];
    // 6.17+ drops data beyond the window early, in tcp_sequence(), with these two reasons and
    // counts them in TcpExtBeyondWindow. Before 6.17 TCP_INVALID_SEQUENCE also meant other
    // things (on 6.1 every zero-window probe), so it is taken only where its sibling exists.
    if value("TCP_INVALID_END_SEQUENCE").is_some() {
        reasons.push(("TCP_INVALID_SEQUENCE", DROP_CLASS_BEYOND_WINDOW));
        reasons.push(("TCP_INVALID_END_SEQUENCE", DROP_CLASS_BEYOND_WINDOW));
    }
    reasons
        .into_iter()
        .filter_map(|(name, class)| Some((value(name)?, (name.to_string(), class))))
        .collect()
}

fn facts(drop_reasons: std::collections::HashMap<u32, String>) -> KernelFacts {
    KernelFacts {
        realtime_offset_ns: clock::realtime_offset_ns(),
        hz: procfs::config_hz(),
        retries2: procfs::sysctl("net/ipv4/tcp_retries2").unwrap_or(15).min(255) as u8,
        drop_reasons,
        cgroup_root: mounts::cgroup2_root().ok(),
        live: true,
    }
}

/// The hook table as printed by `tracer probes` and at the start of `watch`.
pub fn describe(attached: &Attached, facts: &KernelFacts) -> String {
    let mut out = String::new();
    let release = procfs::os_release().unwrap_or_default();
    out.push_str(&format!("kernel {release}: hooks in use\n"));
    for row in &attached.rows {
        match &row.chosen {
            Some(hook) => {
                out.push_str(&format!("  {:<20} {}\n", row.signal.name(), hook.label()));
                out.push_str(&format!("  {:<20}   {}\n", "", hook.fidelity));
            }
            None => {
                out.push_str(&format!("  {:<20} UNAVAILABLE on this kernel\n", row.signal.name()))
            }
        }
        for p in &row.partial {
            out.push_str(&format!("  {:<20}   not covered: {p}\n", ""));
        }
        for (hook, why) in &row.skipped {
            out.push_str(&format!("  {:<20}   skipped {hook}: {why}\n", ""));
        }
    }
    if facts.hz.is_none() {
        out.push_str(
            "  note: CONFIG_HZ is unknown (no /boot/config-* or /proc/config.gz): probe intervals are not shown\n",
        );
    }
    out
}
