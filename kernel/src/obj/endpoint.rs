//! Synchronous IPC endpoints, as seL4 has them: `send`, `call` (send, then
//! wait for a one-shot reply), `recv`, `reply` and `reply_recv`, as pure
//! state transitions over task ids.
//!
//! The functions decide *what* happens: which message travels from which
//! task to which (the caller copies the bytes), which task waits, and whom to
//! run next. When a partner is already waiting, the outcome says
//! [`Next::SwitchTo`]: the kernel switches straight to it without a pass
//! through the scheduler, which is the IPC fastpath.

use super::ids::{Badge, EndpointId, TaskId};
use super::queue::{TaskList, TaskQueues};
use super::{MAX_ENDPOINTS, MAX_MESSAGE_LEN, MAX_TASKS};

/// Why an IPC operation failed. The kernel returns it to the task in a
/// register; [`IpcError::ServerDied`] is the kernel's side of
/// `ipc::Error::ServerDied` (wire code 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcError {
    /// The endpoint index names no live endpoint.
    NoSuchEndpoint,
    /// Every endpoint slot is in use.
    OutOfEndpoints,
    /// The message is longer than [`MAX_MESSAGE_LEN`] bytes.
    MessageTooLong { len: usize },
    /// The task is already blocked in IPC (a model-level guard: a blocked
    /// task cannot make a system call).
    Busy,
    /// The task still owes a reply to a caller: reply first (or save the
    /// reply right as a capability) before receiving again.
    ReplyPending { caller: TaskId },
    /// There is no caller to reply to.
    NoReplyOwed,
    /// The caller died after its request was received; the reply is dropped.
    CallerDied,
    /// The caller's server died (or its endpoint was destroyed) while the
    /// caller waited; the request may or may not have taken effect.
    ServerDied,
    /// A timed call's deadline passed before its reply came (the server
    /// hangs, or is too busy); the request may or may not take effect.
    TimedOut,
    /// A saved reply right names a task that is not waiting for a reply.
    NotAwaitingReply,
}

/// One message to copy: `len` bytes from `from`'s IPC buffer to `to`'s,
/// with `badge` delivered to `to` (zero for replies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: TaskId,
    pub to: TaskId,
    pub badge: Badge,
    pub len: usize,
}

/// What a task waits for once it blocks in IPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Queued as a sender until a receiver arrives.
    Send,
    /// Queued as a receiver until a sender arrives.
    Recv,
    /// Its request was delivered; waiting for the one-shot reply.
    Reply,
}

/// Whom the kernel runs after the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The current task keeps running; the tasks in `woken` became ready
    /// and go on their run queues, in order.
    Continue { woken: [Option<TaskId>; 2] },
    /// The current task now waits as `waits`, and the kernel switches
    /// directly to `to`, donating the time slice (the fastpath).
    SwitchTo { to: TaskId, waits: Wait },
    /// The current task now waits as `waits`; no partner can run, so the
    /// scheduler picks the next task.
    Block(Wait),
}

/// The effect of one IPC operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Messages to copy now, in order (a `reply_recv` may deliver a reply
    /// and take a queued request in one go).
    pub transfers: [Option<Transfer>; 2],
    pub next: Next,
}

impl Outcome {
    fn new(first: Option<Transfer>, next: Next) -> Outcome {
        Outcome {
            transfers: [first, None],
            next,
        }
    }

    /// The transfers to perform, in order.
    pub fn transfers(&self) -> impl Iterator<Item = Transfer> + '_ {
        self.transfers.iter().flatten().copied()
    }
}

/// What became of the reply half of a `reply_recv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyStatus {
    /// The reply went to the waiting caller (first transfer of the outcome).
    Delivered,
    /// The server owed no reply (its first `reply_recv`).
    NoneOwed,
    /// The caller had died; the reply was dropped.
    CallerDied,
}

