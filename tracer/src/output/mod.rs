//! Where events go for a person or a pipe: readable lines for a terminal, or NDJSON. Both are
//! pipeline consumers.

pub mod json;
pub mod terminal;

/// What an output prints besides the alerts.
#[derive(Clone, Copy, Debug)]
pub struct Show {
    /// Every event (`watch`, `replay`), or only alerts (`record`, `serve`).
    pub events: bool,
    /// The per-connection summary at the end.
    pub summary: bool,
}
