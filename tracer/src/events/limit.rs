//! Why this host's receive window has the size it has. The kernel chooses it in
//! `__tcp_select_window()` (net/ipv4/tcp_output.c), then `tcp_select_window()` keeps an older,
//! larger offer rather than shrink it. Both are replayed here, in the kernel's own order of
//! tests (6.1 and 6.18: the same order; 6.6+ turns buffer bytes into window bytes by the socket's
//! scaling_ratio, earlier kernels by net.ipv4.tcp_adv_win_scale), on the inputs the kernel
//! programs read as the window left.

use tracer_common::event::{
    WindowEvent, WINDOW_MEMORY_PRESSURE, WINDOW_NETNS, WINDOW_NOMEM, WINDOW_RCVBUF_LOCKED,
    WINDOW_SHRINK_ALLOWED, WINDOW_WANTED,
};

use super::model::{Limit, WindowChoice};

/// tcp_win_from_space() before 6.6 with net.ipv4.tcp_adv_win_scale at its default.
const DEFAULT_ADV_WIN_SCALE: i8 = 1;

/// The window choice behind one advertised window.
pub fn explain(w: &WindowEvent) -> WindowChoice {
    let inputs = Inputs::from_event(w);
    let wanted = if w.flags & WINDOW_WANTED != 0 {
        w.wanted as i64
    } else {
        inputs.select_window(w.rcv_wnd as i64)
    };
    WindowChoice {
        limited_by: inputs.limit(w, wanted),
        wanted: wanted.clamp(0, u32::MAX as i64) as u32,
        wanted_exact: w.flags & WINDOW_WANTED != 0,
        rcv_mss: w.rcv_mss as u32,
        advmss: w.advmss as u32,
        backlog: w.backlog,
        rcvbuf_locked: w.flags & WINDOW_RCVBUF_LOCKED != 0,
        memory_pressure: w.flags & WINDOW_MEMORY_PRESSURE != 0,
        rmem_max: (w.flags & WINDOW_NETNS != 0).then_some(w.rmem_max),
        scaling_ratio: (w.scaling_ratio != 0).then_some(w.scaling_ratio),
    }
}

/// The values `__tcp_select_window()` works with, in window bytes.
struct Inputs {
    /// tcp_space(): what the buffer still holds, as window.
    free: i64,
    /// tcp_full_space(): the whole buffer, as window.
    allowed: i64,
    /// min(window_clamp, allowed).
    full: i64,
    mss: i64,
    rcv_ssthresh: i64,
    window_clamp: i64,
    /// 1 << rcv_wscale.
    granule: i64,
    wscale: u8,
    shrink_allowed: bool,
    memory_pressure: bool,
}

impl Inputs {
    fn from_event(w: &WindowEvent) -> Inputs {
        let adv_win_scale =
            if w.flags & WINDOW_NETNS != 0 { w.adv_win_scale } else { DEFAULT_ADV_WIN_SCALE };
        let win_from_space = |space: i64| -> i64 {
            if w.scaling_ratio != 0 {
                (space * w.scaling_ratio as i64) >> 8
            } else if adv_win_scale <= 0 {
                space >> (-(adv_win_scale as i32)).min(63)
            } else {
                space - (space >> (adv_win_scale as i32).min(63))
            }
        };
        let rcvbuf = w.rcvbuf as i32 as i64;
        let free = win_from_space(rcvbuf - w.backlog as i32 as i64 - w.rmem_alloc as i32 as i64);
        let allowed = win_from_space(rcvbuf);
        let full = (w.window_clamp as i64).min(allowed);
        let wscale = w.wscale.min(14);
        Inputs {
            free,
            allowed,
            full,
            mss: (w.rcv_mss as i64).min(full),
            rcv_ssthresh: w.rcv_ssthresh as i64,
            window_clamp: w.window_clamp as i64,
            granule: 1 << wscale,
            wscale,
            shrink_allowed: w.flags & WINDOW_SHRINK_ALLOWED != 0 && wscale > 0,
            memory_pressure: w.flags & WINDOW_MEMORY_PRESSURE != 0,
        }
    }

