//! Where each socket's state lives, how it is found, made and dropped, and which process owns
//! the socket.
//!
//! Every program keeps it in the SOCKS hash, keyed by socket address: an entry is made fresh
//! when a connection starts (SYN_SENT, SYN_RECV) or is first seen (one opened before attach),
//! removed at TCP_CLOSE (a socket closed at a zero window keeps it for the RST that follows,
//! which removes it), and never created for a socket that is not a live connection, so a
//! recycled address inherits nothing. One record per socket, made once: a record in the
//! socket's own storage (sk_storage) as well cost the packet programs an allocation and a free
//! per socket, a third of their time on short connections.
//!
//! When the hash is full, the programs whose `sk` the verifier knows (cgroup_skb, fentry/fexit)
//! keep the socket in sk_storage instead, so their windows stay exact whatever the table's size.

use core::mem::MaybeUninit;

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    generated::bpf_sk_storage_get,
};
use tracer_common::{
    config::COUNT_TABLE_FULL,
    event::{
        OwnerEvent, KIND_OWNER, TCP_CLOSE, TCP_CLOSING, TCP_ESTABLISHED, TCP_LISTEN, TCP_TIME_WAIT,
    },
};

use crate::{
    emit, filter, header,
    maps::{global, COUNTS, SK_STATE, SOCKS},
    read,
    state::{SockState, UNSEEN},
    zeroed,
};

const BPF_SK_STORAGE_GET_F_CREATE: u64 = 1;
/// Map update flag: only if the key is not there yet.
const BPF_NOEXIST: u64 = 1;
/// The per-netns TCP control socket (RSTs, TIME_WAIT and SYN_RECV ACKs) is SOCK_RAW.
const SOCK_STREAM: u64 = 1;

/// Writes into `slot` the state of a socket first seen now: nothing reported yet, ports read and
/// filtered. In place, never moved: a moved record is copied with memcpy (see `zeroed`).
#[inline(always)]
fn fresh(sk: u64, slot: &mut MaybeUninit<SockState>) -> &mut SockState {
    // SAFETY: SockState is plain old data, so all-zero is a valid record; `slot` is its size.
    let fresh = unsafe {
        zeroed::zero(slot.as_mut_ptr());
        slot.assume_init_mut()
    };
    // Volatile: four adjacent stores of one byte pattern would become a memset too.
    for unseen in [
        &mut fresh.last_raw,
        &mut fresh.last_reported,
        &mut fresh.peer_raw,
        &mut fresh.peer_reported,
    ] {
        // SAFETY: a field of the record.
        unsafe { core::ptr::write_volatile(unseen, UNSEEN) };
    }
    // With a filter, or when asked for every connection, each is reported from its open.
    fresh.reported = global!(CONFIG.every_connection);
    read_ports(sk, fresh);
    fresh
}

/// Whether `sk` is a full TCP socket of a live connection: not a listener, a closed socket
/// (whose port is already released), a TIME_WAIT or request mini-socket, or the control socket.
/// Checked only when state would be created.
#[inline(always)]
fn is_connection(sk: u64) -> bool {
    let state = read::field(sk, global!(OFFSETS.skc_state)).unwrap_or(u64::from(TCP_CLOSE));
    if state < u64::from(TCP_ESTABLISHED) || state > u64::from(TCP_CLOSING) {
        return false;
    }
    if state == u64::from(TCP_TIME_WAIT)
        || state == u64::from(TCP_CLOSE)
        || state == u64::from(TCP_LISTEN)
    {
        return false;
    }
    read::field(sk, global!(OFFSETS.sk_type)) == Some(SOCK_STREAM)
}

/// The hash state of socket `sk`, created on first sight of a live connection.
#[inline(always)]
pub fn get(sk: u64) -> Option<&'static mut SockState> {
    // SAFETY: map values stay valid for the program's run; entries are removed only at
    // TCP_CLOSE, under the socket's own state change.
    shared(sk).map(|state| unsafe { &mut *state })
}

/// The hash state of `sk` if it has one; never creates it.
#[inline(always)]
pub fn find(sk: u64) -> Option<&'static mut SockState> {
    // SAFETY: map values stay valid for the program's run; entries are removed only at
    // TCP_CLOSE, under the socket's own state change.
    SOCKS.get_ptr_mut(&sk).map(|state| unsafe { &mut *state })
}

