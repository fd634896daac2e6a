//! `mica console NAME`: the terminal attached to a VM's console. Typed
//! bytes go to the guest (`ConsoleInput`), its output is polled
//! (`ConsoleOutput`) every [`POLL_INTERVAL`] and right after input, and
//! written to stdout as the guest wrote it. Ctrl-] detaches. With stdin a
//! terminal it is in raw mode while attached; with stdin a pipe or a file
//! the session ends at its end, after the output of [`LAST_OUTPUT`] more.

use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use ipc::vm::ConsolePort;
use mica_mgmt::ReplyError;
use mica_mgmt::console::{ConsoleErrorMessage, ConsoleSession, input_chunks, until_escape};

use crate::args::ConsoleInvocation;
use crate::link::{Link, LinkError};
use crate::run::Status;
use crate::terminal::{self, RawTerminal};

/// How often the output is polled while nothing is typed.
pub const POLL_INTERVAL: Duration = Duration::from_millis(30);

/// How long output is still shown after the end of a non-terminal stdin
/// (the guest's answer to the last input).
pub const LAST_OUTPUT: Duration = Duration::from_millis(300);

/// The most output chunks read back to back in one poll (a guest that
/// writes faster than they are read is then shown with a loss notice):
/// 4 KiB, the whole ring, in chunks of `ipc::devices::OUTPUT_CHUNK`.
const CHUNKS_PER_POLL: usize = 64;

/// What the stdin reader hands over.
enum Typed {
    Bytes(Vec<u8>),
    End,
}

/// How a session ended, or why it failed.
enum End {
    /// Ctrl-], a signal, or the end of stdin.
    Detached,
    /// The link failed.
    Link(LinkError),
    /// The hypervisor refused or answered nonsense.
    Reply(ReplyError),
    /// stdout is gone.
    Output,
}

impl From<LinkError> for End {
    fn from(error: LinkError) -> Self {
        End::Link(error)
    }
}

/// Attaches to the console of `invocation.name` until the user detaches.
pub fn run(invocation: &ConsoleInvocation, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let name = &invocation.name;
    let mut session = ConsoleSession::on_port(name.clone(), invocation.port);
    let mut link = match Link::connect(&invocation.socket, invocation.timeout) {
        Ok(link) => link,
        Err(error) => return report(End::Link(error), &session, err),
    };
    // The first read checks that there is a console, and shows what the
    // guest printed before (its prompt); older output is not missed.
    let mut first = Vec::new();
    if let Err(end) = read_output(&mut link, &mut session, &mut first) {
        return report(end, &session, err);
    }
    let said = match invocation.port {
        ConsolePort::Serial => writeln!(err, "console attached to {name}: Ctrl-] detaches"),
        ConsolePort::Virtio => writeln!(
            err,
            "console attached to {name}'s virtio console (hvc0): Ctrl-] detaches"
        ),
    };
    if said.is_err() {
        return Status::Unreachable;
    }
    terminal::catch_stop_signals();
    let stdin = io::stdin();
    let raw = if stdin.is_terminal() {
        match RawTerminal::enter(stdin.as_raw_fd()) {
            Ok(raw) => Some(raw),
            Err(error) => {
                let _ = writeln!(
                    err,
                    "warning: cannot put the terminal in raw mode ({error}): keys go to the guest a line at a time"
                );
                None
            }
        }
    } else {
        None
    };
    let end = match out.write_all(&first).and_then(|()| out.flush()) {
        Ok(()) => attached(&mut link, &mut session, spawn_reader(), out, err),
        Err(_) => End::Output,
    };
    // The terminal is itself again before anything more is said.
    drop(raw);
    report(end, &session, err)
}

/// The attached loop: input as it comes, output as it is polled.
fn attached(
    link: &mut Link,
    session: &mut ConsoleSession,
    typed: Receiver<Typed>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> End {
    let result = (|| -> Result<(), End> {
        loop {
            if terminal::stop_requested() {
                return Ok(());
            }
            match typed.recv_timeout(POLL_INTERVAL) {
                Ok(Typed::Bytes(bytes)) => {
                    let (send, escape) = until_escape(&bytes);
                    for chunk in input_chunks(send) {
                        let answer = link.call(&session.input_request(chunk))?;
                        session.accept_input(answer).map_err(End::Reply)?;
                    }
                    show_output(link, session, out, err)?;
                    if escape {
                        return Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => show_output(link, session, out, err)?,
                Ok(Typed::End) | Err(RecvTimeoutError::Disconnected) => {
                    let until = Instant::now() + LAST_OUTPUT;
                    while Instant::now() < until && !terminal::stop_requested() {
                        show_output(link, session, out, err)?;
                        thread::sleep(POLL_INTERVAL);
                    }
                    return show_output(link, session, out, err);
                }
            }
        }
    })();
    match result {
        Ok(()) => End::Detached,
        Err(end) => end,
    }
}

/// Reads stdin on a thread of its own (a blocking read), so the loop can
/// poll the output meanwhile. The thread ends with stdin; when the user
/// detaches first it is left blocked, and ends with the process.
fn spawn_reader() -> Receiver<Typed> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = [0u8; 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    if sender.send(Typed::Bytes(bytes)).is_err() {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = sender.send(Typed::End);
    });
    receiver
}

/// Polls the output and writes what is new to `out`, saying on `err` when
/// some was lost.
fn show_output(
    link: &mut Link,
    session: &mut ConsoleSession,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), End> {
    let mut bytes = Vec::new();
    let lost = read_output(link, session, &mut bytes)?;
    if lost > 0 {
        writeln!(
            err,
            "\r\n[mica: {lost} bytes of console output were lost: the hypervisor keeps the most recent 4 KiB]\r"
        )
        .map_err(|_| End::Output)?;
    }
    if bytes.is_empty() {
        return Ok(());
    }
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(|_| End::Output)
}

/// Reads the new output into `bytes`, a few chunks at most; returns how
/// many bytes were lost before it.
fn read_output(
    link: &mut Link,
    session: &mut ConsoleSession,
    bytes: &mut Vec<u8>,
) -> Result<u64, End> {
    let mut lost = 0;
    for _ in 0..CHUNKS_PER_POLL {
        let answer = link.call(&session.output_request())?;
        let chunk = session.accept_output(answer).map_err(End::Reply)?;
        lost += chunk.lost;
        bytes.extend_from_slice(&chunk.bytes);
        if !chunk.bytes.is_full() {
            break;
        }
    }
    Ok(lost)
}

/// Says how the session ended; the exit status.
fn report(end: End, session: &ConsoleSession, err: &mut dyn Write) -> Status {
    let (line, status) = match end {
        End::Detached => ("console detached".to_string(), Status::Done),
        End::Link(error) => (format!("error: {error}"), Status::Unreachable),
        End::Reply(error @ (ReplyError::Refused(_) | ReplyError::Ended(_))) => {
            let message = ConsoleErrorMessage {
                name: session.name(),
                port: session.port(),
                error,
            };
            (format!("error: {message}"), Status::Refused)
        }
        End::Reply(error @ ReplyError::Unexpected) => {
            (format!("error: {error}"), Status::Unreachable)
        }
        // Nowhere left to say it.
        End::Output => return Status::Unreachable,
    };
    match writeln!(err, "{line}") {
        Ok(()) => status,
        Err(_) => Status::Unreachable,
    }
}