/// The result of `reply_recv`: the reply's fate and then the receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyRecv {
    pub reply: ReplyStatus,
    pub outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndpointState {
    /// No endpoint in this slot.
    Free,
    /// Live, nobody waiting.
    Idle,
    /// Senders are queued (oldest first).
    Senders,
    /// Receivers are queued (oldest first).
    Receivers,
}

/// A task's place in the IPC state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskIpc {
    Idle,
    Sending {
        task: TaskId,
        ep: EndpointId,
        badge: Badge,
        len: usize,
        call: bool,
        /// A timed call: its deadline may end the wait ([`Endpoints::time_out`]).
        timed: bool,
    },
    Receiving {
        task: TaskId,
        ep: EndpointId,
    },
    /// `server` is `None` once the server saved its reply right as a capability.
    AwaitingReply {
        task: TaskId,
        server: Option<TaskId>,
        timed: bool,
    },
}

/// A server's implicit one-shot reply right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplySlot {
    Empty,
    Caller(TaskId),
    CallerDied,
}

/// All endpoints and the IPC state of every task.
#[derive(Clone, Debug)]
pub struct Endpoints {
    state: [EndpointState; MAX_ENDPOINTS],
    /// Queue `i` holds endpoint `i`'s senders or receivers (its state says which).
    queues: TaskQueues<MAX_ENDPOINTS>,
    ipc: [TaskIpc; MAX_TASKS],
    reply: [ReplySlot; MAX_TASKS],
}

impl Default for Endpoints {
    fn default() -> Self {
        Self::new()
    }
}

impl Endpoints {
    /// No endpoints; every task idle.
    pub const fn new() -> Self {
        Endpoints {
            state: [EndpointState::Free; MAX_ENDPOINTS],
            queues: TaskQueues::new(),
            ipc: [TaskIpc::Idle; MAX_TASKS],
            reply: [ReplySlot::Empty; MAX_TASKS],
        }
    }

    /// Makes a new endpoint in the lowest free slot.
    pub fn create(&mut self) -> Result<EndpointId, IpcError> {
        let index = self
            .state
            .iter()
            .position(|s| *s == EndpointState::Free)
            .ok_or(IpcError::OutOfEndpoints)?;
        self.state[index] = EndpointState::Idle;
        let id = u16::try_from(index).map_err(|_| IpcError::OutOfEndpoints)?;
        Ok(EndpointId(id))
    }

    /// Destroys `ep` and returns every task that was queued on it; each of
    /// them is now idle and its operation fails with [`IpcError::ServerDied`].
    pub fn destroy(&mut self, ep: EndpointId) -> Result<TaskList, IpcError> {
        let index = self.live(ep)?;
        let mut released = TaskList::new();
        while let Some(task) = self.queues.pop_front(index) {
            self.ipc[task.slot()] = TaskIpc::Idle;
            released.push(task);
        }
        self.state[index] = EndpointState::Free;
        Ok(released)
    }

    /// `from` sends `len` bytes with `badge` on `ep`; `delivery` says
    /// whether it goes on at once (a send, which still blocks until a
    /// receiver takes the message) or waits for the reply (a call, or a
    /// timed call whose wait [`Endpoints::time_out`] may end, queued or
    /// waiting for the reply alike).
    pub fn deliver(
        &mut self,
        from: TaskId,
        ep: EndpointId,
        badge: Badge,
        len: usize,
        delivery: Delivery,
    ) -> Result<Outcome, IpcError> {
        let call = delivery != Delivery::Send;
        let timed = delivery == Delivery::TimedCall;
        let index = self.live(ep)?;
        check_len(len)?;
        self.check_idle(from)?;
        if self.state[index] == EndpointState::Receivers
            && let Some(receiver) = self.queues.pop_front(index)
        {
            self.settle(index);
            self.ipc[receiver.slot()] = TaskIpc::Idle;
            let transfer = Transfer {
                from,
                to: receiver,
                badge,
                len,
            };
            if call {
                self.await_reply(from, receiver, timed);
                return Ok(Outcome::new(
                    Some(transfer),
                    Next::SwitchTo {
                        to: receiver,
                        waits: Wait::Reply,
                    },
                ));
            }
            return Ok(Outcome::new(
                Some(transfer),
                continue_waking(Some(receiver)),
            ));
        }
        self.queues
            .push_back(index, from)
            .map_err(|_| IpcError::Busy)?;
        self.state[index] = EndpointState::Senders;
        self.ipc[from.slot()] = TaskIpc::Sending {
            task: from,
            ep,
            badge,
            len,
            call,
            timed,
        };
        Ok(Outcome::new(None, Next::Block(Wait::Send)))
    }

