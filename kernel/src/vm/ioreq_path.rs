//! The kernel's half of the guest I/O path: a trapped device access goes
//! into the vCPU's ioreq slot (PENDING) and the vCPU blocks; once the slot
//! is COMPLETE the kernel takes the validated result and the vCPU resumes.
//!
//! The slot is served by the ioreq service task: the exit path sets the
//! VM's bit in its pending set (`vm::control::io_exit`), the task completes
//! the slot and asks the kernel (`ioreq_resume` / `ioreq_complete_recv`)
//! to resume the vCPU.

use ipc::Space;
use ipc::devices::Response;
use ipc::ioreq_abi::page::IoreqPage;
use ipc::ioreq_abi::slot::{self, Direction, IoRequest, SlotError};

/// A trapped guest device access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioExit {
    /// The guest-physical address.
    pub gpa: u64,
    /// Bytes accessed: 1, 2, 4 or 8.
    pub size: u8,
    /// The value stored, or `None` for a load.
    pub store: Option<u64>,
}

/// Where a vCPU stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuRun {
    /// It may be entered.
    Runnable,
    /// It waits for its ioreq slot to become COMPLETE.
    BlockedOnIo,
    /// Its VM stopped; it never runs again.
    Stopped,
}

/// An illegal vCPU state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTransition {
    /// The state it was in.
    pub from: VcpuRun,
}

impl VcpuRun {
    /// Runnable -> BlockedOnIo, when a device access was submitted.
    pub fn block(self) -> Result<Self, BadTransition> {
        match self {
            VcpuRun::Runnable => Ok(VcpuRun::BlockedOnIo),
            from => Err(BadTransition { from }),
        }
    }

    /// BlockedOnIo -> Runnable, when the completion was taken.
    pub fn resume(self) -> Result<Self, BadTransition> {
        match self {
            VcpuRun::BlockedOnIo => Ok(VcpuRun::Runnable),
            from => Err(BadTransition { from }),
        }
    }
}

impl MmioExit {
    /// The ioreq slot request for this access by `vcpu`.
    pub fn request(&self, vcpu: u8) -> IoRequest {
        IoRequest {
            vcpu,
            space: Space::Mmio,
            addr: self.gpa,
            size: self.size,
            direction: if self.store.is_some() {
                Direction::Write
            } else {
                Direction::Read
            },
            value: self.store.unwrap_or(0),
        }
    }
}

/// Writes `exit` into `vcpu`'s FREE slot and marks it PENDING.
pub fn submit(page: &mut IoreqPage, vcpu: u8, exit: MmioExit) -> Result<(), SlotError> {
    slot::fill(page, &exit.request(vcpu))
}

/// The value of `vcpu`'s finished access `submitted` (the read result; for
/// a store the value stored) once its slot is COMPLETE and still holds that
/// very access; the slot is FREE again. `Ok(None)` while the service has
/// not finished it (PENDING or PROCESSING). A slot in any other state, one
/// that no longer decodes or that holds another access is an error, and
/// it is freed all the same: the kernel answers the guest itself.
pub fn collect(
    page: &mut IoreqPage,
    vcpu: u8,
    submitted: &IoRequest,
) -> Result<Option<u64>, SlotError> {
    let taken = slot::take_matching(page, submitted);
    if taken.is_err() {
        // A vCPU without a slot has nothing to reset.
        slot::reset(page, vcpu).ok();
    }
    taken
}

/// Whether `vcpu`'s slot is PROCESSING: the ioreq service took the access
/// and may forward it to a client (`ioreq_forward`).
pub fn forwardable(page: &IoreqPage, vcpu: u8) -> bool {
    slot::state(page, vcpu) == Ok(slot::SlotState::Processing)
}

