//! The ioreq service's state machine: the VMs it serves and the one entry
//! point, [`IoreqService::handle`], that turns an `ipc::ioreq::Request` into
//! a `Response` plus the [`Actions`] the task binary carries out.

use ipc::ioreq::{Request, Response};
use ipc::{Error, VmId};

use crate::dispatch::{Actions, VmIoreq};
use crate::page::{IoreqPage, SLOT_COUNT};

/// Where a VM's ioreq page comes from. On the host the service owns its
/// pages ([`OwnedPages`]); on Mica a source maps the page the kernel grants
/// for the VM and hands out a `&'static mut IoreqPage`.
pub trait PageSource {
    /// The page storage kept for each VM.
    type Page: AsRef<IoreqPage> + AsMut<IoreqPage>;

    /// The page for a newly attached VM, with every slot FREE.
    /// An error refuses the attach and is the reply.
    fn page_for(&mut self, vm: VmId) -> Result<Self::Page, Error>;

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

    fn page_for(&mut self, _vm: VmId) -> Result<IoreqPage, Error> {
        Ok(IoreqPage::new())
    }
}

/// The result of one request: the reply, and what else to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// The reply to the caller.
    pub response: Response,
    /// Forwards to clients and vCPU resumes, in slot order.
    pub actions: Actions,
}

impl Handled {
    fn reply(result: Result<Response, Error>, actions: Actions) -> Self {
        Self {
            response: result.unwrap_or_else(Response::Err),
            actions,
        }
    }
}

/// The ioreq service: up to `MAX_VMS` VMs, each with its page, clients and
/// counters.
pub struct IoreqService<S: PageSource, const MAX_VMS: usize = 8> {
    source: S,
    pub(crate) vms: heapless::Vec<VmIoreq<S::Page>, MAX_VMS>,
}

impl<S: PageSource, const MAX_VMS: usize> IoreqService<S, MAX_VMS> {
    /// A service serving no VM yet, taking pages from `source`.
    pub fn new(source: S) -> Self {
        Self {
            source,
            vms: heapless::Vec::new(),
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
        };
        Handled::reply(result, actions)
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
        self.vms
            .push(VmIoreq::new(vm, vcpus, page))
            .map_err(|state| {
                self.source.release(vm, state.into_page());
                Error::NoFreeSlot {
                    max: u16::try_from(MAX_VMS).unwrap_or(u16::MAX),
                }
            })
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
        self.source.release(vm, state.into_page());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
