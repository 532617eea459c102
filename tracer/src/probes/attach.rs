//! Attach with fallback: walk the hook table per signal and keep what the kernel accepts.

use anyhow::Result;
use aya::{
    maps::Array,
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, FEntry, FExit, KProbe, Program,
        ProgramError, RawTracePoint, TracePoint,
    },
    Btf, Ebpf,
};

use tracer_common::config::{SWITCH_COUNT, SWITCH_EGRESS};

use super::Tiers;
use super::{hooks, Attach, Hook, Signal, Target};
use crate::{host::mounts, kernel::btf::KernelBtf};

/// What serves one signal on this kernel, and why better hooks were not used.
#[derive(Debug, Clone)]
pub struct Row {
    pub signal: Signal,
    pub chosen: Option<Hook>,
    /// Targets of the chosen hook that did not attach (optional ones).
    pub partial: Vec<String>,
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct Attached {
    pub rows: Vec<Row>,
}

impl Attached {
    pub fn missing(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.chosen.is_none())
    }
}

/// The environment variable that names programs not to load (comma-separated).
pub const AVOID_ENV: &str = "TRACER_AVOID_PROGRAMS";

/// Loads and attaches one hook per signal. Fails only when nothing at all could be attached.
pub fn attach_all(ebpf: &mut Ebpf, mode: Tiers, kernel_btf: &KernelBtf) -> Result<Attached> {
    // Loading fentry/fexit needs the kernel's BTF in aya's own form (parsed once, in
    // KernelBtf); without it those hooks are skipped with the reason.
    let btf = kernel_btf.aya.as_ref().map_err(Clone::clone);
    let mut attached = Attached::default();
    let mut switches = [0u32; SWITCH_COUNT as usize];
    // Programs not to load, by name: to try a fallback on purpose (the tests do), or to step
    // around a program that misbehaves on some kernel.
    let avoided = std::env::var(AVOID_ENV).unwrap_or_default();
    for signal in Signal::ALL {
        let mut row = Row { signal, chosen: None, partial: Vec::new(), skipped: Vec::new() };
        for hook in hooks(signal) {
            if !hook.allowed(mode) {
                row.skipped.push((hook.label(), format!("not tried (--hooks {})", mode.name())));
                continue;
            }
            if hook.uses_any(&avoided) {
                row.skipped.push((hook.label(), format!("not tried ({AVOID_ENV}={avoided})")));
                continue;
            }
            match try_hook(ebpf, hook, btf.clone(), kernel_btf) {
                Ok(partial) => {
                    if let Some((index, value)) = hook.switch {
                        switches[index as usize] |= value;
                    }
                    row.partial = partial;
                    row.chosen = Some(*hook);
                    break;
                }
                Err(why) => row.skipped.push((hook.label(), why)),
            }
        }
        attached.rows.push(row);
    }
    set_switches(ebpf, &switches).map_err(anyhow::Error::msg)?;
    if switches[SWITCH_EGRESS as usize] != 0 {
        if let Err(why) = attach_cgroup_skb(ebpf, "egress_skb", CgroupSkbAttachType::Egress) {
            for row in &mut attached.rows {
                if matches!(row.chosen.map(|h| h.attach), Some(Attach::Egress)) {
                    let hook = row.chosen.take().expect("matched Some above");
                    row.skipped.push((hook.label(), why.clone()));
                }
            }
        }
    }
    if attached.rows.iter().all(|r| r.chosen.is_none()) {
        let reasons: Vec<String> = attached
            .rows
            .iter()
            .flat_map(|r| r.skipped.iter().map(|(h, why)| format!("{h}: {why}")))
            .collect();
        anyhow::bail!("no kernel hook could be attached:\n  {}", reasons.join("\n  "));
    }
    Ok(attached)
}

