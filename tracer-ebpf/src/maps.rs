//! Every map the kernel programs share, and the read-only globals the agent fills in at load time.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    config::{Config, MAX_DROP_REASONS, MAX_PORTS, MAX_SOCKETS, RING_BYTES, SWITCH_COUNT},
    event::KIND_COUNT,
    offsets::KernelOffsets,
};

use crate::state::SockState;

/// Field locations from the running kernel's BTF (set by the agent before load).
#[no_mangle]
pub static OFFSETS: KernelOffsets = KernelOffsets::MISSING;

/// Filters and hook choices (set by the agent before load).
#[no_mangle]
pub static CONFIG: Config = Config::DEFAULT;

/// All events, in order per CPU. Submitted without wakeup; the agent drains it on a timer.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

/// Events that did not fit in EVENTS, per CPU, indexed by event kind.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_COUNT, 0);

/// Last values seen per socket, keyed by socket address, so that hooks emit changes only.
#[map]
pub static SOCKS: LruHashMap<u64, SockState> = LruHashMap::with_max_entries(MAX_SOCKETS, 0);

/// Port filter: a socket is traced when its local or remote port is a key here.
#[map]
pub static PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PORTS, 0);

/// The kfree_skb drop reasons to report: kernel enum value -> class (1 = generic, 2 = PROTO_MEM).
#[map]
pub static DROP_REASONS: HashMap<u32, u8> = HashMap::with_max_entries(MAX_DROP_REASONS, 0);

/// Choices made after attach (config::SWITCH_*): which programs serve which signals.
#[map]
pub static SWITCHES: Array<u32> = Array::with_max_entries(SWITCH_COUNT, 0);

/// The socket a kprobe on tcp_send_probe0 saw, for its kretprobe on the same CPU.
#[map]
pub static PROBE0_SK: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Reads one field of the load-time globals. Volatile so the compiler cannot fold the
/// placeholder values written in this file.
macro_rules! global {
    ($global:ident . $field:ident) => {
        // SAFETY: the global is a plain static; the read is of a Copy field.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!($crate::maps::$global.$field)) }
    };
}
pub(crate) use global;
