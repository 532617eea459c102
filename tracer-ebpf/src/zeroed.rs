//! Zeroing without `memset`. On the BPF target the compiler turns a run of zero stores into a
//! call to compiler_builtins' memset, a subprogram that stores one byte per loop turn (four
//! instructions a byte): zeroing a 176-byte socket record that way costs some 700 instructions,
//! on every new connection. Volatile word stores are never merged back into that call.

use core::mem::{align_of, size_of};

/// Sets every byte of `*dst` to 0 with 8-byte stores (then single bytes for a tail).
///
/// # Safety
/// `dst` must be valid for writes of a `T`.
#[inline(always)]
pub unsafe fn zero<T>(dst: *mut T) {
    const { assert!(align_of::<T>() >= 8, "zero() stores whole words: T must be 8-aligned") };
    let words = dst.cast::<u64>();
    let mut i = 0;
    while i < size_of::<T>() / 8 {
        // SAFETY: within `*dst` (i < size / 8), and `dst` is 8-aligned.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
    let bytes = dst.cast::<u8>();
    let mut j = size_of::<T>() / 8 * 8;
    while j < size_of::<T>() {
        // SAFETY: within `*dst`.
        unsafe { core::ptr::write_volatile(bytes.add(j), 0) };
        j += 1;
    }
}