/// Attaches every target of `hook`. Ok carries the optional targets that failed.
fn try_hook(
    ebpf: &mut Ebpf,
    hook: &Hook,
    btf: Result<&Btf, String>,
    kernel_btf: &KernelBtf,
) -> Result<Vec<String>, String> {
    let mut partial = Vec::new();
    let targets = match hook.attach {
        Attach::Fentry(ts) | Attach::Kprobe(ts) | Attach::Tracepoint(ts) => ts,
        Attach::RawTracepoint(t) => {
            let prog: &mut RawTracePoint = program(ebpf, t.program)?;
            load_once(prog.load()).map_err(describe)?;
            prog.attach(t.kernel).map_err(describe)?;
            return Ok(partial);
        }
        // Attached once for all signals it serves, after the table walk.
        Attach::Egress => return Ok(partial),
        Attach::Piggyback(name) => {
            let loaded = ebpf.program(name).is_some_and(|p| p.info().is_ok());
            return if loaded {
                Ok(partial)
            } else {
                Err(format!("needs the {name} program, which did not attach"))
            };
        }
        Attach::Ingress(name) => {
            attach_cgroup_skb(ebpf, name, CgroupSkbAttachType::Ingress)?;
            return Ok(partial);
        }
    };
    for (i, t) in targets.iter().enumerate() {
        let is_function = matches!(hook.attach, Attach::Fentry(_) | Attach::Kprobe(_));
        if is_function && !kernel_btf.has_func(t.kernel) {
            let why = format!(
                "{} is not a traceable function on this kernel (inlined or absent)",
                t.kernel
            );
            if t.optional && i > 0 {
                partial.push(why);
                continue;
            }
            unload(ebpf, &targets[..i]);
            return Err(why);
        }
        let result = match hook.attach {
            Attach::Fentry(_) => {
                let btf = btf.clone()?;
                if matches!(ebpf.program(t.program), Some(Program::FExit(_))) {
                    let prog: &mut FExit = program(ebpf, t.program)?;
                    load_once(prog.load(t.kernel, btf)).and_then(|()| prog.attach().map(drop))
                } else {
                    let prog: &mut FEntry = program(ebpf, t.program)?;
                    load_once(prog.load(t.kernel, btf)).and_then(|()| prog.attach().map(drop))
                }
            }
            Attach::Tracepoint(_) => {
                let (category, name) = t.kernel.split_once('/').unwrap_or(("", t.kernel));
                let prog: &mut TracePoint = program(ebpf, t.program)?;
                load_once(prog.load()).and_then(|()| prog.attach(category, name).map(drop))
            }
            _ => {
                let prog: &mut KProbe = program(ebpf, t.program)?;
                load_once(prog.load()).and_then(|()| prog.attach(t.kernel, 0).map(drop))
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if t.optional && i > 0 => partial.push(format!("{}: {}", t.kernel, describe(e))),
            // Unload what this hook already attached, so a half-attached hook cannot report
            // events beside the fallback that replaces it.
            Err(e) => {
                unload(ebpf, &targets[..=i]);
                return Err(describe(e));
            }
        }
    }
    Ok(partial)
}

fn unload(ebpf: &mut Ebpf, targets: &[Target]) {
    for t in targets {
        let _ = match ebpf.program_mut(t.program) {
            Some(Program::FEntry(p)) => p.unload(),
            Some(Program::FExit(p)) => p.unload(),
            Some(Program::KProbe(p)) => p.unload(),
            Some(Program::TracePoint(p)) => p.unload(),
            _ => Ok(()),
        };
    }
}

fn load_once(r: Result<(), ProgramError>) -> Result<(), ProgramError> {
    match r {
        // One program may serve several targets (kprobes): it is loaded once.
        Err(ProgramError::AlreadyLoaded) => Ok(()),
        other => other,
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    let prog = ebpf.program_mut(name).ok_or_else(|| {
        format!("program {name} is missing from the eBPF object (a build problem)")
    })?;
    prog.try_into().map_err(describe)
}

/// The verifier's reason: its last line before the statistics and register dumps it ends with.
fn verifier_reason(log: &str) -> &str {
    const TRAILER: [&str; 5] =
        ["processed ", "verification time", "stack depth", "cur state:", "old state:"];
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !TRAILER.iter().any(|t| l.starts_with(t)))
        .unwrap_or("")
}

/// Why a program did not load, from the kernel's error and the verifier's log.
fn load_failure(io_error: &std::io::Error, log: &str) -> String {
    // The verifier walked the program and refused it: its statistics end the log.
    let walked = log.lines().any(|l| l.starts_with("processed "));
    let hint = match io_error.raw_os_error() {
        Some(libc::EPERM) => " (the kernel refuses this program type here)",
        Some(libc::EINVAL) | Some(libc::ENOENT) if walked => " (the kernel's verifier refused it)",
        Some(libc::EINVAL) | Some(libc::ENOENT) => {
            " (the function is not traceable on this kernel)"
        }
        _ => "",
    };
    let reason = verifier_reason(log);
    if reason.is_empty() || hint.starts_with(" (the kernel refuses") {
        format!("load failed: {io_error}{hint}")
    } else {
        format!("load failed: {io_error}{hint}; verifier: {reason}")
    }
}

/// One line an operator can read: the kernel's answer, not the verifier's whole log.
fn describe(e: ProgramError) -> String {
    match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            if std::env::var_os("TRACER_VERIFIER_LOG").is_some() {
                eprintln!("verifier log ({io_error}):\n{log}");
            }
            load_failure(&io_error, &log)
        }
        ProgramError::TracePointError(t) => {
            format!("{} (is the kernel built with CONFIG_FTRACE_SYSCALLS?)", error_chain(&t))
        }
        ProgramError::KProbeError(k) => {
            let text = error_chain(&k);
            if text.contains("kprobe/type") || text.contains("No such file") {
                format!("kprobes are not available on this kernel ({text})")
            } else {
                text
            }
        }
        other => error_chain(&other),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Tells the kernel programs which of them serve which signal (config::SWITCH_*).
fn set_switches(ebpf: &mut Ebpf, values: &[u32]) -> Result<(), String> {
    let mut map: Array<_, u32> = Array::try_from(
        ebpf.map_mut("SWITCHES").ok_or("map SWITCHES is missing from the eBPF object")?,
    )
    .map_err(|e| e.to_string())?;
    for (index, value) in values.iter().enumerate() {
        map.set(index as u32, value, 0).map_err(|e| format!("failed to set a switch: {e}"))?;
    }
    Ok(())
}

/// Attaches the floor's programs, which do nothing, where the packet hooks and the lifecycle hook
/// attach (`tracer bench-floor`): what these attach points cost before any work is done.
pub fn attach_floor(ebpf: &mut Ebpf) -> Result<(), String> {
    attach_cgroup_skb(ebpf, "floor_ingress", CgroupSkbAttachType::Ingress)?;
    attach_cgroup_skb(ebpf, "floor_egress", CgroupSkbAttachType::Egress)?;
    let prog: &mut RawTracePoint = program(ebpf, "floor_set_state")?;
    prog.load().map_err(describe)?;
    prog.attach("inet_sock_set_state").map_err(describe)?;
    Ok(())
}

/// Attaches a cgroup_skb program to the cgroup-v2 root, where it sees every socket's traffic.
fn attach_cgroup_skb(ebpf: &mut Ebpf, name: &str, kind: CgroupSkbAttachType) -> Result<(), String> {
    let root = mounts::cgroup2_root().map_err(|e| format!("{e:#}"))?;
    let cgroup = std::fs::File::open(&root)
        .map_err(|e| format!("failed to open the cgroup root {}: {e}", root.display()))?;
    let prog: &mut CgroupSkb = program(ebpf, name)?;
    load_once(prog.load()).map_err(describe)?;
    // A BPF link never displaces other programs on the cgroup, whatever the mode says.
    prog.attach(&cgroup, kind, CgroupAttachMode::Single).map_err(|e| {
        format!("failed to attach to the cgroup root {}: {}", root.display(), describe(e))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn einval() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::EINVAL)
    }

    #[test]
    fn a_refusal_is_named_by_the_verifiers_reason_not_its_statistics() {
        let log =
            "324: (05) goto pc-1\ninfinite loop detected at insn 324\ncur state: R0=scalar()\n\
                   old state: R0=scalar()\nverification time 1105 usec\nstack depth 200\n\
                   processed 232 insns (limit 1000000) max_states_per_insn 0 total_states 18\n";
        let text = load_failure(&einval(), log);
        assert!(text.contains("(the kernel's verifier refused it)"), "{text}");
        assert!(text.ends_with("verifier: infinite loop detected at insn 324"), "{text}");
    }

    #[test]
    fn an_untraceable_function_is_named_as_such() {
        let text = load_failure(&einval(), "");
        assert!(text.ends_with("(the function is not traceable on this kernel)"), "{text}");
    }
}
