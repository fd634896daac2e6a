//! VMs whose guest ended on its own: the kernel wakes the vm-manager with
//! their bits, and [`VmManager::guests_ended`] asks the platform how each
//! one ended and brings the slot table in line, as ACRN's vm-manager does
//! when a guest shuts down or reboots:
//!
//! - powered off (SBI SRST shutdown) or stopped by the kernel (a fault it
//!   reported): every resource is released and the VM shows as powered off;
//!   a static VM keeps its configuration (`vm start NAME` boots it again)
//!   and how it ended (`vm info`'s `last exit:`), a dynamic one gives its
//!   slot back and goes into the history of ended VMs
//!   ([`crate::ended::EndedVms`]);
//! - reboot requested: reset in place (image, device tree and generation ID
//!   kept) and started again, its last exit "rebooted by the guest".

use ipc::VmId;
use ipc::vm::{LastExit, VmChange};

use super::{Found, VmManager};
use crate::creation;
use crate::genid::EntropySource;
use crate::name::VmName;
use crate::platform::{GuestStatus, Platform};

/// What the vm-manager did about one VM whose guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// Powered off by its guest (the exit says with which reason); its
    /// resources are released.
    PoweredOff(VmName, LastExit),
    /// Stopped by the kernel (the exit says why); its resources are
    /// released.
    Stopped(VmName, LastExit),
    /// Rebooted by its guest: reset and started again (`Err` if that
    /// failed: it is then left as the failed step left it).
    Rebooted(VmName, Result<(), ipc::Error>),
}

impl<P: Platform, E: EntropySource, const MAX_VM_NUM: usize> VmManager<P, E, MAX_VM_NUM> {
    /// The kernel says the VMs of bit set `vms` ended (bit `n` = slot
    /// `n`); handles each that is live and really ended, and says what it
    /// did. Bits of free or powered-off slots, and VMs the platform says
    /// still run, change nothing (a stale bit is harmless).
    pub fn guests_ended(&mut self, vms: u64) -> heapless::Vec<GuestExit, MAX_VM_NUM> {
        let mut done = heapless::Vec::new();
        for slot in (0..MAX_VM_NUM.min(64)).filter(|n| vms & (1 << n) != 0) {
            let Ok(slot) = u16::try_from(slot) else {
                continue;
            };
            let id = VmId(slot);
            if let Some(exit) = self.guest_ended(id) {
                // At most one per slot: never full.
                let _ = done.push(exit);
            }
        }
        done
    }

    fn guest_ended(&mut self, id: VmId) -> Option<GuestExit> {
        let entry = self.slots.get(id)?;
        let live = entry.live?;
        let name = entry.config.name.clone();
        let vm = Found {
            id,
            state: entry.state(),
            generation_id: live.generation_id,
        };
        let (exit, uptime_ms) = match self.platform.guest_status(id).ok()? {
            GuestStatus::Running => return None,
            GuestStatus::Ended(exit, uptime_ms) => (exit, uptime_ms),
        };
        match exit {
            LastExit::Rebooted { .. } => {
                let seen = crate::slots::ExitSeen { exit, uptime_ms };
                self.slots.set_last_exit(id, Some(seen));
                let rebooted = self.platform.reset(id).and_then(|()| {
                    self.set_state(vm, ipc::vm::VmState::Created)?;
                    self.platform.start(id)?;
                    self.set_state(vm, ipc::vm::VmState::Started)
                });
                self.record(id, VmChange::Exited { exit, uptime_ms });
                Some(GuestExit::Rebooted(name, rebooted))
            }
            LastExit::Stopped { .. } => {
                self.end(id, exit, uptime_ms);
                Some(GuestExit::Stopped(name, exit))
            }
            LastExit::PoweredOff { .. } | LastExit::ShutDown | LastExit::Destroyed => {
                self.end(id, exit, uptime_ms);
                Some(GuestExit::PoweredOff(name, exit))
            }
        }
    }

    /// Releases every resource of `id` and marks it powered off.
    pub(super) fn release(&mut self, id: VmId) {
        creation::tear_down(&mut self.platform, id);
        self.slots.power_off(id);
    }

    /// `id`'s VM ended as `exit`: its resources are released; a static VM
    /// keeps `exit` as its last exit, a dynamic one's name and `exit` go
    /// into the history of ended VMs as it gives its slot back.
    fn end(&mut self, id: VmId, exit: LastExit, uptime_ms: Option<u64>) {
        self.note_end(id, exit, uptime_ms);
        self.release(id);
    }

    /// Whether slot `id` holds a powered-off static VM (which `start`
    /// launches again).
    pub(super) fn is_powered_off_static(&self, id: VmId) -> bool {
        self.slots
            .get(id)
            .is_some_and(|entry| entry.kind == ipc::vm::VmKind::Static && entry.live.is_none())
    }
}
