//! A task's capability table: a fixed number of slots, each empty or holding
//! a typed capability (which object, which rights). Slot indices arrive in
//! user registers, so every lookup is checked and fails with a typed error.

use super::CAP_SLOTS;
use super::ids::{Badge, EndpointId, GrantId, NotificationId, TaskId, VcpuId, VmId};
use super::rights::Rights;

/// The object a capability names, with per-capability data (badges).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// An IPC endpoint; `badge` is delivered to the receiver of each message
    /// sent through this capability.
    Endpoint { id: EndpointId, badge: Badge },
    /// A notification; `bits` are ORed into its word by each signal sent
    /// through this capability.
    Notification { id: NotificationId, bits: u64 },
    /// A range of physical frames the holder may map.
    MemoryGrant { grant: GrantId },
    /// A VM object.
    Vm { id: VmId },
    /// A vCPU object.
    Vcpu { id: VcpuId },
    /// A saved one-shot right to reply to a blocked caller.
    Reply { caller: TaskId },
    /// Control of another task (the supervisor's handle for restarts).
    Task { id: TaskId },
}

/// The type of an object, without its identity; what a lookup asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Endpoint,
    Notification,
    MemoryGrant,
    Vm,
    Vcpu,
    Reply,
    Task,
}

/// An object's identity, without per-capability data; what revocation
/// matches on when an object dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectRef {
    Endpoint(EndpointId),
    Notification(NotificationId),
    MemoryGrant(GrantId),
    Vm(VmId),
    Vcpu(VcpuId),
    /// Every reply capability for this caller.
    Reply(TaskId),
    Task(TaskId),
}

impl Object {
    /// This object's type.
    pub const fn kind(&self) -> ObjectKind {
        match self {
            Object::Endpoint { .. } => ObjectKind::Endpoint,
            Object::Notification { .. } => ObjectKind::Notification,
            Object::MemoryGrant { .. } => ObjectKind::MemoryGrant,
            Object::Vm { .. } => ObjectKind::Vm,
            Object::Vcpu { .. } => ObjectKind::Vcpu,
            Object::Reply { .. } => ObjectKind::Reply,
            Object::Task { .. } => ObjectKind::Task,
        }
    }

    /// This object's identity.
    pub const fn identity(&self) -> ObjectRef {
        match *self {
            Object::Endpoint { id, .. } => ObjectRef::Endpoint(id),
            Object::Notification { id, .. } => ObjectRef::Notification(id),
            Object::MemoryGrant { grant } => ObjectRef::MemoryGrant(grant),
            Object::Vm { id } => ObjectRef::Vm(id),
            Object::Vcpu { id } => ObjectRef::Vcpu(id),
            Object::Reply { caller } => ObjectRef::Reply(caller),
            Object::Task { id } => ObjectRef::Task(id),
        }
    }
}

/// One capability: an object and what its holder may do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    pub object: Object,
    pub rights: Rights,
}

/// Why a capability operation was refused. Each names the slot at fault so
/// the task's error report can point at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapError {
    /// The slot index is not below [`CAP_SLOTS`].
    OutOfRange { slot: usize },
    /// The slot holds no capability.
    EmptySlot { slot: usize },
    /// The slot holds a capability to a different type of object.
    WrongType {
        slot: usize,
        expected: ObjectKind,
        found: ObjectKind,
    },
    /// The capability lacks rights the operation needs (or a derivation
    /// asked for rights the source does not have).
    MissingRights { slot: usize, missing: Rights },
    /// The destination slot of an insertion already holds a capability.
    SlotOccupied { slot: usize },
    /// Every slot is in use.
    TableFull,
    /// A badge was given for a capability that is already badged; badges
    /// cannot be changed once minted.
    AlreadyBadged { slot: usize },
    /// A badge was given for an object type that carries none (only
    /// endpoints and notifications do), or the badge was zero.
    NotBadgeable { slot: usize },
}

/// A task's capability table.
#[derive(Clone, Debug)]
pub struct CapTable {
    slots: [Option<Capability>; CAP_SLOTS],
}

impl Default for CapTable {
    fn default() -> Self {
        Self::new()
    }
}