    /// `__tcp_select_window()` on these inputs. `rcv_wnd` (the window after the choice) stands
    /// in for the one before it, which only the path without window scaling reads.
    fn select_window(&self, rcv_wnd: i64) -> i64 {
        if self.mss <= 0 {
            return 0;
        }
        let mut free = self.free;
        if self.shrink_allowed {
            free = round_down(free, self.granule);
            if free < self.full >> 1
                && (free < self.allowed >> 4 || free < self.mss || free < self.granule)
            {
                return 0;
            }
            return if free > self.rcv_ssthresh {
                round_down(self.rcv_ssthresh, self.granule)
            } else {
                free
            };
        }
        if free < self.full >> 1 {
            free = round_down(free, self.granule);
            if free < self.allowed >> 4 || free < self.mss {
                return 0;
            }
        }
        free = free.min(self.rcv_ssthresh);
        if self.wscale > 0 {
            return align_up(free, self.granule);
        }
        // Without scaling the kernel keeps its offer when within one MSS of the free space.
        if rcv_wnd <= free - self.mss || rcv_wnd > free {
            round_down(free, self.mss)
        } else {
            rcv_wnd
        }
    }

    /// What held the window, following the tests `select_window` makes.
    fn limit(&self, w: &WindowEvent, wanted: i64) -> Limit {
        if w.flags & WINDOW_NOMEM != 0 {
            return Limit::MemoryPressure;
        }
        // The header's 16 bits, shifted by the scale agreed at the handshake, cap what the kernel
        // chose (65,535 bytes where the connection has no window scaling).
        if w.rcv_wnd as u64 > (u16::MAX as u64) << self.wscale {
            return Limit::ScaleCeiling;
        }
        // The no-shrink rule advertised more than the kernel wanted. A recomputed `wanted` may be
        // off by the data that arrived since: it must miss by more than one segment.
        let slack = if w.flags & WINDOW_WANTED != 0 { 0 } else { self.mss.max(self.granule) };
        if !self.shrink_allowed && (w.rcv_wnd as i64) > wanted + slack {
            return Limit::NoShrink;
        }
        if self.free < self.full >> 1 {
            if self.memory_pressure {
                return Limit::MemoryPressure;
            }
            let free = round_down(self.free, self.granule);
            if free > 0 && (free < self.allowed >> 4 || free < self.mss) {
                return Limit::SillyWindow;
            }
            // Everything in order was read: what holds the memory is out-of-order data (or the
            // backlog), not the application.
            if w.unread == 0 && w.rmem_alloc > 0 {
                return Limit::OutOfOrder;
            }
            return Limit::AppNotReading;
        }
        let locked = w.flags & WINDOW_RCVBUF_LOCKED != 0;
        if self.free > self.rcv_ssthresh {
            if self.memory_pressure {
                return Limit::MemoryPressure;
            }
            // tcp_grow_window() grows rcv_ssthresh only while it is below the free space: under
            // a pinned buffer it stops where the buffer holds it, so the buffer is the cause.
            // Within a segment of the clamp it has grown as far as it can.
            if self.rcv_ssthresh + self.mss < self.window_clamp {
                return if locked { Limit::BufferMax } else { Limit::RcvSsthresh };
            }
            // rcv_ssthresh has grown to the clamp: the clamp holds the window, set below the
            // buffer (by more than a segment) or following it.
            if self.window_clamp + self.mss < self.allowed {
                return Limit::WindowClamp;
            }
        }
        let at_max =
            locked || (w.flags & WINDOW_NETNS != 0 && w.rmem_max > 0 && w.rcvbuf >= w.rmem_max);
        if at_max {
            Limit::BufferMax
        } else {
            Limit::BufferGrowing
        }
    }
}

fn round_down(value: i64, granule: i64) -> i64 {
    if granule <= 1 {
        value
    } else {
        value - value.rem_euclid(granule)
    }
}

fn align_up(value: i64, granule: i64) -> i64 {
    round_down(value + granule - 1, granule)
}

#[cfg(test)]
mod tests {
    use tracer_common::event::{
        WindowEvent, WINDOW_MEMORY_PRESSURE, WINDOW_NETNS, WINDOW_NOMEM, WINDOW_RCVBUF_LOCKED,
        WINDOW_WANTED,
    };

