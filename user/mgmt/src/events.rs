//! `mica events`: following the vm-manager's record of VM state changes
//! ([`ipc::vm::events`]) with an [`EventCursor`], and showing each event
//! as a line of text ([`EventLine`]) or of JSON ([`write_event`]), and a
//! gap in what was seen ([`Gap`]) as a notice.

use core::fmt::{self, Write};

use ipc::vm::{EVENT_HISTORY, EVENTS_PAGE, LastExit, Request, Response, VmChange, VmEvent};

use crate::command::ReplyError;
use crate::json::{write_last_exit, write_string};
use crate::table::state_text;
use crate::text::Printable;

/// Events the reader did not see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gap {
    /// This many were dropped from the vm-manager's ring before they were
    /// read (the reader fell more than [`EVENT_HISTORY`] behind).
    Lost(u64),
    /// The vm-manager started again (another incarnation): the events
    /// between the last one read and its restart are gone, and so is how
    /// many there were.
    Restarted,
}

/// What one answer brought.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventBatch {
    /// Events missed before these, if any.
    pub gap: Option<Gap>,
    /// The new events, oldest first.
    pub events: heapless::Vec<VmEvent, EVENTS_PAGE>,
    /// More are waiting: ask again at once.
    pub more: bool,
}

/// Where a reader of the events is: send [`EventCursor::request`], give
/// the answer to [`EventCursor::accept`], and again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventCursor {
    /// The next sequence number wanted.
    from: u64,
    /// Whether `from` came from the vm-manager (not the "from now" start).
    placed: bool,
    /// The vm-manager's life that numbered the events read so far (`None`
    /// before the first answer).
    incarnation: Option<u32>,
}

impl EventCursor {
    /// A reader of the events that happen from now on.
    pub const fn from_now() -> Self {
        EventCursor {
            from: u64::MAX,
            placed: false,
            incarnation: None,
        }
    }

    /// A reader of every event the vm-manager still keeps, then the new
    /// ones.
    pub const fn from_oldest() -> Self {
        EventCursor {
            from: 0,
            placed: true,
            incarnation: None,
        }
    }

    /// The request for what follows.
    pub fn request(&self) -> Request {
        Request::Events { from: self.from }
    }

    /// Takes the answer to the last request. A vm-manager of another life
    /// than the last answer's is [`Gap::Restarted`], and its events are
    /// read from its start. Events that do not follow one another, or
    /// start before what was asked for, and a numbering that goes back
    /// within one life, are [`ReplyError::Unexpected`]; the cursor then
    /// stays where it was.
    pub fn accept(&mut self, response: Response) -> Result<EventBatch, ReplyError> {
        let page = match response {
            Response::Events(page) => page,
            Response::Err(error) => return Err(ReplyError::Refused(error)),
            _ => return Err(ReplyError::Unexpected),
        };
        let known = self.incarnation.replace(page.incarnation);
        if !self.placed {
            // "From now": only where the next event will be.
            self.from = page.next;
            self.placed = true;
            return Ok(EventBatch::default());
        }
        if known.is_some_and(|known| known != page.incarnation) {
            // A new numbering: read the new vm-manager's from its start.
            self.from = 0;
            return Ok(EventBatch {
                gap: Some(Gap::Restarted),
                more: true,
                ..EventBatch::default()
            });
        }
        if page.next < self.from {
            self.incarnation = known;
            return Err(ReplyError::Unexpected);
        }
        let mut expected = self.from.checked_add(page.lost);
        let follows = page.events.iter().all(|event| {
            let fits = expected == Some(event.seq);
            expected = event.seq.checked_add(1);
            fits
        });
        if !follows || page.events.last().is_some_and(|last| page.next <= last.seq) {
            self.incarnation = known;
            return Err(ReplyError::Unexpected);
        }
        self.from = page.next;
        Ok(EventBatch {
            gap: (page.lost > 0).then_some(Gap::Lost(page.lost)),
            more: page.events.is_full(),
            events: page.events,
        })
    }
}

/// One event for people: `12 web started`, `14 web reset, now started`,
/// `15 web stopped by Mica: ... (pc 0x80200010)`, `16 web destroyed by
/// the operator`.
pub struct EventLine<'a>(pub &'a VmEvent);

impl fmt::Display for EventLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event = self.0;
        write!(f, "{} {} ", event.seq, Printable(&event.name))?;
        let state = state_text(event.state);
        match event.change {
            VmChange::Created
            | VmChange::Started
            | VmChange::Paused
            | VmChange::Resumed
            | VmChange::Reset {
                new_generation_id: false,
            } => f.write_str(event.change.key())?,
            VmChange::Reset {
                new_generation_id: true,
            } => f.write_str("reset with a new generation ID")?,
            VmChange::Exited { exit, .. } => write!(f, "{exit}")?,
        }
        match event.change {
            VmChange::Reset { .. }
            | VmChange::Exited {
                exit: LastExit::Rebooted { .. },
                ..
            } => write!(f, ", now {state}"),
            _ => Ok(()),
        }
    }
}

/// A gap for people, on stderr: `[mica: 3 events were lost: ...]`.
pub struct GapLine(pub Gap);

impl fmt::Display for GapLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Gap::Lost(count) => write!(
                f,
                "[mica: {count} events were lost: the hypervisor keeps the last {EVENT_HISTORY}; mica list shows the VMs as they are]"
            ),
            Gap::Restarted => f.write_str(
                "[mica: the vm-manager restarted: the events before it are lost; mica list shows the VMs as they are]",
            ),
        }
    }
}

/// One event for scripts: `{"seq":12,"vm":"web","event":"started",
/// "state":"started"}`; `event` is [`VmChange::key`]; a reset adds
/// `"new_generation_id"`, an exit (`powered_off`, `rebooted`, `stopped`,
/// `shut_down`, `destroyed`) adds `"exit"` (the object `--json info`
/// shows as `last_exit`) and `"uptime_ms"` (when the kernel saw it, or
/// `null` for what the operator did).
pub fn write_event<W: Write + ?Sized>(out: &mut W, event: &VmEvent) -> fmt::Result {
    write!(out, "{{\"seq\":{},\"vm\":", event.seq)?;
    write_string(out, event.name.as_str())?;
    write!(
        out,
        ",\"event\":\"{}\",\"state\":\"{}\"",
        event.change.key(),
        state_text(event.state)
    )?;
    match event.change {
        VmChange::Reset { new_generation_id } => {
            write!(out, ",\"new_generation_id\":{new_generation_id}")?;
        }
        VmChange::Exited { exit, uptime_ms } => {
            out.write_str(",\"exit\":")?;
            write_last_exit(out, &exit)?;
            match uptime_ms {
                Some(ms) => write!(out, ",\"uptime_ms\":{ms}")?,
                None => out.write_str(",\"uptime_ms\":null")?,
            }
        }
        VmChange::Created | VmChange::Started | VmChange::Paused | VmChange::Resumed => {}
    }
    out.write_char('}')
}

/// A gap for scripts, in the stream: `{"event":"lost","count":3}`, or
/// `{"event":"lost","count":null}` when the vm-manager restarted (how
/// many is not known).
pub fn write_gap<W: Write + ?Sized>(out: &mut W, gap: Gap) -> fmt::Result {
    match gap {
        Gap::Lost(count) => write!(out, "{{\"event\":\"lost\",\"count\":{count}}}"),
        Gap::Restarted => out.write_str("{\"event\":\"lost\",\"count\":null}"),
    }
}
