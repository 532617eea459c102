//! Reads of kernel memory at offsets resolved from BTF. The only place that calls
//! bpf_probe_read_kernel.

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
    if loc.width == 0 || loc.width >= 64 {
        Some(raw)
    } else {
        Some((raw >> loc.shift) & ((1u64 << loc.width) - 1))
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
