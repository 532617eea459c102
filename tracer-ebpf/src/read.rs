//! Reads of kernel memory at offsets resolved from BTF: through bpf_probe_read_kernel (the only
//! place that calls it), or by a plain load where the verifier knows the object (`direct`).

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;
use tracer_common::offsets::FieldLoc;

/// Reads a field of the object at `base`; None when this kernel lacks it. A faulting read gives 0
/// (the helper zeroes its destination), which keeps the code the verifier sees branch-free.
#[inline(always)]
pub fn field(base: u64, loc: FieldLoc) -> Option<u64> {
    if loc.offset == FieldLoc::ABSENT {
        return None;
    }
    let size = loc.size as u32;
    if size == 0 || size > 8 {
        return None;
    }
    let mut raw: u64 = 0;
    // SAFETY: the helper checks the source address; `size` <= 8 bytes fit in `raw`, and on this
    // little-endian target the low bytes of `raw` hold a narrower field.
    unsafe {
        bpf_probe_read_kernel(
            (&mut raw as *mut u64).cast(),
            size,
            base.wrapping_add(loc.offset as u64) as *const _,
        )
    };
    Some(bits(raw, loc))
}

/// The field's value in the `loc.size` bytes read at its offset: a bitfield's bits, or all.
#[inline(always)]
fn bits(raw: u64, loc: FieldLoc) -> u64 {
    if loc.width == 0 || loc.width >= 64 {
        raw
    } else {
        (raw >> loc.shift) & ((1u64 << loc.width) - 1)
    }
}

/// A 32-bit field, 0 when absent.
#[inline(always)]
pub fn u32_field(base: u64, loc: FieldLoc) -> u32 {
    field(base, loc).unwrap_or(0) as u32
}

/// `N` raw bytes at `addr` (zeros if the read faults).
#[inline(always)]
pub fn bytes<const N: usize>(addr: u64) -> [u8; N] {
    let mut out = [0u8; N];
    // SAFETY: as above, with exactly N bytes of destination.
    unsafe { bpf_probe_read_kernel(out.as_mut_ptr().cast(), N as u32, addr as *const _) };
    out
}

/// `N` raw bytes at `addr` into `out` (zeros if the read faults).
#[inline(always)]
pub fn bytes_into<const N: usize>(out: &mut [u8; N], addr: u64) {
    // SAFETY: as above, with exactly N bytes of destination.
    unsafe { bpf_probe_read_kernel(out.as_mut_ptr().cast(), N as u32, addr as *const _) };
}

/// Reads a field of the object at `base` by a plain load, about 10 ns cheaper than the helper.
/// Only for a `base` the verifier knows as a kernel object of the field's type (a BTF pointer,
/// such as bpf_skc_to_tcp_sock's result) and a `loc` from the read-only globals, which it knows
/// as constants: it checks each load against the type, and the JIT makes a faulting one read 0.
#[inline(always)]
pub fn direct(base: u64, loc: FieldLoc) -> Option<u64> {
    if loc.offset == FieldLoc::ABSENT {
        return None;
    }
    let at = base.wrapping_add(loc.offset as u64);
    // SAFETY: see above; the verifier refuses the program rather than let a bad load through.
    let raw = unsafe {
        match loc.size {
            1 => core::ptr::read_volatile(at as *const u8) as u64,
            2 => core::ptr::read_volatile(at as *const u16) as u64,
            4 => core::ptr::read_volatile(at as *const u32) as u64,
            8 => core::ptr::read_volatile(at as *const u64),
            _ => return None,
        }
    };
    Some(bits(raw, loc))
}
