//! The ioreq service's state machine: the VMs it serves and the one entry
//! point, [`IoreqService::handle`], that turns an `ipc::ioreq::Request` into
//! a `Response` plus the [`Actions`] the task binary carries out.

use ipc::ioreq::{Request, Response};
use ipc::{Error, Space, VmId};

use crate::dispatch::{Actions, VmIoreq};
use crate::page::{IoreqPage, SLOT_COUNT};
use crate::posted::PostedPage;

/// Where a VM's ioreq page and posted-write ring come from, and who lets
/// the kernel post writes. On the host the service owns its pages
/// ([`OwnedPages`]); on Mica a source maps the pages the kernel grants for
/// the VM and hands out `&'static` references.
pub trait PageSource {
    /// The page storage kept for each VM.
    type Page: AsRef<IoreqPage> + AsMut<IoreqPage>;
    /// The posted-write ring kept for each VM.
    type Ring: AsRef<PostedPage>;

    /// The page for a newly attached VM, with every slot FREE.
    /// An error refuses the attach and is the reply.
    fn page_for(&mut self, vm: VmId) -> Result<Self::Page, Error>;

    /// The posted-write ring of a VM whose page was just given
    /// ([`PageSource::page_for`]).
    fn ring_for(&mut self, vm: VmId) -> Result<Self::Ring, Error>;

    /// Tells the kernel it may post `vm`'s writes to `[start, start +
    /// len)` of `space` (checked by the service already). Without a kernel
    /// (on the host) there is nothing to tell.
    fn post_writes(&mut self, vm: VmId, space: Space, start: u64, len: u64) -> Result<(), Error> {
        let _ = (vm, space, start, len);
        Ok(())
    }

    /// Takes back the page of a detached VM.
    fn release(&mut self, vm: VmId, page: Self::Page) {
        let _ = (vm, page);
    }
}

/// Pages owned by the service itself, fresh for every attach.
#[derive(Clone, Copy, Debug, Default)]
pub struct OwnedPages;

impl PageSource for OwnedPages {
    type Page = IoreqPage;
    type Ring = PostedPage;

    fn page_for(&mut self, _vm: VmId) -> Result<IoreqPage, Error> {
        Ok(IoreqPage::new())
    }

    fn ring_for(&mut self, _vm: VmId) -> Result<PostedPage, Error> {
        Ok(PostedPage::new())
    }
}

/// The result of one request: the reply, and what else to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// The reply to the caller.
    pub response: Response,
    /// Forwards to clients and vCPU resumes, in slot order.
    pub actions: Actions,
    /// VMs to drain after the actions, as on a kernel wake-up naming them
    /// (bit `n`: VM number `n`; [`IoreqService::drain`]).
    pub drain: u64,
}

impl Handled {
    fn reply(result: Result<Response, Error>, actions: Actions) -> Self {
        Self {
            response: result.unwrap_or_else(Response::Err),
            actions,
            drain: 0,
        }
    }
}

/// The ioreq service: up to `MAX_VMS` VMs, each with its page, clients and
/// counters.
pub struct IoreqService<S: PageSource, const MAX_VMS: usize = 8> {
    source: S,
    pub(crate) vms: heapless::Vec<VmIoreq<S::Page>, MAX_VMS>,
    /// The posted-write ring of the VM at the same index of `vms`.
    pub(crate) rings: heapless::Vec<S::Ring, MAX_VMS>,
}

impl<S: PageSource, const MAX_VMS: usize> IoreqService<S, MAX_VMS> {
    /// A service serving no VM yet, taking pages from `source`.
    pub fn new(source: S) -> Self {
        Self {
            source,
            vms: heapless::Vec::new(),
            rings: heapless::Vec::new(),
        }
    }

    /// The state kept for `vm`, if it is attached.
    pub fn vm(&self, vm: VmId) -> Option<&VmIoreq<S::Page>> {
        self.vms.iter().find(|state| state.vm() == vm)
    }

    /// The state kept for `vm`, writable.
    pub fn vm_mut(&mut self, vm: VmId) -> Option<&mut VmIoreq<S::Page>> {
        self.vms.iter_mut().find(|state| state.vm() == vm)
    }

    /// Where `vm`'s state is kept in `vms`.
    pub(crate) fn index_of(&self, vm: VmId) -> Option<usize> {
        self.vms.iter().position(|state| state.vm() == vm)
    }

    fn attached(&mut self, vm: VmId) -> Result<&mut VmIoreq<S::Page>, Error> {
        self.vm_mut(vm).ok_or(Error::UnknownVm)
    }

