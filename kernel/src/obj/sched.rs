//! The scheduler: fixed-priority ready queues with a bitmap for an O(1)
//! pick of the most urgent task, round-robin with a time slice within a
//! priority, and a direct switch for the IPC fastpath.
//!
//! It decides; the arch layer acts: [`Decision::SwitchTo`] means "load that
//! task's context", [`Decision::Idle`] means "nothing to run: wait for an
//! interrupt".
//!
//! Several CPUs share one scheduler, under the kernel's lock: each has its
//! own current task, and the one ready queue per priority feeds them all,
//! so the running tasks are always the most urgent ones (global
//! fixed-priority scheduling). The kernel says which CPU it acts for
//! ([`Scheduler::enter`]) when it takes the lock; every decision is that
//! CPU's. A change that another CPU must act on (its task was blocked or
//! killed from here, or a task more urgent than its own became ready)
//! marks that CPU ([`Scheduler::take_resched`]): the arch layer interrupts
//! it, and it decides again.

use super::ids::TaskId;
use super::queue::TaskQueues;
use super::{MAX_CPUS, MAX_TASKS, PRIORITIES};

/// Timer ticks a task may run before others of its priority get a turn.
pub const TIMESLICE_TICKS: u32 = 5;

/// A scheduling priority; higher runs first. Below [`PRIORITIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority(u8);

impl Priority {
    /// The lowest priority.
    pub const LOWEST: Priority = Priority(0);
    /// The highest priority.
    #[allow(clippy::cast_possible_truncation, reason = "PRIORITIES is 32")]
    pub const HIGHEST: Priority = Priority((PRIORITIES - 1) as u8);

    /// `level` as a priority; `None` if it is not below [`PRIORITIES`].
    pub fn new(level: usize) -> Option<Priority> {
        u8::try_from(level)
            .ok()
            .filter(|_| level < PRIORITIES)
            .map(Priority)
    }

    /// The numeric level.
    pub const fn level(self) -> usize {
        self.0 as usize
    }
}

/// Where a task is in its life, as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// On its priority's ready queue.
    Ready,
    /// On the CPU; in no queue.
    Running,
    /// Queued on an endpoint to send.
    BlockedSend,
    /// Queued on an endpoint to receive.
    BlockedRecv,
    /// Waiting for the reply to its call.
    BlockedReply,
    /// Waiting on a notification.
    BlockedNotification,
    /// A vCPU that may not run: its VM is not running, or the vCPU waits
    /// for an I/O completion or sleeps in `wfi` (see `vm::control`).
    Held,
    /// Killed; waiting for the supervisor to reap it.
    Dead,
}

impl TaskState {
    /// Whether the task waits for an event.
    pub const fn is_blocked(self) -> bool {
        matches!(
            self,
            TaskState::BlockedSend
                | TaskState::BlockedRecv
                | TaskState::BlockedReply
                | TaskState::BlockedNotification
                | TaskState::Held
        )
    }
}

/// Why a scheduler operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// The id names no task the scheduler knows (never admitted, reaped, or
    /// a stale generation).
    UnknownTask,
    /// The slot already holds a task that has not been reaped.
    SlotInUse,
    /// The operation does not apply to a task in state `from` (for example
    /// unblocking a ready task, or blocking into a non-blocked state).
    IllegalTransition { from: TaskState },
    /// `direct_switch` was asked for by a task that is not running.
    NotRunning,
}

/// What the CPU should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep running the current task.
    Continue,
    /// Switch to this task.
    SwitchTo(TaskId),
    /// Nothing is ready: wait for an interrupt.
    Idle,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    task: TaskId,
    priority: Priority,
    state: TaskState,
    slice: u32,
    /// The CPU it runs on, while it is [`TaskState::Running`].
    cpu: u8,
    /// The scheduler tick at which its turn began (it first ran after its
    /// slice was filled); `None` until then. A boost only applies within
    /// one slice of it.
    turn_start: Option<u64>,
}

