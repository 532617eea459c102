//! Process names, interned: a busy host has a few hundred process names and a million
//! connections, so each connection holds a shared `Arc<str>` rather than its own string.

use std::collections::HashSet;
use std::sync::Arc;

/// Distinct names kept for sharing; past it the set starts over (names already handed out stay
/// valid, they are only shared less).
const NAMES_KEPT: usize = 16_384;

#[derive(Debug, Default)]
pub struct Names {
    set: HashSet<Arc<str>>,
}

impl Names {
    /// The shared copy of `name`.
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.set.get(name) {
            return shared.clone();
        }
        if self.set.len() >= NAMES_KEPT {
            self.set.clear();
        }
        let shared: Arc<str> = Arc::from(name);
        self.set.insert(shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_shared_and_the_set_stays_bounded() {
        let mut names = Names::default();
        let a = names.intern("nginx");
        assert!(Arc::ptr_eq(&a, &names.intern("nginx")));
        for i in 0..NAMES_KEPT + 10 {
            names.intern(&format!("p{i}"));
        }
        assert!(names.set.len() <= NAMES_KEPT);
        assert_eq!(&*names.intern("nginx"), "nginx");
    }
}
