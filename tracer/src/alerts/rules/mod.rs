//! The alert rules, one file each: when the rule fires and resolves, and what its alerts say.
//! A new rule adds its file and a line below, and its entry in `config`.

mod flow_control_drops;
mod persist_backoff;
mod rcvbuf_pinned;
mod receiver_limited;
mod sender_silly_window;
mod silly_window;
mod sndbuf_limited;
mod window_limits_throughput;
mod window_scaling_missing;
mod zero_window_duty_cycle;
mod zero_window_stall;

use super::check::Check;
use super::config::Thresholds;

/// Every rule, set up with its thresholds.
pub(super) fn all(th: &Thresholds) -> Vec<Box<dyn Check>> {
    vec![
        Box::new(zero_window_stall::ZeroWindowStall::new(&th.zero_window_stall)),
        Box::new(persist_backoff::PersistBackoff::new(&th.persist_backoff)),
        Box::new(receiver_limited::ReceiverLimited::new(&th.receiver_limited)),
        Box::new(window_scaling_missing::WindowScalingMissing::new(&th.window_scaling_missing)),
        Box::new(silly_window::SillyWindow::new(&th.silly_window)),
        Box::new(rcvbuf_pinned::RcvbufPinned::new(&th.rcvbuf_pinned)),
        Box::new(flow_control_drops::FlowControlDrops::new(&th.flow_control_drops)),
        Box::new(window_limits_throughput::WindowLimitsThroughput::new(
            &th.window_limits_throughput,
        )),
        Box::new(zero_window_duty_cycle::ZeroWindowDutyCycle::new(&th.zero_window_duty_cycle)),
        Box::new(sender_silly_window::SenderSillyWindow::new(&th.sender_silly_window)),
        Box::new(sndbuf_limited::SndbufLimited::new(&th.sndbuf_limited)),
    ]
}
