//! The ioreq task's work loop as host-testable logic: drain the VMs the
//! kernel names, first the writes each posted (in batches to their
//! clients), then its PENDING slots: send each forward to its client,
//! complete the slot with the client's answer and resume the vCPU. The
//! effects (IPC to a client, the resume call, reporting a problem) go
//! through [`IoreqEffects`], which the task implements with system calls.
//!
//! Per slot the order is forward -> complete -> resume, so one vCPU runs
//! again as soon as its access is done. Nothing here allocates.

use ipc::devices::wire::Access;
use ipc::devices::{BatchWrite, MAX_BATCH, WaitedAccess};
use ipc::ioreq::ClientId;
use ipc::ioreq_abi::posted::{PostedError, PostedWrite};
use ipc::ioreq_abi::slot::IoRequest;
use ipc::{Error, Space, VmId, devices};

use crate::dispatch::{Action, Actions, Forward, Taken, UNCLAIMED_READ, VmIoreq, device_access};
use crate::page::{IoreqPage, SLOT_COUNT, STATE_FREE};
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
    /// Writes the guest posted could not be emulated: the client refused
    /// or died (`error`), or the ring held an entry that does not decode
    /// (`Error::Malformed`) or was overrun (`Error::BadSlotState`). The
    /// guest, whose writes were completed already, sees them lost.
    PostedFailed {
        /// The VM.
        vm: VmId,
        /// What went wrong.
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

impl Problem {
    /// The VM the problem is about.
    pub fn vm(&self) -> VmId {
        match *self {
            Problem::DeviceFailed { vm, .. }
            | Problem::CompleteRefused { vm, .. }
            | Problem::ResumeRefused { vm, .. }
            | Problem::PostedFailed { vm, .. }
            | Problem::DispatchRefused { vm, .. } => vm,
        }
    }
}

/// What the task does for the worker.
pub trait IoreqEffects {
    /// Sends `access` (a `devices::Request::Read` or `Write`) to `client`
    /// and waits for its answer.
    fn forward(&mut self, client: ClientId, access: &Access) -> Result<devices::Response, Error>;
    /// Sends `writes` (posted by `vm`, oldest first) and then `then` (the
    /// access a vCPU waits for, if any) to `client` as one
    /// `devices::Request::WriteBatch` and waits for its answer.
    fn post(
        &mut self,
        client: ClientId,
        vm: VmId,
        writes: &[BatchWrite],
        then: Option<&WaitedAccess>,
    ) -> Result<devices::Response, Error>;
    /// Hands `vm`'s access `request` (its slot PROCESSING) to `client`
    /// without waiting (`ioreq_forward`): the client's plain answer
    /// completes the slot and resumes the vCPU in the kernel, and any
    /// other comes back as a PENDING slot (with the vCPU's next wake-up),
    /// which may not be handed over again. `Err` with nothing done (the
    /// client is busy, or the access was handed back once): the worker
    /// forwards it with a call; but `Error::Forwarded` (a client holds
    /// the access already) leaves it to that client. The task may also
    /// make the hand-over later, with its next wait, and serve `request`
    /// with [`IoreqService::serve_refused`] if the kernel refuses it then
    /// (for any reason but `Forwarded`).
    fn hand_over(&mut self, client: ClientId, vm: VmId, request: &IoRequest) -> Result<(), Error>;
    /// Asks the kernel to resume `vcpu` of `vm` (its slot is COMPLETE).
    fn resume(&mut self, vm: VmId, vcpu: u8) -> Result<(), Error>;
    /// Reports a problem (the task logs it; it is never on the good path).
    fn problem(&mut self, problem: Problem);
}

/// The value to complete an access with, from the client's answer.
#[inline]
fn completion_value(is_read: bool, answer: Result<devices::Response, Error>) -> Result<u64, Error> {
    match (is_read, answer?) {
        (true, devices::Response::Value(value)) => Ok(value),
        (false, devices::Response::Ok) => Ok(0),
        (_, devices::Response::Err(error)) => Err(error),
        (
            _,
            devices::Response::Value(_)
            | devices::Response::Ok
            | devices::Response::Console(_)
            | devices::Response::Net(_),
        ) => Err(Error::Malformed),
    }
}

/// Reports `problem` (off the good path, so the work loop does not carry
/// the logging code).
#[cold]
#[inline(never)]
fn report(effects: &mut impl IoreqEffects, problem: Problem) {
    effects.problem(problem);
}

#[inline]
fn resume(effects: &mut impl IoreqEffects, vm: VmId, vcpu: u8) {
    if let Err(error) = effects.resume(vm, vcpu) {
        report(effects, Problem::ResumeRefused { vm, vcpu, error });
    }
}

impl<S: PageSource, const MAX_VMS: usize> IoreqService<S, MAX_VMS> {
    /// Dispatches every VM whose bit is set in `pending_vms` (bit `n` = VM
    /// number `n`, as the kernel reports it): first the writes it posted,
    /// in order, then each PENDING slot, in slot order, taken and carried
    /// out at once (forward -> complete -> resume), so one vCPU runs again
    /// as soon as its access is done and no list of actions is built or
    /// copied.
    pub fn drain(&mut self, pending_vms: u64, effects: &mut impl IoreqEffects) {
        let mut bits = pending_vms;
        while bits != 0 {
            let n = bits.trailing_zeros();
            bits &= bits - 1;
            let Ok(number) = u16::try_from(n) else { break };
            let vm = VmId(number);
            match self.index_of(vm) {
                Some(index) if self.vms.get(index).is_some_and(VmIoreq::is_held) => {}
                Some(index) => {
                    let mut batch = Batch::new(vm);
                    let taken = self.drain_posted(index, &mut batch, effects);
                    if let Some(state) = self.vms.get_mut(index) {
                        state.drain(&mut batch, effects);
                    }
                    batch.send(effects);
                    // Only now are the writes out: the kernel may report
                    // an exit of this VM after them.
                    if let (Some(read), Some(ring)) = (taken, self.rings.get(index)) {
                        ring.as_ref().release(read);
                    }
                }
                None => report(
                    effects,
                    Problem::DispatchRefused {
                        vm,
                        error: Error::UnknownVm,
                    },
                ),
            }
        }
    }

    /// Takes the writes in the posted-write ring of the VM at `index`,
    /// oldest first, into `batch`: consecutive writes to the same client
    /// go together, and a batch is sent when it is full or the next write
    /// is for another client. The last one is left in `batch`, to go with
    /// the first slot forwarded to its client (or alone after the slots).
    /// A write no client claims is dropped (as a write to a hole is); a
    /// failure is reported and the rest go on. The ring's read index after
    /// the writes taken, for the caller to release once they are sent;
    /// `None` if nothing was taken.
    fn drain_posted(
        &mut self,
        index: usize,
        batch: &mut Batch,
        effects: &mut impl IoreqEffects,
    ) -> Option<u32> {
        let (Some(ring), Some(state)) = (self.rings.get(index), self.vms.get(index)) else {
            return None;
        };
        let ring = ring.as_ref();
        if ring.is_empty() {
            return None;
        }
        let vm = state.vm();
        let mut read = ring.read_index();
        // The clients do not change during a drain: a write to the place
        // of the one before (a driver filling a FIFO) goes where it went.
        let mut last: Option<(Space, u64, u8, Option<ClientId>)> = None;
        while let Some(taken) = ring.take_at(&mut read) {
            let write = match taken {
                Ok(write) => write,
                Err(error) => {
                    let error = match error {
                        PostedError::BadEntry => Error::Malformed,
                        PostedError::Overrun => Error::BadSlotState,
                    };
                    report(effects, Problem::PostedFailed { vm, error });
                    continue;
                }
            };
            let routed = match last {
                Some((space, addr, size, client))
                    if (space, addr, size) == (write.space, write.addr, write.size) =>
                {
                    client
                }
                _ => {
                    let client = state.clients().route(write.space, write.addr, write.size);
                    last = Some((write.space, write.addr, write.size, client));
                    client
                }
            };
            let Some(client) = routed else {
                continue;
            };
            batch.add(client, write, effects);
        }
        Some(read)
    }

    /// Carries out `actions` in slot order: a forward goes to its client
    /// and its answer completes the slot (then the vCPU is resumed); a
    /// resume goes to the kernel.
    pub fn carry_out(&mut self, actions: &Actions, effects: &mut impl IoreqEffects) {
        for action in actions.iter() {
            match action {
                Action::ResumeVcpu { vm, vcpu } => resume(effects, *vm, *vcpu),
                Action::Forward(forward) => {
                    if let Some(index) = self.index_of(forward.request.vm) {
                        self.forward_one(index, forward, effects);
                    }
                }
            }
        }
    }

    /// `vm`'s access `request` (its slot PROCESSING, taken by a drain) that
    /// the task meant to hand to `client` but the kernel refused when the
    /// task made the hand-over: sent to `client` with a call, completed
    /// with the answer and its vCPU resumed, as a drain does.
    pub fn serve_refused(
        &mut self,
        vm: VmId,
        client: ClientId,
        request: &IoRequest,
        effects: &mut impl IoreqEffects,
    ) {
        let Some(state) = self.index_of(vm).and_then(|index| self.vms.get_mut(index)) else {
            return;
        };
        let vcpu = request.vcpu;
        match ask(effects, client, &device_access(vm, request), vcpu) {
            Some(value) => {
                let done = state.complete_taken(client, request, value);
                completed(effects, vm, vcpu, done);
            }
            None => state.wait_for_client(vcpu),
        }
    }

    /// Hands `forward` (of the VM at `index`) to its client for the kernel
    /// to complete, or, if the kernel refuses, sends it with a call and
    /// completes the slot with the answer (all-ones on failure), then
    /// resumes. An access a client holds already is left to that client's
    /// answer (`Error::Forwarded`): one a dead predecessor of this task
    /// handed over, adopted after the restart. A call would have the
    /// device carry it out twice (a second read of a receive register
    /// takes a second byte).
    fn forward_one(&mut self, index: usize, forward: &Forward, effects: &mut impl IoreqEffects) {
        let access = forward.request;
        let (vm, vcpu) = (access.vm, forward.vcpu);
        let taken = self
            .vms
            .get(index)
            .filter(|state| state.vm() == vm)
            .and_then(|state| state.in_flight(vcpu))
            .map(|in_flight| in_flight.request);
        if let Some(request) = taken {
            match effects.hand_over(forward.client, vm, &request) {
                Ok(()) | Err(Error::Forwarded) => return,
                Err(_) => {}
            }
        }
        let value = ask(effects, forward.client, &access, vcpu);
        // The call may have taken a while, but only this task changes the
        // service: the VM at `index` is still `vm`.
        let done = match (self.vms.get_mut(index), value) {
            (Some(state), Some(value)) if state.vm() == vm => state.complete_now(vcpu, value),
            (Some(state), None) if state.vm() == vm => {
                state.wait_for_client(vcpu);
                return;
            }
            _ => Err(Error::UnknownVm),
        };
        completed(effects, vm, vcpu, done);
    }
}

/// Sends `access` (of `vcpu`) to `client`: the value to complete it with,
/// all-ones (reported) if the client failed; `None` if the client does
/// not serve the VM (it restarted and was not handed the VM again yet).
#[inline(always)]
fn ask(
    effects: &mut impl IoreqEffects,
    client: ClientId,
    access: &Access,
    vcpu: u8,
) -> Option<u64> {
    let answer = effects.forward(client, access);
    answered(effects, access, vcpu, answer)
}

/// The value to complete `access` (of `vcpu`) with, from the client's
/// `answer`: all-ones (reported) if the client failed; `None` (reported)
/// if it does not know the VM: the access waits for the vm-manager to hand
/// the VM's devices to the restarted client and activate the VM here.
#[inline(always)]
fn answered(
    effects: &mut impl IoreqEffects,
    access: &Access,
    vcpu: u8,
    answer: Result<devices::Response, Error>,
) -> Option<u64> {
    match completion_value(access.write.is_none(), answer) {
        Ok(value) => Some(value),
        Err(error) => {
            report(
                effects,
                Problem::DeviceFailed {
                    vm: access.vm,
                    vcpu,
                    error,
                },
            );
            (error != Error::UnknownVm).then_some(UNCLAIMED_READ)
        }
    }
}

/// Posted writes on their way to one client.
pub(crate) struct Batch {
    vm: VmId,
    client: Option<ClientId>,
    writes: heapless::Vec<BatchWrite, MAX_BATCH>,
}

impl Batch {
    fn new(vm: VmId) -> Self {
        Self {
            vm,
            client: None,
            writes: heapless::Vec::new(),
        }
    }

    /// Adds `write` for `client`, sending what is held first if it is for
    /// another client or full.
    fn add(&mut self, client: ClientId, write: PostedWrite, effects: &mut impl IoreqEffects) {
        if self.client != Some(client) || self.writes.is_full() {
            self.send(effects);
            self.client = Some(client);
        }
        let write = BatchWrite {
            space: write.space,
            addr: write.addr,
            size: write.size,
            value: write.value,
        };
        // Never full here: it was sent above if it was.
        let _ = self.writes.push(write);
    }

    /// Sends what is held (if anything) and empties the batch.
    fn send(&mut self, effects: &mut impl IoreqEffects) {
        let (Some(client), false) = (self.client, self.writes.is_empty()) else {
            return;
        };
        let vm = self.vm;
        let error = match effects.post(client, vm, &self.writes, None) {
            Ok(devices::Response::Ok) => None,
            Ok(devices::Response::Err(error)) | Err(error) => Some(error),
            Ok(_) => Some(Error::Malformed),
        };
        if let Some(error) = error {
            report(effects, Problem::PostedFailed { vm, error });
        }
        self.writes.clear();
    }

    /// Hands `access` (of `vcpu`, whose slot is PROCESSING) to `client`
    /// for the kernel to complete with its answer, when no write held is
    /// for `client` (those go first, in one message with the access:
    /// [`Batch::ask_after`]): the writes held for another client are sent
    /// first. Whether it was handed over.
    #[inline]
    fn hand_over_after(
        &mut self,
        effects: &mut impl IoreqEffects,
        client: ClientId,
        request: &IoRequest,
    ) -> bool {
        if !self.writes.is_empty() {
            if self.client == Some(client) {
                return false;
            }
            self.send(effects);
        }
        effects.hand_over(client, self.vm, request).is_ok()
    }

    /// Sends `access` (of `vcpu`) to `client`, after the writes held if
    /// they are for `client` too (in the same message), or else after
    /// sending them alone; the value to complete the access with, as
    /// [`ask`] gives it.
    #[inline]
    fn ask_after(
        &mut self,
        effects: &mut impl IoreqEffects,
        client: ClientId,
        access: &Access,
        vcpu: u8,
    ) -> Option<u64> {
        if self.writes.is_empty() {
            return ask(effects, client, access, vcpu);
        }
        if self.client != Some(client) {
            self.send(effects);
            return ask(effects, client, access, vcpu);
        }
        let then = WaitedAccess::from(access);
        let answer = effects.post(client, self.vm, &self.writes, Some(&then));
        self.writes.clear();
        answered(effects, access, vcpu, answer)
    }
}

/// After completing a slot: resume its vCPU, or report why not.
#[inline]
fn completed(effects: &mut impl IoreqEffects, vm: VmId, vcpu: u8, done: Result<(), Error>) {
    match done {
        Ok(()) => resume(effects, vm, vcpu),
        Err(error) => report(effects, Problem::CompleteRefused { vm, vcpu, error }),
    }
}

impl<P: AsRef<IoreqPage> + AsMut<IoreqPage>> VmIoreq<P> {
    /// The work loop for this VM: each PENDING slot, in slot order, is
    /// taken, forwarded, completed and its vCPU resumed before the next
    /// one is looked at. A FREE slot costs a load and a compare (the loop
    /// is unrolled; the work on a busy slot is out of line).
    /// The writes held in `batch` (posted before these slots) go out
    /// before the first slot's access, with it if it is for their client.
    #[inline]
    pub(crate) fn drain(&mut self, batch: &mut Batch, effects: &mut impl IoreqEffects) {
        for index in 0..SLOT_COUNT {
            // A client that lost the VM holds the rest too.
            if self.is_held() {
                break;
            }
            if self.page().slots[index].state_hint() != STATE_FREE {
                self.work_on_slot(index, batch, effects);
            }
        }
    }

    /// Slot `index`, which is not FREE: if it is PENDING and the VM's, it
    /// is carried through.
    #[inline(never)]
    fn work_on_slot(&mut self, index: usize, batch: &mut Batch, effects: &mut impl IoreqEffects) {
        if let Some(vcpu) = self.pending_vcpu(index) {
            self.work_on(vcpu, batch, effects);
        }
    }

    /// Takes `vcpu`'s PENDING slot and carries it through. With no writes
    /// held, the access is handed over here ([`Batch::hand_over_after`]
    /// with nothing to send first); anything else is
    /// [`forward_after_writes`](Self::forward_after_writes)' work, kept out
    /// of line so that the hand-over pays for none of it.
    #[inline]
    fn work_on(&mut self, vcpu: u8, batch: &mut Batch, effects: &mut impl IoreqEffects) {
        let vm = self.vm();
        match self.take_pending(vcpu) {
            Taken::Forward { client, request } => {
                let held = !batch.writes.is_empty();
                // The kernel completes it with the client's answer.
                if !held && effects.hand_over(client, vm, &request).is_ok() {
                    return;
                }
                self.forward_after_writes(client, &request, held, batch, effects);
            }
            Taken::Resume => resume(effects, vm, vcpu),
            Taken::Nothing => {}
        }
    }

    /// The PROCESSING `request` that goes to `client` and was not handed
    /// over yet: if writes were `held`, they go first (with it, or before
    /// a hand-over); else the hand-over was refused. Sent with a call,
    /// completed with the answer and its vCPU resumed.
    #[inline(never)]
    fn forward_after_writes(
        &mut self,
        client: ClientId,
        request: &IoRequest,
        held: bool,
        batch: &mut Batch,
        effects: &mut impl IoreqEffects,
    ) {
        if held && batch.hand_over_after(effects, client, request) {
            return;
        }
        let (vm, vcpu) = (self.vm(), request.vcpu);
        let access = device_access(vm, request);
        match batch.ask_after(effects, client, &access, vcpu) {
            Some(value) => {
                let done = self.complete_taken(client, request, value);
                completed(effects, vm, vcpu, done);
            }
            None => self.wait_for_client(vcpu),
        }
    }
}

#[cfg(test)]
mod tests;
