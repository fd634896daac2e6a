//! The ioreq task's work loop as host-testable logic: drain the VMs the
//! kernel says have PENDING slots, send each forward to its client,
//! complete the slot with the client's answer and resume the vCPU. The
//! effects (IPC to a client, the resume call, reporting a problem) go
//! through [`IoreqEffects`], which the task implements with system calls.
//!
//! Per slot the order is forward -> complete -> resume, so one vCPU runs
//! again as soon as its access is done. Nothing here allocates.

use ipc::ioreq::ClientId;
use ipc::{Error, VmId, devices};

use crate::dispatch::{Action, Actions, Forward, UNCLAIMED_READ};
use crate::page::SLOT_COUNT;
use crate::service::{IoreqService, PageSource};

/// Something that went wrong while carrying out actions; the work goes on
/// (the vCPU is completed with all-ones or left for the kernel to tidy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A client refused an access, died, or answered nonsense; a read was
    /// completed with all-ones.
    DeviceFailed {
        /// The VM.
        vm: VmId,
        /// The vCPU whose access it was.
        vcpu: u8,
        /// What the client (or the call) said.
        error: Error,
    },
    /// The service refused to complete a slot (e.g. the VM was reset or
    /// detached meanwhile); the vCPU is not resumed.
    CompleteRefused {
        /// The VM.
        vm: VmId,
        /// The vCPU.
        vcpu: u8,
        /// Why.
        error: Error,
    },
    /// The kernel refused to resume a vCPU.
    ResumeRefused {
        /// The VM.
        vm: VmId,
        /// The vCPU.
        vcpu: u8,
        /// Why.
        error: Error,
    },
    /// The kernel named a VM this service does not serve.
    DispatchRefused {
        /// The VM.
        vm: VmId,
        /// Why.
        error: Error,
    },
}

/// What the task does for the worker.
pub trait IoreqEffects {
    /// Sends `request` to `client` and waits for its answer.
    fn forward(
        &mut self,
        client: ClientId,
        request: &devices::Request,
    ) -> Result<devices::Response, Error>;
    /// Asks the kernel to resume `vcpu` of `vm` (its slot is COMPLETE).
    fn resume(&mut self, vm: VmId, vcpu: u8) -> Result<(), Error>;
    /// Reports a problem (the task logs it; it is never on the good path).
    fn problem(&mut self, problem: Problem);
}

/// The VM of a forwarded access and whether it is a read.
fn access_of(request: &devices::Request) -> Option<(VmId, bool)> {
    match request {
        devices::Request::Read { vm, .. } => Some((*vm, true)),
        devices::Request::Write { vm, .. } => Some((*vm, false)),
        _ => None,
    }
}

/// The value to complete an access with, from the client's answer.
fn completion_value(is_read: bool, answer: Result<devices::Response, Error>) -> Result<u64, Error> {
    match (is_read, answer?) {
        (true, devices::Response::Value(value)) => Ok(value),
        (false, devices::Response::Ok) => Ok(0),
        (_, devices::Response::Err(error)) => Err(error),
        (
            _,
            devices::Response::Value(_) | devices::Response::Ok | devices::Response::Console(_),
        ) => Err(Error::Malformed),
    }
}

fn resume(effects: &mut impl IoreqEffects, vm: VmId, vcpu: u8) {
    if let Err(error) = effects.resume(vm, vcpu) {
        effects.problem(Problem::ResumeRefused { vm, vcpu, error });
    }
}

impl<S: PageSource, const MAX_VMS: usize> IoreqService<S, MAX_VMS> {
    /// Dispatches every VM whose bit is set in `pending_vms` (bit `n` = VM
    /// number `n`, as the kernel reports it): each PENDING slot, in slot
    /// order, is taken and its action carried out at once (forward ->
    /// complete -> resume), so one vCPU runs again as soon as its access is
    /// done and no list of actions is built or copied.
    pub fn drain(&mut self, pending_vms: u64, effects: &mut impl IoreqEffects) {
        let mut bits = pending_vms;
        while bits != 0 {
            let n = bits.trailing_zeros();
            bits &= bits - 1;
            let Ok(number) = u16::try_from(n) else { break };
            let vm = VmId(number);
            let Some(index) = self.index_of(vm) else {
                effects.problem(Problem::DispatchRefused {
                    vm,
                    error: Error::UnknownVm,
                });
                continue;
            };
            for slot in 0..SLOT_COUNT {
                let Some(state) = self.vms.get_mut(index) else {
                    break;
                };
                match state.dispatch_next(slot) {
                    Some(Action::Forward(forward)) => self.forward_one(index, &forward, effects),
                    Some(Action::ResumeVcpu { vm, vcpu }) => resume(effects, vm, vcpu),
                    None => {}
                }
            }
        }
    }

    /// Carries out `actions` in slot order: a forward goes to its client
    /// and its answer completes the slot (then the vCPU is resumed); a
    /// resume goes to the kernel.
    pub fn carry_out(&mut self, actions: &Actions, effects: &mut impl IoreqEffects) {
        for action in actions.iter() {
            match action {
                Action::ResumeVcpu { vm, vcpu } => resume(effects, *vm, *vcpu),
                Action::Forward(forward) => {
                    let vm = access_of(&forward.request).map(|(vm, _)| vm);
                    if let Some(index) = vm.and_then(|vm| self.index_of(vm)) {
                        self.forward_one(index, forward, effects);
                    }
                }
            }
        }
    }

    /// Sends `forward` (of the VM at `index`) to its client and completes
    /// the slot with the answer (all-ones on failure), then resumes.
    fn forward_one(&mut self, index: usize, forward: &Forward, effects: &mut impl IoreqEffects) {
        let Some((vm, is_read)) = access_of(&forward.request) else {
            return;
        };
        let vcpu = forward.vcpu;
        let answer = effects.forward(forward.client, &forward.request);
        let value = completion_value(is_read, answer).unwrap_or_else(|error| {
            effects.problem(Problem::DeviceFailed { vm, vcpu, error });
            UNCLAIMED_READ
        });
        // The call may have taken a while, but only this task changes the
        // service: the VM at `index` is still `vm`.
        let done = match self.vms.get_mut(index) {
            Some(state) if state.vm() == vm => state.complete_now(vcpu, value),
            _ => Err(Error::UnknownVm),
        };
        match done {
            Ok(()) => resume(effects, vm, vcpu),
            Err(error) => effects.problem(Problem::CompleteRefused { vm, vcpu, error }),
        }
    }
}

#[cfg(test)]
mod tests;