    use super::explain;
    use crate::events::model::Limit;

    /// A 6.18 socket on loopback (scaling_ratio 232, wscale 7) with a 128 KiB buffer that
    /// autotuning may grow to 6 MiB: window_clamp and rcv_ssthresh have grown with the buffer.
    fn socket() -> WindowEvent {
        // SAFETY: plain old data, valid all-zero.
        let mut w: WindowEvent = unsafe { std::mem::zeroed() };
        w.wscale = 7;
        w.rcvbuf = 131_072;
        w.window_clamp = 118_784;
        w.rcv_ssthresh = 118_784;
        w.rcv_wnd = 118_784;
        w.rcv_mss = 1_000;
        w.advmss = 65_483;
        w.scaling_ratio = 232;
        w.rmem_max = 6 << 20;
        w.flags = WINDOW_NETNS;
        w
    }

    fn limit(w: &WindowEvent) -> Limit {
        explain(w).limited_by
    }

    #[test]
    fn an_empty_buffer_that_can_grow_is_the_limit_until_autotuning_grows_it() {
        let w = socket();
        let choice = explain(&w);
        assert_eq!(choice.limited_by, Limit::BufferGrowing);
        // 131072 * 232 / 256, already a multiple of 128.
        assert_eq!(choice.wanted, 118_784);
        assert!(!choice.wanted_exact);
        assert_eq!(choice.rmem_max, Some(6 << 20));
    }

    #[test]
    fn a_pinned_buffer_or_one_at_tcp_rmem_max_is_at_its_maximum() {
        // SO_RCVBUF = 16 KiB: the kernel doubles it, and the window follows the buffer.
        let mut pinned = socket();
        pinned.rcvbuf = 32_768;
        pinned.window_clamp = 29_696;
        pinned.rcv_ssthresh = 29_696;
        pinned.rcv_wnd = 29_696;
        pinned.flags |= WINDOW_RCVBUF_LOCKED;
        assert_eq!(limit(&pinned), Limit::BufferMax);
        assert_eq!(explain(&pinned).wanted, 29_696);

        let mut grown = socket();
        grown.rmem_max = grown.rcvbuf;
        assert_eq!(limit(&grown), Limit::BufferMax);
        // Where the namespace's tcp_rmem could not be read, a buffer is never called full.
        grown.flags &= !WINDOW_NETNS;
        assert_eq!(limit(&grown), Limit::BufferGrowing);
    }

    #[test]
    fn a_clamp_below_the_buffer_holds_the_window() {
        let mut w = socket();
        w.window_clamp = 8_192;
        w.rcv_ssthresh = 8_192;
        w.rcv_wnd = 8_192;
        assert_eq!(limit(&w), Limit::WindowClamp);
        assert_eq!(explain(&w).wanted, 8_192);
    }

    #[test]
    fn rcv_ssthresh_below_the_clamp_has_not_grown_yet() {
        let mut w = socket();
        w.rcv_ssthresh = 64_000;
        w.rcv_wnd = 64_000;
        assert_eq!(limit(&w), Limit::RcvSsthresh);
        // Aligned up to the 128-byte scale unit, as the kernel does.
        assert_eq!(explain(&w).wanted, 64_000);
        // Under a pinned buffer rcv_ssthresh stops growing where the buffer holds it.
        let mut pinned = w;
        pinned.flags |= WINDOW_RCVBUF_LOCKED;
        assert_eq!(limit(&pinned), Limit::BufferMax);
        w.flags |= WINDOW_MEMORY_PRESSURE;
        assert_eq!(limit(&w), Limit::MemoryPressure);
    }

    #[test]
    fn unread_bytes_past_half_the_buffer_are_the_application() {
        let mut w = socket();
        w.rmem_alloc = 100_000;
        w.unread = 90_000;
        // (131072 - 100000) * 232 / 256 = 28159, rounded down to 128s.
        w.rcv_wnd = 28_032;
        let choice = explain(&w);
        assert_eq!(choice.limited_by, Limit::AppNotReading);
        assert_eq!(choice.wanted, 28_032);
        // Nothing unread: the memory is out-of-order data, not the application's.
        w.unread = 0;
        assert_eq!(limit(&w), Limit::OutOfOrder);
    }