/// The hash state of `sk` as a raw pointer, created on first sight of a live connection: for
/// callers that may already hold `sk`'s record (the same one, unless the hash was full when
/// they made theirs in sk_storage).
#[inline(always)]
pub fn shared(sk: u64) -> Option<*mut SockState> {
    if let Some(state) = SOCKS.get_ptr_mut(&sk) {
        return Some(state);
    }
    if !is_connection(sk) {
        return None;
    }
    let mut slot = MaybeUninit::uninit();
    // NOEXIST: a record another CPU made meanwhile is kept, not overwritten.
    let _ = SOCKS.insert(&sk, &*fresh(sk, &mut slot), BPF_NOEXIST);
    SOCKS.get_ptr_mut(&sk)
}

/// sk_userlocks bits set by setsockopt(SO_SNDBUF) and setsockopt(SO_RCVBUF): that buffer is
/// the application's size, not autotuned.
pub const SOCK_SNDBUF_LOCK: u64 = 1;
pub const SOCK_RCVBUF_LOCK: u64 = 2;

/// The buffer locks (SOCK_*_LOCK bits) the application set on `sk`.
#[inline(always)]
pub fn userlocks(sk: u64) -> u64 {
    read::field(sk, global!(OFFSETS.sk_userlocks)).unwrap_or(0)
}

/// The service port of `sk` for the host totals, from its open (kept in the hash record); 0
/// when unknown. Only called at rare moments (a zero window, a probe, a drop).
#[inline(always)]
pub fn service_port(sk: u64, st: &SockState) -> u16 {
    if st.service_port != 0 {
        return st.service_port;
    }
    match SOCKS.get_ptr(&sk) {
        // SAFETY: a live map value; one field is copied out.
        Some(shared) => unsafe { (*shared).service_port },
        None => 0,
    }
}

/// Fresh hash state for a connection that starts now (SYN_SENT, SYN_RECV): whatever an earlier
/// socket at this address left is dropped.
#[inline(always)]
pub fn reset(sk: u64) -> Option<&'static mut SockState> {
    let mut slot = MaybeUninit::uninit();
    if SOCKS.insert(&sk, fresh(sk, &mut slot), 0).is_err() {
        // The table is full: this connection goes untraced by the tracepoint and kprobe
        // programs. Counted once per connection, so the agent can say so.
        if let Some(count) = COUNTS.get_ptr_mut(COUNT_TABLE_FULL) {
            // SAFETY: per-CPU slot, no concurrent writer on this CPU.
            unsafe { *count += 1 };
        }
        return None;
    }
    find(sk)
}

/// Drops the hash state of a socket that closed.
pub fn forget(sk: u64) {
    let _ = SOCKS.remove(&sk);
}

/// Whether socket `sk` has reached TCP_CLOSE.
#[inline(always)]
pub fn is_closed(sk: u64) -> bool {
    read::field(sk, global!(OFFSETS.skc_state)) == Some(u64::from(TCP_CLOSE))
}

/// The state of socket `sk` if it has one (its hash record, else the sk_storage one of a
/// socket that found the hash full); never creates it. Only for programs whose `sk` is a socket
/// pointer the verifier knows (cgroup_skb, fentry/fexit).
#[inline(always)]
pub fn local_existing(sk: u64) -> Option<&'static mut SockState> {
    find(sk).or_else(|| overflow_existing(sk))
}

/// The state of socket `sk`, created on first sight of a live connection: in the hash, or in
/// sk_storage when the hash is full. For the same programs as `local_existing`.
#[inline(always)]
pub fn local(sk: u64) -> Option<&'static mut SockState> {
    if let Some(found) = local_existing(sk) {
        return Some(found);
    }
    if !is_connection(sk) {
        return None;
    }
    let mut slot = MaybeUninit::uninit();
    let fresh = fresh(sk, &mut slot);
    // NOEXIST: a record another CPU made meanwhile is kept, not overwritten.
    if SOCKS.insert(&sk, &*fresh, BPF_NOEXIST).is_ok() {
        return find(sk);
    }
    if let Some(found) = find(sk) {
        return Some(found);
    }
    let map = core::ptr::addr_of!(SK_STATE) as *mut core::ffi::c_void;
    // SAFETY: the helper checks its arguments; the kernel copies `fresh` into the new storage.
    let made = unsafe {
        bpf_sk_storage_get(
            map,
            sk as *mut _,
            (fresh as *mut SockState).cast(),
            BPF_SK_STORAGE_GET_F_CREATE,
        )
    };
    // SAFETY: as in `overflow_existing`.
    (!made.is_null()).then(|| unsafe { &mut *made.cast::<SockState>() })
}

