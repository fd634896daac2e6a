//! The task table: which tasks exist, under which generation-checked ids,
//! with their names, priorities, capability tables and, once dead, why they
//! died (for the supervisor's report).

use core::fmt;

use mica_boot::image::KernelRights;

use super::MAX_TASKS;
use super::cap::{CapTable, ObjectRef};
use super::ids::TaskId;
use super::sched::Priority;

/// The longest task name, in bytes.
pub const MAX_NAME_LEN: usize = 16;

/// A task's human-readable name ("devices", "ioreq").
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TaskName {
    bytes: [u8; MAX_NAME_LEN],
    len: usize,
}

impl TaskName {
    /// `name` as a task name; `None` if it is empty or longer than
    /// [`MAX_NAME_LEN`] bytes.
    pub fn new(name: &str) -> Option<TaskName> {
        let src = name.as_bytes();
        if src.is_empty() || src.len() > MAX_NAME_LEN {
            return None;
        }
        let mut bytes = [0; MAX_NAME_LEN];
        bytes.get_mut(..src.len())?.copy_from_slice(src);
        Some(TaskName {
            bytes,
            len: src.len(),
        })
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        self.bytes
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("?")
    }
}

impl fmt::Debug for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The kind of a fault, named without reference to any architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    InstructionPageFault,
    LoadPageFault,
    StorePageFault,
    MisalignedAccess,
    IllegalInstruction,
    Breakpoint,
}

impl FaultKind {
    const fn describe(self) -> &'static str {
        match self {
            FaultKind::InstructionPageFault => "instruction page fault",
            FaultKind::LoadPageFault => "load page fault",
            FaultKind::StorePageFault => "store page fault",
            FaultKind::MisalignedAccess => "misaligned access",
            FaultKind::IllegalInstruction => "illegal instruction",
            FaultKind::Breakpoint => "breakpoint",
        }
    }
}

/// Why a task stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// It asked to exit with `code`.
    Exited { code: u32 },
    /// The kernel stopped it after a fault at `address`.
    Faulted { kind: FaultKind, address: u64 },
    /// The supervisor killed it.
    Killed,
    /// Fault injection killed it (the `mica.chaos` boot option).
    Chaos,
}

/// What the supervisor learns about a dead task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeathNotice {
    pub task: TaskId,
    pub name: TaskName,
    pub reason: ExitReason,
}

impl fmt::Display for DeathNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {} ({}) ", self.task.slot(), self.name.as_str())?;
        match self.reason {
            ExitReason::Exited { code } => write!(f, "exited with code {code}"),
            ExitReason::Faulted { kind, address } => {
                write!(f, "killed: {} at {address:#x}", kind.describe())
            }
            ExitReason::Killed => f.write_str("killed by the supervisor"),
            ExitReason::Chaos => f.write_str("killed by fault injection (mica.chaos)"),
        }
    }
}

/// Why a task-table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskError {
    /// Every slot holds a task.
    TableFull,
    /// The name is empty or longer than [`MAX_NAME_LEN`] bytes.
    BadName,
    /// The id names no task: its slot is empty or was reused since.
    StaleId,
    /// The task is already dead.
    AlreadyDead,
    /// The task is still alive (only dead tasks can be reaped).
    NotDead,
}

/// One task's record.
#[derive(Clone, Debug)]
pub struct Task {
    name: TaskName,
    priority: Priority,
    caps: CapTable,
    exit: Option<ExitReason>,
    rights: KernelRights,
    device_classes: u32,
}

impl Task {
    /// What the kernel lets the task do beyond IPC (from the manifest).
    pub fn kernel_rights(&self) -> KernelRights {
        self.rights
    }

    /// Grants the kernel rights the manifest names.
    pub fn set_kernel_rights(&mut self, rights: KernelRights) {
        self.rights = rights;
    }

    /// Bit `n`: the task may map virtio-mmio windows whose device ID is
    /// `n` (from the manifest; with the DEVICES right).
    pub fn device_classes(&self) -> u32 {
        self.device_classes
    }

    /// Grants the device classes the manifest names.
    pub fn set_device_classes(&mut self, classes: u32) {
        self.device_classes = classes;
    }

    /// The task's name.
    pub fn name(&self) -> TaskName {
        self.name
    }

