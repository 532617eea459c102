//! Hints to the CPU's caches. With tens of thousands of connections, an event's connection is
//! rarely in cache: asking for it while the event before is still being handled hides most of
//! that wait (the pipeline does so one ring record ahead).

/// Bytes the CPU moves into its cache at a time.
const LINE: usize = 64;

/// Asks the CPU to bring `value`'s bytes into its caches. A hint only: it never faults and
/// changes nothing but timing; a no-op where no stable prefetch instruction exists.
#[inline(always)]
pub fn read<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = (value as *const T).cast::<i8>();
        let mut offset = 0;
        while offset < std::mem::size_of::<T>() {
            // SAFETY: a prefetch reads nothing the program sees and cannot fault; the address
            // lies within `value`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
            offset += LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
