//! Styles, in colour when the terminal has it and NO_COLOR is unset; otherwise bold, dim and
//! reverse video only, so the view still reads on a monochrome terminal.

use std::ffi::OsStr;

use ratatui::style::{Color, Modifier, Style};

use super::row::State;
use crate::alerts::{Alert, AlertKind, Severity};

/// The view's styles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// From the environment: NO_COLOR (https://no-color.org) and TERM.
    pub fn detect() -> Theme {
        Theme { color: wants_color(std::env::var_os("NO_COLOR"), std::env::var_os("TERM")) }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// Titles and column headings.
    pub fn heading(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// Something wrong now: a zero window, lost events, a critical alert.
    pub fn bad(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Something to watch.
    pub fn warn(self) -> Style {
        self.fg(Color::Yellow)
    }

    /// Quiet text: closed connections, resolved alerts, hints.
    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    /// The selected row.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// The sparkline's blocks.
    pub fn spark(self) -> Style {
        self.fg(Color::Cyan)
    }

    /// A window state.
    pub fn state(self, state: State) -> Style {
        match state {
            State::Zero | State::Probing => self.bad(),
            State::Reopened | State::Shrinking => self.warn(),
            State::Open => self.fg(Color::Green),
            State::Closed => self.dim(),
        }
    }

    /// An alert line, by severity; resolved ones recede.
    pub fn alert(self, a: &Alert) -> Style {
        match (a.kind, a.severity) {
            (AlertKind::AlertResolved, _) => self.fg(Color::Green),
            (AlertKind::Alert, Severity::Critical) => self.bad(),
            (AlertKind::Alert, Severity::Warning) => self.warn().add_modifier(Modifier::BOLD),
        }
    }
}

/// Colour unless NO_COLOR is set to anything non-empty, or TERM is unset, empty or "dumb".
fn wants_color(no_color: Option<impl AsRef<OsStr>>, term: Option<impl AsRef<OsStr>>) -> bool {
    let no_color = no_color.is_some_and(|v| !v.as_ref().is_empty());
    let term_ok = term.is_some_and(|t| !t.as_ref().is_empty() && t.as_ref() != "dumb");
    !no_color && term_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_when_wanted_and_supported() {
        let none: Option<&str> = None;
        assert!(wants_color(none, Some("xterm-256color")));
        assert!(wants_color(Some(""), Some("xterm")), "an empty NO_COLOR does not count");
        assert!(!wants_color(Some("1"), Some("xterm-256color")));
        assert!(!wants_color(none, Some("dumb")));
        assert!(!wants_color(none, none));
    }
}