/// A client's `answer` to the forwarded access `submitted`: if it is the
/// plain one of its kind (a read's `Response::Value`, a write's
/// `Response::Ok`), the PROCESSING slot is completed with it and taken at
/// once (`slot::finish_and_reclaim`), and the value for the guest comes
/// back (a read's cut to its width, a write's the value stored). `Ok(None)`,
/// nothing changed, for any other answer (or none); refused, nothing
/// changed, unless the slot is PROCESSING.
pub fn take_plain_answer(
    page: &mut IoreqPage,
    submitted: &IoRequest,
    answer: Option<Response>,
) -> Result<Option<u64>, SlotError> {
    let value = match (submitted.direction, answer) {
        (Direction::Read, Some(Response::Value(value))) => value,
        // A write's slot keeps the value stored.
        (Direction::Write, Some(Response::Ok)) => 0,
        _ => return Ok(None),
    };
    slot::finish_and_reclaim(page, submitted, value).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Does what the ioreq service does with a PENDING slot: takes it
    /// (PROCESSING) and completes it with `device`'s answer (COMPLETE).
    fn serve_like_the_ioreq_service(
        page: &mut IoreqPage,
        vcpu: u8,
        device: &mut dyn FnMut(&IoRequest) -> u64,
    ) -> Result<(), SlotError> {
        let request = slot::begin_processing(page, vcpu)?;
        let value = device(&request);
        slot::finish(page, &request, value)
    }

    fn page() -> Box<IoreqPage> {
        Box::new(IoreqPage::new())
    }

    #[test]
    fn a_load_round_trips_through_the_slot() {
        let mut page = page();
        let mut run = VcpuRun::Runnable;
        let exit = MmioExit {
            gpa: 0x1000_0005,
            size: 1,
            store: None,
        };
        submit(&mut page, 0, exit).unwrap();
        run = run.block().unwrap();
        let submitted = exit.request(0);
        assert_eq!(
            collect(&mut page, 0, &submitted),
            Ok(None),
            "not complete yet"
        );
        serve_like_the_ioreq_service(&mut page, 0, &mut |r| {
            assert_eq!(r.addr, 0x1000_0005);
            0x60
        })
        .unwrap();
        assert_eq!(collect(&mut page, 0, &submitted), Ok(Some(0x60)));
        run = run.resume().unwrap();
        assert_eq!(run, VcpuRun::Runnable);
        // The slot is free again for the next access.
        submit(&mut page, 0, exit).unwrap();
    }

    #[test]
    fn a_second_access_while_one_is_pending_is_refused() {
        let mut page = page();
        let exit = MmioExit {
            gpa: 0x1000_0000,
            size: 1,
            store: Some(b'x'.into()),
        };
        submit(&mut page, 3, exit).unwrap();
        assert!(submit(&mut page, 3, exit).is_err());
        assert!(submit(&mut page, 99, exit).is_err(), "no such slot");
    }

    #[test]
    fn a_tampered_completion_is_refused() {
        let mut page = page();
        let exit = MmioExit {
            gpa: 0x1000_0000,
            size: 4,
            store: None,
        };
        submit(&mut page, 1, exit).unwrap();
        serve_like_the_ioreq_service(&mut page, 1, &mut |_| 7).unwrap();
        page.slots[1].request_type = 77;
        assert!(collect(&mut page, 1, &exit.request(1)).is_err());
        // The kernel answers the guest itself: the slot is free for the next.
        submit(&mut page, 1, exit).unwrap();
    }

    /// A service that completes the slot with another access than the one
    /// submitted (another address, width or direction), or scribbles the
    /// state word, is caught; the slot is freed either way.
    #[test]
    fn a_completion_of_another_access_is_refused() {
        let exit = MmioExit {
            gpa: 0x1000_0005,
            size: 1,
            store: None,
        };
        let tamper: [fn(&mut IoRequest); 4] = [
            |r| r.addr += 1,
            |r| r.size = 4,
            |r| r.direction = Direction::Write,
            |r| {
                r.space = Space::Pio;
                r.addr = 0x3f8;
            },
        ];
        for change in tamper {
            let mut page = page();
            submit(&mut page, 2, exit).unwrap();
            let mut request = slot::begin_processing(&mut page, 2).unwrap();
            change(&mut request);
            let mut forged = IoreqPage::new();
            slot::fill(&mut forged, &request).unwrap();
            page.slots[2].request_type = forged.slots[2].request_type;
            page.slots[2].payload = forged.slots[2].payload;
            slot::finish(&mut page, &request, 0x60).unwrap();
            assert_eq!(
                collect(&mut page, 2, &exit.request(2)),
                Err(SlotError::Mismatch)
            );
            assert_eq!(slot::state(&page, 2), Ok(slot::SlotState::Free));
        }
        let mut page = page();
        submit(&mut page, 0, exit).unwrap();
        page.slots[0].set_state_word(0xdead);
        assert!(collect(&mut page, 0, &exit.request(0)).is_err());
        assert_eq!(slot::state(&page, 0), Ok(slot::SlotState::Free));
    }

    /// A forwarded access: a plain answer of its kind completes it (and
    /// the kernel takes it at once), any other (or none) is handed back
    /// PENDING; only a PROCESSING slot takes either.
    #[test]
    fn a_forwarded_access_is_completed_by_a_plain_answer_or_handed_back() {
        let load = MmioExit {
            gpa: 0x1000_0005,
            size: 1,
            store: None,
        };
        let store = MmioExit {
            gpa: 0x1000_0000,
            size: 1,
            store: Some(0x41),
        };
        let cases = [
            (load, Some(Response::Value(0x1_60)), Some(0x60)),
            (store, Some(Response::Ok), Some(0x41)),
            (load, Some(Response::Ok), None),
            (store, Some(Response::Value(1)), None),
            (load, Some(Response::Err(ipc::Error::UnknownVm)), None),
            (load, None, None),
        ];
        for (exit, reply, completed) in cases {
            let mut page = page();
            submit(&mut page, 1, exit).unwrap();
            let submitted = exit.request(1);
            assert!(!forwardable(&page, 1), "PENDING is not the service's yet");
            slot::begin_processing(&mut page, 1).unwrap();
            assert!(forwardable(&page, 1));
            let taken = take_plain_answer(&mut page, &submitted, reply.clone());
            assert_eq!(taken, Ok(completed));
            if completed.is_some() {
                assert_eq!(slot::state(&page, 1), Ok(slot::SlotState::Free));
                assert!(
                    take_plain_answer(&mut page, &submitted, reply).is_err(),
                    "once"
                );
            } else {
                assert!(forwardable(&page, 1), "nothing changed");
                slot::hand_back(&mut page, 1).unwrap();
                assert_eq!(slot::begin_processing(&mut page, 1), Ok(submitted));
            }
        }
    }

    #[test]
    fn illegal_transitions_are_errors() {
        assert!(VcpuRun::Runnable.resume().is_err());
        assert!(VcpuRun::BlockedOnIo.block().is_err());
        assert!(VcpuRun::Stopped.block().is_err());
    }
}
