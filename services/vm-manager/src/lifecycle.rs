//! The VM state machine: powered-off -> created -> started <-> paused, with
//! reset, shutdown and destroy. Pure: which operation is allowed in which
//! state and where it leads; the service performs the effects.

use ipc::vm::VmState;

/// An operation that changes (or needs) a VM's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Build the VM's resources.
    Create,
    /// Let its vCPUs run.
    Start,
    /// Hold its vCPUs.
    Pause,
    /// Let held vCPUs run again.
    Resume,
    /// Reboot in place.
    Reset,
    /// Power off in an orderly way.
    Shutdown,
    /// Tear down, whatever it is doing.
    Destroy,
    /// Be the source of a clone (the VM itself does not change).
    CloneSource,
}

impl Operation {
    /// Every operation, for exhaustive tests.
    pub const ALL: [Operation; 8] = [
        Operation::Create,
        Operation::Start,
        Operation::Pause,
        Operation::Resume,
        Operation::Reset,
        Operation::Shutdown,
        Operation::Destroy,
        Operation::CloneSource,
    ];
}

/// The state a VM is in once `operation` succeeds from `state`, or
/// [`ipc::Error::IllegalTransition`] naming `state` when the operation is not
/// allowed there.
///
/// | from \ op | create | start | pause | resume | reset | shutdown | destroy | clone source |
/// |---|---|---|---|---|---|---|---|---|
/// | powered-off | created | - | - | - | - | - | - | - |
/// | created | - | started | - | - | created | powered-off | powered-off | - |
/// | started | - | - | paused | - | started | powered-off | powered-off | - |
/// | paused | - | - | - | started | started | powered-off | powered-off | paused |
pub fn transition(state: VmState, operation: Operation) -> Result<VmState, ipc::Error> {
    use Operation as Op;
    use VmState as S;
    match (state, operation) {
        (S::PoweredOff, Op::Create) => Ok(S::Created),
        (S::Created, Op::Start) => Ok(S::Started),
        (S::Started, Op::Pause) => Ok(S::Paused),
        (S::Paused, Op::Resume) => Ok(S::Started),
        (S::Created, Op::Reset) => Ok(S::Created),
        (S::Started | S::Paused, Op::Reset) => Ok(S::Started),
        (S::Created | S::Started | S::Paused, Op::Shutdown | Op::Destroy) => Ok(S::PoweredOff),
        (S::Paused, Op::CloneSource) => Ok(S::Paused),
        (state, _) => Err(ipc::Error::IllegalTransition { state }),
    }
}

/// The states of a VM that holds resources: every state but powered-off.
/// A slot stores this, so a VM without resources cannot pretend to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveState {
    /// Resources exist; no vCPU runs yet.
    Created,
    /// vCPUs are runnable.
    Started,
    /// vCPUs are held.
    Paused,
}

impl From<LiveState> for VmState {
    fn from(state: LiveState) -> Self {
        match state {
            LiveState::Created => VmState::Created,
            LiveState::Started => VmState::Started,
            LiveState::Paused => VmState::Paused,
        }
    }
}

impl LiveState {
    /// The live state of `state`, or `None` for powered-off.
    pub fn of(state: VmState) -> Option<LiveState> {
        match state {
            VmState::PoweredOff => None,
            VmState::Created => Some(LiveState::Created),
            VmState::Started => Some(LiveState::Started),
            VmState::Paused => Some(LiveState::Paused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: [VmState; 4] = [
        VmState::PoweredOff,
        VmState::Created,
        VmState::Started,
        VmState::Paused,
    ];

    /// The expected result of each (state, operation) cell, written out.
    fn expected(state: VmState, operation: Operation) -> Option<VmState> {
        use Operation as Op;
        use VmState as S;
        let row: [Option<VmState>; 8] = match state {
            // Columns: create, start, pause, resume, reset, shutdown, destroy, clone.
            S::PoweredOff => [Some(S::Created), None, None, None, None, None, None, None],
            S::Created => [
                None,
                Some(S::Started),
                None,
                None,
                Some(S::Created),
                Some(S::PoweredOff),
                Some(S::PoweredOff),
                None,
            ],
            S::Started => [
                None,
                None,
                Some(S::Paused),
                None,
                Some(S::Started),
                Some(S::PoweredOff),
                Some(S::PoweredOff),
                None,
            ],
            S::Paused => [
                None,
                None,
                None,
                Some(S::Started),
                Some(S::Started),
                Some(S::PoweredOff),
                Some(S::PoweredOff),
                Some(S::Paused),
            ],
        };
        let column = match operation {
            Op::Create => 0,
            Op::Start => 1,
            Op::Pause => 2,
            Op::Resume => 3,
            Op::Reset => 4,
            Op::Shutdown => 5,
            Op::Destroy => 6,
            Op::CloneSource => 7,
        };
        row[column]
    }

    #[test]
    fn every_state_and_operation_pair_matches_the_table() {
        for state in STATES {
            for operation in Operation::ALL {
                let got = transition(state, operation);
                match expected(state, operation) {
                    Some(next) => assert_eq!(got, Ok(next), "{state:?} x {operation:?}"),
                    None => assert_eq!(
                        got,
                        Err(ipc::Error::IllegalTransition { state }),
                        "{state:?} x {operation:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn live_state_round_trips_and_excludes_powered_off() {
        assert_eq!(LiveState::of(VmState::PoweredOff), None);
        for state in [LiveState::Created, LiveState::Started, LiveState::Paused] {
            assert_eq!(LiveState::of(VmState::from(state)), Some(state));
        }
    }
}