    /// The task's scheduling priority.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The task's capabilities.
    pub fn caps(&self) -> &CapTable {
        &self.caps
    }

    /// The task's capabilities, for change.
    pub fn caps_mut(&mut self) -> &mut CapTable {
        &mut self.caps
    }

    /// Why the task died, once it has.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.exit
    }
}

#[derive(Clone, Debug)]
struct Slot {
    generation: u16,
    task: Option<Task>,
}

/// Every task, by slot.
#[derive(Clone, Debug)]
pub struct TaskTable {
    slots: [Slot; MAX_TASKS],
}

impl Default for TaskTable {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskTable {
    /// An empty table.
    pub const fn new() -> Self {
        TaskTable {
            slots: [const {
                Slot {
                    generation: 0,
                    task: None,
                }
            }; MAX_TASKS],
        }
    }

    /// Records a new task in the lowest free slot, with no capabilities.
    pub fn spawn(&mut self, name: &str, priority: Priority) -> Result<TaskId, TaskError> {
        let name = TaskName::new(name).ok_or(TaskError::BadName)?;
        let (index, slot) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.task.is_none())
            .ok_or(TaskError::TableFull)?;
        slot.task = Some(Task {
            name,
            priority,
            caps: CapTable::new(),
            exit: None,
            rights: KernelRights(0),
            device_classes: 0,
        });
        TaskId::new(index, slot.generation).ok_or(TaskError::TableFull)
    }

    /// The task `id` names, dead or alive.
    pub fn get(&self, id: TaskId) -> Result<&Task, TaskError> {
        match self.slots.get(id.slot()) {
            Some(Slot {
                generation,
                task: Some(task),
            }) if *generation == id.generation() => Ok(task),
            _ => Err(TaskError::StaleId),
        }
    }

    /// The task `id` names, for change.
    pub fn get_mut(&mut self, id: TaskId) -> Result<&mut Task, TaskError> {
        match self.slots.get_mut(id.slot()) {
            Some(Slot {
                generation,
                task: Some(task),
            }) if *generation == id.generation() => Ok(task),
            _ => Err(TaskError::StaleId),
        }
    }

    /// The id of the task in `slot` (as a death bit names it), if any.
    pub fn id_at(&self, slot: usize) -> Option<TaskId> {
        let s = self.slots.get(slot)?;
        s.task.as_ref()?;
        TaskId::new(slot, s.generation)
    }

    /// Records that `id` died of `reason` and returns the notice for the
    /// supervisor. The slot stays taken until [`TaskTable::reap`].
    pub fn mark_dead(&mut self, id: TaskId, reason: ExitReason) -> Result<DeathNotice, TaskError> {
        let task = self.get_mut(id)?;
        if task.exit.is_some() {
            return Err(TaskError::AlreadyDead);
        }
        task.exit = Some(reason);
        Ok(DeathNotice {
            task: id,
            name: task.name,
            reason,
        })
    }

    /// Frees a dead task's slot and returns its death notice; the slot's
    /// generation changes, so `id` never resolves again.
    pub fn reap(&mut self, id: TaskId) -> Result<DeathNotice, TaskError> {
        let task = self.get(id)?;
        let reason = task.exit.ok_or(TaskError::NotDead)?;
        let notice = DeathNotice {
            task: id,
            name: task.name,
            reason,
        };
        if let Some(slot) = self.slots.get_mut(id.slot()) {
            slot.task = None;
            slot.generation = slot.generation.wrapping_add(1);
        }
        Ok(notice)
    }

    /// Deletes every capability naming `object` from every task; returns
    /// how many were deleted.
    pub fn revoke_everywhere(&mut self, object: ObjectRef) -> usize {
        self.slots
            .iter_mut()
            .filter_map(|s| s.task.as_mut())
            .map(|t| t.caps.revoke(object))
            .sum()
    }

