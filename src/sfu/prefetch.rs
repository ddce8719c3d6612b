//! Asking the CPU to start loading a viewer's state before the fan-out
//! reaches it. Each viewer's state (its peer, its session, its SRTP keys)
//! lies in its own heap blocks, kilobytes apart, and a fan-out to
//! thousands of viewers finds none of it in cache: without this, every
//! packet to every viewer waits on a few memory loads in turn.

/// Starts loading the cache line that holds `p`. A prefetch never faults,
/// whatever the address.
#[inline(always)]
pub fn line<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache; it reads nothing the program
    // sees and cannot fault, and SSE is part of every x86-64 CPU.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Starts loading the lines of the first `bytes` of `*p` (at most its size).
#[inline(always)]
pub fn lines<T>(p: *const T, bytes: usize) {
    let base = p.cast::<u8>();
    let end = bytes.min(std::mem::size_of::<T>());
    let mut at = 0;
    while at < end {
        line(base.wrapping_add(at));
        at += 64;
    }
}
