//! Service tasks on the running kernel: loads the services of the boot
//! image (the initrd), gives them the capabilities and rights its manifest
//! names (`crate::manifest`), enters the first one, and turns every trap from U-mode
//! into a system call, a preemption tick or a contained fault. The
//! decisions are made by `crate::syscall` and `crate::obj`; this file only
//! moves registers and bytes, and switches address spaces.

// Registers, addresses and notification words are all 64 bits wide on the
// targets with user tasks (RV64, x86_64).
#![allow(clippy::cast_possible_truncation)]

use core::sync::atomic::{AtomicBool, Ordering};

use ipc::Error;
use ipc::syscall::{IPC_BUFFER, STACK_TOP};
use mica_boot::image::{BootImage, EntryKind, KernelRights, MAX_ENTRIES};

use crate::arch::{self, AddressSpace, RunOutcome, TrapFrame};
use crate::chaos::{Chaos, Fault};
use crate::kmain::FRAMES;
use crate::manifest::{ServiceSpec, Wiring};
use crate::obj::MAX_TASKS;
use crate::obj::ids::TaskId;
use crate::obj::objects::KernelObjects;
use crate::obj::sched::{Decision, Priority, TaskState};
use crate::obj::task::{DeathNotice, ExitReason, FaultKind};
use crate::syscall::{self, Machine};
use crate::syscall_vm;
use crate::trap::{Access, Trap};
use crate::vm::control;
use crate::{ExitStatus, klog, ticks};

#[path = "userland_console.rs"]
mod console;
#[path = "userland_devices.rs"]
mod devices;
#[path = "userland_stats.rs"]
mod stats;
#[path = "userland_vms.rs"]
mod vms;
use vms::Guests;
#[path = "userland_ipc.rs"]
mod ipc_fast;

/// The boot image and the kernel objects its manifest asked for.
struct Boot {
    image: BootImage<'static>,
    wiring: Wiring,
}

#[derive(Clone, Copy)]
struct Slot {
    id: TaskId,
    space: AddressSpace,
    frame: TrapFrame,
    /// Its entry in the boot image.
    entry: usize,
    restarts: usize,
    /// The timer count when it was loaded.
    started: u64,
}

/// The kernel objects and, apart from them, the machine state of each task
/// (so the dispatcher can borrow both at once).
struct Runner {
    objects: KernelObjects,
    tasks: Tasks,
}

struct Tasks {
    slots: [Option<Slot>; MAX_TASKS],
    kernel_root: u64,
    supervisor: Option<TaskId>,
    boot: Option<Boot>,
    guests: Guests,
    /// Services killed on a schedule (`mica.chaos`, recovery tests).
    chaos: Option<Chaos<'static>>,
    /// A service `mica.chaos` made hang, once it next waits to receive.
    to_hang: Option<&'static str>,
    /// The timer count when the tasks were loaded.
    epoch: u64,
}

static RUNNER: spin::Mutex<Runner> = spin::Mutex::new(Runner {
    objects: KernelObjects::new(),
    tasks: Tasks {
        slots: [None; MAX_TASKS],
        kernel_root: 0,
        supervisor: None,
        boot: None,
        guests: Guests::new(),
        chaos: None,
        to_hang: None,
        epoch: 0,
    },
});

/// Takes the kernel lock for the CPU running this code: the scheduler acts
/// for it until the lock is released again ([`unlock`]).
#[inline]
fn lock() -> spin::MutexGuard<'static, Runner> {
    let mut guard = RUNNER.lock();
    guard.objects.sched.enter(arch::this_cpu());
    guard
}

/// Releases the kernel lock, then kicks the CPUs the scheduler asked to
/// decide again while it was held.
#[inline]
fn unlock(mut guard: spin::MutexGuard<'static, Runner>) {
    let kicks = guard.objects.sched.take_resched();
    drop(guard);
    if kicks != 0 {
        arch::kick(u64::from(kicks));
    }
}

fn fail(what: core::fmt::Arguments<'_>) -> ! {
    klog::print(format_args!("mica: {what}\n"));
    arch::shutdown(ExitStatus::Failure)
}

