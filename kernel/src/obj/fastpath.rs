//! The IPC fast path, as seL4 has it: a `call` to an endpoint where a
//! receiver already waits, and a `reply_recv` that answers a caller waiting
//! for exactly that reply while no request is queued, switch straight to
//! the partner. These functions only decide whether the plain case holds
//! and, if it does, make the very transitions the general path makes
//! (`KernelObjects::call` / `reply_recv`), skipping its generic outcome
//! handling and the scheduler pass; the arch layer then copies the one
//! message, sets the partner's result registers and returns into it.
//!
//! `None` means "not the plain case" and changes nothing: the caller takes
//! the general path. `fastpath_tests.rs` checks that whenever the fast path
//! applies, it leaves the objects exactly as the general path would.

use super::MAX_MESSAGE_LEN;
use super::endpoint::Transfer;
use super::ids::Badge;
use super::ids::EndpointId;
use super::ids::TaskId;
use super::objects::KernelObjects;
use super::rights::Rights;
use super::sched::TaskState;
use crate::vm::control;
use mica_boot::image::KernelRights;

impl KernelObjects {
    /// `caller` (running) calls through the endpoint capability in `slot`
    /// with a `len`-byte message, and a receiver waits on that endpoint
    /// with nothing more urgent ready: the message goes to the receiver,
    /// `caller` waits for the reply and the receiver runs. Returns the
    /// transfer (its `to` runs next), or `None` with nothing changed.
    #[inline]
    pub fn fast_call(&mut self, caller: TaskId, slot: usize, len: usize) -> Option<Transfer> {
        if len > MAX_MESSAGE_LEN || self.sched.current() != Some(caller) {
            return None;
        }
        let (ep, badge) = self.endpoint_of(caller, slot, Rights::CALL)?;
        let receiver = self.endpoints.plain_call_receiver(caller, ep)?;
        if !self
            .sched
            .direct_switch_ok(receiver, TaskState::BlockedRecv)
        {
            return None;
        }
        self.endpoints.apply_call_plain(caller, ep, receiver);
        self.sched
            .apply_direct_switch(caller, TaskState::BlockedReply, receiver);
        Some(Transfer {
            from: caller,
            to: receiver,
            badge,
            len,
        })
    }

    /// `server` (running, with no ioreq work pending) answers the caller
    /// that waits for its reply with `len` bytes and receives on the
    /// endpoint capability in `slot`, where no request is queued, with
    /// nothing more urgent than the caller ready: the reply goes to the
    /// caller, `server` waits to receive and the caller runs. Returns the
    /// transfer (its `to` runs next), or `None` with nothing changed.
    #[inline]
    pub fn fast_reply_recv(&mut self, server: TaskId, slot: usize, len: usize) -> Option<Transfer> {
        if len > MAX_MESSAGE_LEN
            || self.sched.current() != Some(server)
            || self.vms.has_pending(server)
        {
            return None;
        }
        let (ep, _) = self.endpoint_of(server, slot, Rights::RECV)?;
        let caller = self.endpoints.plain_reply_recv_caller(server, ep)?;
        if !self.sched.direct_switch_ok(caller, TaskState::BlockedReply) {
            return None;
        }
        self.endpoints.apply_reply_recv_plain(server, ep, caller);
        self.sched
            .apply_direct_switch(server, TaskState::BlockedRecv, caller);
        Some(Transfer {
            from: server,
            to: caller,
            badge: Badge::NONE,
            len,
        })
    }

    /// The plain case of `ioreq_complete_recv(vm, vcpu, slot)` by `server`
    /// (running, with the IOREQ right, serving `vm`, with no other ioreq
    /// work pending, no reply owed and no sender queued on the endpoint in
    /// `slot`): `vm`'s held vCPU runs as soon as the arch layer took its
    /// completion, and the boost would run it next. Returns the vCPU and
    /// the endpoint; `None` when the general path applies. Changes nothing:
    /// [`KernelObjects::complete_recv_direct`] does, once the arch layer
    /// took the completion.
    #[inline]
    pub fn plain_complete_recv(
        &self,
        server: TaskId,
        vm: usize,
        vcpu: usize,
        slot: usize,
    ) -> Option<(TaskId, EndpointId)> {
        let rights = self.tasks.get(server).ok()?.kernel_rights();
        if !rights.contains(KernelRights::IOREQ) {
            return None;
        }
        let task = control::resumes_plainly(self, vm, vcpu, server)?;
        let ep = self.waits_for_vcpu(server, slot, task)?;
        Some((task, ep))
    }

