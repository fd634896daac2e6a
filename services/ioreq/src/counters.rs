//! Per-VM counters of refused slot events and of accesses nobody claimed:
//! diagnostics for tests and for a `mica ioreq stats`-style tool. A slot the
//! service refuses to trust is never acted on silently; it shows up here.

use crate::slot::SlotError;

/// How many events of each kind the service refused (or had to finish
/// itself) for one VM. Counters saturate instead of wrapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoreqCounters {
    /// A PENDING slot beyond the VM's vCPU count, or a `Complete` for a vCPU
    /// the VM does not have.
    pub no_such_slot: u32,
    /// A state word holding no known state.
    pub unknown_state: u32,
    /// A step the slot's state does not allow (e.g. `Complete` of a slot
    /// that is not PROCESSING).
    pub illegal_transition: u32,
    /// A PENDING request of unknown type.
    pub unknown_type: u32,
    /// A PENDING request with a width its type does not allow.
    pub bad_size: u32,
    /// A PENDING request whose direction is neither read nor write.
    pub bad_direction: u32,
    /// A PENDING request whose bytes leave its address space.
    pub bad_address: u32,
    /// A `Complete` of a PROCESSING slot the service never dispatched.
    pub not_dispatched: u32,
    /// Accesses that no range and no default client claimed, finished by
    /// the service at once (reads return all-ones, writes are dropped).
    pub unclaimed: u32,
}

fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

impl IoreqCounters {
    /// Counts one refused event.
    pub fn record(&mut self, error: SlotError) {
        match error {
            SlotError::NoSuchSlot(_) => bump(&mut self.no_such_slot),
            SlotError::UnknownState(_) => bump(&mut self.unknown_state),
            SlotError::IllegalTransition { .. } => bump(&mut self.illegal_transition),
            SlotError::UnknownType(_) => bump(&mut self.unknown_type),
            SlotError::BadSize(_) => bump(&mut self.bad_size),
            SlotError::BadDirection(_) => bump(&mut self.bad_direction),
            SlotError::BadAddress => bump(&mut self.bad_address),
            // The kernel's "completed with another access" is the same
            // fault seen from the other side: a completion not of ours.
            SlotError::NotDispatched | SlotError::Mismatch => bump(&mut self.not_dispatched),
        }
    }

    /// Counts one access that nobody claimed.
    pub fn record_unclaimed(&mut self) {
        bump(&mut self.unclaimed);
    }

    /// All refused events (everything but `unclaimed`, which is not an error
    /// of either side).
    pub fn rejected(&self) -> u64 {
        [
            self.no_such_slot,
            self.unknown_state,
            self.illegal_transition,
            self.unknown_type,
            self.bad_size,
            self.bad_direction,
            self.bad_address,
            self.not_dispatched,
        ]
        .iter()
        .map(|&c| u64::from(c))
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::{SlotEvent, SlotState};

    #[test]
    fn each_error_bumps_its_own_counter() {
        let cases = [
            (
                SlotError::NoSuchSlot(16),
                IoreqCounters {
                    no_such_slot: 1,
                    ..Default::default()
                },
            ),
            (
                SlotError::UnknownState(9),
                IoreqCounters {
                    unknown_state: 1,
                    ..Default::default()
                },
            ),
            (
                SlotError::IllegalTransition {
                    found: SlotState::Free,
                    event: SlotEvent::Dispatch,
                },
                IoreqCounters {
                    illegal_transition: 1,
                    ..Default::default()
                },
            ),
            (
                SlotError::UnknownType(7),
                IoreqCounters {
                    unknown_type: 1,
                    ..Default::default()
                },
            ),
            (
                SlotError::BadSize(3),
                IoreqCounters {
                    bad_size: 1,
                    ..Default::default()
                },
            ),
            (
                SlotError::BadDirection(2),
                IoreqCounters {
                    bad_direction: 1,
                    ..Default::default()
                },
            ),
            (
                SlotError::NotDispatched,
                IoreqCounters {
                    not_dispatched: 1,
                    ..Default::default()
                },
            ),
            (
                SlotError::BadAddress,
                IoreqCounters {
                    bad_address: 1,
                    ..Default::default()
                },
            ),
        ];
        for (error, expected) in cases {
            let mut counters = IoreqCounters::default();
            counters.record(error);
            assert_eq!(counters, expected, "{error:?}");
            assert_eq!(counters.rejected(), 1);
        }
    }

    #[test]
    fn unclaimed_is_counted_but_not_a_rejection() {
        let mut counters = IoreqCounters::default();
        counters.record_unclaimed();
        assert_eq!(counters.unclaimed, 1);
        assert_eq!(counters.rejected(), 0);
    }

    #[test]
    fn counters_saturate() {
        let mut counters = IoreqCounters {
            bad_size: u32::MAX,
            ..Default::default()
        };
        counters.record(SlotError::BadSize(0));
        assert_eq!(counters.bad_size, u32::MAX);
    }
}
