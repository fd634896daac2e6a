//! All kernel objects together, and the system calls that cross them: IPC
//! through capability slots (applying each outcome to the scheduler) and
//! `kill`, which releases a dead task's partners, takes it off every queue,
//! revokes capabilities that named it and tells the supervisor.

use super::MAX_TASKS;
use super::cap::{CapError, Object, ObjectKind, ObjectRef};
use super::endpoint::{Delivery, Endpoints, IpcError, Next, Outcome, ReplyStatus, Wait};
use super::ids::{NotificationId, TaskId};
use super::notification::{NotificationError, Notifications, Signalled, Waited};
use super::queue::TaskList;
use super::rights::Rights;
use super::sched::{Decision, Priority, SchedError, Scheduler, TaskState};
use super::task::{DeathNotice, ExitReason, TaskError, TaskTable};
use crate::vm::control::VmTable;

/// Why a system call on kernel objects failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjError {
    /// The capability slot did not hold what the call needs.
    Cap(CapError),
    /// The IPC operation was refused.
    Ipc(IpcError),
    /// The notification operation was refused.
    Notification(NotificationError),
    /// The scheduler refused a transition (a kernel bug if it reaches a task).
    Sched(SchedError),
    /// The task id was stale or the task table refused.
    Task(TaskError),
}

impl From<CapError> for ObjError {
    fn from(e: CapError) -> Self {
        ObjError::Cap(e)
    }
}
impl From<IpcError> for ObjError {
    fn from(e: IpcError) -> Self {
        ObjError::Ipc(e)
    }
}
impl From<NotificationError> for ObjError {
    fn from(e: NotificationError) -> Self {
        ObjError::Notification(e)
    }
}
impl From<SchedError> for ObjError {
    fn from(e: SchedError) -> Self {
        ObjError::Sched(e)
    }
}
impl From<TaskError> for ObjError {
    fn from(e: TaskError) -> Self {
        ObjError::Task(e)
    }
}

/// What the arch layer does after an IPC system call: copy `outcome`'s
/// transfers, then follow `decision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcStep {
    pub outcome: Outcome,
    pub decision: Decision,
}

/// What `kill` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KillReport {
    /// The supervisor's report line.
    pub notice: DeathNotice,
    /// Callers that waited on the dead task's reply; each is ready again and
    /// its call returns [`IpcError::ServerDied`].
    pub released: TaskList,
    /// What the CPU does next.
    pub decision: Decision,
}

/// Every kernel object.
#[derive(Clone, Debug)]
pub struct KernelObjects {
    pub tasks: TaskTable,
    pub sched: Scheduler,
    pub endpoints: Endpoints,
    pub notifications: Notifications,
    /// VM objects and the ioreq work pending per task (`vm::control`).
    pub vms: VmTable,
    /// The notification on which the supervisor hears of deaths: bit `n`
    /// set means "the task in slot `n` died".
    supervisor: Option<NotificationId>,
    /// The last notification waiter a signal woke, with the bits it takes;
    /// the arch layer puts them in its result registers.
    woken_waiter: Option<(TaskId, u64)>,
    /// Per task slot: the tick at which its last timed call or wait gives
    /// up (`call_timed`, `wait_timed`). An entry outlives its call
    /// harmlessly: when it falls due, only a task still in a timed call,
    /// or in the notification wait the entry was set for (a plain `wait`
    /// clears it), is released.
    deadlines: [Option<(TaskId, u64)>; MAX_TASKS],
}

impl Default for KernelObjects {
    fn default() -> Self {
        Self::new()
    }
}

impl KernelObjects {
    /// No objects (const, so the kernel can hold them in a static).
    pub const fn new() -> Self {
        KernelObjects {
            tasks: TaskTable::new(),
            sched: Scheduler::new(),
            endpoints: Endpoints::new(),
            notifications: Notifications::new(),
            vms: VmTable::new(),
            supervisor: None,
            woken_waiter: None,
            deadlines: [None; MAX_TASKS],
        }
    }

    /// Creates a ready task with an empty capability table.
    pub fn spawn(&mut self, name: &str, priority: Priority) -> Result<TaskId, ObjError> {
        let id = self.tasks.spawn(name, priority)?;
        self.sched.admit(id, priority)?;
        Ok(id)
    }

    /// Chooses the notification that carries death bits to the supervisor.
    pub fn set_supervisor_notification(&mut self, n: NotificationId) {
        self.supervisor = Some(n);
    }

