//! Names of kernel objects: task ids with a generation, and the plain indices
//! of endpoints, notifications, memory grants, VMs and vCPUs.

use super::MAX_TASKS;

/// A task's name in the kernel: its slot in the task table plus the
/// generation of that slot. A slot's generation changes every time the slot
/// is reused, so the id of a dead task never names its successor.
///
/// Both halves live in one word (slot low, generation high): ids are
/// compared on every IPC and scheduling step, and one compare of a word is
/// what that costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId {
    raw: u32,
}

impl TaskId {
    /// The id of the task in `slot` at `generation`; `None` if `slot` is not a
    /// valid task-table index.
    pub const fn new(slot: usize, generation: u16) -> Option<TaskId> {
        if slot < MAX_TASKS {
            // MAX_TASKS is far below u16::MAX, checked by a test.
            #[allow(
                clippy::cast_possible_truncation,
                reason = "slot < MAX_TASKS <= u16::MAX"
            )]
            let slot = slot as u32;
            Some(TaskId {
                raw: slot | (generation as u32) << 16,
            })
        } else {
            None
        }
    }

    /// The task-table index this id names; always below [`MAX_TASKS`]
    /// (`new` refuses others, and the mask says so to the compiler: tables
    /// of `MAX_TASKS` entries are indexed without a bounds check).
    #[inline]
    pub const fn slot(self) -> usize {
        self.raw as usize & (MAX_TASKS - 1)
    }

    /// The generation of the slot when this id was handed out.
    #[inline]
    pub const fn generation(self) -> u16 {
        // The high half is the generation, as `new` put it there.
        #[allow(clippy::cast_possible_truncation, reason = "a 16-bit half")]
        let generation = (self.raw >> 16) as u16;
        generation
    }
}

const _: () = assert!(MAX_TASKS.is_power_of_two() && MAX_TASKS <= 1 << 16);

/// An endpoint's index in the endpoint table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointId(pub u16);

/// A notification's index in the notification table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NotificationId(pub u16);

/// A memory grant: a range of physical frames one task may map, named by the
/// index of its record in the frame-range table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrantId(pub u16);

/// A VM object's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VmId(pub u16);

/// A vCPU object's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VcpuId(pub u16);

/// The word an endpoint capability delivers to the receiver so that a server
/// can tell its callers apart. Zero means "unbadged".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Badge(pub u64);

impl Badge {
    /// The badge of a capability that was never minted with one.
    pub const NONE: Badge = Badge(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_keeps_slot_and_generation() {
        let id = TaskId::new(5, 9).unwrap();
        assert_eq!(id.slot(), 5);
        assert_eq!(id.generation(), 9);
    }

    #[test]
    fn task_id_refuses_slots_beyond_the_table() {
        assert!(TaskId::new(MAX_TASKS - 1, 0).is_some());
        assert_eq!(TaskId::new(MAX_TASKS, 0), None);
        assert!(u16::try_from(MAX_TASKS).is_ok());
    }

    #[test]
    fn ids_of_different_generations_differ() {
        assert_ne!(TaskId::new(3, 1), TaskId::new(3, 2));
    }
}
