//! Who owns an accepted socket: syscalls:sys_exit_accept4 / sys_exit_accept run in the
//! accepting process with the new descriptor as return value. Walking the task's file table to
//! the socket attributes the connection before its first read, so `--pid` sees a reader that
//! never reads.

use aya_ebpf::{helpers::bpf_get_current_task, macros::tracepoint, programs::TracePointContext};

use tracer_common::event::HOOK_TRACEPOINT;

use crate::{maps::global, read, socket};

const IPPROTO_TCP: u64 = 6;

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
    if sk == 0 || read::field(sk, global!(OFFSETS.sk_protocol)).unwrap_or(0) != IPPROTO_TCP {
        return 0;
    }
    if let Some(st) = socket::get(sk) {
        socket::learn_and_announce_owner(sk, st, HOOK_TRACEPOINT);
    }
    0
}