    /// `caller` calls through the endpoint capability in `slot`.
    pub fn call(&mut self, caller: TaskId, slot: usize, len: usize) -> Result<IpcStep, ObjError> {
        let outcome = self.deliver(caller, slot, len, Rights::CALL, Delivery::Call)?;
        self.apply(caller, outcome)
    }

    /// `caller` calls through the endpoint capability in `slot` and gives
    /// up at tick `deadline` ([`KernelObjects::time_out`]).
    pub fn call_timed(
        &mut self,
        caller: TaskId,
        slot: usize,
        len: usize,
        deadline: u64,
    ) -> Result<IpcStep, ObjError> {
        let outcome = self.deliver(caller, slot, len, Rights::CALL, Delivery::TimedCall)?;
        self.deadlines[caller.slot()] = Some((caller, deadline));
        self.apply(caller, outcome)
    }

    /// At tick `now`: every task whose timed call or wait is due and still
    /// waits (queued, for its reply, or on the notification) stops waiting
    /// and is ready again; they are returned, and each one's call or wait
    /// fails with `Error::TimedOut`.
    pub fn time_out(&mut self, now: u64) -> TaskList {
        let mut released = TaskList::new();
        for entry in &mut self.deadlines {
            let Some((caller, deadline)) = *entry else {
                continue;
            };
            if deadline > now {
                continue;
            }
            *entry = None;
            let stopped = self.endpoints.time_out(caller) || self.notifications.task_died(caller);
            if stopped && self.sched.unblock(caller).is_ok() {
                released.push(caller);
            }
        }
        released
    }

    /// `from` sends `len` bytes through the endpoint capability in `slot`,
    /// which must carry `right`, as `delivery` says.
    fn deliver(
        &mut self,
        from: TaskId,
        slot: usize,
        len: usize,
        right: Rights,
        delivery: Delivery,
    ) -> Result<Outcome, ObjError> {
        let (ep, badge) = self.endpoint_cap(from, slot, right)?;
        Ok(self.endpoints.deliver(from, ep, badge, len, delivery)?)
    }

    /// `from` hands `len` bytes through the endpoint capability in `slot`
    /// (with the CALL right, as a `call` needs) to the task waiting to
    /// receive there, without waiting itself: the receiver owes `from` no
    /// reply, and the transfer is returned for the caller to copy. The
    /// receiver is left blocked: the caller makes it run
    /// ([`KernelObjects::recv_then_switch`]) or ready. `IpcError::Busy`,
    /// with nothing changed, when no task waits there (`ioreq_forward`).
    pub fn hand_to_receiver(
        &mut self,
        from: TaskId,
        slot: usize,
        len: usize,
    ) -> Result<super::endpoint::Transfer, ObjError> {
        let (ep, badge) = self.endpoint_cap(from, slot, Rights::CALL)?;
        if self.endpoints.waiting_receiver(ep).is_none() {
            return Err(IpcError::Busy.into());
        }
        let outcome = self
            .endpoints
            .deliver(from, ep, badge, len, Delivery::Send)?;
        outcome
            .transfers()
            .next()
            .ok_or_else(|| IpcError::Busy.into())
    }

    /// `receiver` (running) receives on the endpoint capability in `slot`
    /// after handing `partner` (blocked) a message it takes without
    /// replying ([`KernelObjects::hand_to_receiver`]): if the receive
    /// blocks, `partner` runs at once as a call's receiver would
    /// ([`Scheduler::direct_switch`]); otherwise, and if the receive is
    /// refused, `partner` is made ready and the receive goes on as usual.
    pub fn recv_then_switch(
        &mut self,
        receiver: TaskId,
        slot: usize,
        partner: TaskId,
    ) -> Result<IpcStep, ObjError> {
        let received = self
            .endpoint_cap(receiver, slot, Rights::RECV)
            .and_then(|(ep, _)| Ok(self.endpoints.recv(receiver, ep)?));
        let outcome = match received {
            Ok(outcome) => outcome,
            Err(e) => {
                self.sched.unblock(partner)?;
                return Err(e);
            }
        };
        if outcome.next == Next::Block(Wait::Recv) && self.sched.current() == Some(receiver) {
            let decision = self
                .sched
                .direct_switch(receiver, partner, TaskState::BlockedRecv)?;
            return Ok(IpcStep { outcome, decision });
        }
        self.sched.unblock(partner)?;
        self.apply(receiver, outcome)
    }

