//! Programs that do nothing, at the attach points every connection passes through on a kernel
//! without function hooks: cgroup_skb ingress and egress on the cgroup-v2 root (each segment)
//! and inet_sock_set_state (each state change). `tracer bench-floor` attaches them so that
//! `cargo xtask bench` can show what these hooks cost a host before any work is done in them:
//! the least any tool built on them can cost, beside what the tracer costs.

use aya_ebpf::{
    macros::{cgroup_skb, raw_tracepoint},
    programs::{RawTracePointContext, SkBuffContext},
};

#[cgroup_skb(ingress)]
pub fn floor_ingress(_ctx: SkBuffContext) -> i32 {
    1
}

#[cgroup_skb(egress)]
pub fn floor_egress(_ctx: SkBuffContext) -> i32 {
    1
}

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn floor_set_state(_ctx: RawTracePointContext) -> i32 {
    0
}