/// The sk_storage record of a socket that found the hash full, if any.
#[inline(always)]
fn overflow_existing(sk: u64) -> Option<&'static mut SockState> {
    let map = core::ptr::addr_of!(SK_STATE) as *mut core::ffi::c_void;
    // SAFETY: the helper checks its arguments; a NULL value with no flags only looks up.
    let found = unsafe { bpf_sk_storage_get(map, sk as *mut _, core::ptr::null_mut(), 0) };
    // SAFETY: the kernel keeps the storage alive while the socket is, which outlives the
    // program's run.
    (!found.is_null()).then(|| unsafe { &mut *found.cast::<SockState>() })
}

/// After an RST of socket `sk` (its state from `local_existing`): a socket closed at a zero
/// window kept its hash record for this RST; it is done with it now.
#[inline(always)]
pub fn reset_done(sk: u64) {
    if is_closed(sk) {
        forget(sk);
    }
}

/// Takes the note the drop hook leaves in `sk`'s hash record (an in-sequence PROTO_MEM drop:
/// the next zero window is the uncounted kind): whether it was there. `st` is the caller's
/// record of `sk`, the hash record itself unless the hash was full when `sk` was first seen.
#[inline(always)]
pub fn take_nomem_note(sk: u64, st: &mut SockState) -> bool {
    let note = match SOCKS.get_ptr_mut(&sk) {
        // SAFETY: a live map value, and not `st` (checked): no second reference to one record.
        Some(shared) if !core::ptr::eq(shared, st) => unsafe { &mut (*shared).nomem_pending },
        _ => &mut st.nomem_pending,
    };
    let was = *note != 0;
    *note = 0;
    was
}

/// Copies into `st` the process the tracepoint programs learned for `sk` (they alone run in
/// process context). Called only before an event is sent.
#[inline(always)]
pub fn adopt_owner(sk: u64, st: &mut SockState) {
    let Some(shared) = SOCKS.get_ptr(&sk) else { return };
    // SAFETY: a live map value; fields are copied out before `st` is written.
    let (owner, comm, cgroup) = unsafe { ((*shared).owner, (*shared).comm, (*shared).cgroup) };
    if owner != 0 {
        st.owner = owner;
        st.comm = comm;
        st.cgroup = cgroup;
    }
}

/// Records the current process as the socket's user; true when that is a new owner. Only call
/// from process context (a system call on the socket), where "current" really is the owner.
#[inline(always)]
pub fn learn_owner(state: &mut SockState) -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if state.owner == tgid {
        return false;
    }
    state.owner = tgid;
    if let Ok(comm) = bpf_get_current_comm() {
        state.comm = comm;
    }
    // SAFETY: helper without arguments.
    state.cgroup = unsafe { bpf_get_current_cgroup_id() };
    true
}

/// Reads the socket's ports and applies the port filter. connect() reaches SYN_SENT before the
/// local port is chosen, so the connection's open calls this again.
#[inline(always)]
pub fn read_ports(sk: u64, state: &mut SockState) {
    let sport = read::field(sk, global!(OFFSETS.skc_num)).unwrap_or(0) as u16;
    let dport = u16::from_be(read::field(sk, global!(OFFSETS.skc_dport)).unwrap_or(0) as u16);
    state.sport = sport;
    state.dport = dport;
    state.ports_match = filter::ports_match(sport, dport) as u8;
}

/// Learns the owner of socket `sk` as `learn_owner` does, and says so once per new owner: the
/// process is then named before it ever reads (a stuck reader sends no READ event). Not for
/// connect(), whose local port is not chosen yet: its open event names the process instead.
#[inline(always)]
pub fn learn_and_announce_owner(sk: u64, state: &mut SockState, hook: u8) {
    // A quiet connection's owner goes out with its deferred open, if it is ever reported.
    if learn_owner(state) && state.reported != 0 && filter::wanted(state) {
        emit::fill(KIND_OWNER, |e: &mut OwnerEvent| {
            header::write_for_socket(&mut e.header, KIND_OWNER, hook, sk, state);
            e.comm = state.comm;
            e.cgroup = state.cgroup;
        });
    }
}
