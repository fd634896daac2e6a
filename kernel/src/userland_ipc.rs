//! The IPC fast path on the running kernel: a `call` into a waiting
//! receiver or a `reply_recv` back to a waiting caller, when
//! `KernelObjects::fast_call` / `fast_reply_recv` find the plain case,
//! copies the one message, sets the partner's result registers, switches
//! address space and returns the partner's frame: no pass through the
//! general dispatcher, its outcome handling or the scheduler. The ioreq
//! task's completion of a vCPU's access, when plain, starts the vCPU's run
//! as directly (`fast_complete`).

// Badges and lengths are 64 bits wide on the targets with user tasks.
#![allow(clippy::cast_possible_truncation)]

use ipc::syscall::{OK, Sysno};

use super::fail;
use crate::arch::{self, TrapFrame};
use crate::obj::ids::TaskId;
use crate::vm::control;

/// Whether system call `nr` is one [`fast_syscall`] may take.
#[inline]
pub(super) fn may_be_fast(nr: usize) -> bool {
    nr == Sysno::Call as usize
        || nr == Sysno::ReplyRecv as usize
        || nr == Sysno::IoreqForward as usize
}

/// The running task's `call`, `reply_recv` or `ioreq_forward` on the fast
/// path, if it applies: steps its frame past the `ecall` and returns the
/// partner's frame to resume; `None`, with nothing changed (its frame
/// included), for the general path. Not inlined into the general trap
/// handler, so that it saves only the registers it uses; and a
/// `reply_recv` (`nr`, the call's number when the trap vector passes it
/// on) has a function of its own, which saves fewer: with the hand-over's
/// many checks beside it, the answer path saved and restored their
/// registers too.
#[inline]
pub(super) fn fast_syscall(nr: Option<usize>) -> Option<*mut TrapFrame> {
    match nr {
        Some(nr) if nr == Sysno::ReplyRecv as usize => fast_reply_recv(),
        _ => fast_ipc(),
    }
}

/// [`fast_syscall`] for any of its calls (a `call` or an `ioreq_forward`
/// in practice).
#[inline(never)]
fn fast_ipc() -> Option<*mut TrapFrame> {
    let mut guard = super::lock();
    let r = &mut *guard;
    let current = r.objects.sched.current()?;
    let (nr, args) = r.tasks.slot(current)?.frame.syscall();
    let transfer = match Sysno::from_usize(nr)? {
        Sysno::Call => r.objects.fast_call(current, args[0], args[1])?,
        Sysno::ReplyRecv => return reply_recv_plainly(guard, current, args[0], args[1]),
        Sysno::IoreqForward => forward_plainly(r, current, args)?,
        _ => return None,
    };
    Some(switch_to(guard, transfer))
}

/// [`fast_syscall`] for a `reply_recv`: a reply to a caller, or a
/// client's answer to an access the ioreq task forwarded it.
#[inline(never)]
fn fast_reply_recv() -> Option<*mut TrapFrame> {
    let mut guard = super::lock();
    let r = &mut *guard;
    let current = r.objects.sched.current()?;
    let (nr, args) = r.tasks.slot(current)?.frame.syscall();
    if nr != Sysno::ReplyRecv as usize {
        return None;
    }
    reply_recv_plainly(guard, current, args[0], args[1])
}

/// `current`'s `reply_recv(slot, len)` on the fast path: the answer to
/// an access forwarded to it ([`fast_answer`]), or a reply to a caller.
#[inline(always)]
fn reply_recv_plainly(
    mut guard: spin::MutexGuard<'static, super::Runner>,
    current: TaskId,
    slot: usize,
    len: usize,
) -> Option<*mut TrapFrame> {
    if control::owes_forward(&guard.objects, current) {
        return fast_answer(guard, current, slot, len);
    }
    let transfer = guard.objects.fast_reply_recv(current, slot, len)?;
    Some(switch_to(guard, transfer))
}

/// The end of a fast `call`, `reply_recv` or hand-over: the message goes
/// to the partner, which runs next; returns its frame.
#[inline(always)]
fn switch_to(
    mut guard: spin::MutexGuard<'static, super::Runner>,
    transfer: crate::obj::endpoint::Transfer,
) -> *mut TrapFrame {
    let r = &mut *guard;
    let Some(from) = r.tasks.slot_mut(transfer.from) else {
        fail(format_args!("task {} has no context", transfer.from.slot()))
    };
    from.frame.step_past_syscall();
    let from = from.space;
    let Some(to) = r.tasks.slot_mut(transfer.to) else {
        fail(format_args!("task {} has no context", transfer.to.slot()))
    };
    arch::copy_message(&from, &to.space, transfer.len);
    to.frame
        .set_result(OK, [transfer.len, transfer.badge.0 as usize, 0]);
    to.space.activate();
    to.space.entering_user();
    let frame = &raw mut to.frame;
    drop(guard);
    frame
}