impl CapTable {
    /// A table with every slot empty.
    pub const fn new() -> Self {
        CapTable {
            slots: [None; CAP_SLOTS],
        }
    }

    /// Puts `cap` into the lowest free slot and returns its index.
    pub fn insert(&mut self, cap: Capability) -> Result<usize, CapError> {
        let (slot, entry) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, e)| e.is_none())
            .ok_or(CapError::TableFull)?;
        *entry = Some(cap);
        Ok(slot)
    }

    /// Puts `cap` into `slot`, which must be empty.
    pub fn insert_at(&mut self, slot: usize, cap: Capability) -> Result<(), CapError> {
        let entry = self
            .slots
            .get_mut(slot)
            .ok_or(CapError::OutOfRange { slot })?;
        if entry.is_some() {
            return Err(CapError::SlotOccupied { slot });
        }
        *entry = Some(cap);
        Ok(())
    }

    /// The capability in `slot`, whatever it is.
    pub fn get(&self, slot: usize) -> Result<&Capability, CapError> {
        self.slots
            .get(slot)
            .ok_or(CapError::OutOfRange { slot })?
            .as_ref()
            .ok_or(CapError::EmptySlot { slot })
    }

    /// The capability in `slot`, checked to name a `kind` object and to carry
    /// at least `required` rights. `slot` may be any value a task passed.
    pub fn lookup(
        &self,
        slot: usize,
        kind: ObjectKind,
        required: Rights,
    ) -> Result<&Capability, CapError> {
        let cap = self.get(slot)?;
        let found = cap.object.kind();
        if found != kind {
            return Err(CapError::WrongType {
                slot,
                expected: kind,
                found,
            });
        }
        let missing = cap.rights.missing(required);
        if !missing.is_empty() {
            return Err(CapError::MissingRights { slot, missing });
        }
        Ok(cap)
    }

    /// Copies the capability in `slot` into a free slot with `rights` (which
    /// must be a subset of its own) and, if `badge` is given, mints that
    /// badge into an unbadged endpoint or notification capability.
    pub fn derive(
        &mut self,
        slot: usize,
        rights: Rights,
        badge: Option<Badge>,
    ) -> Result<usize, CapError> {
        let derived = derive_capability(self.get(slot)?, slot, rights, badge)?;
        self.insert(derived)
    }

    /// Empties `slot` and returns what it held.
    pub fn delete(&mut self, slot: usize) -> Result<Capability, CapError> {
        self.slots
            .get_mut(slot)
            .ok_or(CapError::OutOfRange { slot })?
            .take()
            .ok_or(CapError::EmptySlot { slot })
    }

    /// Deletes every capability naming `object` (it died) and returns how
    /// many there were.
    pub fn revoke(&mut self, object: ObjectRef) -> usize {
        let mut removed = 0;
        for entry in &mut self.slots {
            if entry.is_some_and(|c| c.object.identity() == object) {
                *entry = None;
                removed += 1;
            }
        }
        removed
    }

    /// How many slots hold a capability.
    pub fn occupied(&self) -> usize {
        self.slots.iter().filter(|e| e.is_some()).count()
    }
}