/// The scheduler's view of every task.
#[derive(Clone, Debug)]
pub struct Scheduler {
    entries: [Option<Entry>; MAX_TASKS],
    ready: TaskQueues<PRIORITIES>,
    /// Bit `p` is set exactly when ready queue `p` is non-empty.
    nonempty: u32,
    /// The running task of the CPU the kernel acts for (the hot paths
    /// read and write only this).
    current: Option<TaskId>,
    /// Every other CPU's running task (the entry of the CPU the kernel
    /// acts for is stale until [`Scheduler::enter`] stores `current`).
    running: [Option<TaskId>; MAX_CPUS],
    /// The CPU the kernel acts for ([`Scheduler::enter`]), below
    /// [`MAX_CPUS`].
    cpu: u8,
    /// CPUs `0..cpus` take tasks.
    cpus: usize,
    /// CPUs (bit `n` = CPU `n`) that must decide again: their task was
    /// taken off them from another CPU, or a more urgent one is ready.
    resched: u32,
    /// Timer ticks seen (every tick, whoever ran): the clock that bounds
    /// a boosted task's turn.
    ticks: u64,
    /// The priority levels (bit `p` = level `p`) whose tasks CPUs other
    /// than CPU 0 may take; CPU 0 takes every level
    /// ([`Scheduler::share_only`]).
    shared: u32,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheduler {
    /// No tasks.
    pub const fn new() -> Self {
        Scheduler {
            entries: [None; MAX_TASKS],
            ready: TaskQueues::new(),
            nonempty: 0,
            current: None,
            running: [None; MAX_CPUS],
            cpu: 0,
            cpus: 1,
            resched: 0,
            ticks: 0,
            shared: u32::MAX,
        }
    }

    /// Lets CPUs other than CPU 0 take only tasks whose priority level has
    /// its bit set in `levels`; the others run on CPU 0 alone. The kernel
    /// keeps its services on the boot CPU this way (their address spaces
    /// are never live on two harts, so unmapping needs no remote TLB
    /// shootdown) and spreads the vCPUs, which run at the lowest level.
    pub fn share_only(&mut self, levels: u32) {
        self.shared = levels;
    }

    /// Lets CPUs `0..cpus` (1 to [`MAX_CPUS`]) take tasks; the others
    /// stay idle. Returns the count in effect.
    pub fn set_cpus(&mut self, cpus: usize) -> usize {
        self.cpus = cpus.clamp(1, MAX_CPUS);
        self.cpus
    }

    /// How many CPUs take tasks.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// The kernel acts for CPU `cpu` (below [`Scheduler::cpus`]) until the
    /// next call: [`Scheduler::current`] is its task, and every decision is
    /// its own. The CPU's pending request to decide again is taken: it is
    /// about to.
    #[inline]
    pub fn enter(&mut self, cpu: usize) {
        let cpu = cpu % MAX_CPUS;
        let was = self.cpu();
        if cpu != was {
            self.running[was] = self.current;
            self.current = self.running[cpu];
            self.cpu = u8::try_from(cpu).unwrap_or(0);
        }
        self.resched &= !(1 << self.cpu);
    }

    /// The CPU the kernel acts for.
    #[inline]
    pub fn cpu(&self) -> usize {
        usize::from(self.cpu) % MAX_CPUS
    }

    /// The task CPU `cpu` runs.
    pub fn running_on(&self, cpu: usize) -> Option<TaskId> {
        if cpu == self.cpu() {
            self.current
        } else {
            self.running.get(cpu).copied().flatten()
        }
    }

    /// The CPUs (bit `n` = CPU `n`) that must decide again, other than
    /// the one the kernel acts for; cleared. The arch layer interrupts
    /// each of them.
    pub fn take_resched(&mut self) -> u32 {
        let mine = 1 << self.cpu;
        let others = self.resched & !mine;
        self.resched &= mine;
        others
    }

    /// Makes a new task ready at `priority`.
    pub fn admit(&mut self, task: TaskId, priority: Priority) -> Result<(), SchedError> {
        if self.entries[task.slot()].is_some() {
            return Err(SchedError::SlotInUse);
        }
        self.entries[task.slot()] = Some(Entry {
            task,
            priority,
            state: TaskState::Dead,
            slice: TIMESLICE_TICKS,
            cpu: 0,
            turn_start: None,
        });
        self.enqueue(task, false);
        Ok(())
    }

    /// Forgets a dead task so that its slot can be reused.
    pub fn reap(&mut self, task: TaskId) -> Result<(), SchedError> {
        let entry = self.entry(task)?;
        if entry.state != TaskState::Dead {
            return Err(SchedError::IllegalTransition { from: entry.state });
        }
        self.entries[task.slot()] = None;
        Ok(())
    }

    /// The task the CPU the kernel acts for runs.
    #[inline]
    pub fn current(&self) -> Option<TaskId> {
        self.current
    }

    /// Sets the running task of the CPU the kernel acts for.
    #[inline]
    fn set_current(&mut self, task: Option<TaskId>) {
        self.current = task;
    }

    /// `task` (running) is taken off its CPU: on this one the caller
    /// decides next; another one is asked to decide again.
    #[inline]
    fn take_off_cpu(&mut self, task: TaskId) {
        if self.current == Some(task) {
            self.current = None;
        } else {
            self.take_off_other_cpu(task);
        }
    }

    #[cold]
    fn take_off_other_cpu(&mut self, task: TaskId) {
        let Ok(entry) = self.entry(task) else { return };
        let cpu = usize::from(entry.cpu) % MAX_CPUS;
        if cpu != self.cpu() && self.running[cpu] == Some(task) {
            self.running[cpu] = None;
            self.resched |= 1 << cpu;
        }
    }

    /// A task at `priority` became ready: the idle CPU, or else the one
    /// running the least urgent task below `priority`, other than this one
    /// (whose caller decides next) and not already asked, is asked to
    /// decide again.
    #[inline]
    fn offer(&mut self, priority: Priority) {
        if self.cpus > 1 {
            self.offer_to_others(priority);
        }
    }

    #[cold]
    fn offer_to_others(&mut self, priority: Priority) {
        let mut pick: Option<(usize, Option<Priority>)> = None;
        for cpu in 0..self.cpus {
            if cpu == self.cpu() || self.resched & 1 << cpu != 0 || !self.takes_on(cpu, priority) {
                continue;
            }
            let theirs = self.running[cpu].and_then(|t| self.entry(t).ok().map(|e| e.priority));
            if theirs.is_some_and(|p| p >= priority) {
                continue;
            }
            // Idle (None) sorts below every priority: it is taken first.
            if pick.is_none_or(|(_, best)| theirs < best) {
                pick = Some((cpu, theirs));
            }
        }
        if let Some((cpu, _)) = pick {
            self.resched |= 1 << cpu;
        }
    }

    /// `task`'s state, if the scheduler knows it.
    #[inline]
    pub fn state(&self, task: TaskId) -> Option<TaskState> {
        self.entry(task).ok().map(|e| e.state)
    }

    /// `task` was taken off the CPU the kernel acts for while that CPU ran
    /// it as a vCPU, and the CPU has now let the run go: another CPU that
    /// picked the task meanwhile, and waits with it until the run is let
    /// go, is asked to decide again (it runs the vCPU then).
    pub fn let_go(&mut self, task: TaskId) {
        if let Some(cpu) = self.running_cpu(task)
            && cpu != self.cpu()
        {
            self.resched |= 1 << cpu;
        }
    }

    /// The CPU `task` runs on, if it runs.
    pub fn running_cpu(&self, task: TaskId) -> Option<usize> {
        let entry = self.entry(task).ok()?;
        (entry.state == TaskState::Running).then_some(usize::from(entry.cpu))
    }

    /// `task`'s priority, if the scheduler knows it.
    pub fn priority(&self, task: TaskId) -> Option<Priority> {
        self.entry(task).ok().map(|e| e.priority)
    }

    /// Picks what runs next: the current task unless a more urgent one is
    /// ready (then the current one goes back to the front of its queue, to
    /// resume its slice first), or the most urgent ready task, or idle.
    pub fn schedule(&mut self) -> Decision {
        let best = self.highest_ready();
        match self.current().and_then(|c| self.entry(c).ok()) {
            Some(cur) if best.is_some_and(|b| b > cur.priority) => {
                self.set_current(None);
                self.enqueue(cur.task, true);
                self.run_best(Some(cur.task))
            }
            Some(_) => Decision::Continue,
            None => self.run_best(None),
        }
    }

    /// Moves `task` (running or ready) into the blocked state `blocked`.
    /// Call [`Scheduler::schedule`] afterwards if it was running.
    pub fn block(&mut self, task: TaskId, blocked: TaskState) -> Result<(), SchedError> {
        let entry = self.entry(task)?;
        if !blocked.is_blocked() {
            return Err(SchedError::IllegalTransition { from: entry.state });
        }
        match entry.state {
            TaskState::Running => self.take_off_cpu(task),
            TaskState::Ready => self.dequeue(task),
            from => return Err(SchedError::IllegalTransition { from }),
        }
        self.set_state(task, blocked);
        Ok(())
    }

    /// Moves a blocked `task` to another blocked state (a caller whose
    /// request was taken now waits for the reply instead of to send).
    pub fn rewait(&mut self, task: TaskId, blocked: TaskState) -> Result<(), SchedError> {
        let entry = self.blocked_entry(task)?;
        if !blocked.is_blocked() {
            return Err(SchedError::IllegalTransition { from: entry.state });
        }
        self.set_state(task, blocked);
        Ok(())
    }

    /// Makes a blocked `task` ready (at the back of its queue). Call
    /// [`Scheduler::schedule`] once all wake-ups of an event are done: it
    /// decides whether the current task is preempted.
    pub fn unblock(&mut self, task: TaskId) -> Result<(), SchedError> {
        self.blocked_entry(task)?;
        self.enqueue(task, false);
        Ok(())
    }

    /// Makes a blocked `task` ready with a boost, as credit schedulers do
    /// for a vCPU whose I/O just completed: it goes to the front of its
    /// queue, on the rest of its slice, and runs before peers that spin
    /// through whole slices. It cannot starve them: its slice is charged
    /// while it runs, and the boost only holds for one slice of ticks from
    /// the start of its turn, however many of them fell while services
    /// worked on its behalf; after that it goes to the back, refilled, and
    /// its peers get their turns first.
    pub fn unblock_boosted(&mut self, task: TaskId) -> Result<(), SchedError> {
        let entry = self.blocked_entry(task)?;
        let turn_over = entry
            .turn_start
            .is_some_and(|start| self.ticks.wrapping_sub(start) >= u64::from(TIMESLICE_TICKS));
        if turn_over {
            self.refill(task);
        }
        self.enqueue(task, !turn_over);
        Ok(())
    }

    /// The current task gives up the rest of its slice to its peers.
    pub fn yield_now(&mut self) -> Decision {
        let current = self.current();
        self.set_current(None);
        match current {
            Some(cur) => {
                self.refill(cur);
                self.enqueue(cur, false);
                self.run_best(Some(cur))
            }
            None => self.run_best(None),
        }
    }

    /// One timer tick: charges the current task and rotates its priority
    /// level when its slice is used up.
    pub fn tick(&mut self) -> Decision {
        if self.cpu == 0 {
            self.ticks = self.ticks.wrapping_add(1);
        }
        let Some(cur) = self.current() else {
            return self.run_best(None);
        };
        let left = self.entry(cur).map_or(0, |e| e.slice.saturating_sub(1));
        if let Some(Some(entry)) = self.entries.get_mut(cur.slot()) {
            entry.slice = left;
        }
        if left == 0 {
            self.yield_now()
        } else {
            self.schedule()
        }
    }

    /// Whether a task more urgent than `priority` is ready (then a direct
    /// switch to a task at `priority` would go through the scheduler).
    #[inline]
    pub fn ready_above(&self, priority: Priority) -> bool {
        self.highest_ready().is_some_and(|b| b > priority)
    }

    /// The IPC fastpath: running `from` blocks as `blocked` and its partner
    /// `to` (blocked in IPC) runs at once on the rest of `from`'s slice,
    /// without a pass over the ready queues, unless a more urgent task is
    /// ready, in which case `to` is queued and the scheduler picks.
    #[inline]
    pub fn direct_switch(
        &mut self,
        from: TaskId,
        to: TaskId,
        blocked: TaskState,
    ) -> Result<Decision, SchedError> {
        if self.current() != Some(from) {
            return Err(SchedError::NotRunning);
        }
        let target = self.entry_mut(to).ok_or(SchedError::UnknownTask)?;
        if !target.state.is_blocked() {
            return Err(SchedError::IllegalTransition { from: target.state });
        }
        let priority = target.priority;
        let here = self.takes(priority);
        let running = self.entry_mut(from).ok_or(SchedError::UnknownTask)?;
        if !blocked.is_blocked() {
            return Err(SchedError::IllegalTransition {
                from: running.state,
            });
        }
        // `from` is current, so it runs (the invariant): it blocks.
        running.state = blocked;
        let donated = running.slice.max(1);
        self.set_current(None);
        if !here || self.ready_above(priority) {
            self.enqueue(to, false);
            return Ok(self.run_best(Some(from)));
        }
        self.run_donated(to, donated);
        Ok(Decision::SwitchTo(to))
    }

    /// `to` runs now on `donated` ticks of its caller's slice (the end of
    /// a direct switch).
    #[inline]
    fn run_donated(&mut self, to: TaskId, donated: u32) {
        let (ticks, cpu) = (self.ticks, self.cpu);
        if let Some(target) = self.entry_mut(to) {
            target.state = TaskState::Running;
            target.slice = donated;
            target.cpu = cpu;
            target.turn_start.get_or_insert(ticks);
        }
        self.set_current(Some(to));
    }

    /// Whether a direct switch to `to` runs it at once: it waits as
    /// `state` and no task more urgent than it is ready (one lookup of its
    /// entry; the check of [`Scheduler::apply_direct_switch`]).
    #[inline(always)]
    pub fn direct_switch_ok(&self, to: TaskId, state: TaskState) -> bool {
        match self.entries[to.slot()] {
            Some(e) if e.task == to => {
                e.state == state && !self.ready_above(e.priority) && self.takes(e.priority)
            }
            _ => false,
        }
    }

    /// [`Scheduler::direct_switch`] in the case it runs `to` at once, once
    /// [`Scheduler::direct_switch_ok`] said so for a blocked state of `to`,
    /// `from` is current and `blocked` is a blocked state (nothing changed
    /// the scheduler since): the same transitions without checking them
    /// again, `to` running on the rest of `from`'s slice.
    #[inline]
    pub fn apply_direct_switch(&mut self, from: TaskId, blocked: TaskState, to: TaskId) {
        debug_assert!(self.current() == Some(from) && blocked.is_blocked());
        let mut donated = 1;
        if let Some(running) = self.entry_mut(from) {
            running.state = blocked;
            donated = running.slice.max(1);
        }
        self.run_donated(to, donated);
    }

    /// The plain case of a server that finished a blocked task's work and
    /// waits again: running `from` blocks as `blocked` and the blocked
    /// `to` runs at once, on the rest of its own slice and with the boost
    /// [`Scheduler::unblock_boosted`] would give it, exactly when that boost
    /// would run it next (its turn is not over and nothing more urgent is
    /// ready). Returns `None`, with nothing changed, in every other case:
    /// the caller then takes the general path.
    pub fn hand_over(&mut self, from: TaskId, blocked: TaskState, to: TaskId) -> Option<()> {
        if !blocked.is_blocked() || !self.can_hand_over(from, to) {
            return None;
        }
        self.apply_hand_over(from, blocked, to);
        Some(())
    }

    /// [`Scheduler::hand_over`] once [`Scheduler::can_hand_over`] said yes
    /// and nothing changed the scheduler since (`blocked` is a blocked
    /// state).
    #[inline(always)]
    pub fn apply_hand_over(&mut self, from: TaskId, blocked: TaskState, to: TaskId) {
        if let Some(entry) = self.entry_mut(from) {
            entry.state = blocked;
        }
        let (ticks, cpu) = (self.ticks, self.cpu);
        if let Some(entry) = self.entry_mut(to) {
            entry.state = TaskState::Running;
            entry.cpu = cpu;
            entry.turn_start.get_or_insert(ticks);
        }
        self.set_current(Some(to));
    }

    /// The plain case of an upcall that wakes a blocked server: running
    /// `from` blocks as `blocked` and the blocked `to` runs at once on its
    /// own slice, exactly when the general path (block `from`, unblock
    /// `to` to the back of its queue, schedule) would run it next: no task
    /// at its priority or above is ready. `None`, with nothing changed,
    /// otherwise.
    #[inline]
    pub fn wake_direct(&mut self, from: TaskId, blocked: TaskState, to: TaskId) -> Option<()> {
        let target = self.entry(to).ok()?;
        let contended = self
            .highest_ready()
            .is_some_and(|best| best >= target.priority);
        if self.current() != Some(from)
            || !blocked.is_blocked()
            || !target.state.is_blocked()
            || contended
            || !self.takes(target.priority)
            || self.entry(from).is_err()
        {
            return None;
        }
        self.apply_hand_over(from, blocked, to);
        Some(())
    }

    /// Whether [`Scheduler::hand_over`] from `from` to `to` applies.
    #[inline(always)]
    pub fn can_hand_over(&self, from: TaskId, to: TaskId) -> bool {
        let Ok(target) = self.entry(to) else {
            return false;
        };
        let turn_over = target
            .turn_start
            .is_some_and(|start| self.ticks.wrapping_sub(start) >= u64::from(TIMESLICE_TICKS));
        self.current() == Some(from)
            && target.state.is_blocked()
            && !turn_over
            && !self.ready_above(target.priority)
            && self.takes(target.priority)
    }

    /// Marks `task` dead and takes it off the CPU and every ready queue.
    pub fn kill(&mut self, task: TaskId) -> Result<(), SchedError> {
        let entry = self.entry(task)?;
        match entry.state {
            TaskState::Dead => {
                return Err(SchedError::IllegalTransition {
                    from: TaskState::Dead,
                });
            }
            TaskState::Ready => self.dequeue(task),
            TaskState::Running => self.take_off_cpu(task),
            _ => {}
        }
        self.set_state(task, TaskState::Dead);
        Ok(())
    }

    /// Every task the scheduler knows, with its state.
    pub fn tasks(&self) -> impl Iterator<Item = (TaskId, TaskState)> + '_ {
        self.entries.iter().flatten().map(|e| (e.task, e.state))
    }

