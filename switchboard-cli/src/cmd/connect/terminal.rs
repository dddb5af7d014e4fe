//! `connect` on a terminal: a line editor (rustyline) owns the terminal, with a `> ` prompt;
//! what arrives is printed above the prompt line, so a half-typed line is never broken up.
//!
//! Three threads share the terminal without ever writing over each other:
//! - the *editor* thread runs `readline` and hands each line (or Ctrl-C / Ctrl-D) to the
//!   session as an [`Input`];
//! - the *display* thread prints what the session sends it through rustyline's external
//!   printer, which redraws the prompt and the typed text below each printed line;
//! - the session (async) only ever sends to those two, never blocks on them, and never
//!   writes to the terminal while the editor runs.
//!
//! Rustyline has no way to end a pending `readline` from outside: it returns on a key, or
//! when the process gets SIGINT while it waits (it catches SIGINT itself then). So
//! [`Terminal::stop_input`] first makes sure everything sent to the display has been drawn
//! (an unflushed line would be lost), then raises SIGINT until the editor has let go of
//! the terminal. The session catches SIGINT from its start (see `Interrupts`), so a raise
//! that lands between two `readline`s does not kill the process; [`Terminal::stop_input`]
//! returns how long such a stray one may still show up.

use super::Input;
use rustyline::error::ReadlineError;
use rustyline::history::MemHistory;
use rustyline::{Config, Editor, ExternalPrinter as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc as tokio_mpsc, oneshot};

/// The prompt, also the marker of a sent line: the typed line stays on screen after Enter.
pub(super) const PROMPT: &str = "> ";

/// Printed through the external printer to learn that what was sent before it has been
/// drawn. Invisible: the printer writes it where the prompt was and redraws the prompt
/// there, and cursor-up followed by a newline lands where it started (column 0). Also
/// invisible when written directly, between two `readline`s (cursor at column 0 then).
const SYNC: &str = "\x1b[A\n";

/// How long the editor may take to give the terminal back once asked.
const STOP_LIMIT: Duration = Duration::from_secs(3);

/// What the display thread is asked to do.
enum Show {
    /// Print this (it ends with a newline) above the prompt.
    Text(String),
    /// Answer once everything sent before has been drawn.
    Flush(oneshot::Sender<()>),
}

/// The terminal side of an interactive session.
pub(super) struct Terminal {
    display: Option<mpsc::Sender<Show>>,
    display_thread: Option<JoinHandle<()>>,
    editor_thread: Option<JoinHandle<()>>,
    /// Set before the session interrupts the editor, so the editor knows that SIGINT was
    /// not the user's Ctrl-C.
    stopping: Arc<AtomicBool>,
    /// The terminal's settings before the editor changed them, restored if the editor ever
    /// failed to give the terminal back.
    saved: Option<nix::sys::termios::Termios>,
}

impl Terminal {
    /// Starts the editor and display threads; lines typed go to `inputs`.
    pub(super) fn start(
        inputs: tokio_mpsc::UnboundedSender<Input>,
    ) -> Result<Terminal, ReadlineError> {
        // No signals from the keyboard while editing: Ctrl-C and Ctrl-D are keys, and the
        // session turns both into a close with 1000.
        let config = Config::builder()
            .auto_add_history(true)
            .enable_signals(false)
            .build();
        let mut editor: Editor<(), MemHistory> = Editor::with_history(config, MemHistory::new())?;
        let mut printer = editor.create_external_printer()?;
        let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();

        let (display, shows) = mpsc::channel::<Show>();
        let display_thread = std::thread::Builder::new()
            .name("connect-display".into())
            .spawn(move || {
                for show in shows {
                    match show {
                        Show::Text(text) => {
                            if printer.print(text.clone()).is_err() {
                                // The editor is gone: the terminal is ours again.
                                print!("{text}");
                            }
                        }
                        Show::Flush(done) => {
                            // The printer holds one line at most: once the second of these
                            // is taken, the first was, and so everything before it has
                            // been drawn.
                            let _ = printer.print(SYNC.to_owned());
                            let _ = printer.print(SYNC.to_owned());
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(ReadlineError::Io)?;

        let stopping = Arc::new(AtomicBool::new(false));
        let editor_stopping = stopping.clone();
        let editor_thread = std::thread::Builder::new()
            .name("connect-editor".into())
            .spawn(move || {
                while !editor_stopping.load(Ordering::SeqCst) {
                    let input = match editor.readline(PROMPT) {
                        // An empty line sends nothing; it just gives a fresh prompt.
                        Ok(line) if line.is_empty() => continue,
                        Ok(line) => Input::Line(line),
                        Err(ReadlineError::Interrupted)
                            if editor_stopping.load(Ordering::SeqCst) =>
                        {
                            break
                        }
                        Err(ReadlineError::Interrupted) => Input::Interrupt,
                        Err(_) => Input::End,
                    };
                    let last = !matches!(input, Input::Line(_));
                    if inputs.send(input).is_err() || last {
                        break;
                    }
                }
            })
            .map_err(ReadlineError::Io)?;

        Ok(Terminal {
            display: Some(display),
            display_thread: Some(display_thread),
            editor_thread: Some(editor_thread),
            stopping,
            saved,
        })
    }

    /// Prints `text` (ending with a newline) above the prompt, or below the last line once
    /// the editor has stopped. Never waits.
    pub(super) fn show(&self, text: String) {
        if let Some(display) = &self.display {
            let _ = display.send(Show::Text(text));
        }
    }

    /// Ends the editor (if it still runs) and gives the terminal back, after everything
    /// shown so far has been drawn. Answers until when a SIGINT that this raised may still
    /// arrive, to be ignored.
    pub(super) async fn stop_input(&mut self) -> Option<Instant> {
        let editor = self.editor_thread.take()?;
        if editor.is_finished() {
            let _ = editor.join();
            return None;
        }
        if let Some(display) = &self.display {
            let (done, flushed) = oneshot::channel();
            if display.send(Show::Flush(done)).is_ok() {
                let _ = tokio::time::timeout(STOP_LIMIT, flushed).await;
            }
        }
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + STOP_LIMIT;
        while !editor.is_finished() && Instant::now() < deadline {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if editor.is_finished() {
            let _ = editor.join();
        } else {
            // Never seen; if it happens, leave the thread blocked on the terminal but put
            // the terminal back as we found it, so the shell after us is usable.
            if let Some(saved) = &self.saved {
                let _ = nix::sys::termios::tcsetattr(
                    std::io::stdin(),
                    nix::sys::termios::SetArg::TCSANOW,
                    saved,
                );
            }
            eprintln!("warning: the line editor did not stop");
        }
        Some(Instant::now() + Duration::from_millis(300))
    }

    /// [`Terminal::stop_input`], then waits until the display has printed everything.
    pub(super) async fn finish(mut self) -> Option<Instant> {
        let stray = self.stop_input().await;
        drop(self.display.take());
        if let Some(display) = self.display_thread.take() {
            let _ = tokio::task::spawn_blocking(move || display.join()).await;
        }
        stray
    }
}

impl Drop for Terminal {
    /// A session that ended without [`Terminal::finish`] (a panic, an early return) must
    /// still not leave the shell in raw mode.
    fn drop(&mut self) {
        if self
            .editor_thread
            .as_ref()
            .is_some_and(|e| !e.is_finished())
        {
            if let Some(saved) = &self.saved {
                let _ = nix::sys::termios::tcsetattr(
                    std::io::stdin(),
                    nix::sys::termios::SetArg::TCSANOW,
                    saved,
                );
            }
        }
    }
}