impl Tasks {
    /// Loads boot-image entry `entry` as a new ready task and gives it the
    /// capabilities and rights its manifest entry names.
    fn spawn(
        &mut self,
        objects: &mut KernelObjects,
        entry: usize,
        restarts: usize,
    ) -> Result<TaskId, Error> {
        let Some(boot) = self.boot.as_ref() else {
            return Err(Error::KernelRefused);
        };
        let image_entry = boot.image.entry(entry).ok_or(Error::InvalidArgument)?;
        let spec = &image_entry.spec;
        let priority = Priority::new(spec.priority.into()).ok_or(Error::InvalidArgument)?;
        let id = objects
            .spawn(spec.name, priority)
            .map_err(|_| Error::KernelRefused)?;
        // ASID 0 is the kernel's; tasks use slot + 1.
        let asid = u16::try_from(id.slot() + 1).map_err(|_| Error::KernelRefused)?;
        let loaded = arch::load_task(&mut FRAMES.lock(), self.kernel_root, spec.data, asid)
            .map_err(|e| {
                klog::print(format_args!(
                    "mica: cannot load task {}: {e:?}\n",
                    spec.name
                ));
                Error::KernelRefused
            })?;
        if let Err(e) = boot
            .wiring
            .wire_task(objects, id, &ServiceSpec::of(&image_entry))
        {
            klog::print(format_args!(
                "mica: cannot give task {} its capabilities: {e}\n",
                spec.name
            ));
            return Err(Error::KernelRefused);
        }
        if spec.rights.contains(KernelRights::SUPERVISOR) {
            self.supervisor = Some(id);
        }
        let frame = TrapFrame::for_user(loaded.entry as usize, STACK_TOP, IPC_BUFFER, restarts);
        self.slots[id.slot()] = Some(Slot {
            id,
            space: loaded.space,
            frame,
            entry,
            restarts,
            started: arch::timer_now(),
        });
        Ok(id)
    }

    fn name_of(&self, task: TaskId) -> &'static str {
        let entry = self.slot(task);
        match (entry, self.boot.as_ref()) {
            (Some(slot), Some(boot)) => boot.image.entry(slot.entry).map_or("?", |e| e.spec.name),
            _ => "?",
        }
    }

    /// The live task loaded from the boot-image entry called `name`.
    fn live_task_named(&self, objects: &KernelObjects, name: &str) -> Option<TaskId> {
        self.live_task_where(objects, |entry| entry.spec.name == name)
    }

    /// The live task whose boot-image entry satisfies `wanted`.
    fn live_task_where(
        &self,
        objects: &KernelObjects,
        wanted: impl Fn(&mica_boot::image::ImageEntry<'_>) -> bool,
    ) -> Option<TaskId> {
        let boot = self.boot.as_ref()?;
        self.slots.iter().flatten().map(|slot| slot.id).find(|&id| {
            objects
                .tasks
                .get(id)
                .is_ok_and(|task| task.exit_reason().is_none())
                && self
                    .slot(id)
                    .and_then(|slot| boot.image.entry(slot.entry))
                    .is_some_and(|entry| wanted(&entry))
        })
    }

    fn slot(&self, task: TaskId) -> Option<&Slot> {
        self.slots.get(task.slot()).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, task: TaskId) -> Option<&mut Slot> {
        self.slots.get_mut(task.slot()).and_then(Option::as_mut)
    }
}

impl Machine for Tasks {
    fn set_result(&mut self, task: TaskId, status: usize, values: [usize; 3]) {
        if let Some(slot) = self.slot_mut(task) {
            slot.frame.set_result(status, values);
        }
    }

    fn copy_message(&mut self, from: TaskId, to: TaskId, len: usize) {
        if let (Some(from), Some(to)) = (self.slot(from), self.slot(to)) {
            arch::copy_message(&from.space, &to.space, len);
        }
    }

    fn read_user(&mut self, task: TaskId, ptr: usize, out: &mut [u8]) -> bool {
        self.slot_mut(task)
            .is_some_and(|slot| slot.space.read_user(ptr, out))
    }

    fn console_line(&mut self, task: TaskId, line: &[u8]) {
        let task = self.name_of(task);
        klog::print(format_args!("{}", klog::TaskLines { task, text: line }));
    }

    fn report_death(&mut self, notice: &DeathNotice) {
        klog::print(format_args!("mica: {notice}\n"));
        if Some(notice.task) == self.supervisor {
            let status = match notice.reason {
                ExitReason::Exited { code: 0 } => ExitStatus::Success,
                _ => ExitStatus::Failure,
            };
            klog::print(format_args!("mica: init ended, shutting down\n"));
            arch::shutdown(status);
        }
    }

    fn supervisor(&self) -> Option<TaskId> {
        self.supervisor
    }

