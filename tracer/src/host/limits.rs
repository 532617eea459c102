//! The process's resource limits, as the agent needs them.

use rustix::process::{getrlimit, Resource};

/// The soft limit on open files (RLIMIT_NOFILE); None when unlimited.
pub fn open_files() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        // The test runner's own limit: finite on any usual system, and room for stdio.
        assert!(super::open_files().is_none_or(|n| n >= 3));
    }
}