    /// `receiver` takes the oldest queued message on `ep`, or blocks.
    pub fn recv(&mut self, receiver: TaskId, ep: EndpointId) -> Result<Outcome, IpcError> {
        let index = self.live(ep)?;
        self.check_idle(receiver)?;
        if let ReplySlot::Caller(caller) = self.reply[receiver.slot()] {
            return Err(IpcError::ReplyPending { caller });
        }
        self.reply[receiver.slot()] = ReplySlot::Empty;
        if self.state[index] == EndpointState::Senders
            && let Some(sender) = self.queues.pop_front(index)
        {
            self.settle(index);
            let TaskIpc::Sending {
                badge,
                len,
                call,
                timed,
                ..
            } = self.ipc[sender.slot()]
            else {
                // Unreachable while the queues and states agree; fail safe.
                self.ipc[sender.slot()] = TaskIpc::Idle;
                return Err(IpcError::Busy);
            };
            let transfer = Transfer {
                from: sender,
                to: receiver,
                badge,
                len,
            };
            if call {
                self.await_reply(sender, receiver, timed);
                return Ok(Outcome::new(Some(transfer), continue_waking(None)));
            }
            self.ipc[sender.slot()] = TaskIpc::Idle;
            return Ok(Outcome::new(Some(transfer), continue_waking(Some(sender))));
        }
        self.queues
            .push_back(index, receiver)
            .map_err(|_| IpcError::Busy)?;
        self.state[index] = EndpointState::Receivers;
        self.ipc[receiver.slot()] = TaskIpc::Receiving { task: receiver, ep };
        Ok(Outcome::new(None, Next::Block(Wait::Recv)))
    }

    /// `server` answers its current caller with `len` bytes; the caller
    /// becomes ready and the server keeps running.
    pub fn reply(&mut self, server: TaskId, len: usize) -> Result<Outcome, IpcError> {
        check_len(len)?;
        let transfer = self.take_reply(server, len)?;
        Ok(Outcome::new(
            Some(transfer),
            continue_waking(Some(transfer.to)),
        ))
    }

    /// `server` replies to its current caller (if any) and then receives on
    /// `ep`. With nothing queued this is the fastpath: the server waits and
    /// the kernel switches straight back to the caller.
    pub fn reply_recv(
        &mut self,
        server: TaskId,
        ep: EndpointId,
        len: usize,
    ) -> Result<ReplyRecv, IpcError> {
        self.live(ep)?;
        check_len(len)?;
        self.check_idle(server)?;
        let (reply, transfer) = match self.take_reply(server, len) {
            Ok(t) => (ReplyStatus::Delivered, Some(t)),
            Err(IpcError::NoReplyOwed) => (ReplyStatus::NoneOwed, None),
            Err(IpcError::CallerDied) => (ReplyStatus::CallerDied, None),
            Err(e) => return Err(e),
        };
        let received = self.recv(server, ep)?;
        let outcome = match (transfer, received.next) {
            (None, _) => received,
            (Some(t), Next::Block(Wait::Recv)) => Outcome::new(
                Some(t),
                Next::SwitchTo {
                    to: t.to,
                    waits: Wait::Recv,
                },
            ),
            (Some(t), Next::Continue { woken: [sender, _] }) => {
                // A queued request was taken at once: the replied-to caller
                // is ready, and so is a plain sender whose message it was.
                let next = Next::Continue {
                    woken: [Some(t.to), sender],
                };
                Outcome {
                    transfers: [Some(t), received.transfers[0]],
                    next,
                }
            }
            (Some(t), _) => Outcome::new(Some(t), received.next),
        };
        Ok(ReplyRecv { reply, outcome })
    }