    /// `sender` sends through the endpoint capability in `slot`.
    pub fn send(&mut self, sender: TaskId, slot: usize, len: usize) -> Result<IpcStep, ObjError> {
        let outcome = self.deliver(sender, slot, len, Rights::SEND, Delivery::Send)?;
        self.apply(sender, outcome)
    }

    /// `receiver` receives on the endpoint capability in `slot`.
    pub fn recv(&mut self, receiver: TaskId, slot: usize) -> Result<IpcStep, ObjError> {
        let (ep, _) = self.endpoint_cap(receiver, slot, Rights::RECV)?;
        let outcome = self.endpoints.recv(receiver, ep)?;
        self.apply(receiver, outcome)
    }

    /// `server` replies to its caller.
    pub fn reply(&mut self, server: TaskId, len: usize) -> Result<IpcStep, ObjError> {
        self.tasks.get(server)?;
        let outcome = self.endpoints.reply(server, len)?;
        self.apply(server, outcome)
    }

    /// `server` replies to its caller and receives on the capability in `slot`.
    pub fn reply_recv(
        &mut self,
        server: TaskId,
        slot: usize,
        len: usize,
    ) -> Result<(ReplyStatus, IpcStep), ObjError> {
        let (ep, _) = self.endpoint_cap(server, slot, Rights::RECV)?;
        let r = self.endpoints.reply_recv(server, ep, len)?;
        Ok((r.reply, self.apply(server, r.outcome)?))
    }

    /// `task` signals the notification capability in `slot` with its bits.
    pub fn signal(&mut self, task: TaskId, slot: usize) -> Result<Decision, ObjError> {
        let cap =
            *self
                .tasks
                .get(task)?
                .caps()
                .lookup(slot, ObjectKind::Notification, Rights::SEND)?;
        let Object::Notification { id, bits } = cap.object else {
            return Err(CapError::WrongType {
                slot,
                expected: ObjectKind::Notification,
                found: cap.object.kind(),
            }
            .into());
        };
        self.signal_bits(id, bits)?;
        Ok(self.sched.schedule())
    }

    /// `task` waits on the notification capability in `slot`; returns the
    /// bits at once if some were pending.
    pub fn wait(&mut self, task: TaskId, slot: usize) -> Result<(Option<u64>, Decision), ObjError> {
        self.wait_until(task, slot, None)
    }

    /// [`KernelObjects::wait`] that gives up at tick `deadline`, if one is
    /// given ([`KernelObjects::time_out`]).
    pub fn wait_until(
        &mut self,
        task: TaskId,
        slot: usize,
        deadline: Option<u64>,
    ) -> Result<(Option<u64>, Decision), ObjError> {
        let cap =
            *self
                .tasks
                .get(task)?
                .caps()
                .lookup(slot, ObjectKind::Notification, Rights::RECV)?;
        let Object::Notification { id, .. } = cap.object else {
            return Err(CapError::WrongType {
                slot,
                expected: ObjectKind::Notification,
                found: cap.object.kind(),
            }
            .into());
        };
        let waited = self.notifications.wait(task, id)?;
        self.deadlines[task.slot()] = deadline.map(|at| (task, at));
        match waited {
            Waited::Bits(bits) => Ok((Some(bits), Decision::Continue)),
            Waited::Blocked => {
                self.sched.block(task, TaskState::BlockedNotification)?;
                Ok((None, self.sched.schedule()))
            }
        }
    }

    /// Kills `victim` for `reason`: its IPC partners are released (callers
    /// it owed a reply get [`IpcError::ServerDied`]), it leaves every queue,
    /// capabilities naming it are revoked, and the supervisor is signalled.
    pub fn kill(&mut self, victim: TaskId, reason: ExitReason) -> Result<KillReport, ObjError> {
        let notice = self.tasks.mark_dead(victim, reason)?;
        let mut released = TaskList::new();
        if let Some(caller) = self.endpoints.task_died(victim) {
            released.push(caller);
        }
        let saved_replies = self.tasks.get(victim)?.caps().clone();
        for slot in 0..super::CAP_SLOTS {
            if let Ok(cap) = saved_replies.get(slot)
                && let Object::Reply { caller } = cap.object
                && self.endpoints.release_caller(caller)
            {
                released.push(caller);
            }
        }
        for caller in released.iter() {
            self.sched.unblock(caller)?;
        }
        self.notifications.task_died(victim);
        self.sched.kill(victim)?;
        self.tasks.revoke_everywhere(ObjectRef::Reply(victim));
        self.tasks.revoke_everywhere(ObjectRef::Task(victim));
        if let Some(n) = self.supervisor {
            self.signal_bits(n, 1u64 << (victim.slot() % 64))?;
        }
        Ok(KillReport {
            notice,
            released,
            decision: self.sched.schedule(),
        })
    }

