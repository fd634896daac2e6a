//! The watchdog: a service that stops answering is as broken as one that
//! died, but the kernel cannot tell a hung service from a busy one, so the
//! supervisor decides. When no death came for [`PERIOD_MS`], init probes
//! each service with an empty message (every service answers one, with
//! `Malformed`, without acting on it); a service that does not answer by
//! its deadline is killed, and its death is then handled like any other
//! (restarted, handed its VMs again).
//!
//! The services are probed leaves first: the ioreq service waits on the
//! device service, the vm-manager on both, so a hung device service makes
//! the ioreq service look hung too. Only the first silent one of a round
//! is killed; the others get the next round, by which time the one they
//! waited on is back.

use ipc::Error;
use ipc::syscall::endpoints::{BLK, DEVICES, IOREQ, RNG, VM_MANAGER};

/// How long init waits for a death before it probes the services.
pub const PERIOD_MS: u64 = 2_000;

/// A service the watchdog probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watched {
    pub endpoint: usize,
    pub name: &'static str,
    /// How long it has to answer, in milliseconds.
    pub deadline_ms: u64,
}

/// The services probed, in order. The vm-manager's deadline is longer
/// than that of its own calls to the services
/// (`ipc::vm::SERVICE_DEADLINE_MS`): it may be waiting on one. A service
/// the machine does not have (the rng service on x86) has no call right
/// in init's table, and its probe is refused at once. The block service
/// comes before the device service, whose virtio-blk models wait on it.
pub const WATCHED: [Watched; 5] = [
    Watched {
        endpoint: RNG,
        name: "rng service",
        deadline_ms: 2_000,
    },
    Watched {
        endpoint: BLK,
        name: "block service",
        deadline_ms: 2_000,
    },
    Watched {
        endpoint: DEVICES,
        name: "device service",
        deadline_ms: 2_000,
    },
    Watched {
        endpoint: IOREQ,
        name: "ioreq service",
        deadline_ms: 2_000,
    },
    Watched {
        endpoint: VM_MANAGER,
        name: "vm-manager",
        deadline_ms: 3 * ipc::vm::SERVICE_DEADLINE_MS,
    },
];

/// One round: `probe(endpoint, deadline_ms)` for each watched service in
/// order, until one does not answer in time (`Error::TimedOut`), which is
/// returned, to be killed. Any other outcome (an answer, a refusal, a
/// death during the probe) means it is not hung.
pub fn round(mut probe: impl FnMut(usize, u64) -> Result<(), Error>) -> Option<Watched> {
    WATCHED
        .into_iter()
        .find(|w| probe(w.endpoint, w.deadline_ms) == Err(Error::TimedOut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_with_every_service_answering_kills_nothing() {
        let mut probed = Vec::new();
        let silent = round(|endpoint, _| {
            probed.push(endpoint);
            Err(Error::Malformed)
        });
        assert_eq!(silent, None);
        assert_eq!(probed, [RNG, BLK, DEVICES, IOREQ, VM_MANAGER]);
    }

    #[test]
    fn the_first_silent_service_is_named_and_the_rest_wait_for_the_next_round() {
        let mut probed = Vec::new();
        let silent = round(|endpoint, _| {
            probed.push(endpoint);
            if endpoint == RNG || endpoint == BLK {
                Err(Error::InvalidArgument)
            } else if endpoint == DEVICES {
                Ok(())
            } else {
                Err(Error::TimedOut)
            }
        });
        assert_eq!(
            silent.map(|w| (w.endpoint, w.deadline_ms)),
            Some((IOREQ, 2_000))
        );
        assert_eq!(probed, [RNG, BLK, DEVICES, IOREQ]);
    }

    #[test]
    fn a_service_that_died_during_its_probe_is_not_killed_again() {
        assert_eq!(round(|_, _| Err(Error::ServerDied)), None);
    }

    #[test]
    fn a_hung_leaf_service_is_killed_before_the_vm_manager_gives_up_on_it() {
        // So a request caught by the hang is answered by the restarted
        // copy rather than failing.
        for w in &WATCHED[..4] {
            assert!(
                PERIOD_MS + w.deadline_ms < ipc::vm::SERVICE_DEADLINE_MS,
                "{w:?}"
            );
        }
    }

    #[test]
    fn the_vm_manager_may_wait_out_its_own_calls_to_the_services() {
        assert_eq!(WATCHED[4].endpoint, VM_MANAGER);
        assert!(WATCHED[4].deadline_ms > ipc::vm::SERVICE_DEADLINE_MS);
    }
}