    /// Moves `server`'s implicit reply right out so that it can be kept as a
    /// capability (deferred reply); returns the caller it answers.
    pub fn save_reply(&mut self, server: TaskId) -> Result<TaskId, IpcError> {
        let caller = self.owed_caller(server)?;
        self.reply[server.slot()] = ReplySlot::Empty;
        if let TaskIpc::AwaitingReply { server, .. } = &mut self.ipc[caller.slot()] {
            *server = None;
        }
        Ok(caller)
    }

    /// Replies through a saved reply right to `caller`.
    pub fn reply_saved(
        &mut self,
        server: TaskId,
        caller: TaskId,
        len: usize,
    ) -> Result<Outcome, IpcError> {
        check_len(len)?;
        match self.ipc[caller.slot()] {
            TaskIpc::AwaitingReply {
                task, server: None, ..
            } if task == caller => {
                self.ipc[caller.slot()] = TaskIpc::Idle;
                let transfer = Transfer {
                    from: server,
                    to: caller,
                    badge: Badge::NONE,
                    len,
                };
                Ok(Outcome::new(Some(transfer), continue_waking(Some(caller))))
            }
            _ => Err(IpcError::NotAwaitingReply),
        }
    }

    /// Releases `caller` from waiting on a saved reply right whose holder
    /// died; it becomes idle and its call fails with [`IpcError::ServerDied`].
    pub fn release_caller(&mut self, caller: TaskId) -> bool {
        let waiting = matches!(self.ipc[caller.slot()], TaskIpc::AwaitingReply { task, .. } if task == caller);
        if waiting {
            self.ipc[caller.slot()] = TaskIpc::Idle;
        }
        waiting
    }

    /// Forgets `dead` everywhere: takes it off any endpoint queue, marks the
    /// reply it was waiting for as going to a dead caller, and releases the
    /// caller it owed a reply to, which is returned: that caller becomes
    /// ready and its call fails with [`IpcError::ServerDied`].
    pub fn task_died(&mut self, dead: TaskId) -> Option<TaskId> {
        let slot = dead.slot();
        match self.ipc[slot] {
            TaskIpc::Sending { task, ep, .. } | TaskIpc::Receiving { task, ep } if task == dead => {
                self.leave_queue(dead, ep);
            }
            TaskIpc::AwaitingReply {
                task,
                server: Some(server),
                ..
            } if task == dead && self.reply[server.slot()] == ReplySlot::Caller(dead) => {
                self.reply[server.slot()] = ReplySlot::CallerDied;
            }
            _ => {}
        }
        self.ipc[slot] = TaskIpc::Idle;
        let released = match self.reply[slot] {
            ReplySlot::Caller(caller) => {
                self.ipc[caller.slot()] = TaskIpc::Idle;
                Some(caller)
            }
            _ => None,
        };
        self.reply[slot] = ReplySlot::Empty;
        released
    }