    fn endpoint_of(&self, task: TaskId) -> Option<usize> {
        let boot = self.boot.as_ref()?;
        let entry = boot.image.entry(self.slot(task)?.entry)?;
        entry.spec.serves.map(usize::from)
    }

    fn server_of(&self, objects: &KernelObjects, endpoint: usize) -> Option<TaskId> {
        self.live_task_where(objects, |entry| {
            entry
                .spec
                .serves
                .is_some_and(|e| usize::from(e) == endpoint)
        })
    }

    fn restart(
        &mut self,
        objects: &mut KernelObjects,
        dead: &DeathNotice,
    ) -> Result<syscall::Restarted, Error> {
        // A CPU that still runs the dead copy in user mode (killed from
        // another CPU) leaves it before its frame and frames go.
        if let Some(old) = self.slots[dead.task.slot()].as_ref() {
            old.space.shootdown();
        }
        let old = self.slots[dead.task.slot()]
            .take()
            .ok_or(Error::InvalidArgument)?;
        // The dead copy's frames and tables go back before the new copy
        // takes its own (the slot's ASID is flushed with them).
        let freed = old.space.release(&mut FRAMES.lock());
        let task = self.spawn(objects, old.entry, old.restarts + 1)?;
        klog::print(format_args!(
            "mica: task {} ({}) loaded again: {freed} frames of the dead copy freed, {} frames free\n",
            task.slot(),
            self.name_of(task),
            FRAMES.lock().free_frames()
        ));
        let serves = self
            .boot
            .as_ref()
            .and_then(|boot| boot.image.entry(old.entry))
            .and_then(|entry| entry.spec.serves);
        Ok(syscall::Restarted {
            task,
            serves,
            lived_ms: since_ms(old.started),
        })
    }

    fn devices(&mut self) -> Option<&mut dyn crate::syscall_device::DeviceHost> {
        Some(self)
    }
}

/// Loads every service of the boot image, wires their capabilities as its
/// manifest says and enters the most urgent one; `vm_ids` (the boot
/// option) caps the VM TLB tags handed out.
pub fn start(
    kernel_root: u64,
    image: BootImage<'static>,
    vm_ids: Option<u16>,
    chaos: Option<Chaos<'static>>,
) -> ! {
    let mut guard = lock();
    let r = &mut *guard;
    r.tasks.kernel_root = kernel_root;
    // vCPUs run on every CPU; services too where the arch can run tasks
    // on every CPU, else on the boot CPU alone.
    let cpus = r.objects.sched.set_cpus(arch::cpu_count());
    if !arch::TASKS_ON_EVERY_CPU {
        r.objects
            .sched
            .share_only(1 << crate::vm::control::VCPU_PRIORITY.level());
    }
    r.tasks.chaos = chaos;
    r.tasks.epoch = arch::timer_now();
    if let Some(count) = vm_ids {
        r.objects.vms.limit_tags(count);
    }
    let services = || {
        image
            .entries()
            .filter(|e| e.spec.kind == EntryKind::Service)
    };
    let mut specs = [ServiceSpec {
        serves: None,
        may_call: 0,
        rights: KernelRights::default(),
        device_classes: 0,
    }; MAX_ENTRIES];
    for (spec, entry) in specs.iter_mut().zip(services()) {
        *spec = ServiceSpec::of(&entry);
    }
    let count = services().count();
    let wiring = match Wiring::create(&mut r.objects, &specs[..count]) {
        Ok(wiring) => wiring,
        Err(e) => fail(format_args!("boot image: {e}")),
    };
    r.tasks.boot = Some(Boot { image, wiring });
    for (index, entry) in image.entries().enumerate() {
        if entry.spec.kind != EntryKind::Service {
            continue;
        }
        if let Err(e) = r.tasks.spawn(&mut r.objects, index, 0) {
            fail(format_args!("cannot start task {}: {e}", entry.spec.name))
        }
    }
    let Decision::SwitchTo(first) = r.objects.sched.schedule() else {
        fail(format_args!("the boot image has no service to run"))
    };
    klog::print(format_args!(
        "mica: {count} tasks loaded, entering {}\n",
        r.tasks.name_of(first)
    ));
    let Some(slot) = r.tasks.slot_mut(first) else {
        fail(format_args!("task {} has no context", first.slot()))
    };
    slot.space.activate();
    slot.space.entering_user();
    let frame = &raw mut slot.frame;
    drop(guard);
    if cpus > 1 {
        arch::cpus_release();
    }
    // The frame lies in the static `RUNNER`: it stays put while the task
    // lives, and traps from U-mode save into it.
    arch::enter_user(frame)
}