    /// Removes a kernel thread (a vCPU: no capabilities, no IPC partners)
    /// from the scheduler and the task table at once, with no death report.
    pub fn retire(&mut self, thread: TaskId) -> Result<(), ObjError> {
        self.tasks.mark_dead(thread, ExitReason::Killed)?;
        self.sched.kill(thread)?;
        self.tasks.reap(thread)?;
        self.sched.reap(thread)?;
        Ok(())
    }

    /// Frees a dead task's slot (the supervisor has read its notice).
    pub fn reap(&mut self, dead: TaskId) -> Result<DeathNotice, ObjError> {
        let notice = self.tasks.reap(dead)?;
        self.sched.reap(dead)?;
        Ok(notice)
    }

    /// The waiter the last `signal` or `kill` woke and the bits it took,
    /// once: the caller delivers them as that task's `wait` result.
    pub fn take_woken_waiter(&mut self) -> Option<(TaskId, u64)> {
        self.woken_waiter.take()
    }

    fn signal_bits(&mut self, n: NotificationId, bits: u64) -> Result<(), ObjError> {
        if let Signalled::Woke { task, bits } = self.notifications.signal(n, bits)? {
            self.sched.unblock(task)?;
            self.woken_waiter = Some((task, bits));
        }
        Ok(())
    }

    #[inline]
    pub(super) fn endpoint_cap(
        &self,
        task: TaskId,
        slot: usize,
        rights: Rights,
    ) -> Result<(super::ids::EndpointId, super::ids::Badge), ObjError> {
        let cap = self
            .tasks
            .get(task)?
            .caps()
            .lookup(slot, ObjectKind::Endpoint, rights)?;
        match cap.object {
            Object::Endpoint { id, badge } => Ok((id, badge)),
            other => Err(CapError::WrongType {
                slot,
                expected: ObjectKind::Endpoint,
                found: other.kind(),
            }
            .into()),
        }
    }

    /// [`KernelObjects::endpoint_cap`] as a yes or no, for the fast paths:
    /// the endpoint and badge of `task`'s capability in `slot` if it names
    /// an endpoint with at least `rights`.
    #[inline(always)]
    pub(super) fn endpoint_of(
        &self,
        task: TaskId,
        slot: usize,
        rights: Rights,
    ) -> Option<(super::ids::EndpointId, super::ids::Badge)> {
        let cap = self.tasks.get(task).ok()?.caps().get(slot).ok()?;
        match cap.object {
            Object::Endpoint { id, badge } if cap.rights.contains(rights) => Some((id, badge)),
            _ => None,
        }
    }

    fn apply(&mut self, current: TaskId, outcome: Outcome) -> Result<IpcStep, ObjError> {
        // A queued caller whose request was just taken now waits for the reply.
        for transfer in outcome.transfers() {
            let sender = transfer.from;
            if sender != current
                && self.endpoints.waiting(sender) == Some(Wait::Reply)
                && self.sched.state(sender) == Some(TaskState::BlockedSend)
            {
                self.sched.rewait(sender, TaskState::BlockedReply)?;
            }
        }
        let decision = match outcome.next {
            Next::Continue { woken } => {
                for task in woken.into_iter().flatten() {
                    self.sched.unblock(task)?;
                }
                self.sched.schedule()
            }
            Next::SwitchTo { to, waits } => {
                self.sched
                    .direct_switch(current, to, blocked_state(waits))?
            }
            Next::Block(waits) => {
                self.sched.block(current, blocked_state(waits))?;
                self.sched.schedule()
            }
        };
        Ok(IpcStep { outcome, decision })
    }
}

const fn blocked_state(wait: Wait) -> TaskState {
    match wait {
        Wait::Send => TaskState::BlockedSend,
        Wait::Recv => TaskState::BlockedRecv,
        Wait::Reply => TaskState::BlockedReply,
    }
}
