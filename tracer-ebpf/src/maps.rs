//! Every map the kernel programs share, and the read-only globals the agent fills in at load time.

use aya_ebpf::{
    bindings::{bpf_map_type::BPF_MAP_TYPE_SK_STORAGE, BPF_F_NO_PREALLOC},
    macros::map,
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use tracer_common::{
    config::{
        Config, COUNT_SLOTS, MAX_DROP_REASONS, MAX_PORTS, MAX_SOCKETS, MAX_TOTAL_PORTS, RING_BYTES,
        SWITCH_COUNT,
    },
    event::KIND_COUNT,
    offsets::KernelOffsets,
    totals::{PortTotals, HOST_TOTAL_SLOTS},
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

/// What the programs could not do, per CPU (config::COUNT_*): the agent shows these.
#[map]
pub static COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNT_SLOTS, 0);

/// Host totals (totals::TOTAL_*), per CPU: every connection, reported or not; then those of
/// ports that found PORT_TOTALS full (totals::OTHER_PORTS + TOTAL_*).
#[map]
pub static HOST_TOTALS: PerCpuArray<u64> = PerCpuArray::with_max_entries(HOST_TOTAL_SLOTS, 0);

/// The same totals by service port, per CPU, for a bounded number of ports.
#[map]
pub static PORT_TOTALS: PerCpuHashMap<u16, PortTotals> =
    PerCpuHashMap::with_max_entries(MAX_TOTAL_PORTS, 0);

/// Per-socket state of every program, keyed by socket address. Not an LRU: an evicted live
/// socket would repeat or lose a transition. Entries go at TCP_CLOSE; a full table refuses new
/// sockets and counts them. Allocated as sockets come (BPF_F_NO_PREALLOC): a million-entry
/// ceiling reserves only its bucket array (16 B an entry, 16 MiB), an entry costs one 256-byte
/// allocation while its socket lives, and its insert (once per connection, not per segment)
/// takes it from the kernel's per-CPU BPF cache (6.1+).
#[map]
pub static SOCKS: HashMap<u64, SockState> =
    HashMap::with_max_entries(MAX_SOCKETS, BPF_F_NO_PREALLOC);

/// A BTF-defined map (the kernel requires BTF for sk_storage), laid out the way libbpf and
/// aya read `.maps` definitions: each attribute is encoded in a pointer's pointee type.
#[repr(C)]
pub struct SkStorageDef {
    r#type: *const [i32; BPF_MAP_TYPE_SK_STORAGE as usize],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
    key: *const i32,
    value: *const SockState,
}

// SAFETY: never dereferenced; the kernel owns the map this describes.
unsafe impl Sync for SkStorageDef {}

/// Per-socket state of the packet and fentry/fexit programs for a socket that found SOCKS full:
/// it lives and dies with the socket, so no table size decides what these programs forget.
#[link_section = ".maps"]
#[export_name = "SK_STATE"]
pub static SK_STATE: SkStorageDef = SkStorageDef {
    r#type: core::ptr::null(),
    map_flags: core::ptr::null(),
    key: core::ptr::null(),
    value: core::ptr::null(),
};

/// Port filter: a socket is traced when its local or remote port is a key here.
#[map]
pub static PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_PORTS, 0);

/// The kfree_skb drop reasons to report: kernel enum value -> class (config::DROP_CLASS_*).
#[map]
pub static DROP_REASONS: HashMap<u32, u8> = HashMap::with_max_entries(MAX_DROP_REASONS, 0);

/// Choices made after attach (config::SWITCH_*): which programs serve which signals.
#[map]
pub static SWITCHES: Array<u32> = Array::with_max_entries(SWITCH_COUNT, 0);

/// tcp_send_probe0 in progress on this CPU: its socket, and the probe segments it sent so far.
#[repr(C)]
pub struct Probe0Call {
    pub sk: u64,
    pub segments: u32,
    pub _pad: u32,
}

#[map]
pub static PROBE0_CALL: PerCpuArray<Probe0Call> = PerCpuArray::with_max_entries(1, 0);

/// The last `__tcp_select_window()` result on this CPU, and its socket.
#[repr(C)]
pub struct WantedWindow {
    pub sk: u64,
    pub window: u32,
    pub _pad: u32,
}

#[map]
pub static WANTED: PerCpuArray<WantedWindow> = PerCpuArray::with_max_entries(1, 0);

/// Reads one field of the load-time globals. Volatile so the compiler cannot fold the
/// placeholder values written in this file.
macro_rules! global {
    ($global:ident . $field:ident) => {
        // SAFETY: the global is a plain static; the read is of a Copy field.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!($crate::maps::$global.$field)) }
    };
}
pub(crate) use global;