fn fault_kind(trap: Trap) -> Option<(FaultKind, u64)> {
    match trap {
        Trap::PageFault { addr, access } => {
            let kind = match access {
                Access::Read => FaultKind::LoadPageFault,
                Access::Write => FaultKind::StorePageFault,
                Access::Execute => FaultKind::InstructionPageFault,
            };
            Some((kind, addr as u64))
        }
        Trap::IllegalInstruction(bits) => Some((FaultKind::IllegalInstruction, bits as u64)),
        Trap::Breakpoint => Some((FaultKind::Breakpoint, 0)),
        Trap::Exception { value, .. } => Some((FaultKind::MisalignedAccess, value as u64)),
        _ => None,
    }
}

/// A system call by the running task, whose registers the trap vector
/// saved in its own frame; returns the frame of the task that runs next.
/// The IPC fast path and the ioreq completion's run first, each in a
/// function of its own that saves few registers and decides nothing else;
/// every other call, and a call they decline, goes through [`user_trap`].
/// `nr`, the call's number when the trap vector passes it on, sends the
/// calls the fast paths never take straight to the general path.
pub fn user_syscall(nr: Option<usize>) -> *mut TrapFrame {
    arch::uspace::left_user_here();
    if nr.is_none_or(ipc_fast::may_be_fast)
        && let Some(frame) = ipc_fast::fast_syscall(nr)
    {
        return frame;
    }
    if nr.is_none_or(ipc_fast::may_complete_fast)
        && let Some(frame) = ipc_fast::fast_complete()
    {
        return frame;
    }
    user_trap(Trap::Syscall)
}

/// Handles a trap from the running task, whose registers the trap vector
/// saved in its own frame; returns the frame of the task that runs next
/// (in the static `RUNNER`, so it stays valid once the lock is released;
/// user tasks run on this CPU alone, so nothing touches it before the
/// vector restores it). vCPUs picked on the way run first ([`drive`]).
pub fn user_trap(trap: Trap) -> *mut TrapFrame {
    arch::uspace::left_user_here();
    let mut guard = lock();
    let r = &mut *guard;
    // The task this CPU ran; none if another CPU took it off meanwhile (a
    // kill from its timer path): what it trapped for is moot.
    let ran = r.objects.sched.current();
    let decision = match ran {
        Some(current) => decide_after_trap(r, current, trap),
        None => r.objects.sched.schedule(),
    };
    let step = next_step(r, decision);
    let (guard, next) = drive(guard, step);
    to_user(guard, next, ran)
}

/// Returns this CPU to user task `next` (`ran` is the one it ran before,
/// whose space is still active): its space, then its frame (in the static
/// `RUNNER`, so it stays valid once the lock is released; a task runs on
/// one CPU at a time, so nothing touches the frame before the vector
/// restores it).
fn to_user(
    mut guard: spin::MutexGuard<'static, Runner>,
    next: TaskId,
    ran: Option<TaskId>,
) -> *mut TrapFrame {
    let Some(slot) = guard.tasks.slot_mut(next) else {
        fail(format_args!("task {} has no context", next.slot()))
    };
    if Some(next) != ran {
        slot.space.activate();
    }
    slot.space.entering_user();
    let frame = &raw mut slot.frame;
    unlock(guard);
    frame
}

/// What the scheduler does after `current`, the task this CPU runs,
/// trapped for `trap`.
fn decide_after_trap(r: &mut Runner, current: TaskId, trap: Trap) -> Decision {
    match trap {
        Trap::Syscall => {
            let Some(slot) = r.tasks.slot_mut(current) else {
                fail(format_args!("task {} has no context", current.slot()))
            };
            slot.frame.step_past_syscall();
            let (nr, args) = slot.frame.syscall();
            syscall::dispatch(&mut r.objects, &mut r.tasks, current, nr, args)
        }
        Trap::TimerInterrupt => {
            ticks::on_timer(arch::timer_now());
            after_timer(r)
        }
        // Another CPU kicked this one: it decides again.
        Trap::OtherInterrupt(_) => r.objects.sched.schedule(),
        other => match fault_kind(other) {
            Some((kind, address)) => {
                let reason = ExitReason::Faulted { kind, address };
                syscall::kill(&mut r.objects, &mut r.tasks, current, reason)
            }
            None => Decision::Continue,
        },
    }
}