    /// The checks [`KernelObjects::plain_complete_recv`] and
    /// [`KernelObjects::plain_answer_recv`] share: `task` (running) may
    /// wait to receive on the endpoint capability in `slot` and hand its
    /// CPU to the vCPU's task `vcpu_task` at once. It has no ioreq work
    /// pending, waits for nothing, owes no reply, no sender is queued on
    /// the endpoint, and the hand-over would run the vCPU next. The
    /// endpoint if so.
    #[inline(always)]
    fn waits_for_vcpu(&self, task: TaskId, slot: usize, vcpu_task: TaskId) -> Option<EndpointId> {
        let (ep, _) = self.endpoint_of(task, slot, Rights::RECV)?;
        if self.endpoints.waiting(task).is_some()
            || self.endpoints.owes_reply(task)
            || !self.endpoints.no_sender_queued(ep)
            || self.vms.has_pending(task)
        {
            return None;
        }
        self.sched.can_hand_over(task, vcpu_task).then_some(ep)
    }

    /// The plain case of `ioreq_forward(call_slot, len, vm, vcpu,
    /// recv_slot)` by `server` (running, with the IOREQ right and no ioreq
    /// work pending, serving `vm`, whose vCPU `vcpu`'s access it may
    /// forward): a client waits to receive on the endpoint in `call_slot`
    /// and may run at once, and `server` waits for nothing, owes no reply
    /// and finds no sender queued on the endpoint in `recv_slot`. Returns
    /// the endpoints (to call, to receive on) and the client, changing
    /// nothing: [`KernelObjects::apply_forward_recv`] does, once the arch
    /// layer found the slot PROCESSING.
    #[inline]
    pub fn plain_forward_recv(
        &self,
        server: TaskId,
        (call_slot, len): (usize, usize),
        (vm, vcpu): (usize, usize),
        recv_slot: usize,
    ) -> Option<(EndpointId, EndpointId, TaskId, Badge)> {
        let rights = self.tasks.get(server).ok()?.kernel_rights();
        if len > MAX_MESSAGE_LEN
            || self.sched.current() != Some(server)
            || !rights.contains(KernelRights::IOREQ)
            || self.vms.has_pending(server)
        {
            return None;
        }
        if !control::may_forward(self, vm, vcpu, server) {
            return None;
        }
        let (call_ep, badge) = self.endpoint_of(server, call_slot, Rights::CALL)?;
        let (recv_ep, _) = self.endpoint_of(server, recv_slot, Rights::RECV)?;
        let client = self.endpoints.plain_call_receiver(server, call_ep)?;
        if call_ep == recv_ep
            || self.endpoints.owes_reply(server)
            || !self.endpoints.no_sender_queued(recv_ep)
            || !self.sched.direct_switch_ok(client, TaskState::BlockedRecv)
        {
            return None;
        }
        Some((call_ep, recv_ep, client, badge))
    }

    /// Carries out what [`KernelObjects::plain_forward_recv`] found plain:
    /// `client` takes the access of `vm`'s vCPU `vcpu` (it owes the kernel
    /// the answer) and runs on the rest of `server`'s slice, and `server`
    /// waits on `recv_ep`.
    #[inline]
    pub fn apply_forward_recv(
        &mut self,
        server: TaskId,
        (call_ep, recv_ep): (EndpointId, EndpointId),
        client: TaskId,
        (vm, vcpu): (usize, usize),
    ) {
        self.endpoints.apply_send_plain(call_ep, client);
        self.endpoints.apply_wait_plain(server, recv_ep);
        control::forwarded(self, vm, vcpu, client);
        self.sched
            .apply_direct_switch(server, TaskState::BlockedRecv, client);
    }

    /// The plain case of a `reply_recv` on the endpoint capability in
    /// `slot` by `client`, which owes the answer to `vm`'s vCPU `vcpu`'s
    /// forwarded access (`ioreq_forward`): it waits for nothing else, owes
    /// no other reply, no sender is queued on the endpoint, the vCPU may
    /// run as soon as the answer is taken, and the hand-over to it would
    /// run it next. Returns the vCPU's task and the endpoint; `None` when
    /// the general path applies. Changes nothing:
    /// [`KernelObjects::complete_recv_direct`] does, once the arch layer
    /// took the answer.
    #[inline]
    pub fn plain_answer_recv(
        &self,
        client: TaskId,
        (vm, vcpu): (usize, usize),
        slot: usize,
    ) -> Option<(TaskId, EndpointId)> {
        let task = control::answered_plainly(self, vm, vcpu, client)?;
        let ep = self.waits_for_vcpu(client, slot, task)?;
        Some((task, ep))
    }

    /// Carries out what [`KernelObjects::plain_complete_recv`] found plain:
    /// `server` waits on `ep` to receive and vCPU `vcpu` of VM `vm` (its task `task`) runs.
    #[inline]
    pub fn complete_recv_direct(
        &mut self,
        server: TaskId,
        (vm, vcpu): (usize, usize),
        task: TaskId,
        ep: EndpointId,
    ) {
        self.endpoints.apply_wait_plain(server, ep);
        control::io_resumed_plain(self, vm, vcpu);
        self.sched
            .apply_hand_over(server, TaskState::BlockedRecv, task);
    }
}

#[cfg(test)]
#[path = "fastpath_tests.rs"]
mod tests;
