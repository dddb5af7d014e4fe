//! `switchboard connect` on a pseudo-terminal, used as a person at a terminal uses it: the
//! prompt and the `>`/`<` marks, a message that arrives while a line is half typed, Ctrl-C
//! and Ctrl-D closing with 1000 as the server sees it, slash commands, pings, and the
//! terminal left as it was found.
//!
//! The screen is read through a terminal emulator (`vt100`) fed with everything the
//! program writes, so the checks are on what a person would see, not on escape sequences.
//! The server is either `switchboard echo` or a small one in this file that records what
//! it receives and how the client closed, and sends when the test says so.
#![cfg(unix)]

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{EchoServer, LIMIT};
use switchboard::{CloseCode, Message, Server};
use tokio::sync::mpsc;

const ROWS: u16 = 24;
const COLS: u16 = 100;

/// `switchboard connect ARGS` with a pseudo-terminal as its stdin, stdout, stderr and
/// controlling terminal, and the screen it draws.
struct Terminal {
    master: File,
    /// Kept to read the terminal's settings after the program is gone.
    slave: OwnedFd,
    child: Child,
    screen: Arc<Mutex<vt100::Parser>>,
}

impl Terminal {
    fn start(args: &[&str]) -> Terminal {
        let size = nix::pty::Winsize {
            ws_row: ROWS,
            ws_col: COLS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let slave: OwnedFd = pty.slave;
        let mut command = support::switchboard(&["connect"]);
        command
            .args(args)
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // A session of its own with the pty as its controlling terminal, as a shell gives
        // a program: then Ctrl-C typed outside the line editor is SIGINT, as for a person.
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop(command);
        let master = File::from(pty.master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            ROWS.try_into().unwrap(),
            COLS.try_into().unwrap(),
            0,
        )));
        let mut reader = master.try_clone().unwrap();
        let feed = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                feed.lock().unwrap().process(&buf[..n]);
            }
        });
        Terminal {
            master,
            slave,
            child,
            screen,
        }
    }

    /// Types `keys` (`\r` is Enter, `\x03` Ctrl-C, `\x04` Ctrl-D).
    fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// The screen's rows, trailing blanks trimmed, and the cursor (row, column).
    fn snapshot(&self) -> (Vec<String>, (u16, u16)) {
        let parser = self.screen.lock().unwrap();
        let screen = parser.screen();
        let rows = screen
            .rows(0, COLS)
            .map(|row| row.trim_end().to_owned())
            .collect();
        (rows, screen.cursor_position())
    }

    /// Waits (within [`LIMIT`]) until `ready` holds for the screen; answers its rows.
    fn wait_for(&self, what: &str, ready: impl Fn(&[String], (u16, u16)) -> bool) -> Vec<String> {
        let deadline = Instant::now() + LIMIT;
        loop {
            let (rows, cursor) = self.snapshot();
            if ready(&rows, cursor) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {what}; the screen:\n{}",
                rows.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a row equal to `row`.
    fn wait_for_row(&self, row: &str) -> Vec<String> {
        self.wait_for(&format!("the row {row:?}"), |rows, _| {
            rows.iter().any(|r| r == row)
        })
    }

    /// Waits for the program to exit (within [`LIMIT`]).
    fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let (rows, _) = self.snapshot();
                panic!("connect did not exit; the screen:\n{}", rows.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the terminal is back in its usual mode (echo, line editing, signals), as the
    /// line editor found it.
    fn is_cooked(&self) -> bool {
        let termios = nix::sys::termios::tcgetattr(&self.slave).unwrap();
        use nix::sys::termios::LocalFlags;
        termios
            .local_flags
            .contains(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // Only our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The index of the last row that is `row`.
fn last_index(rows: &[String], row: &str) -> usize {
    rows.iter()
        .rposition(|r| r == row)
        .unwrap_or_else(|| panic!("no row {row:?} in\n{}", rows.join("\n")))
}

/// What the test server saw from its one client.
#[derive(Debug, PartialEq)]
enum Seen {
    Text(String),
    /// The client's close frame: code and reason.
    Closed(u16, String),
}

/// What the test tells the server to do.
enum Push {
    Text(String),
    Close(u16, &'static str),
    /// Stop reading: the client's close goes unanswered.
    Deaf,
}

/// A server for one client, on a free port: records what it receives, echoes nothing, and
/// sends when told.
struct TestServer {
    url: String,
    seen: mpsc::UnboundedReceiver<Seen>,
    push: mpsc::UnboundedSender<Push>,
}

impl TestServer {
    async fn start() -> TestServer {
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", server.local_addr().unwrap());
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (push, pushes) = mpsc::unbounded_channel::<Push>();
        let pushes = Arc::new(Mutex::new(Some(pushes)));
        tokio::spawn(server.serve(move |mut ws| {
            let seen = seen_tx.clone();
            let pushes = pushes.lock().unwrap().take();
            async move {
                let Some(mut pushes) = pushes else { return };
                loop {
                    tokio::select! {
                        received = ws.recv() => match received {
                            Some(Ok(Message::Text(text))) => {
                                let _ = seen.send(Seen::Text(text.to_string()));
                            }
                            Some(Ok(Message::Binary(_))) => {}
                            Some(Err(_)) | None => break,
                        },
                        push = pushes.recv() => match push {
                            Some(Push::Text(text)) => ws.send(text).await.unwrap(),
                            Some(Push::Close(code, reason)) => {
                                let _ = ws.close(CloseCode::from(code), reason).await;
                                return;
                            }
                            Some(Push::Deaf) | None => {
                                std::future::pending::<()>().await;
                            }
                        },
                    }
                }
                if let Some(info) = ws.close_info() {
                    let _ = seen.send(Seen::Closed(info.code.into(), info.reason.to_string()));
                }
            }
        }));
        TestServer { url, seen, push }
    }

    /// The next thing the server saw (within [`LIMIT`]).
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(LIMIT, self.seen.recv())
            .await
            .expect("the server saw nothing more")
            .expect("the server is gone")
    }
}

/// `connect ws://…` on a terminal to a server that sends what it is told.
async fn connected(args: &[&str]) -> (TestServer, Terminal) {
    let server = TestServer::start().await;
    let mut all = args.to_vec();
    all.push(&server.url);
    let terminal = tokio::task::block_in_place(|| {
        let terminal = Terminal::start(&all);
        terminal.wait_for("the prompt", |rows, _| rows.iter().any(|r| r == ">"));
        terminal
    });
    (server, terminal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_arriving_mid_line_is_printed_above_it_and_the_line_goes_on() {
    let (mut server, mut term) = connected(&[]).await;
    tokio::task::block_in_place(|| {
        let rows = term.wait_for_row(">");
        assert!(rows[0].starts_with("connected: ws://"), "{rows:?}");
        term.type_keys("first\r");
    });
    assert_eq!(server.next().await, Seen::Text("first".into()));

    tokio::task::block_in_place(|| {
        term.type_keys("half a li");
        term.wait_for("the half-typed line", |rows, _| {
            rows.iter().any(|r| r == "> half a li")
        });
    });
    server.push.send(Push::Text("incoming one".into())).unwrap();
    server.push.send(Push::Text("incoming two".into())).unwrap();
    tokio::task::block_in_place(|| {
        let rows = term.wait_for("both messages", |rows, (row, col)| {
            // The typed line is redrawn below them, the cursor at its end.
            rows.iter().any(|r| r == "< incoming two")
                && rows[row as usize] == "> half a li"
                && col as usize == "> half a li".len()
        });
        let one = last_index(&rows, "< incoming one");
        let two = last_index(&rows, "< incoming two");
        let line = last_index(&rows, "> half a li");
        assert!(one < two && two < line, "{rows:?}");
        // The sent line keeps its mark, above what came after it.
        assert!(last_index(&rows, "> first") < one, "{rows:?}");
        term.type_keys("ne\r");
    });
    // The line as typed, in two pieces around the messages.
    assert_eq!(server.next().await, Seen::Text("half a line".into()));

    tokio::task::block_in_place(|| {
        term.type_keys("\x03");
    });
    assert_eq!(server.next().await, Seen::Closed(1000, String::new()));
    tokio::task::block_in_place(|| {
        let status = term.exit();
        assert!(status.success(), "{status:?}");
        term.wait_for_row("closed: 1000");
        assert!(term.is_cooked(), "the terminal was left in raw mode");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_d_closes_with_1000_and_a_server_close_ends_the_session() {
    let (mut server, mut term) = connected(&[]).await;
    tokio::task::block_in_place(|| term.type_keys("\x04"));
    assert_eq!(server.next().await, Seen::Closed(1000, String::new()));
    tokio::task::block_in_place(|| {
        assert!(term.exit().success());
        term.wait_for_row("closed: 1000");
        assert!(term.is_cooked());
    });

    // The server closes first, while a line is half typed.
    let (server, mut term) = connected(&[]).await;
    tokio::task::block_in_place(|| {
        term.type_keys("never sent");
        term.wait_for_row("> never sent");
    });
    server.push.send(Push::Close(4001, "going home")).unwrap();
    tokio::task::block_in_place(|| {
        let status = term.exit();
        assert!(status.success(), "{status:?}");
        let rows = term.wait_for_row("closed: 4001 going home");
        assert!(term.is_cooked(), "the terminal was left in raw mode");
        assert!(
            last_index(&rows, "> never sent") < last_index(&rows, "closed: 4001 going home"),
            "{rows:?}"
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_quits_when_the_server_never_answers_the_close() {
    let (server, mut term) = connected(&[]).await;
    server.push.send(Push::Deaf).unwrap();
    tokio::task::block_in_place(|| {
        term.type_keys("\x03");
        // The editor is gone (the terminal is back to normal), the close handshake waits.
        term.wait_for("the editor to stop", |_, _| term.is_cooked());
        std::thread::sleep(Duration::from_millis(400));
        assert!(term.child.try_wait().unwrap().is_none(), "it did not wait");
        term.type_keys("\x03");
        let status = term.exit();
        assert_eq!(status.code(), Some(130), "{status:?}");
        term.wait_for_row("closed: not waiting for the server's close");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_echo_slash_commands_and_pings_both_ways() {
    // Pinging a client after a second of silence: the server's pings show too.
    let echo = EchoServer::start(&["--ping-interval", "1"]);
    let url = echo.url();
    tokio::task::block_in_place(|| {
        let mut term = Terminal::start(&["--slash", "--show-ping", &url]);
        term.wait_for_row(">");
        term.type_keys("hello\r");
        term.wait_for_row("< hello");
        term.type_keys("/ping are you there\r");
        term.wait_for_row("< pong: are you there");
        term.type_keys("//not a command\r");
        term.wait_for_row("< /not a command");
        term.type_keys("/nope\r");
        term.wait_for("the unknown command's answer", |rows, _| {
            rows.iter()
                .any(|r| r.starts_with("error: unknown command /nope"))
        });
        term.type_keys("/close 1005\r");
        term.wait_for("the bad code's answer", |rows, _| {
            rows.iter()
                .any(|r| r.starts_with("error: /close 1005: not a code"))
        });
        term.wait_for_row("< ping");
        term.type_keys("/close 4000 see you\r");
        assert!(term.exit().success());
        let rows = term.wait_for_row("closed: 4000 see you");
        let hello = last_index(&rows, "> hello");
        assert!(hello < last_index(&rows, "< hello"), "{rows:?}");
        assert!(term.is_cooked());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_messages_show_their_size_and_first_bytes() {
    // The echo server sends binary back as binary; `connect` sends text, so a small test
    // server sends the binary message.
    let server = Server::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    tokio::spawn(server.serve(|mut ws| async move {
        ws.send(vec![0u8, 1, 0xfe, 0xff]).await.unwrap();
        while let Some(Ok(_)) = ws.recv().await {}
    }));
    tokio::task::block_in_place(|| {
        let mut term = Terminal::start(&[&url]);
        term.wait_for_row("< <binary 4 bytes> 00 01 fe ff");
        term.type_keys("\x04");
        assert!(term.exit().success());
        term.wait_for_row("closed: 1000");
    });
}