    /// Ends `caller`'s timed call because its deadline passed: a caller
    /// still queued leaves the queue, one waiting for its reply stops
    /// waiting and the server's reply right now answers a gone caller
    /// (its reply is dropped, as for a dead caller). True if `caller` was
    /// in a timed call (it is idle now and its call fails with
    /// [`IpcError::TimedOut`]); false, with nothing changed, otherwise (a
    /// deadline that outlived its call, or a plain call since).
    pub fn time_out(&mut self, caller: TaskId) -> bool {
        match self.ipc[caller.slot()] {
            TaskIpc::Sending {
                task,
                ep,
                call: true,
                timed: true,
                ..
            } if task == caller => {
                self.leave_queue(caller, ep);
            }
            TaskIpc::AwaitingReply {
                task,
                server,
                timed: true,
            } if task == caller => {
                if let Some(server) = server
                    && self.reply[server.slot()] == ReplySlot::Caller(caller)
                {
                    self.reply[server.slot()] = ReplySlot::CallerDied;
                }
            }
            _ => return false,
        }
        self.ipc[caller.slot()] = TaskIpc::Idle;
        true
    }

    /// Takes `task` off the endpoint it waits on to receive (an upcall
    /// answers its `recv` instead); false if it was not receiving.
    #[inline]
    pub fn cancel_recv(&mut self, task: TaskId) -> bool {
        match self.ipc[task.slot()] {
            TaskIpc::Receiving { task: t, ep } if t == task => {
                self.leave_queue(task, ep);
                self.ipc[task.slot()] = TaskIpc::Idle;
                true
            }
            _ => false,
        }
    }

    /// What `task` waits for in IPC, if anything.
    #[inline]
    pub fn waiting(&self, task: TaskId) -> Option<Wait> {
        match self.ipc[task.slot()] {
            TaskIpc::Sending { task: t, .. } if t == task => Some(Wait::Send),
            TaskIpc::Receiving { task: t, .. } if t == task => Some(Wait::Recv),
            TaskIpc::AwaitingReply { task: t, .. } if t == task => Some(Wait::Reply),
            _ => None,
        }
    }

    /// The receiver a `call` on `ep` would hand its message to right now:
    /// the oldest task queued to receive, if any.
    #[inline]
    pub fn waiting_receiver(&self, ep: EndpointId) -> Option<TaskId> {
        let index = self.live(ep).ok()?;
        if self.state[index] != EndpointState::Receivers {
            return None;
        }
        self.queues.front(index)
    }

    /// Whether `ep` is live and has no sender queued, so a `recv` on it
    /// would block.
    pub fn no_sender_queued(&self, ep: EndpointId) -> bool {
        self.live(ep)
            .is_ok_and(|index| self.state[index] != EndpointState::Senders)
    }

    /// The caller `server` owes a reply to, if that caller still waits for
    /// it from `server` (the plain case of `reply` and `reply_recv`).
    #[inline]
    pub fn reply_owed_to(&self, server: TaskId) -> Option<TaskId> {
        let ReplySlot::Caller(caller) = self.reply[server.slot()] else {
            return None;
        };
        match self.ipc[caller.slot()] {
            TaskIpc::AwaitingReply {
                task,
                server: Some(s),
                ..
            } if task == caller && s == server => Some(caller),
            _ => None,
        }
    }

    /// The receiver of the plain case of [`Endpoints::call`] by `caller` on
    /// `ep`: the oldest task waiting to receive on `ep`, while `caller`
    /// waits for nothing. `None` in any other case. Changes nothing:
    /// [`Endpoints::apply_call_plain`] does.
    #[inline]
    pub fn plain_call_receiver(&self, caller: TaskId, ep: EndpointId) -> Option<TaskId> {
        let index = self.index(ep)?;
        if self.state[index] != EndpointState::Receivers || self.waiting(caller).is_some() {
            return None;
        }
        self.queues.front(index)
    }

    /// Carries out the plain call that [`Endpoints::plain_call_receiver`]
    /// found (with nothing changed since): `receiver` leaves the front of
    /// `ep`'s receivers and takes the message, and `caller` waits for its
    /// reply, exactly as the general call leaves them, without building
    /// an [`Outcome`] or checking again.
    #[inline(always)]
    pub fn apply_call_plain(&mut self, caller: TaskId, ep: EndpointId, receiver: TaskId) {
        self.apply_send_plain(ep, receiver);
        self.await_reply(caller, receiver, false);
    }