/// Where a CPU other than the boot CPU goes once released: it schedules
/// vCPUs, and services where the arch runs tasks on every CPU
/// (`arch::TASKS_ON_EVERY_CPU`; else they stay on the boot CPU, see
/// `Scheduler::share_only`), until the machine stops.
pub fn run_cpu() -> ! {
    let mut guard = lock();
    arm_timer(&guard);
    let decision = guard.objects.sched.schedule();
    let step = next_step(&mut guard, decision);
    let (guard, task) = drive(guard, step);
    // A service (where the arch lets them run on every CPU): from here on
    // this CPU comes back through the trap vector.
    arch::enter_user(to_user(guard, task, None))
}

/// What a CPU does next, decided under the kernel lock.
enum Step {
    /// Return to this user task.
    User(TaskId),
    /// Enter a guest outside the lock: VM `vm`'s vCPU `vcpu`, whose
    /// scheduler task is `task`; its exit is handled under the lock again.
    Guest {
        entry: arch::GuestEntry,
        vm: usize,
        vcpu: usize,
        task: TaskId,
    },
    /// Nothing is ready: wait for an interrupt outside the lock.
    Idle,
}

/// Carries out `step` and the ones after it until a user task is to run:
/// guests are entered and idle waits made with the kernel lock released
/// (and the CPUs the scheduler asked to decide again kicked), every exit
/// and wake-up handled with it held. Returns the lock and the user task.
fn drive(
    mut guard: spin::MutexGuard<'static, Runner>,
    mut step: Step,
) -> (spin::MutexGuard<'static, Runner>, TaskId) {
    loop {
        step = match step {
            Step::User(task) => return (guard, task),
            Step::Guest {
                entry,
                vm,
                vcpu,
                task,
            } => {
                let (held, next) = run_guest(guard, entry, (vm, vcpu), task);
                guard = held;
                next
            }
            Step::Idle => {
                let (held, next) = idle(guard);
                guard = held;
                next
            }
        };
    }
}

/// Enters VM `vm`'s vCPU `vcpu` (task `task`) at `entry` with the lock
/// released, and handles its exit with it held: the next step. Not
/// inlined on RISC-V, for the reason [`idle`] is not: in [`drive`]'s
/// loop, the constants of the exit's handling were computed before the
/// loop, on every call, though most calls enter a guest once (and
/// [`after_exit`] was kept out of line for it).
#[cfg_attr(target_arch = "riscv64", inline(never))]
fn run_guest(
    guard: spin::MutexGuard<'static, Runner>,
    entry: arch::GuestEntry,
    (vm, vcpu): (usize, usize),
    task: TaskId,
) -> (spin::MutexGuard<'static, Runner>, Step) {
    unlock(guard);
    entry.enter();
    let mut guard = lock();
    let next = after_exit(&mut guard, vm, vcpu, task);
    (guard, next)
}

/// The CPU waits for an interrupt with the lock released, then decides
/// again. A CPU other than the boot CPU sleeps without ticks until
/// another kicks it (it has work then): the boot CPU's ticks do the timer
/// work for all (sleepers' wake-ups, time-outs, the console) and kick the
/// CPUs they make work for. Idle CPUs that woke every tick for nothing
/// only contended for the kernel lock.
///
/// Not inlined, nor (on RISC-V) is [`run_guest`]: in [`drive`]'s loop,
/// the compiler computed every constant of their paths before the loop,
/// on each call (some 130 instructions per guest I/O round trip).
#[inline(never)]
fn idle(guard: spin::MutexGuard<'static, Runner>) -> (spin::MutexGuard<'static, Runner>, Step) {
    let tickless = arch::this_cpu() != 0;
    if tickless {
        arch::timer_set_deadline(u64::MAX);
    }
    unlock(guard);
    arch::wait_for_interrupt();
    let mut guard = lock();
    if tickless {
        ticks::restart_here(arch::timer_now());
        arm_timer(&guard);
    }
    // Woken by a kick alone (another CPU made a task ready), nothing
    // timed is due: the CPU only decides again.
    let decision = if timer_due(&guard) {
        after_timer(&mut guard)
    } else {
        guard.objects.sched.schedule()
    };
    let step = next_step(&mut guard, decision);
    (guard, step)
}

/// Follows `decision` until something is to run:
/// vCPUs picked on the way start their runs, and those that cannot run
/// are handed back to the scheduler at once. A switch to one task, the
/// common decision (after an I/O exit, to the ioreq task), is taken here
/// without the setup of [`follow`]'s loop, which takes the rest and what
/// a run that cannot start leaves to decide.
#[inline]
fn next_step(r: &mut Runner, decision: Decision) -> Step {
    let Decision::SwitchTo(task) = decision else {
        return follow(r, decision);
    };
    match r.objects.vms.vcpu_of_task(task) {
        None => Step::User(task),
        Some((vm, vcpu)) => start_run(r, task, vm, vcpu).unwrap_or_else(|after| follow(r, after)),
    }
}