/// The running ioreq task's `ioreq_forward(call_slot, len, vm, vcpu,
/// recv_slot)` with a receive, in its plain case
/// (`KernelObjects::plain_forward_recv`, and the slot PROCESSING): the
/// client takes the access and runs at once, as a plain `call`'s receiver
/// does, and the ioreq task waits. `None`, with nothing changed, for the
/// general path.
#[inline(always)]
fn forward_plainly(
    r: &mut super::Runner,
    current: TaskId,
    [call_slot, len, vm, vcpu, recv_slot, _]: [usize; 6],
) -> Option<crate::obj::endpoint::Transfer> {
    let (call_ep, recv_ep, client, badge) =
        r.objects
            .plain_forward_recv(current, (call_slot, len), (vm, vcpu), recv_slot)?;
    let guest = r.tasks.guests.vms.get_mut(vm)?.as_mut()?;
    if !super::vms::forwardable(guest, vcpu) {
        return None;
    }
    r.objects
        .apply_forward_recv(current, (call_ep, recv_ep), client, (vm, vcpu));
    Some(crate::obj::endpoint::Transfer {
        from: current,
        to: client,
        badge,
        len,
    })
}

/// `client`'s `reply_recv(slot, len)` answering the access the ioreq
/// service forwarded it (`ioreq_forward`), in its plain case
/// (`KernelObjects::plain_answer_recv`, and a plain answer in the first
/// `len` bytes of its IPC buffer): the arch layer completes the slot with
/// it and takes it, the client waits on its endpoint, and the vCPU's run
/// starts at once, as [`fast_complete`]'s does. `None`, with nothing
/// changed, for the general path (which also hands back an answer that is
/// not plain).
#[inline(never)]
fn fast_answer(
    mut guard: spin::MutexGuard<'static, super::Runner>,
    client: TaskId,
    slot: usize,
    len: usize,
) -> Option<*mut TrapFrame> {
    let r = &mut *guard;
    let (vm, vcpu) = control::peek_forward(&r.objects, client)?;
    let (task, ep) = r.objects.plain_answer_recv(client, (vm, vcpu), slot)?;
    let bytes: [u8; ipc::devices::wire::PLAIN_RESPONSE_MAX] =
        r.tasks.slot(client)?.space.ipc_head();
    let answer = ipc::devices::wire::plain_response(bytes.get(..len)?)?;
    let guest = r.tasks.guests.vms.get_mut(vm)?.as_mut()?;
    // Nothing changed unless the answer is the plain one of the access's
    // kind and the slot is PROCESSING (the general path then hands the
    // answer back, or refuses it).
    if guest.take_answer(vcpu, Some(answer)) != Ok(true) {
        return None;
    }
    guest.io_resumed_at(arch::timer_now());
    let begun = guest.begin(vcpu);
    control::clear_forward(&mut r.objects, client);
    r.objects.complete_recv_direct(client, (vm, vcpu), task, ep);
    Some(run_resumed(guard, client, task, (vm, vcpu), begun))
}

/// Whether system call `nr` is one [`fast_complete`] may take.
#[inline]
pub(super) fn may_complete_fast(nr: usize) -> bool {
    nr == Sysno::IoreqCompleteRecv as usize
}

/// The running task's `ioreq_complete_recv(vm, vcpu, slot)` in its plain
/// case (`KernelObjects::plain_complete_recv`): the arch layer takes the
/// COMPLETE slot, the ioreq task waits on its endpoint, and the vCPU's run
/// starts at once: no general dispatcher, no decision for the scheduler to
/// follow. Returns the frame of the task that runs once the guest has
/// exited to the kernel again ([`super::drive`]); `None`, with nothing
/// changed (its frame included), for the general path (which also reports
/// a slot that is not COMPLETE). Not inlined into the general trap
/// handler, as [`fast_syscall`] is not.
#[inline(never)]
pub(super) fn fast_complete() -> Option<*mut TrapFrame> {
    let mut guard = super::lock();
    let r = &mut *guard;
    let current = r.objects.sched.current()?;
    let (nr, args) = r.tasks.slot(current)?.frame.syscall();
    if !may_complete_fast(nr) {
        return None;
    }
    let (vm, vcpu, slot) = (args[0], args[1], args[2]);
    let (task, ep) = r.objects.plain_complete_recv(current, vm, vcpu, slot)?;
    let guest = r.tasks.guests.vms.get_mut(vm)?.as_mut()?;
    guest.resume_io(vcpu).ok()?;
    guest.io_resumed_at(arch::timer_now());
    let begun = guest.begin(vcpu);
    r.objects
        .complete_recv_direct(current, (vm, vcpu), task, ep);
    Some(run_resumed(guard, current, task, (vm, vcpu), begun))
}

/// The end of [`fast_complete`] and [`fast_answer`]: `caller`'s call is
/// done (it waits on its endpoint), and the run of `vm`'s vCPU `vcpu`
/// (task `task`), resumed and begun (`begun`, from `GuestVm::begin`),
/// starts at once; returns the frame of the task that runs once the guest
/// has exited to the kernel again ([`super::drive`]).
#[inline(always)]
fn run_resumed(
    mut guard: spin::MutexGuard<'static, super::Runner>,
    caller: TaskId,
    task: TaskId,
    (vm, vcpu): (usize, usize),
    begun: Result<arch::GuestEntry, arch::RunOutcome>,
) -> *mut TrapFrame {
    let r = &mut *guard;
    if let Some(slot) = r.tasks.slot_mut(caller) {
        slot.frame.step_past_syscall();
    }
    let step = match super::begun_run(r, task, vm, vcpu, begun) {
        Ok(step) => step,
        Err(decision) => super::next_step(r, decision),
    };
    let (guard, next) = super::drive(guard, step);
    super::to_user(guard, next, Some(caller))
}