    /// A plain send to `receiver`, the front of `ep`'s receivers (as
    /// [`Endpoints::plain_call_receiver`] found it, nothing changed since):
    /// it leaves the queue and takes the message, owing nobody a reply, as
    /// the general [`Endpoints::deliver`] of a send leaves it.
    #[inline(always)]
    pub fn apply_send_plain(&mut self, ep: EndpointId, receiver: TaskId) {
        let index = usize::from(ep.0);
        let taken = self.queues.pop_front(index);
        debug_assert_eq!(taken, Some(receiver), "checked by plain_call_receiver");
        if self.queues.is_empty(index) {
            self.state[index] = EndpointState::Idle;
        }
        self.ipc[receiver.slot()] = TaskIpc::Idle;
    }

    /// The caller of the plain case of [`Endpoints::reply_recv`] by
    /// `server` on `ep`: the caller that waits for exactly `server`'s
    /// reply, while `server` waits for nothing else and no sender is
    /// queued on live `ep` (so the receive blocks). `None` in any other
    /// case. Changes nothing: [`Endpoints::apply_reply_recv_plain`] does.
    #[inline]
    pub fn plain_reply_recv_caller(&self, server: TaskId, ep: EndpointId) -> Option<TaskId> {
        let caller = self.reply_owed_to(server)?;
        let index = self.live(ep).ok()?;
        if self.state[index] == EndpointState::Senders || self.waiting(server).is_some() {
            return None;
        }
        Some(caller)
    }

    /// Carries out the plain `reply_recv` that
    /// [`Endpoints::plain_reply_recv_caller`] found (with nothing changed
    /// since): `caller` takes the reply and `server` joins `ep`'s
    /// receivers, exactly as the general `reply_recv` leaves them.
    #[inline]
    pub fn apply_reply_recv_plain(&mut self, server: TaskId, ep: EndpointId, caller: TaskId) {
        let index = usize::from(ep.0);
        let queued = self.queues.push_back(index, server).is_ok();
        debug_assert!(queued, "a task waiting for nothing is in no queue");
        self.mark_receiving(server, ep, index);
        self.ipc[caller.slot()] = TaskIpc::Idle;
    }

    /// The plain case of [`Endpoints::recv`] that blocks: `server` waits for
    /// nothing, owes no reply (unless `replied`: its reply is being made)
    /// and no sender is queued on `ep`: it joins `ep`'s receivers. `None`,
    /// with nothing changed, in any other case.
    #[inline]
    pub fn wait_plain(&mut self, server: TaskId, ep: EndpointId, replied: bool) -> Option<()> {
        let index = self.live(ep).ok()?;
        let owes = matches!(self.reply[server.slot()], ReplySlot::Caller(_));
        if self.state[index] == EndpointState::Senders
            || self.waiting(server).is_some()
            || owes != replied
        {
            return None;
        }
        self.queues.push_back(index, server).ok()?;
        self.mark_receiving(server, ep, index);
        Some(())
    }

    /// [`Endpoints::wait_plain`] for a `server` that owes no reply, once
    /// the caller checked its plain case (live `ep` with no sender queued,
    /// `server` waiting for nothing and owing no reply; nothing changed
    /// since): `server` joins `ep`'s receivers without the checks.
    #[inline]
    pub fn apply_wait_plain(&mut self, server: TaskId, ep: EndpointId) {
        let index = usize::from(ep.0);
        let queued = self.queues.push_back(index, server).is_ok();
        debug_assert!(queued, "a task waiting for nothing is in no queue");
        self.mark_receiving(server, ep, index);
    }

    /// `server`, just queued on `ep` (slot `index`), waits there to
    /// receive; a reply right to a caller that died goes, as `recv` drops
    /// it.
    #[inline]
    fn mark_receiving(&mut self, server: TaskId, ep: EndpointId, index: usize) {
        self.state[index] = EndpointState::Receivers;
        self.ipc[server.slot()] = TaskIpc::Receiving { task: server, ep };
        self.reply[server.slot()] = ReplySlot::Empty;
    }