/// [`next_step`]'s loop. Not inlined: inlined into the trap handler, the
/// vCPU path's many addresses and constants were computed and spilled to
/// the stack on every trap (about 100 instructions per guest I/O round
/// trip).
#[inline(never)]
fn follow(r: &mut Runner, mut decision: Decision) -> Step {
    loop {
        let next = match decision {
            // The CPU's task goes on; with none (taken off from another
            // CPU), the scheduler picks.
            Decision::Continue => match r.objects.sched.current() {
                Some(task) => task,
                None => {
                    decision = r.objects.sched.schedule();
                    continue;
                }
            },
            Decision::SwitchTo(task) => task,
            Decision::Idle => return Step::Idle,
        };
        let Some((vm, vcpu)) = r.objects.vms.vcpu_of_task(next) else {
            return Step::User(next);
        };
        match start_run(r, next, vm, vcpu) {
            Ok(step) => return step,
            Err(after) => decision = after,
        }
    }
}

/// Starts a run of VM `vm`'s vCPU `vcpu` (scheduler task `task`): the step
/// that enters it, or the scheduler's decision when it cannot run. Not
/// inlined on RISC-V, for the reason [`idle`] is not (x86 instructions
/// carry their constants: inlined with [`after_exit`], a round trip there
/// is 32 instructions cheaper under SVM, 39 under VMX).
#[cfg_attr(target_arch = "riscv64", inline(never))]
fn start_run(r: &mut Runner, task: TaskId, vm: usize, vcpu: usize) -> Result<Step, Decision> {
    let Some(guest) = r.tasks.guests.vms.get_mut(vm).and_then(Option::as_mut) else {
        tell_controller(r, vm);
        return Err(r.objects.sched.schedule());
    };
    let begun = guest.begin(vcpu);
    begun_run(r, task, vm, vcpu, begun)
}

/// [`start_run`] once the arch layer began the run (`begun`, from
/// `GuestVm::begin`): the step that enters the guest, or the scheduler's
/// decision when the vCPU cannot run.
#[inline(always)]
fn begun_run(
    r: &mut Runner,
    task: TaskId,
    vm: usize,
    vcpu: usize,
    begun: Result<arch::GuestEntry, RunOutcome>,
) -> Result<Step, Decision> {
    match begun {
        Ok(entry) => {
            first_guest_here(r, vm, vcpu);
            Ok(Step::Guest {
                entry,
                vm,
                vcpu,
                task,
            })
        }
        // The CPU that holds it lets the run go once it has the lock, and
        // then asks this one to decide again (`after_exit`): this one keeps
        // the task and waits with the lock free. (A task put back in the
        // ready queue instead was picked again here at once, and a CPU
        // that sleeps without ticks then kept it for good.)
        Err(RunOutcome::Elsewhere) => Ok(Step::Idle),
        Err(outcome) => Err(run_over(r, vm, vcpu, outcome)),
    }
}

/// Per CPU: whether it has entered a guest yet.
static ENTERED_A_GUEST: crate::arch::per_cpu::PerCpu<AtomicBool> =
    crate::arch::per_cpu::PerCpu([const { AtomicBool::new(false) }; crate::obj::MAX_CPUS]);

/// Logs the first guest entry of each CPU but the boot CPU (which vCPU
/// it is): the boot log shows that the other CPUs run vCPUs.
#[inline(always)]
fn first_guest_here(r: &Runner, vm: usize, vcpu: usize) {
    let cpu = arch::this_cpu();
    // Only this CPU sets its flag: a load on every entry after the first.
    if cpu != 0 && !ENTERED_A_GUEST.here().load(Ordering::Relaxed) {
        log_first_guest(r, cpu, vm, vcpu);
    }
}

/// [`first_guest_here`]'s first entry on CPU `cpu`.
#[cold]
#[inline(never)]
fn log_first_guest(r: &Runner, cpu: usize, vm: usize, vcpu: usize) {
    ENTERED_A_GUEST.here().store(true, Ordering::Relaxed);
    if let Some(Some(guest)) = r.tasks.guests.vms.get(vm) {
        let name = &guest.vm.name;
        klog::print(format_args!(
            "mica: cpu {cpu} runs its first vCPU ({name} vcpu {vcpu})\n"
        ));
    }
}