    /// Handles one request. Errors come back as `Response::Err`, with
    /// nothing changed (but the counters).
    pub fn handle(&mut self, request: Request) -> Handled {
        let mut actions = Actions::new();
        let result = match request {
            Request::AttachVm { vm, vcpus } => self.attach(vm, vcpus).map(|()| Response::Ok),
            Request::DetachVm { vm } => self.detach(vm).map(|()| Response::Ok),
            Request::RegisterRange {
                vm,
                client,
                space,
                start,
                len,
            } => self
                .attached(vm)
                .and_then(|state| state.clients_mut().register(client, space, start, len))
                .map(|()| Response::Ok),
            Request::UnregisterClient { vm, client } => self
                .attached(vm)
                .and_then(|state| state.clients_mut().unregister(client))
                .map(|()| Response::Ok),
            Request::SetDefaultClient { vm, client } => self
                .attached(vm)
                .and_then(|state| state.clients_mut().set_default(client))
                .map(|()| Response::Ok),
            Request::Dispatch { vm } => self.attached(vm).map(|state| Response::Dispatched {
                count: state.dispatch(&mut actions),
            }),
            Request::Complete { vm, vcpu, value } => self
                .attached(vm)
                .and_then(|state| state.complete(vcpu, value, &mut actions))
                .map(|()| Response::Ok),
            Request::PostWrites {
                vm,
                space,
                start,
                len,
            } => self
                .post_writes(vm, space, start, len)
                .map(|()| Response::Ok),
            Request::Reattach { vm, vcpus } => self.reattach(vm, vcpus).map(|()| Response::Ok),
            Request::Activate { vm } => {
                let activated = self.attached(vm).map(|state| {
                    state.activate(&mut actions);
                    Response::Ok
                });
                let drain = match (&activated, u32::from(vm.0)) {
                    (Ok(_), n) if n < u64::BITS => 1 << n,
                    _ => 0,
                };
                return Handled {
                    drain,
                    ..Handled::reply(activated, actions)
                };
            }
        };
        Handled::reply(result, actions)
    }

    /// Serves `vm` again after a restart ([`Request::Reattach`]): attached
    /// as by `AttachVm` if it is not, and held either way.
    fn reattach(&mut self, vm: VmId, vcpus: u8) -> Result<(), Error> {
        match self.vm_mut(vm) {
            Some(state) if state.vcpus() == vcpus => {
                state.hold();
                Ok(())
            }
            Some(_) => Err(Error::InvalidArgument),
            None => {
                self.attach(vm, vcpus)?;
                self.attached(vm).map(VmIoreq::hold)
            }
        }
    }

    /// Starts serving `vm`.
    ///
    /// Errors: [`Error::InvalidArgument`] unless `vcpus` is 1..=16 (one
    /// slot each); [`Error::VmExists`] if `vm` is already attached
    /// (detach it first); [`Error::NoFreeSlot`] if `MAX_VMS` VMs are
    /// attached; or the page source's error.
    fn attach(&mut self, vm: VmId, vcpus: u8) -> Result<(), Error> {
        if vcpus == 0 || usize::from(vcpus) > SLOT_COUNT {
            return Err(Error::InvalidArgument);
        }
        if self.vm(vm).is_some() {
            return Err(Error::VmExists);
        }
        if self.vms.is_full() {
            return Err(Error::NoFreeSlot {
                max: u16::try_from(MAX_VMS).unwrap_or(u16::MAX),
            });
        }
        let page = self.source.page_for(vm)?;
        let ring = match self.source.ring_for(vm) {
            Ok(ring) => ring,
            Err(error) => {
                self.source.release(vm, page);
                return Err(error);
            }
        };
        // Both have room: `vms` was not full and `rings` is as long.
        let pushed = self
            .vms
            .push(VmIoreq::new(vm, vcpus, page))
            .map_err(VmIoreq::into_page);
        match pushed {
            Ok(()) => self.rings.push(ring).map_err(|_| Error::NoFreeSlot {
                max: u16::try_from(MAX_VMS).unwrap_or(u16::MAX),
            }),
            Err(page) => {
                self.source.release(vm, page);
                Err(Error::NoFreeSlot {
                    max: u16::try_from(MAX_VMS).unwrap_or(u16::MAX),
                })
            }
        }
    }

    /// Lets the kernel post `vm`'s writes to `[start, start + len)` of
    /// `space`. Errors: [`Error::UnknownVm`]; [`Error::InvalidRange`] for
    /// PCI configuration space, an empty or wrapping range, or one that
    /// does not lie inside a single registered client range (its writes
    /// must have somewhere to go); or the kernel's error.
    fn post_writes(&mut self, vm: VmId, space: Space, start: u64, len: u64) -> Result<(), Error> {
        let state = self.attached(vm)?;
        let last = start
            .checked_add(len)
            .and_then(|end| end.checked_sub(1))
            .filter(|_| len != 0 && space != Space::PciConfig)
            .ok_or(Error::InvalidRange)?;
        let inside = state
            .clients()
            .ranges()
            .iter()
            .any(|r| r.space == space && r.start <= start && last <= r.last);
        if !inside {
            return Err(Error::InvalidRange);
        }
        self.source.post_writes(vm, space, start, len)
    }

    /// Stops serving `vm`: its page goes back to the source, its clients,
    /// requests in flight and counters are forgotten.
    fn detach(&mut self, vm: VmId) -> Result<(), Error> {
        let index = self
            .vms
            .iter()
            .position(|state| state.vm() == vm)
            .ok_or(Error::UnknownVm)?;
        let state = self.vms.swap_remove(index);
        if index < self.rings.len() {
            self.rings.swap_remove(index);
        }
        self.source.release(vm, state.into_page());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
