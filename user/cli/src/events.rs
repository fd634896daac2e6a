//! `mica events`: follows the VMs' state changes until Ctrl-C (or until
//! whoever reads the output goes: `mica events | head -3`). The
//! vm-manager is asked for new events every [`POLL_INTERVAL`], on a
//! connection of its own each time (at once again while more wait); each
//! event is one line on stdout, text or JSON; a
//! gap (events lost) is a notice on stderr, or a `{"event":"lost"}` object
//! in the JSON stream, where a script sees it. While the vm-manager is
//! away (it died or hangs and is being restarted) following goes on, and
//! the restarted one's events are read from its start.

use std::io::Write;
use std::thread;
use std::time::Duration;

use mica_mgmt::ReplyError;
use mica_mgmt::events::{EventBatch, EventCursor, EventLine, GapLine, write_event, write_gap};

use crate::args::EventsInvocation;
use crate::link::{Link, LinkError};
use crate::run::Status;
use crate::terminal;

/// How often the vm-manager is asked for new events.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Why following ended.
enum End {
    /// Ctrl-C (or SIGTERM, SIGHUP), or stdout is gone.
    Stopped,
    /// The link failed.
    Link(LinkError),
    /// The hypervisor refused or answered nonsense.
    Reply(ReplyError),
}

/// Follows the events until stopped; the exit status.
pub fn run(invocation: &EventsInvocation, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let (line, status) = match follow(invocation, out, err) {
        End::Stopped => return Status::Done,
        End::Link(error) => (format!("error: {error}"), Status::Unreachable),
        End::Reply(error @ (ReplyError::Refused(_) | ReplyError::Ended(_))) => (
            format!("error: the hypervisor refused to report events: {error}"),
            Status::Refused,
        ),
        End::Reply(error @ ReplyError::Unexpected) => {
            (format!("error: {error}"), Status::Unreachable)
        }
    };
    match writeln!(err, "{line}") {
        Ok(()) => status,
        Err(_) => Status::Unreachable,
    }
}

/// Polls until stopped. Each poll is a connection of its own: the
/// hypervisor serves one connection at a time, and other `mica` commands
/// get their turn between polls.
fn follow(invocation: &EventsInvocation, out: &mut dyn Write, err: &mut dyn Write) -> End {
    let mut cursor = if invocation.all {
        EventCursor::from_oldest()
    } else {
        EventCursor::from_now()
    };
    terminal::catch_stop_signals();
    let mut announced = false;
    // Whether the last poll found the vm-manager away (said once).
    let mut away = false;
    while !terminal::stop_requested() {
        let mut link = match Link::connect(&invocation.socket, invocation.timeout) {
            Ok(link) => link,
            Err(error) => return End::Link(error),
        };
        loop {
            let batch = match link
                .call(&cursor.request())
                .map(|answer| cursor.accept(answer))
            {
                Ok(Ok(batch)) => {
                    away = false;
                    batch
                }
                Ok(Err(ReplyError::Refused(error))) if announced && restarting(error) => {
                    if !away {
                        away = true;
                        let _ = writeln!(
                            err,
                            "[mica: the vm-manager does not answer ({error}); asking again]"
                        );
                    }
                    break;
                }
                Ok(Err(error)) => return End::Reply(error),
                Err(error) => return End::Link(error),
            };
            if !announced {
                announced = true;
                // Nothing to do about a closed stderr: the events still go out.
                let _ = writeln!(err, "following VM events: Ctrl-C stops");
            }
            if show(invocation.json, &batch, out, err).is_err() {
                return End::Stopped;
            }
            if !batch.more || terminal::stop_requested() {
                break;
            }
        }
        drop(link);
        thread::sleep(POLL_INTERVAL);
    }
    End::Stopped
}

/// Whether a refusal means that the vm-manager is away for a while (it
/// died or hangs and the supervisor restarts it): following goes on, and
/// the restarted vm-manager's events are read from its start.
fn restarting(error: ipc::Error) -> bool {
    matches!(
        error,
        ipc::Error::ServiceDown { .. } | ipc::Error::ServiceHung { .. } | ipc::Error::TimedOut
    )
}

/// Writes a batch: its gap notice, then one line per event.
fn show(
    as_json: bool,
    batch: &EventBatch,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let mut text = String::new();
    if let Some(gap) = batch.gap {
        if as_json {
            write_gap(&mut text, gap).map_err(std::io::Error::other)?;
            text.push('\n');
        } else {
            writeln!(err, "{}", GapLine(gap))?;
        }
    }
    for event in &batch.events {
        if as_json {
            write_event(&mut text, event).map_err(std::io::Error::other)?;
            text.push('\n');
        } else {
            use std::fmt::Write as _;
            writeln!(text, "{}", EventLine(event)).map_err(std::io::Error::other)?;
        }
    }
    if text.is_empty() {
        return Ok(());
    }
    out.write_all(text.as_bytes())?;
    out.flush()
}