/// The guest this CPU ran for VM `vm`'s vCPU `vcpu` (task `task`) exited:
/// the exit is handled and the run goes on, or the scheduler decides. A
/// run the scheduler took off this CPU meanwhile (a pause, reset or
/// destroy from another CPU) is left. Part of [`run_guest`], its one
/// caller.
#[inline(always)]
fn after_exit(r: &mut Runner, vm: usize, vcpu: usize, task: TaskId) -> Step {
    let abandoned = r.objects.sched.current() != Some(task);
    let Some(guest) = r.tasks.guests.vms.get_mut(vm).and_then(Option::as_mut) else {
        let decision = r.objects.sched.schedule();
        return next_step(r, decision);
    };
    match guest.resume(vcpu, abandoned) {
        Ok(entry) => {
            // On other CPUs at once; at the end of a run, `run_over` sees
            // to it.
            wake_siblings(&mut r.objects, vm, guest);
            Step::Guest {
                entry,
                vm,
                vcpu,
                task,
            }
        }
        // The common end of a run, an access for the ioreq task: what
        // `run_over` does for it, with the VM found once, and when the
        // task waits for it (`control::io_exit_direct`) it runs next.
        Err(RunOutcome::BlockedOnIo) if !abandoned => {
            wake_siblings(&mut r.objects, vm, guest);
            // The exit tells the ioreq task of posted writes too.
            guest.take_posted_news();
            guest.vcpus.io_exit_at(arch::timer_now());
            match io_exit(r, vm, vcpu) {
                Ok(server) => Step::User(server),
                Err(decision) => next_step(r, decision),
            }
        }
        Err(outcome) => {
            if abandoned {
                // A CPU may have picked the task since and wait for this
                // one to let the run go (`start_run`).
                r.objects.sched.let_go(task);
            }
            let decision = run_over(r, vm, vcpu, outcome);
            next_step(r, decision)
        }
    }
}

/// The siblings `vm`'s running vCPU started or sent an interrupt may run.
#[inline]
fn wake_siblings(objects: &mut KernelObjects, vm: usize, guest: &mut arch::GuestVm) {
    let woken = guest.vcpus.take_wakeups();
    if woken != 0 {
        control::wake(objects, vm, woken);
    }
}

/// A run of VM `vm`'s vCPU `vcpu` ended with `outcome` (or could not
/// start): what it left for others is passed on, and the scheduler hears.
fn run_over(r: &mut Runner, vm: usize, vcpu: usize, outcome: RunOutcome) -> Decision {
    let Some(guest) = r.tasks.guests.vms.get_mut(vm).and_then(Option::as_mut) else {
        tell_controller(r, vm);
        return r.objects.sched.schedule();
    };
    wake_siblings(&mut r.objects, vm, guest);
    // Writes it posted reach the ioreq task now; an I/O exit tells it anyway.
    if guest.take_posted_news()
        && outcome != RunOutcome::BlockedOnIo
        && let Some((task, bits)) = control::posted(&mut r.objects, vm)
    {
        syscall_vm::deliver(&mut r.tasks, task, bits);
    }
    after_run(r, vm, vcpu, outcome)
}

/// What the scheduler does after `vm`'s vCPU `vcpu` ran until `outcome`.
fn after_run(r: &mut Runner, vm: usize, vcpu: usize, outcome: RunOutcome) -> Decision {
    let Some(guest) = r.tasks.guests.vms.get_mut(vm).and_then(Option::as_mut) else {
        return r.objects.sched.schedule();
    };
    match outcome {
        RunOutcome::Preempted => after_timer(r),
        RunOutcome::BlockedOnIo => {
            guest.vcpus.io_exit_at(arch::timer_now());
            io_exit(r, vm, vcpu).map_or_else(|decision| decision, Decision::SwitchTo)
        }
        RunOutcome::Sleeping(until) => {
            control::sleep(&mut r.objects, vm, vcpu, until);
            arm_timer(r);
            r.objects.sched.schedule()
        }
        RunOutcome::HartStopped => {
            control::hart_stopped(&mut r.objects, vm, vcpu);
            r.objects.sched.schedule()
        }
        // Not an end of a run (`next_step` takes it before).
        RunOutcome::Elsewhere => r.objects.sched.schedule(),
        RunOutcome::Left(_) => {
            klog::print(format_args!("mica: {}\n", guest.vm.report()));
            tell_controller(r, vm);
            r.objects.sched.schedule()
        }
    }
}