/// The capability `source` (found in `slot`) reduced to `rights` and
/// optionally minted with `badge`: the rules of derivation, usable both for a
/// copy within one table and for a transfer to another task's table.
pub fn derive_capability(
    source: &Capability,
    slot: usize,
    rights: Rights,
    badge: Option<Badge>,
) -> Result<Capability, CapError> {
    let missing = source.rights.missing(rights);
    if !missing.is_empty() {
        return Err(CapError::MissingRights { slot, missing });
    }
    let object = match (source.object, badge) {
        (object, None) => object,
        (_, Some(Badge::NONE)) => return Err(CapError::NotBadgeable { slot }),
        (
            Object::Endpoint {
                id,
                badge: Badge::NONE,
            },
            Some(badge),
        ) => Object::Endpoint { id, badge },
        (Object::Notification { id, bits: 0 }, Some(badge)) => {
            Object::Notification { id, bits: badge.0 }
        }
        (Object::Endpoint { .. } | Object::Notification { .. }, Some(_)) => {
            return Err(CapError::AlreadyBadged { slot });
        }
        (_, Some(_)) => return Err(CapError::NotBadgeable { slot }),
    };
    Ok(Capability { object, rights })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: u16, rights: Rights) -> Capability {
        Capability {
            object: Object::Endpoint {
                id: EndpointId(id),
                badge: Badge::NONE,
            },
            rights,
        }
    }

    #[test]
    fn insert_fills_the_lowest_free_slot() {
        let mut t = CapTable::new();
        assert_eq!(t.insert(endpoint(0, Rights::ALL)), Ok(0));
        assert_eq!(t.insert(endpoint(1, Rights::ALL)), Ok(1));
        t.delete(0).unwrap();
        assert_eq!(t.insert(endpoint(2, Rights::ALL)), Ok(0));
        assert_eq!(t.occupied(), 2);
    }

    #[test]
    fn full_table_refuses_insert() {
        let mut t = CapTable::new();
        for _ in 0..CAP_SLOTS {
            t.insert(endpoint(0, Rights::ALL)).unwrap();
        }
        assert_eq!(t.insert(endpoint(0, Rights::ALL)), Err(CapError::TableFull));
    }

    #[test]
    fn insert_at_checks_range_and_occupancy() {
        let mut t = CapTable::new();
        assert_eq!(t.insert_at(5, endpoint(0, Rights::ALL)), Ok(()));
        assert_eq!(
            t.insert_at(5, endpoint(1, Rights::ALL)),
            Err(CapError::SlotOccupied { slot: 5 })
        );
        assert_eq!(
            t.insert_at(CAP_SLOTS, endpoint(1, Rights::ALL)),
            Err(CapError::OutOfRange { slot: CAP_SLOTS })
        );
        assert_eq!(
            t.get(5).unwrap().object,
            Object::Endpoint {
                id: EndpointId(0),
                badge: Badge::NONE
            }
        );
    }

    #[test]
    fn lookup_reports_each_error() {
        let mut t = CapTable::new();
        t.insert_at(0, endpoint(3, Rights::CALL)).unwrap();
        assert_eq!(
            t.lookup(usize::MAX, ObjectKind::Endpoint, Rights::CALL),
            Err(CapError::OutOfRange { slot: usize::MAX })
        );
        assert_eq!(
            t.lookup(1, ObjectKind::Endpoint, Rights::CALL),
            Err(CapError::EmptySlot { slot: 1 })
        );
        assert_eq!(
            t.lookup(0, ObjectKind::Notification, Rights::NONE),
            Err(CapError::WrongType {
                slot: 0,
                expected: ObjectKind::Notification,
                found: ObjectKind::Endpoint
            })
        );
        assert_eq!(
            t.lookup(
                0,
                ObjectKind::Endpoint,
                Rights::CALL | Rights::RECV | Rights::GRANT
            ),
            Err(CapError::MissingRights {
                slot: 0,
                missing: Rights::RECV | Rights::GRANT
            })
        );
        assert_eq!(
            t.lookup(0, ObjectKind::Endpoint, Rights::CALL)
                .unwrap()
                .object
                .identity(),
            ObjectRef::Endpoint(EndpointId(3))
        );
    }

    #[test]
    fn derive_narrows_rights_and_mints_a_badge() {
        let mut t = CapTable::new();
        t.insert(endpoint(1, Rights::CALL | Rights::RECV | Rights::GRANT))
            .unwrap();
        let s = t.derive(0, Rights::CALL, Some(Badge(42))).unwrap();
        let cap = t.get(s).unwrap();
        assert_eq!(cap.rights, Rights::CALL);
        assert_eq!(
            cap.object,
            Object::Endpoint {
                id: EndpointId(1),
                badge: Badge(42)
            }
        );
        // The source is unchanged.
        assert_eq!(
            t.get(0).unwrap().object,
            Object::Endpoint {
                id: EndpointId(1),
                badge: Badge::NONE
            }
        );
    }

    #[test]
    fn derive_refuses_more_rights_than_the_source() {
        let mut t = CapTable::new();
        t.insert(endpoint(1, Rights::CALL)).unwrap();
        assert_eq!(
            t.derive(0, Rights::CALL | Rights::RECV, None),
            Err(CapError::MissingRights {
                slot: 0,
                missing: Rights::RECV
            })
        );
        assert_eq!(t.occupied(), 1);
    }

    #[test]
    fn a_badge_is_minted_once() {
        let mut t = CapTable::new();
        t.insert(endpoint(1, Rights::ALL)).unwrap();
        let badged = t.derive(0, Rights::ALL, Some(Badge(7))).unwrap();
        assert_eq!(
            t.derive(badged, Rights::CALL, Some(Badge(8))),
            Err(CapError::AlreadyBadged { slot: badged })
        );
        // Copying a badged capability without a new badge keeps the badge.
        let copy = t.derive(badged, Rights::CALL, None).unwrap();
        assert_eq!(
            t.get(copy).unwrap().object,
            Object::Endpoint {
                id: EndpointId(1),
                badge: Badge(7)
            }
        );
    }

    #[test]
    fn notifications_take_badge_bits_other_objects_take_none() {
        let mut t = CapTable::new();
        let n = t
            .insert(Capability {
                object: Object::Notification {
                    id: NotificationId(2),
                    bits: 0,
                },
                rights: Rights::ALL,
            })
            .unwrap();
        let minted = t.derive(n, Rights::SEND, Some(Badge(0b100))).unwrap();
        assert_eq!(
            t.get(minted).unwrap().object,
            Object::Notification {
                id: NotificationId(2),
                bits: 0b100
            }
        );
        let vm = t
            .insert(Capability {
                object: Object::Vm { id: VmId(0) },
                rights: Rights::ALL,
            })
            .unwrap();
        assert_eq!(
            t.derive(vm, Rights::READ, Some(Badge(1))),
            Err(CapError::NotBadgeable { slot: vm })
        );
        assert_eq!(
            t.derive(n, Rights::SEND, Some(Badge::NONE)),
            Err(CapError::NotBadgeable { slot: n })
        );
    }

    #[test]
    fn derive_from_bad_slots_fails() {
        let mut t = CapTable::new();
        assert_eq!(
            t.derive(3, Rights::NONE, None),
            Err(CapError::EmptySlot { slot: 3 })
        );
        assert_eq!(
            t.derive(CAP_SLOTS + 1, Rights::NONE, None),
            Err(CapError::OutOfRange {
                slot: CAP_SLOTS + 1
            })
        );
    }

    #[test]
    fn delete_empties_the_slot() {
        let mut t = CapTable::new();
        t.insert(endpoint(1, Rights::ALL)).unwrap();
        assert_eq!(t.delete(0), Ok(endpoint(1, Rights::ALL)));
        assert_eq!(t.delete(0), Err(CapError::EmptySlot { slot: 0 }));
        assert_eq!(
            t.delete(CAP_SLOTS),
            Err(CapError::OutOfRange { slot: CAP_SLOTS })
        );
    }

    #[test]
    fn revoke_removes_every_capability_to_the_object_and_nothing_else() {
        let mut t = CapTable::new();
        t.insert(endpoint(1, Rights::ALL)).unwrap();
        t.derive(0, Rights::CALL, Some(Badge(5))).unwrap();
        t.insert(endpoint(2, Rights::ALL)).unwrap();
        t.insert(Capability {
            object: Object::Vm { id: VmId(1) },
            rights: Rights::ALL,
        })
        .unwrap();
        assert_eq!(t.revoke(ObjectRef::Endpoint(EndpointId(1))), 2);
        assert_eq!(t.occupied(), 2);
        assert_eq!(
            t.get(2).unwrap().object.identity(),
            ObjectRef::Endpoint(EndpointId(2))
        );
        assert_eq!(t.revoke(ObjectRef::Endpoint(EndpointId(1))), 0);
        // Same index, different object type: untouched.
        assert_eq!(t.revoke(ObjectRef::Vcpu(VcpuId(1))), 0);
        assert_eq!(t.revoke(ObjectRef::Vm(VmId(1))), 1);
    }
}
