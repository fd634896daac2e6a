//! The fixed-capacity slot table: static configurations occupy the first
//! slots for good; dynamic VMs take any free slot and give it back when they
//! power off. A slot's index is the VM's [`VmId`]. Each occupied slot keeps
//! how its VM last left running ([`LastExit`]): a static VM keeps it while
//! powered off, until it starts again.

use ipc::VmId;
use ipc::vm::{LastExit, VmInfo, VmKind, VmState};

use crate::config::{ScenarioError, StaticVmConfig, VmConfig};
use crate::genid::GenerationId;
use crate::lifecycle::LiveState;
use crate::name::VmName;

/// What a VM that holds resources has beyond its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveVm {
    /// Where it is in the lifecycle.
    pub state: LiveState,
    /// Its current generation ID.
    pub generation_id: GenerationId,
}

/// One slot. A dynamic VM exists only while it holds resources, so a
/// powered-off dynamic VM cannot be represented.
#[derive(Clone, Debug)]
enum Slot {
    /// Unused; a dynamic VM may take it.
    Free,
    /// A build-time configuration; `live` is `None` while powered off.
    Static {
        config: VmConfig,
        live: Option<LiveVm>,
        last_exit: Option<ExitSeen>,
    },
    /// A run-time VM and its configuration.
    Dynamic {
        config: VmConfig,
        live: LiveVm,
        last_exit: Option<ExitSeen>,
    },
}

/// How a VM last left running, and when (milliseconds since Mica booted,
/// when the kernel said).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitSeen {
    /// How.
    pub exit: LastExit,
    /// When, if known.
    pub uptime_ms: Option<u64>,
}

/// A read-only view of an occupied slot.
#[derive(Clone, Copy, Debug)]
pub struct VmEntry<'a> {
    /// Its slot.
    pub id: VmId,
    /// Its configuration.
    pub config: &'a VmConfig,
    /// Static or dynamic.
    pub kind: VmKind,
    /// `None` while powered off.
    pub live: Option<LiveVm>,
    /// How it last left running (`None` if it has not since it was made
    /// or last started).
    pub last_exit: Option<ExitSeen>,
}

impl VmEntry<'_> {
    /// Its lifecycle state.
    pub fn state(&self) -> VmState {
        self.live
            .map_or(VmState::PoweredOff, |live| live.state.into())
    }

    /// What `Info` and `List` report.
    pub fn info(&self) -> VmInfo {
        let generation_id = self
            .live
            .map_or(GenerationId::NONE, |live| live.generation_id);
        VmInfo {
            name: self.config.name.to_wire(),
            id: self.id,
            kind: self.kind,
            state: self.state(),
            vcpus: self.config.vcpus,
            mem_mib: self.config.mem_mib,
            disk: self.config.disk,
            generation_id: generation_id.to_le_bytes(),
            generation_id_random: generation_id.is_random(),
            last_exit: self.last_exit.map(|seen| seen.exit),
            last_exit_uptime_ms: self.last_exit.and_then(|seen| seen.uptime_ms),
        }
    }
}

/// `MAX_VM_NUM` slots.
#[derive(Clone, Debug)]
pub struct SlotTable<const MAX_VM_NUM: usize> {
    slots: [Slot; MAX_VM_NUM],
}

/// The id of slot `index` (every index of a table fits: see `new`).
fn id_of(index: usize) -> Option<VmId> {
    u16::try_from(index).ok().map(VmId)
}

impl<const MAX_VM_NUM: usize> SlotTable<MAX_VM_NUM> {
    /// The table for a build-time `scenario`: entry `i` takes slot `i`.
    pub fn new(scenario: &[StaticVmConfig]) -> Result<Self, ScenarioError> {
        const {
            assert!(MAX_VM_NUM >= 1 && MAX_VM_NUM <= u16::MAX as usize);
        }
        if scenario.len() > MAX_VM_NUM {
            return Err(ScenarioError::TooManyVms {
                count: scenario.len(),
                max: MAX_VM_NUM,
            });
        }
        let mut table = SlotTable {
            slots: core::array::from_fn(|_| Slot::Free),
        };
        for (index, entry) in scenario.iter().enumerate() {
            let config = VmConfig::from_static(index, entry)?;
            if let Some(first) = table.find(&config.name) {
                return Err(ScenarioError::DuplicateName {
                    first: usize::from(first.0),
                    second: index,
                });
            }
            if let Some(slot) = table.slots.get_mut(index) {
                *slot = Slot::Static {
                    config,
                    live: None,
                    last_exit: None,
                };
            }
        }
        Ok(table)
    }

