//! The boot image's manifest turned into kernel objects: one endpoint per
//! served endpoint number, the supervisor's death notification, and each
//! service's capability table by the `ipc::syscall::slots` convention
//! (`SERVE`, `DEATHS`, `call(n)` badged with the caller's task slot) plus its
//! kernel rights. Pure logic over [`KernelObjects`]; the arch layer loads
//! the ELFs and calls [`Wiring::wire_task`] for every task it starts or
//! restarts.

use core::fmt;

use ipc::syscall::slots;
use mica_boot::image::{ImageEntry, KernelRights, MAX_ENDPOINTS};

use crate::obj::CAP_SLOTS;
use crate::obj::cap::{Capability, Object};
use crate::obj::ids::{Badge, EndpointId, NotificationId, TaskId};
use crate::obj::objects::KernelObjects;
use crate::obj::rights::Rights;

/// What the manifest says about one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The endpoint it serves.
    pub serves: Option<u8>,
    /// Bit `n`: it may call endpoint `n`.
    pub may_call: u64,
    /// Its kernel rights.
    pub rights: KernelRights,
    /// Bit `n`: it may map virtio devices of ID `n`.
    pub device_classes: u32,
}

impl ServiceSpec {
    /// The spec of a service entry of the boot image.
    pub fn of(entry: &ImageEntry<'_>) -> Self {
        ServiceSpec {
            serves: entry.spec.serves,
            may_call: entry.spec.may_call,
            rights: entry.spec.rights,
            device_classes: entry.spec.device_classes,
        }
    }
}

/// Why the manifest cannot be turned into kernel objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestError {
    /// Endpoint `n` has no call slot (`slots::call(n)` is past the table).
    EndpointOutOfRange(u8),
    /// Two services claim the SUPERVISOR right.
    TwoSupervisors,
    /// The kernel ran out of endpoints, notifications or capability room.
    OutOfObjects,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::EndpointOutOfRange(n) => write!(
                f,
                "endpoint {n} is beyond the {} a task can call",
                CAP_SLOTS - slots::CALL_BASE
            ),
            ManifestError::TwoSupervisors => {
                f.write_str("more than one service has the SUPERVISOR right")
            }
            ManifestError::OutOfObjects => f.write_str("too many endpoints or tasks"),
        }
    }
}

/// The kernel objects the manifest asked for.
#[derive(Clone, Copy, Debug)]
pub struct Wiring {
    endpoints: [Option<EndpointId>; MAX_ENDPOINTS as usize],
    deaths: NotificationId,
}

impl Wiring {
    /// Creates an endpoint for every endpoint some service serves and the
    /// supervisor's death notification (registered with `objects`).
    pub fn create(
        objects: &mut KernelObjects,
        services: &[ServiceSpec],
    ) -> Result<Wiring, ManifestError> {
        let supervisors = services
            .iter()
            .filter(|s| s.rights.contains(KernelRights::SUPERVISOR))
            .count();
        if supervisors > 1 {
            return Err(ManifestError::TwoSupervisors);
        }
        let mut endpoints = [None; MAX_ENDPOINTS as usize];
        for spec in services {
            for n in 0..MAX_ENDPOINTS {
                if spec.may_call & (1 << n) != 0 && slots::call(usize::from(n)) >= CAP_SLOTS {
                    return Err(ManifestError::EndpointOutOfRange(n));
                }
            }
            if let Some(n) = spec.serves {
                let slot = endpoints
                    .get_mut(usize::from(n))
                    .ok_or(ManifestError::EndpointOutOfRange(n))?;
                let ep = objects
                    .endpoints
                    .create()
                    .map_err(|_| ManifestError::OutOfObjects)?;
                *slot = Some(ep);
            }
        }
        let deaths = objects
            .notifications
            .create()
            .map_err(|_| ManifestError::OutOfObjects)?;
        objects.set_supervisor_notification(deaths);
        Ok(Wiring { endpoints, deaths })
    }

    /// The endpoint served as number `n`, if a service serves it.
    pub fn endpoint(&self, n: u8) -> Option<EndpointId> {
        self.endpoints.get(usize::from(n)).copied().flatten()
    }

    /// Fills `task`'s capability table and kernel rights from `spec`: the
    /// receive right on its endpoint in `SERVE`, a call right badged with
    /// its slot in `call(n)` for each endpoint it may call that a service
    /// serves, and the death notification in `DEATHS` for the supervisor.
    pub fn wire_task(
        &self,
        objects: &mut KernelObjects,
        task: TaskId,
        spec: &ServiceSpec,
    ) -> Result<(), ManifestError> {
        let record = objects
            .tasks
            .get_mut(task)
            .map_err(|_| ManifestError::OutOfObjects)?;
        record.set_kernel_rights(spec.rights);
        record.set_device_classes(spec.device_classes);
        let caps = record.caps_mut();
        let mut give = |slot: usize, object: Object, rights: Rights| {
            caps.insert_at(slot, Capability { object, rights })
                .map_err(|_| ManifestError::OutOfObjects)
        };
        if let Some(id) = spec.serves.and_then(|n| self.endpoint(n)) {
            give(
                slots::SERVE,
                Object::Endpoint {
                    id,
                    badge: Badge::NONE,
                },
                Rights::RECV,
            )?;
        }
        if spec.rights.contains(KernelRights::SUPERVISOR) {
            let deaths = Object::Notification {
                id: self.deaths,
                bits: 0,
            };
            give(slots::DEATHS, deaths, Rights::RECV)?;
        }
        let badge = if spec.rights.contains(KernelRights::SUPERVISOR) {
            Badge(ipc::syscall::SUPERVISOR_BADGE)
        } else {
            Badge(task.slot() as u64)
        };
        for n in 0..MAX_ENDPOINTS {
            if spec.may_call & (1 << n) == 0 {
                continue;
            }
            if let Some(id) = self.endpoint(n) {
                let call = Object::Endpoint { id, badge };
                give(slots::call(usize::from(n)), call, Rights::CALL)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
