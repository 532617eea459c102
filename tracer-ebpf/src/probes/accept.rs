//! Who owns an accepted socket, named in the accepting process so that `--pid` sees a reader
//! that never reads. Best where it exists: the exit of `inet_csk_accept`, which returns the new
//! socket (fexit, else a kretprobe). Else the syscalls:sys_exit_accept4 / sys_exit_accept
//! tracepoints, whose return value is the new descriptor, walked through the task's file table
//! to the socket; a syscall tracepoint sends every system call on the host through the kernel's
//! slower path while it is attached, which the function hooks do not.

use aya_ebpf::{
    helpers::bpf_get_current_task,
    macros::{fexit, kretprobe, tracepoint},
    programs::{FExitContext, RetProbeContext, TracePointContext},
};

use tracer_common::event::{HOOK_FEXIT, HOOK_KRETPROBE, HOOK_TRACEPOINT};

use crate::{maps::global, read, socket};

const IPPROTO_TCP: u64 = 6;

/// inet_csk_accept's arguments changed in 6.10 (a `struct proto_accept_arg *` in place of
/// flags, err and kern); its return value, the accepted socket or NULL, is read by
/// bpf_get_func_ret whatever they are.
#[fexit(function = "inet_csk_accept")]
pub fn accept_fexit(ctx: FExitContext) -> u32 {
    if let Ok(sk) = ctx.ret::<u64>() {
        accepted(sk, HOOK_FEXIT);
    }
    0
}

#[kretprobe]
pub fn accept_kretprobe(ctx: RetProbeContext) -> u32 {
    accepted(ctx.ret::<u64>(), HOOK_KRETPROBE);
    0
}

#[tracepoint]
pub fn accept_exit(ctx: TracePointContext) -> u32 {
    let offset = global!(CONFIG.accept_ret_offset) as usize;
    // SAFETY: the offset comes from this tracepoint's format file; the read is checked.
    let Ok(fd) = (unsafe { ctx.read_at::<i64>(offset) }) else {
        return 0;
    };
    if fd < 0 {
        return 0;
    }
    // SAFETY: helper without arguments; the task pointer is only read through probe reads.
    let task = unsafe { bpf_get_current_task() };
    let Some(files) = read::field(task, global!(OFFSETS.task_files)) else { return 0 };
    let Some(fdt) = read::field(files, global!(OFFSETS.files_fdt)) else { return 0 };
    let max = read::field(fdt, global!(OFFSETS.fdt_max_fds)).unwrap_or(0);
    if fd as u64 >= max {
        return 0;
    }
    let Some(table) = read::field(fdt, global!(OFFSETS.fdt_fd)) else { return 0 };
    let file = u64::from_ne_bytes(read::bytes::<8>(table + fd as u64 * 8));
    let Some(socket) = read::field(file, global!(OFFSETS.file_private_data)) else { return 0 };
    let Some(sk) = read::field(socket, global!(OFFSETS.socket_sk)) else { return 0 };
    accepted(sk, HOOK_TRACEPOINT);
    0
}

/// The accepting process (the current task) owns `sk` from now on, if it is a TCP socket.
#[inline(always)]
fn accepted(sk: u64, hook: u8) {
    if sk == 0 || read::field(sk, global!(OFFSETS.sk_protocol)).unwrap_or(0) != IPPROTO_TCP {
        return;
    }
    if let Some(st) = socket::get(sk) {
        socket::learn_and_announce_owner(sk, st, hook);
    }
}
