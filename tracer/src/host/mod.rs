//! The machine the agent runs on: /proc and /sys reads, mount points, clocks and the time zone,
//! and hints to its CPU's caches.
//! Every other module asks here instead of opening those files itself.

pub mod clock;
pub mod limits;
pub mod mounts;
pub mod prefetch;
pub mod procfs;
pub mod sysfs;
