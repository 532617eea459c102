//! The terminal while `top` runs: raw mode, the alternate screen and a hidden cursor, undone by
//! a guard on every way out (return, error, panic), and a thread reading keys.

use std::{
    io::{IsTerminal as _, Stdout},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Once,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use ratatui::{
    backend::CrosstermBackend,
    crossterm::{
        cursor::{Hide, Show},
        event::{self, Event, KeyEvent},
        execute,
        terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen},
    },
    layout::Rect,
    Frame, Terminal,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// True while the terminal is in `top`'s state: restoring twice would print stray escapes.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();
/// How often the key thread looks up from waiting to see whether it should stop.
const KEY_POLL: Duration = Duration::from_millis(50);

/// Fails unless standard output is a terminal: the view needs one.
pub fn require_tty() -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "tracer top needs a terminal on standard output; for a pipe or a file use \
             `tracer watch` (add --json for NDJSON)"
        );
    }
    Ok(())
}

/// The terminal in full-screen mode; dropping it gives the terminal back.
pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Tui {
    /// Raw mode, alternate screen, hidden cursor, and a panic hook that undoes them before the
    /// panic message is printed.
    pub fn enter() -> Result<Tui> {
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        enable_raw_mode().context("failed to put the terminal in raw mode")?;
        ACTIVE.store(true, Ordering::SeqCst);
        // From here on a failure restores through `restore` (the guard does not exist yet).
        let setup = execute!(std::io::stdout(), EnterAlternateScreen, Hide)
            .context("failed to switch to the alternate screen")
            .and_then(|()| {
                Terminal::new(CrosstermBackend::new(std::io::stdout()))
                    .context("failed to set up the terminal")
            });
        match setup {
            Ok(terminal) => Ok(Tui { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    /// The screen size now.
    pub fn area(&self) -> Result<Rect> {
        let size = self.terminal.size().context("failed to read the terminal size")?;
        Ok(Rect::new(0, 0, size.width, size.height))
    }

    /// Draw one frame.
    pub fn draw(&mut self, f: impl FnOnce(&mut Frame)) -> Result<()> {
        self.terminal.draw(f).context("failed to draw on the terminal")?;
        Ok(())
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Leave the alternate screen, show the cursor, end raw mode; once, and best effort (there is
/// nowhere left to report a failure).
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(std::io::stdout(), LeaveAlternateScreen, Show);
        let _ = disable_raw_mode();
    }
}

/// What the key thread reports.
#[derive(Debug)]
pub enum Input {
    Key(KeyEvent),
    /// The terminal changed size: draw again.
    Resize,
    /// Reading the terminal failed (it went away).
    Failed(String),
}

/// Keys from the terminal, read on a thread (crossterm's reads block) and handed to the loop.
pub struct Keys {
    rx: UnboundedReceiver<Input>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Keys {
    /// Start reading.
    pub fn spawn() -> Keys {
        let (tx, rx) = unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                // A closed terminal reads as ready forever, and crossterm's read() then spins
                // inside without returning: look for the hang-up first.
                if terminal_hung_up() {
                    let _ = tx.send(Input::Failed("the terminal hung up".to_string()));
                    break;
                }
                let input = match event::poll(KEY_POLL) {
                    Ok(false) => continue,
                    Ok(true) => match event::read() {
                        Ok(Event::Key(key)) => Input::Key(key),
                        Ok(Event::Resize(..)) => Input::Resize,
                        Ok(_) => continue,
                        Err(e) => Input::Failed(e.to_string()),
                    },
                    Err(e) => Input::Failed(e.to_string()),
                };
                let failed = matches!(input, Input::Failed(_));
                if tx.send(input).is_err() || failed {
                    break;
                }
            }
        });
        Keys { rx, stop, thread: Some(thread) }
    }

    /// The next input; None once the thread has stopped.
    pub async fn next(&mut self) -> Option<Input> {
        self.rx.recv().await
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else { return };
        // It looks up every KEY_POLL; should a read hang anyway, exiting must not wait for it.
        let deadline = std::time::Instant::now() + 4 * KEY_POLL;
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(KEY_POLL / 5);
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

/// Whether the terminal keys come from has gone away. crossterm reads standard input when it
/// is a terminal (else it opens /dev/tty itself, which is not checked here).
fn terminal_hung_up() -> bool {
    // SAFETY: isatty on a descriptor number has no preconditions.
    if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
        return false;
    }
    let mut fd = libc::pollfd { fd: libc::STDIN_FILENO, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, no waiting.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}
