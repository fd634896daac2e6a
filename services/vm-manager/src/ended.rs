//! The short history of dynamic VMs that ended and gave their slot back:
//! their names and how each ended, the newest [`ipc::vm::ENDED_HISTORY`]
//! kept, so that a request about one of them is answered with
//! [`ipc::vm::Response::Ended`] ("no VM named web (it ended: ...)")
//! rather than a bare "no such VM". A name leaves the history when a VM of
//! that name is made again; the history lives in the vm-manager's memory
//! (a restarted vm-manager starts with an empty one).

use ipc::vm::{ENDED_HISTORY, LastExit};

use crate::name::VmName;

/// Up to [`ENDED_HISTORY`] ended dynamic VMs, oldest first.
#[derive(Clone, Debug, Default)]
pub struct EndedVms {
    entries: heapless::Deque<(VmName, LastExit), ENDED_HISTORY>,
}

impl EndedVms {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers that `name` ended as `exit`: an older entry of the same
    /// name goes, and the oldest entry makes room when the history is full.
    pub fn record(&mut self, name: VmName, exit: LastExit) {
        self.forget(&name);
        if self.entries.is_full() {
            self.entries.pop_front();
        }
        // Room was made above.
        let _ = self.entries.push_back((name, exit));
    }

    /// How the VM called `name` ended, if it is remembered.
    pub fn find(&self, name: &VmName) -> Option<LastExit> {
        self.entries
            .iter()
            .rev()
            .find(|(ended, _)| ended == name)
            .map(|&(_, exit)| exit)
    }

    /// Forgets `name` (a VM of that name exists again).
    pub fn forget(&mut self, name: &VmName) {
        let kept = self.entries.len();
        for _ in 0..kept {
            if let Some(entry) = self.entries.pop_front()
                && entry.0 != *name
            {
                // Put back in order: never more than were taken out.
                let _ = self.entries.push_back(entry);
            }
        }
    }

    /// How many VMs are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use super::*;
    use alloc::format;

    fn name(text: &str) -> VmName {
        VmName::parse(text).unwrap()
    }

    #[test]
    fn the_newest_are_kept_and_a_name_once() {
        let mut history = EndedVms::new();
        assert!(history.is_empty());
        for n in 0..ENDED_HISTORY + 2 {
            history.record(name(&format!("vm{n}")), LastExit::Destroyed);
        }
        assert_eq!(history.len(), ENDED_HISTORY);
        assert_eq!(history.find(&name("vm0")), None, "the oldest went");
        assert_eq!(history.find(&name("vm1")), None);
        assert_eq!(history.find(&name("vm2")), Some(LastExit::Destroyed));
        history.record(name("vm2"), LastExit::ShutDown);
        assert_eq!(history.len(), ENDED_HISTORY, "the same name replaces");
        assert_eq!(history.find(&name("vm2")), Some(LastExit::ShutDown));
        history.forget(&name("vm2"));
        assert_eq!(history.find(&name("vm2")), None);
        assert_eq!(history.len(), ENDED_HISTORY - 1);
        assert_eq!(
            history.find(&name(&format!("vm{}", ENDED_HISTORY + 1))),
            Some(LastExit::Destroyed),
            "the others keep their place"
        );
    }
}