/// `vm`'s vCPU `vcpu` blocked on an access: its ioreq task hears. The
/// task, if it waited for it and runs next on this CPU (a service task,
/// never a vCPU's); else what the scheduler decides.
#[inline(always)]
fn io_exit(r: &mut Runner, vm: usize, vcpu: usize) -> Result<TaskId, Decision> {
    if let Some((task, bits, _)) = control::io_exit_direct(&mut r.objects, vm, vcpu) {
        syscall_vm::deliver(&mut r.tasks, task, bits);
        return Ok(task);
    }
    if let Some((task, bits)) = control::io_exit(&mut r.objects, vm, vcpu) {
        syscall_vm::deliver(&mut r.tasks, task, bits);
    }
    Err(r.objects.sched.schedule())
}

/// `vm` ended: its vCPU is held for good and its controller is told.
fn tell_controller(r: &mut Runner, vm: usize) {
    if let Some((task, bits)) = control::ended(&mut r.objects, vm) {
        syscall_vm::deliver(&mut r.tasks, task, bits);
    }
}

/// Whether a tick fell on this CPU or a sleeping vCPU's wake-up is due:
/// the timer work of [`after_timer`] has something to do.
fn timer_due(r: &Runner) -> bool {
    ticks::tick_pending()
        || control::next_wakeup(&r.objects).is_some_and(|t| t <= arch::timer_now())
}

/// After a timer interrupt (already counted by `ticks::on_timer`): wakes
/// the vCPUs whose deadline passed, polls the console, ends timed calls
/// and waits that fell due, charges the running task if it was a tick,
/// and arms the timer for the next tick or the next wake-up, whichever
/// comes first.
fn after_timer(r: &mut Runner) -> Decision {
    control::wake_sleepers(&mut r.objects, arch::timer_now());
    console::poll(r);
    syscall::time_out(&mut r.objects, &mut r.tasks, ticks::count());
    arm_timer(r);
    if let Some(decision) = chaos_kill(r) {
        return decision;
    }
    if ticks::take_tick() {
        r.objects.sched.tick()
    } else {
        r.objects.sched.schedule()
    }
}

/// Kills the service `mica.chaos` names next, if one is due and alive;
/// or makes it hang.
fn chaos_kill(r: &mut Runner) -> Option<Decision> {
    // Without the option nothing is computed on the timer path.
    let epoch = r.tasks.epoch;
    let due = r.tasks.chaos.as_mut()?.due(since_ms(epoch));
    match due.map(Fault::of) {
        Some(Fault::Kill(name)) => {
            let victim = r.tasks.live_task_named(&r.objects, name)?;
            return Some(syscall::kill(
                &mut r.objects,
                &mut r.tasks,
                victim,
                ExitReason::Chaos,
            ));
        }
        Some(Fault::Hang(name)) => r.tasks.to_hang = Some(name),
        None => {}
    }
    chaos_hang(r);
    None
}

/// Makes the service `mica.chaos` chose hang, if it now waits to receive:
/// it leaves the endpoint's receivers and is held for good, so its callers
/// queue unanswered (it no longer counts as hung once killed).
fn chaos_hang(r: &mut Runner) {
    let Some(name) = r.tasks.to_hang else {
        return;
    };
    let Some(victim) = r.tasks.live_task_named(&r.objects, name) else {
        return;
    };
    if r.objects.sched.state(victim) != Some(TaskState::BlockedRecv)
        || !r.objects.endpoints.cancel_recv(victim)
    {
        return;
    }
    // BlockedRecv was checked: a blocked task may wait otherwise.
    let _ = r.objects.sched.rewait(victim, TaskState::Held);
    r.tasks.to_hang = None;
    klog::print(format_args!(
        "mica: chaos: task {} ({name}) hangs ({})\n",
        victim.slot(),
        crate::chaos::BOOT_OPTION
    ));
}

/// Milliseconds of timer time since the count `start`.
fn since_ms(start: u64) -> u64 {
    let hz = ticks::clock_hz().max(1);
    let counts = arch::timer_now().saturating_sub(start);
    u64::try_from(u128::from(counts) * 1000 / u128::from(hz)).unwrap_or(u64::MAX)
}

/// Arms the timer for the next tick, or earlier for a sleeping vCPU's
/// deadline (so its `wfi` ends when its guest timer is due).
fn arm_timer(r: &Runner) {
    arch::timer_set_deadline(ticks::deadline(control::next_wakeup(&r.objects)));
}