    /// The ids of every task in the table, dead or alive.
    pub fn ids(&self) -> impl Iterator<Item = TaskId> + '_ {
        (0..MAX_TASKS).filter_map(|slot| self.id_at(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obj::cap::{Capability, Object};
    use crate::obj::ids::Badge;
    use crate::obj::ids::EndpointId;
    use crate::obj::rights::Rights;

    fn prio() -> Priority {
        Priority::new(4).unwrap()
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(TaskName::new("devices").unwrap().as_str(), "devices");
        assert!(TaskName::new("").is_none());
        assert!(TaskName::new("a-name-of-17-byte").is_none());
        assert!(TaskName::new("sixteen-bytes-ok").is_some());
        let mut t = TaskTable::new();
        assert_eq!(t.spawn("", prio()), Err(TaskError::BadName));
    }

    #[test]
    fn spawn_fills_slots_until_full() {
        let mut t = TaskTable::new();
        for i in 0..MAX_TASKS {
            assert_eq!(t.spawn("worker", prio()).unwrap().slot(), i);
        }
        assert_eq!(t.spawn("one-more", prio()), Err(TaskError::TableFull));
        assert_eq!(t.ids().count(), MAX_TASKS);
    }

    #[test]
    fn a_reaped_slot_is_reused_under_a_new_generation() {
        let mut t = TaskTable::new();
        let old = t.spawn("devices", prio()).unwrap();
        t.mark_dead(old, ExitReason::Killed).unwrap();
        t.reap(old).unwrap();
        let new = t.spawn("devices", prio()).unwrap();
        assert_eq!(new.slot(), old.slot());
        assert_ne!(new, old);
        assert_eq!(t.get(old).map(|_| ()), Err(TaskError::StaleId));
        assert!(t.get(new).is_ok());
        assert_eq!(
            t.mark_dead(old, ExitReason::Killed),
            Err(TaskError::StaleId)
        );
    }

    #[test]
    fn death_is_recorded_once_and_reaping_needs_death() {
        let mut t = TaskTable::new();
        let id = t.spawn("ioreq", prio()).unwrap();
        assert_eq!(t.reap(id), Err(TaskError::NotDead));
        t.mark_dead(id, ExitReason::Exited { code: 2 }).unwrap();
        assert_eq!(
            t.mark_dead(id, ExitReason::Killed),
            Err(TaskError::AlreadyDead)
        );
        assert_eq!(
            t.get(id).unwrap().exit_reason(),
            Some(ExitReason::Exited { code: 2 })
        );
        assert_eq!(t.reap(id).unwrap().reason, ExitReason::Exited { code: 2 });
        assert_eq!(t.reap(id), Err(TaskError::StaleId));
    }

    #[test]
    fn the_death_notice_reads_as_a_report() {
        let mut t = TaskTable::new();
        for _ in 0..3 {
            t.spawn("other", prio()).unwrap();
        }
        let id = t.spawn("devices", prio()).unwrap();
        let reason = ExitReason::Faulted {
            kind: FaultKind::StorePageFault,
            address: 0x1000_0008,
        };
        let notice = t.mark_dead(id, reason).unwrap();
        assert_eq!(
            notice.to_string(),
            "task 3 (devices) killed: store page fault at 0x10000008"
        );
        let exited = DeathNotice {
            reason: ExitReason::Exited { code: 1 },
            ..notice
        };
        assert_eq!(exited.to_string(), "task 3 (devices) exited with code 1");
        let killed = DeathNotice {
            reason: ExitReason::Killed,
            ..notice
        };
        assert_eq!(
            killed.to_string(),
            "task 3 (devices) killed by the supervisor"
        );
    }

    #[test]
    fn id_at_names_the_current_occupant() {
        let mut t = TaskTable::new();
        let id = t.spawn("shell", prio()).unwrap();
        assert_eq!(t.id_at(0), Some(id));
        assert_eq!(t.id_at(1), None);
        assert_eq!(t.id_at(MAX_TASKS), None);
    }

    #[test]
    fn revoke_everywhere_reaches_every_table() {
        let mut t = TaskTable::new();
        let a = t.spawn("a", prio()).unwrap();
        let b = t.spawn("b", prio()).unwrap();
        let cap = Capability {
            object: Object::Endpoint {
                id: EndpointId(1),
                badge: Badge::NONE,
            },
            rights: Rights::ALL,
        };
        for id in [a, b] {
            t.get_mut(id).unwrap().caps_mut().insert(cap).unwrap();
        }
        assert_eq!(t.revoke_everywhere(ObjectRef::Endpoint(EndpointId(1))), 2);
        assert_eq!(t.get(a).unwrap().caps().occupied(), 0);
    }
}