    /// Checks the scheduler's internal consistency (used by tests): ready
    /// tasks are queued at their priority, nothing else is queued, a task
    /// runs exactly when it is some CPU's current one (on that CPU only),
    /// and the bitmap matches the queues.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut running = self.running;
        running[self.cpu()] = self.current;
        for entry in self.entries.iter().flatten() {
            let queued = self.ready.queue_of(entry.task);
            let on = running.iter().filter(|&&r| r == Some(entry.task)).count();
            match entry.state {
                TaskState::Ready if queued != Some(entry.priority.level()) => {
                    return Err("ready task not on its priority's queue");
                }
                TaskState::Ready if on > 0 => return Err("ready task is current"),
                TaskState::Ready => {}
                _ if queued.is_some() => return Err("non-ready task on a ready queue"),
                TaskState::Running
                    if on != 1
                        || running[usize::from(entry.cpu) % MAX_CPUS] != Some(entry.task) =>
                {
                    return Err("running task is not current on its CPU alone");
                }
                TaskState::Running => {}
                _ if on > 0 => return Err("current task is not running"),
                _ => {}
            }
        }
        if running.iter().flatten().any(|&c| self.entry(c).is_err()) {
            return Err("current task unknown");
        }
        if running[self.cpus..].iter().any(Option::is_some) {
            return Err("a task runs on a CPU that takes none");
        }
        for p in 0..PRIORITIES {
            if (self.nonempty >> p) & 1 == u32::from(self.ready.is_empty(p)) {
                return Err("bitmap disagrees with the ready queues");
            }
        }
        Ok(())
    }

    fn run_best(&mut self, previous: Option<TaskId>) -> Decision {
        let Some(best) = self.highest_ready() else {
            return Decision::Idle;
        };
        let Some(task) = self.ready.pop_front(best.level()) else {
            return Decision::Idle;
        };
        self.mark_level(best.level());
        self.start_turn(task);
        self.set_state(task, TaskState::Running);
        let cpu = self.cpu;
        if let Some(entry) = self.entry_mut(task) {
            entry.cpu = cpu;
        }
        self.set_current(Some(task));
        if previous == Some(task) {
            Decision::Continue
        } else {
            Decision::SwitchTo(task)
        }
    }

    /// Whether the CPU the kernel acts for may run tasks at `priority`
    /// ([`Scheduler::share_only`]).
    #[inline(always)]
    fn takes(&self, priority: Priority) -> bool {
        self.takes_on(usize::from(self.cpu), priority)
    }

    /// Whether CPU `cpu` may run tasks at `priority`.
    #[inline(always)]
    fn takes_on(&self, cpu: usize, priority: Priority) -> bool {
        cpu == 0 || self.shared & 1 << priority.level() != 0
    }

    /// The most urgent ready priority the CPU the kernel acts for may take.
    #[inline(always)]
    fn highest_ready(&self) -> Option<Priority> {
        self.highest_ready_on(self.cpu)
    }

    /// The most urgent ready priority CPU `cpu` may take.
    #[inline(always)]
    fn highest_ready_on(&self, cpu: u8) -> Option<Priority> {
        let levels = if cpu == 0 {
            self.nonempty
        } else {
            self.nonempty & self.shared
        };
        let top = 31u32.checked_sub(levels.leading_zeros())?;
        u8::try_from(top).ok().map(Priority)
    }

    fn enqueue(&mut self, task: TaskId, front: bool) {
        let Ok(entry) = self.entry(task) else { return };
        let level = entry.priority.level();
        let pushed = if front {
            self.ready.push_front(level, task)
        } else {
            self.ready.push_back(level, task)
        };
        if pushed.is_ok() {
            self.set_state(task, TaskState::Ready);
            self.mark_level(level);
            self.offer(entry.priority);
        }
    }

    fn dequeue(&mut self, task: TaskId) {
        if let Some(level) = self.ready.remove(task) {
            self.mark_level(level);
        }
    }

    fn mark_level(&mut self, level: usize) {
        let bit = 1u32 << (level % PRIORITIES);
        if self.ready.is_empty(level) {
            self.nonempty &= !bit;
        } else {
            self.nonempty |= bit;
        }
    }

    fn refill(&mut self, task: TaskId) {
        if let Some(Some(entry)) = self.entries.get_mut(task.slot()) {
            entry.slice = TIMESLICE_TICKS;
            entry.turn_start = None;
        }
    }

    /// `task` runs: the first time since its slice was filled starts its
    /// turn.
    fn start_turn(&mut self, task: TaskId) {
        let now = self.ticks;
        if let Some(Some(entry)) = self.entries.get_mut(task.slot()) {
            entry.turn_start.get_or_insert(now);
        }
    }

    fn set_state(&mut self, task: TaskId, state: TaskState) {
        if let Some(Some(entry)) = self.entries.get_mut(task.slot()) {
            entry.state = state;
        }
    }

    fn entry_mut(&mut self, task: TaskId) -> Option<&mut Entry> {
        self.entries
            .get_mut(task.slot())?
            .as_mut()
            .filter(|e| e.task == task)
    }

    fn entry(&self, task: TaskId) -> Result<Entry, SchedError> {
        match self.entries[task.slot()] {
            Some(e) if e.task == task => Ok(e),
            _ => Err(SchedError::UnknownTask),
        }
    }

    /// `task`'s entry if it is blocked; `IllegalTransition` from its
    /// state otherwise.
    fn blocked_entry(&self, task: TaskId) -> Result<Entry, SchedError> {
        let entry = self.entry(task)?;
        if !entry.state.is_blocked() {
            return Err(SchedError::IllegalTransition { from: entry.state });
        }
        Ok(entry)
    }
}

#[cfg(test)]
#[path = "sched_tests.rs"]
mod tests;