    /// The table's size as the wire reports it.
    pub fn max(&self) -> u16 {
        u16::try_from(MAX_VM_NUM).unwrap_or(u16::MAX)
    }

    /// The slot of the VM (or static configuration) called `name`.
    pub fn find(&self, name: &VmName) -> Option<VmId> {
        self.slots
            .iter()
            .position(|slot| match slot {
                Slot::Free => false,
                Slot::Static { config, .. } | Slot::Dynamic { config, .. } => config.name == *name,
            })
            .and_then(id_of)
    }

    /// The occupied slot `id`, or `None` if it is free or out of range.
    pub fn get(&self, id: VmId) -> Option<VmEntry<'_>> {
        let (config, kind, live, last_exit) = match self.slots.get(usize::from(id.0))? {
            Slot::Free => return None,
            Slot::Static {
                config,
                live,
                last_exit,
            } => (config, VmKind::Static, *live, last_exit),
            Slot::Dynamic {
                config,
                live,
                last_exit,
            } => (config, VmKind::Dynamic, Some(*live), last_exit),
        };
        Some(VmEntry {
            id,
            config,
            kind,
            live,
            last_exit: *last_exit,
        })
    }

    /// The first free slot, if any.
    pub fn free_slot(&self) -> Option<VmId> {
        self.slots
            .iter()
            .position(|slot| matches!(slot, Slot::Free))
            .and_then(id_of)
    }

    /// How many slots are occupied (static ones always count).
    pub fn occupied(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| !matches!(slot, Slot::Free))
            .count()
    }

    /// Every occupied slot from `from` on, in slot order.
    pub fn entries_from(&self, from: u16) -> impl Iterator<Item = VmEntry<'_>> + '_ {
        (usize::from(from)..MAX_VM_NUM)
            .filter_map(id_of)
            .filter_map(|id| self.get(id))
    }

    /// Records that `id` now holds resources in `live` state: a powered-off
    /// static slot comes alive, a live VM changes state. `UnknownVm` if the
    /// slot is free.
    pub fn set_live(&mut self, id: VmId, new: LiveVm) -> Result<(), ipc::Error> {
        match self.slots.get_mut(usize::from(id.0)) {
            Some(Slot::Static { live, .. }) => {
                *live = Some(new);
                Ok(())
            }
            Some(Slot::Dynamic { live, .. }) => {
                *live = new;
                Ok(())
            }
            Some(Slot::Free) | None => Err(ipc::Error::UnknownVm),
        }
    }

    /// Puts a new dynamic VM into the free slot `id`; `NoFreeSlot` if the
    /// slot is taken.
    pub fn insert_dynamic(
        &mut self,
        id: VmId,
        config: VmConfig,
        live: LiveVm,
    ) -> Result<(), ipc::Error> {
        match self.slots.get_mut(usize::from(id.0)) {
            Some(slot @ Slot::Free) => {
                *slot = Slot::Dynamic {
                    config,
                    live,
                    last_exit: None,
                };
                Ok(())
            }
            _ => Err(ipc::Error::NoFreeSlot { max: self.max() }),
        }
    }

    /// Records how the VM in slot `id` last left running (`None`: forget
    /// it, as a start does); a free slot keeps nothing.
    pub fn set_last_exit(&mut self, id: VmId, exit: Option<ExitSeen>) {
        match self.slots.get_mut(usize::from(id.0)) {
            Some(Slot::Static { last_exit, .. } | Slot::Dynamic { last_exit, .. }) => {
                *last_exit = exit;
            }
            Some(Slot::Free) | None => {}
        }
    }

    /// Records that `id` holds no resources any more: a static slot is
    /// powered off (its configuration and last exit kept), a dynamic slot
    /// is freed.
    pub fn power_off(&mut self, id: VmId) {
        if let Some(slot) = self.slots.get_mut(usize::from(id.0)) {
            match slot {
                Slot::Static { live, .. } => *live = None,
                Slot::Dynamic { .. } => *slot = Slot::Free,
                Slot::Free => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VmFlags;

    const fn entry(name: &'static str) -> StaticVmConfig {
        StaticVmConfig {
            name,
            image: "img",
            mem_mib: 64,
            vcpus: 1,
            flags: VmFlags::STATIC,
            linux: None,
            disk: None,
        }
    }

    fn name(text: &str) -> VmName {
        VmName::parse(text).unwrap()
    }

    fn live() -> LiveVm {
        LiveVm {
            state: LiveState::Created,
            generation_id: GenerationId::from_u128(7),
        }
    }

    #[test]
    fn static_configs_take_the_first_slots_powered_off() {
        let table = SlotTable::<4>::new(&[entry("a"), entry("b")]).unwrap();
        assert_eq!(table.find(&name("a")), Some(VmId(0)));
        assert_eq!(table.find(&name("b")), Some(VmId(1)));
        assert_eq!(table.free_slot(), Some(VmId(2)));
        assert_eq!(table.occupied(), 2);
        let a = table.get(VmId(0)).unwrap();
        assert_eq!(a.kind, VmKind::Static);
        assert_eq!(a.state(), VmState::PoweredOff);
        assert_eq!(a.info().generation_id, [0; 16]);
    }

    #[test]
    fn scenario_larger_than_the_table_is_refused() {
        let err = SlotTable::<1>::new(&[entry("a"), entry("b")]).unwrap_err();
        assert_eq!(err, ScenarioError::TooManyVms { count: 2, max: 1 });
    }

    #[test]
    fn scenario_with_a_repeated_name_is_refused() {
        let err = SlotTable::<4>::new(&[entry("a"), entry("b"), entry("a")]).unwrap_err();
        assert_eq!(
            err,
            ScenarioError::DuplicateName {
                first: 0,
                second: 2
            }
        );
    }

    #[test]
    fn dynamic_vm_frees_its_slot_on_power_off_static_keeps_it() {
        let mut table = SlotTable::<3>::new(&[entry("s")]).unwrap();
        let config = VmConfig::from_static(0, &entry("d")).unwrap();
        table
            .insert_dynamic(VmId(1), config.clone(), live())
            .unwrap();
        assert_eq!(
            table.insert_dynamic(VmId(1), config, live()),
            Err(ipc::Error::NoFreeSlot { max: 3 })
        );
        table.set_live(VmId(0), live()).unwrap();
        assert_eq!(table.occupied(), 2);
        table.power_off(VmId(1));
        table.power_off(VmId(0));
        assert_eq!(table.find(&name("d")), None);
        assert_eq!(table.get(VmId(0)).unwrap().state(), VmState::PoweredOff);
        assert_eq!(table.occupied(), 1);
        assert_eq!(table.set_live(VmId(1), live()), Err(ipc::Error::UnknownVm));
        assert_eq!(table.set_live(VmId(9), live()), Err(ipc::Error::UnknownVm));
        assert!(table.get(VmId(9)).is_none());
    }

    #[test]
    fn a_static_vm_keeps_its_last_exit_while_powered_off() {
        let mut table = SlotTable::<3>::new(&[entry("s")]).unwrap();
        table.set_live(VmId(0), live()).unwrap();
        let off = ExitSeen {
            exit: LastExit::PoweredOff { reason: 0 },
            uptime_ms: Some(4_560),
        };
        table.set_last_exit(VmId(0), Some(off));
        table.power_off(VmId(0));
        let info = table.get(VmId(0)).unwrap().info();
        assert_eq!(info.last_exit, Some(LastExit::PoweredOff { reason: 0 }));
        assert_eq!(info.last_exit_uptime_ms, Some(4_560));
        table.set_last_exit(VmId(0), None);
        assert_eq!(table.get(VmId(0)).unwrap().last_exit, None);
        // A free slot keeps nothing.
        table.set_last_exit(VmId(2), Some(off));
        assert!(table.get(VmId(2)).is_none());
    }

    #[test]
    fn entries_are_listed_in_slot_order_from_a_start() {
        let mut table = SlotTable::<5>::new(&[entry("s")]).unwrap();
        let config = VmConfig::from_static(0, &entry("d")).unwrap();
        table.insert_dynamic(VmId(3), config, live()).unwrap();
        let ids: heapless::Vec<u16, 5> = table.entries_from(0).map(|e| e.id.0).collect();
        assert_eq!(ids.as_slice(), &[0, 3]);
        let ids: heapless::Vec<u16, 5> = table.entries_from(1).map(|e| e.id.0).collect();
        assert_eq!(ids.as_slice(), &[3]);
        assert_eq!(table.entries_from(4).count(), 0);
        assert_eq!(table.entries_from(u16::MAX).count(), 0);
    }
}