    #[test]
    fn free_space_below_a_sixteenth_of_the_buffer_is_advertised_as_zero() {
        let mut w = socket();
        w.rmem_alloc = 127_000;
        w.unread = 120_000;
        w.rcv_wnd = 0;
        let choice = explain(&w);
        assert_eq!(choice.wanted, 0);
        assert_eq!(choice.limited_by, Limit::SillyWindow);
        // No free space at all: the application.
        w.rmem_alloc = 140_000;
        assert_eq!(limit(&w), Limit::AppNotReading);
    }

    #[test]
    fn an_offer_larger_than_wanted_is_the_no_shrink_rule() {
        let mut w = socket();
        w.rmem_alloc = 100_000;
        w.unread = 90_000;
        w.rcv_wnd = 50_048;
        assert_eq!(limit(&w), Limit::NoShrink);
        // Within a segment of the recomputed window it is not called a shrink refused.
        w.rcv_wnd = 28_032 + 1_000;
        assert_eq!(limit(&w), Limit::AppNotReading);
        // The kernel's own result has no slack.
        w.flags |= WINDOW_WANTED;
        w.wanted = 28_032;
        w.rcv_wnd = 28_160;
        assert_eq!(limit(&w), Limit::NoShrink);
        let choice = explain(&w);
        assert!(choice.wanted_exact);
        assert_eq!(choice.wanted, 28_032);
    }

    #[test]
    fn a_window_beyond_what_the_header_can_carry_is_the_scale_ceiling() {
        // No window scaling: rcv_wnd 102400 goes out as 65535.
        let mut w = socket();
        w.wscale = 0;
        w.rcv_wnd = 102_400;
        w.window = 65_535;
        w.rcv_ssthresh = 104_463;
        w.window_clamp = 108_544;
        assert_eq!(limit(&w), Limit::ScaleCeiling);
        w.rcv_wnd = 65_535;
        assert_ne!(limit(&w), Limit::ScaleCeiling);
    }

    #[test]
    fn memory_pressure_and_the_out_of_memory_zero_window() {
        let mut w = socket();
        w.rmem_alloc = 100_000;
        w.unread = 90_000;
        w.rcv_wnd = 28_032;
        w.flags |= WINDOW_MEMORY_PRESSURE;
        assert_eq!(limit(&w), Limit::MemoryPressure);
        let mut nomem = socket();
        nomem.rcv_wnd = 0;
        nomem.flags |= WINDOW_NOMEM;
        assert_eq!(limit(&nomem), Limit::MemoryPressure);
    }

    #[test]
    fn before_6_6_buffer_bytes_become_window_by_tcp_adv_win_scale() {
        let mut w = socket();
        w.scaling_ratio = 0;
        w.adv_win_scale = 1;
        w.rcvbuf = 65_536;
        w.window_clamp = 32_768;
        w.rcv_ssthresh = 32_768;
        w.rcv_wnd = 32_768;
        assert_eq!(explain(&w).wanted, 32_768);
        assert_eq!(explain(&w).scaling_ratio, None);
        // tcp_adv_win_scale = 2: three quarters of the buffer.
        w.adv_win_scale = 2;
        w.window_clamp = 49_152;
        w.rcv_ssthresh = 49_152;
        assert_eq!(explain(&w).wanted, 49_152);
    }

    #[test]
    fn without_window_scaling_an_offer_within_one_mss_is_kept() {
        let mut w = socket();
        w.wscale = 0;
        w.rcv_mss = 1_460;
        w.rcv_ssthresh = 30_000;
        w.window_clamp = 30_000;
        w.rcv_wnd = 29_000;
        assert_eq!(explain(&w).wanted, 29_000);
        w.rcv_wnd = 10_000;
        // rounddown(30000, 1460); then the offer (10000) is below what was wanted.
        assert_eq!(explain(&w).wanted, 29_200);
    }
}