    /// Whether `server` holds a caller's reply right (then its `recv` is
    /// refused until it replies).
    pub fn owes_reply(&self, server: TaskId) -> bool {
        matches!(self.reply[server.slot()], ReplySlot::Caller(_))
    }

    /// The endpoint `task` is queued on, if any.
    pub fn queued_on(&self, task: TaskId) -> Option<EndpointId> {
        self.queues
            .queue_of(task)
            .and_then(|q| u16::try_from(q).ok())
            .map(EndpointId)
    }

    /// How many tasks are queued on `ep`.
    pub fn queue_len(&self, ep: EndpointId) -> usize {
        self.queues.len(usize::from(ep.0))
    }

    fn take_reply(&mut self, server: TaskId, len: usize) -> Result<Transfer, IpcError> {
        if self.reply[server.slot()] == ReplySlot::CallerDied {
            self.reply[server.slot()] = ReplySlot::Empty;
            return Err(IpcError::CallerDied);
        }
        let caller = self.owed_caller(server)?;
        self.reply[server.slot()] = ReplySlot::Empty;
        self.ipc[caller.slot()] = TaskIpc::Idle;
        Ok(Transfer {
            from: server,
            to: caller,
            badge: Badge::NONE,
            len,
        })
    }

    fn owed_caller(&self, server: TaskId) -> Result<TaskId, IpcError> {
        match self.reply[server.slot()] {
            ReplySlot::Caller(caller) => Ok(caller),
            ReplySlot::CallerDied => Err(IpcError::CallerDied),
            ReplySlot::Empty => Err(IpcError::NoReplyOwed),
        }
    }

    fn await_reply(&mut self, caller: TaskId, server: TaskId, timed: bool) {
        self.ipc[caller.slot()] = TaskIpc::AwaitingReply {
            task: caller,
            server: Some(server),
            timed,
        };
        self.reply[server.slot()] = ReplySlot::Caller(caller);
    }

    fn check_idle(&self, task: TaskId) -> Result<(), IpcError> {
        match self.waiting(task) {
            None => Ok(()),
            Some(_) => Err(IpcError::Busy),
        }
    }

    /// Takes `task` off the queue of `ep`, the endpoint it waits on, and
    /// settles the endpoint (idle once nobody is queued).
    #[inline]
    fn leave_queue(&mut self, task: TaskId, ep: EndpointId) {
        self.queues.remove(task);
        if let Some(index) = self.index(ep) {
            self.settle(index);
        }
    }

    fn settle(&mut self, index: usize) {
        if self.queues.is_empty(index) && self.state[index] != EndpointState::Free {
            self.state[index] = EndpointState::Idle;
        }
    }

    fn index(&self, ep: EndpointId) -> Option<usize> {
        let index = usize::from(ep.0);
        (index < MAX_ENDPOINTS).then_some(index)
    }

    fn live(&self, ep: EndpointId) -> Result<usize, IpcError> {
        let index = self.index(ep).ok_or(IpcError::NoSuchEndpoint)?;
        if self.state[index] == EndpointState::Free {
            return Err(IpcError::NoSuchEndpoint);
        }
        Ok(index)
    }
}

/// What [`Endpoints::deliver`] does once the message is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The sender goes on.
    Send,
    /// The caller waits for the reply.
    Call,
    /// The caller waits for the reply until its deadline.
    TimedCall,
}

fn continue_waking(woken: Option<TaskId>) -> Next {
    Next::Continue {
        woken: [woken, None],
    }
}

fn check_len(len: usize) -> Result<(), IpcError> {
    if len > MAX_MESSAGE_LEN {
        return Err(IpcError::MessageTooLong { len });
    }
    Ok(())
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
