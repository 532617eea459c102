//! Keys to actions, by mode. Pure: the terminal's reader thread lives in terminal.rs.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::model::{Action, Mode};

/// The keys, as the help overlay lists them.
pub const HELP: &[(&str, &str)] = &[
    ("q  Esc  Ctrl-C", "quit (Esc closes this help, or the filter prompt)"),
    ("s / S", "sort by the next column / reverse the order"),
    ("/", "filter by process, address or port text; Enter applies, Esc clears"),
    ("Up Down  j k", "move the selection"),
    ("PgUp PgDn", "a screen up or down"),
    ("Home End  g G", "first or last row"),
    ("p", "pause the view (a replay pauses too)"),
    ("w", "sparkline side: auto (the side that went lowest), local, peer"),
    ("?", "this help"),
];

/// What `key` does in `mode`; None for keys that do nothing.
pub fn action(key: KeyEvent, mode: Mode) -> Option<Action> {
    // Terminals that report releases and repeats send them too; act on presses only.
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        return Some(Action::Quit);
    }
    match mode {
        Mode::Filter => match key.code {
            KeyCode::Enter => Some(Action::FilterApply),
            KeyCode::Esc => Some(Action::FilterClear),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Char(c) if !ctrl => Some(Action::FilterInput(c)),
            _ => None,
        },
        Mode::Help => match key.code {
            KeyCode::Esc | KeyCode::Char('?') => Some(Action::Help),
            KeyCode::Char('q') => Some(Action::Quit),
            _ => None,
        },
        Mode::Normal if ctrl => None,
        Mode::Normal => match key.code {
            KeyCode::Char('q') | KeyCode::Esc => Some(Action::Quit),
            KeyCode::Char('s') => Some(Action::SortNext),
            KeyCode::Char('S') => Some(Action::SortReverse),
            KeyCode::Char('/') => Some(Action::FilterStart),
            KeyCode::Up | KeyCode::Char('k') => Some(Action::Up),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
            KeyCode::PageUp => Some(Action::PageUp),
            KeyCode::PageDown => Some(Action::PageDown),
            KeyCode::Home | KeyCode::Char('g') => Some(Action::Top),
            KeyCode::End | KeyCode::Char('G') => Some(Action::Bottom),
            KeyCode::Char('p') => Some(Action::Pause),
            KeyCode::Char('?') => Some(Action::Help),
            KeyCode::Char('w') => Some(Action::SparkSide),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn quit_keys() {
        assert_eq!(action(key(KeyCode::Char('q')), Mode::Normal), Some(Action::Quit));
        assert_eq!(action(key(KeyCode::Esc), Mode::Normal), Some(Action::Quit));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for mode in [Mode::Normal, Mode::Filter, Mode::Help] {
            assert_eq!(action(ctrl_c, mode), Some(Action::Quit));
        }
    }

    #[test]
    fn filter_mode_takes_text() {
        // 'q' and 's' are text while typing a filter, and Esc clears instead of quitting.
        assert_eq!(action(key(KeyCode::Char('q')), Mode::Filter), Some(Action::FilterInput('q')));
        assert_eq!(action(key(KeyCode::Char('s')), Mode::Filter), Some(Action::FilterInput('s')));
        assert_eq!(action(key(KeyCode::Esc), Mode::Filter), Some(Action::FilterClear));
        assert_eq!(action(key(KeyCode::Enter), Mode::Filter), Some(Action::FilterApply));
    }

    #[test]
    fn help_mode_closes_on_esc() {
        assert_eq!(action(key(KeyCode::Esc), Mode::Help), Some(Action::Help));
        assert_eq!(action(key(KeyCode::Char('s')), Mode::Help), None);
    }

    #[test]
    fn sort_and_scroll_keys() {
        assert_eq!(action(key(KeyCode::Char('s')), Mode::Normal), Some(Action::SortNext));
        assert_eq!(action(key(KeyCode::Char('S')), Mode::Normal), Some(Action::SortReverse));
        assert_eq!(action(key(KeyCode::Char('j')), Mode::Normal), Some(Action::Down));
        assert_eq!(action(key(KeyCode::PageUp), Mode::Normal), Some(Action::PageUp));
        let release = KeyEvent {
            kind: KeyEventKind::Release,
            ..KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE)
        };
        assert_eq!(action(release, Mode::Normal), None);
    }
}
