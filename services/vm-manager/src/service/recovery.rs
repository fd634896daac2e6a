//! A restarted vm-manager takes its table back from the platform: every VM
//! the kernel still has is adopted ([`VmManager::recover`]) with its state
//! and generation ID as they are, a static one by its build-time
//! configuration, a dynamic one by the options the kernel kept for it
//! ([`Platform::keep_config`]). Nothing is rebuilt and no guest notices;
//! a guest that ended while nobody listened is handled as if the news had
//! just come.

use ipc::VmId;
use ipc::vm::VmKind;

use super::{GuestExit, VmManager};
use crate::config::VmConfig;
use crate::genid::EntropySource;
use crate::lifecycle::LiveState;
use crate::name::VmName;
use crate::platform::{Adopted, AdoptedState, Platform};
use crate::slots::LiveVm;

/// What became of one VM the platform still had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Its slot.
    pub id: VmId,
    /// Its name (`None` if the platform could not say).
    pub name: Option<VmName>,
    /// `Ok` when it is in the table again; otherwise why not (it then runs
    /// on, unmanaged).
    pub result: Result<(), ipc::Error>,
}

impl<P: Platform, E: EntropySource, const MAX_VM_NUM: usize> VmManager<P, E, MAX_VM_NUM> {
    /// Adopts every VM the platform still has, in slot order, into a table
    /// that holds none yet (right after a restart); returns what became of
    /// each and what was done for guests that ended meanwhile.
    pub fn recover(
        &mut self,
    ) -> (
        heapless::Vec<Recovery, MAX_VM_NUM>,
        heapless::Vec<GuestExit, MAX_VM_NUM>,
    ) {
        let mut found = heapless::Vec::new();
        let mut ended = 0u64;
        for index in 0..MAX_VM_NUM {
            let Ok(number) = u16::try_from(index) else {
                break;
            };
            let id = VmId(number);
            let (name, result) = match self.platform.adopt(id) {
                Ok(None) => continue,
                Ok(Some(adopted)) => {
                    let result = self.take_over(id, &adopted);
                    if result.is_ok() && adopted.state == AdoptedState::Ended && index < 64 {
                        ended |= 1 << index;
                    }
                    (Some(adopted.name), result)
                }
                Err(error) => (None, Err(error)),
            };
            // At most one per slot: never full.
            let _ = found.push(Recovery { id, name, result });
        }
        (found, self.guests_ended(ended))
    }

    /// Puts `adopted` into slot `id`: a static slot must hold its
    /// configuration; a dynamic VM takes the free slot with the
    /// configuration its kept options build.
    fn take_over(&mut self, id: VmId, adopted: &Adopted) -> Result<(), ipc::Error> {
        let state = match adopted.state {
            AdoptedState::Created => LiveState::Created,
            AdoptedState::Started | AdoptedState::Ended => LiveState::Started,
            AdoptedState::Paused => LiveState::Paused,
        };
        let live = LiveVm {
            state,
            generation_id: adopted.generation_id,
        };
        let config = match self.slots.get(id) {
            Some(entry) if entry.kind == VmKind::Static && entry.config.name == adopted.name => {
                entry.config.clone()
            }
            Some(_) => return Err(ipc::Error::DuplicateName),
            None => {
                let options = adopted.options.as_ref().ok_or(ipc::Error::UnknownImage)?;
                VmConfig::dynamic(adopted.name.clone(), options, None, &self.defaults)?
            }
        };
        self.platform
            .load_image(id, &config.image, config.linux.as_ref())?;
        self.platform.adopted_disk(id, config.disk);
        if config.is_static() {
            self.slots.set_live(id, live)
        } else {
            self.slots.insert_dynamic(id, config, live)
        }
    }
}
