//! VM state changes as the vm-manager records them, for `mica events`:
//! each change gets the next sequence number, the newest
//! [`EVENT_HISTORY`] are kept, and `Request::Events { from }` reads them
//! from a sequence number on, a page at a time.
//!
//! A reader starts with `from` = `u64::MAX` ("from now": no events, only
//! where the next one will be) or 0 (everything kept), then asks from
//! each answer's `next`. An answer's `lost` says how many events it asked
//! for were dropped before it read them (the history wrapped); a `next`
//! below the `from` asked for means the sequence started again (a
//! restarted vm-manager, which keeps no history); so does another
//! `incarnation` than the last answer's, which tells a restarted
//! vm-manager apart however many events it has recorded since.

use serde::{Deserialize, Serialize};

use super::{LastExit, VmState};
use crate::WireName;

/// How many state changes the vm-manager keeps for readers that fall
/// behind (a reader polls every 200 ms; each event takes 104 bytes of
/// the vm-manager's memory, and one copy of the ring passes through its
/// task stack when it starts).
pub const EVENT_HISTORY: usize = 32;

/// How many events one `Events` response carries; ask again from `next`
/// for more. (Four of the widest [`VmEvent`], each with a stop cause,
/// fit one message.)
pub const EVENTS_PAGE: usize = 4;

/// What happened to a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmChange {
    /// It was made (`create`, `clone`, a pre-launched VM at boot).
    Created,
    /// Its vCPUs were started.
    Started,
    /// Its vCPUs were held.
    Paused,
    /// Its vCPUs run again.
    Resumed,
    /// The operator reset it (`reset`).
    Reset {
        /// It got a fresh generation ID.
        new_generation_id: bool,
    },
    /// It left running: the guest powered off or rebooted, Mica stopped
    /// it, the operator shut it down or destroyed it. After a reboot it
    /// runs again (the event's state says so).
    Exited {
        /// How.
        exit: LastExit,
        /// When, in milliseconds since Mica booted, if the kernel saw it
        /// (not for what the operator did).
        uptime_ms: Option<u64>,
    },
}

/// One recorded state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmEvent {
    /// Its sequence number: one more than the event before.
    pub seq: u64,
    /// The VM's name.
    pub name: WireName,
    /// What happened.
    pub change: VmChange,
    /// The VM's state after it.
    pub state: VmState,
}

/// A page of events (the answer to `Events`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    /// The events, oldest first, with consecutive sequence numbers.
    pub events: heapless::Vec<VmEvent, EVENTS_PAGE>,
    /// Ask `Events { from: next }` for what follows.
    pub next: u64,
    /// How many of the events asked for are no longer kept: they were
    /// dropped before the first event of this page.
    pub lost: u64,
    /// Which life of the vm-manager numbered these events (the task's
    /// restart count): another one means the numbers started again.
    pub incarnation: u32,
}

impl VmChange {
    /// A word for scripts (`--json`'s `"event"`): `created`, `started`,
    /// `paused`, `resumed`, `reset`, or how it left running
    /// ([`LastExit::key`]: `powered_off`, `rebooted`, `stopped`,
    /// `shut_down`, `destroyed`).
    pub fn key(&self) -> &'static str {
        match self {
            VmChange::Created => "created",
            VmChange::Started => "started",
            VmChange::Paused => "paused",
            VmChange::Resumed => "resumed",
            VmChange::Reset { .. } => "reset",
            VmChange::Exited { exit, .. } => exit.key(),
        }
    }
}
