//! Service tasks on the running kernel: loads the task images embedded at
//! build time (`MICA_TASK_*`, see `build.rs`), gives them their
//! capabilities, enters the first one, and turns every trap from U-mode
//! into a system call, a preemption tick or a contained fault. The
//! decisions are made by `crate::syscall` and `crate::obj`; this file only
//! moves registers and bytes, and switches address spaces.

// Registers, addresses and notification words are all 64 bits wide on the
// targets with user tasks (RV64, x86_64).
#![allow(clippy::cast_possible_truncation)]

use ipc::Error;
use ipc::syscall::{IPC_BUFFER, STACK_TOP};

use crate::arch::{self, AddressSpace, TrapFrame};
use crate::kmain::FRAMES;
use crate::obj::MAX_TASKS;
use crate::obj::cap::{Capability, Object};
use crate::obj::ids::{Badge, TaskId};
use crate::obj::objects::KernelObjects;
use crate::obj::rights::Rights;
use crate::obj::sched::{Decision, Priority};
use crate::obj::task::{DeathNotice, ExitReason, FaultKind};
use crate::syscall::{self, Machine};
use crate::trap::{Access, Trap};
use crate::{ExitStatus, klog, ticks};

/// One task image and how it starts.
struct TaskImage {
    name: &'static str,
    elf: &'static [u8],
    priority: usize,
}

const INIT: usize = 0;
const HELLO: usize = 1;
static IMAGES: [TaskImage; 3] = [
    TaskImage {
        name: "init",
        elf: include_bytes!(concat!(env!("OUT_DIR"), "/init.elf")),
        priority: 10,
    },
    TaskImage {
        name: "hello",
        elf: include_bytes!(concat!(env!("OUT_DIR"), "/hello.elf")),
        priority: 8,
    },
    TaskImage {
        name: "crasher",
        elf: include_bytes!(concat!(env!("OUT_DIR"), "/crasher.elf")),
        priority: 2,
    },
];

/// Whether the kernel was built with task images.
pub fn has_tasks() -> bool {
    !IMAGES[INIT].elf.is_empty()
}

#[derive(Clone, Copy)]
struct Slot {
    space: AddressSpace,
    frame: TrapFrame,
    image: usize,
    restarts: usize,
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
}

static RUNNER: spin::Mutex<Runner> = spin::Mutex::new(Runner {
    objects: KernelObjects::new(),
    tasks: Tasks {
        slots: [None; MAX_TASKS],
        kernel_root: 0,
        supervisor: None,
    },
});

fn fail(what: core::fmt::Arguments<'_>) -> ! {
    klog::print(format_args!("mica: {what}\n"));
    arch::shutdown(ExitStatus::Failure)
}

impl Tasks {
    /// Loads image `image` as a new ready task.
    fn spawn(
        &mut self,
        objects: &mut KernelObjects,
        image: usize,
        restarts: usize,
    ) -> Result<TaskId, Error> {
        let spec = &IMAGES[image];
        let priority = Priority::new(spec.priority).ok_or(Error::InvalidArgument)?;
        let id = objects
            .spawn(spec.name, priority)
            .map_err(|_| Error::KernelRefused)?;
        // ASID 0 is the kernel's; tasks use slot + 1.
        let asid = u16::try_from(id.slot() + 1).map_err(|_| Error::KernelRefused)?;
        let loaded = arch::load_task(&mut FRAMES.lock(), self.kernel_root, spec.elf, asid)
            .map_err(|e| {
                klog::print(format_args!(
                    "mica: cannot load task {}: {e:?}\n",
                    spec.name
                ));
                Error::KernelRefused
            })?;
        let frame = TrapFrame::for_user(loaded.entry as usize, STACK_TOP, IPC_BUFFER, restarts);
        self.slots[id.slot()] = Some(Slot {
            space: loaded.space,
            frame,
            image,
            restarts,
        });
        Ok(id)
    }

    fn slot_mut(&mut self, task: TaskId) -> Option<&mut Slot> {
        self.slots.get_mut(task.slot()).and_then(Option::as_mut)
    }
}

impl Runner {
    fn give(&mut self, task: TaskId, slot: usize, object: Object, rights: Rights) {
        let cap = Capability { object, rights };
        let given = self
            .objects
            .tasks
            .get_mut(task)
            .ok()
            .and_then(|t| t.caps_mut().insert_at(slot, cap).ok());
        if given.is_none() {
            fail(format_args!(
                "cannot give task {} its capabilities",
                task.slot()
            ));
        }
    }
}

impl Machine for Tasks {
    fn set_result(&mut self, task: TaskId, status: usize, values: [usize; 3]) {
        if let Some(slot) = self.slot_mut(task) {
            slot.frame.set_result(status, values);
        }
    }

    fn copy_message(&mut self, from: TaskId, to: TaskId, len: usize) {
        let from = self.slots.get(from.slot()).copied().flatten();
        let to = self.slots.get(to.slot()).copied().flatten();
        if let (Some(from), Some(to)) = (from, to) {
            arch::copy_message(&from.space, &to.space, len);
        }
    }

    fn read_user(&mut self, task: TaskId, ptr: usize, out: &mut [u8]) -> bool {
        self.slot_mut(task)
            .is_some_and(|slot| slot.space.read_user(ptr, out))
    }

    fn console_line(&mut self, task: TaskId, line: &[u8]) {
        let name = self
            .slots
            .get(task.slot())
            .copied()
            .flatten()
            .map_or("?", |s| IMAGES[s.image].name);
        let text = core::str::from_utf8(line).unwrap_or("<not UTF-8>");
        klog::print(format_args!("{name}: {text}\n"));
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

    fn restart(
        &mut self,
        objects: &mut KernelObjects,
        dead: &DeathNotice,
    ) -> Result<TaskId, Error> {
        let old = self.slots[dead.task.slot()]
            .take()
            .ok_or(Error::InvalidArgument)?;
        // The old frames stay allocated: freeing a space is not written yet.
        self.spawn(objects, old.image, old.restarts + 1)
    }
}

/// Loads every task, wires their capabilities and enters init.
pub fn start(kernel_root: u64) -> ! {
    let mut guard = RUNNER.lock();
    let r = &mut *guard;
    r.tasks.kernel_root = kernel_root;
    let (Ok(ep), Ok(deaths)) = (
        r.objects.endpoints.create(),
        r.objects.notifications.create(),
    ) else {
        fail(format_args!("cannot create the first kernel objects"))
    };
    let mut ids = [None; 3];
    for (image, id) in ids.iter_mut().enumerate() {
        match r.tasks.spawn(&mut r.objects, image, 0) {
            Ok(task) => *id = Some(task),
            Err(e) => fail(format_args!(
                "cannot start task {}: {e}",
                IMAGES[image].name
            )),
        }
    }
    let [Some(init), Some(hello), Some(_)] = ids else {
        fail(format_args!("tasks missing"))
    };
    let _ = HELLO;
    r.objects.set_supervisor_notification(deaths);
    r.tasks.supervisor = Some(init);
    // init: slot 0 calls the vm-manager endpoint, slot 1 hears of deaths.
    let call = Object::Endpoint {
        id: ep,
        badge: Badge(1),
    };
    r.give(init, 0, call, Rights::CALL);
    let notes = Object::Notification {
        id: deaths,
        bits: 0,
    };
    r.give(init, 1, notes, Rights::RECV);
    // hello: slot 0 receives on it.
    let recv = Object::Endpoint {
        id: ep,
        badge: Badge(0),
    };
    r.give(hello, 0, recv, Rights::RECV);
    let Decision::SwitchTo(first) = r.objects.sched.schedule() else {
        fail(format_args!("no task to run"))
    };
    let Some(slot) = r.tasks.slots[first.slot()] else {
        fail(format_args!("task {} has no context", first.slot()))
    };
    klog::print(format_args!(
        "mica: {} tasks loaded, entering init\n",
        IMAGES.len()
    ));
    drop(guard);
    slot.space.activate();
    arch::enter_user(&slot.frame)
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

/// Handles a trap from the running task, whose registers are in `frame`;
/// on return `frame` holds the registers of whichever task runs next.
pub fn user_trap(frame: &mut TrapFrame, trap: Trap) {
    let mut guard = RUNNER.lock();
    let r = &mut *guard;
    let Some(current) = r.objects.sched.current() else {
        fail(format_args!(
            "trap from U-mode with no current task: {trap:?}"
        ))
    };
    if let Some(slot) = r.tasks.slot_mut(current) {
        slot.frame = *frame;
    }
    let decision = match trap {
        Trap::Syscall => {
            if let Some(slot) = r.tasks.slot_mut(current) {
                slot.frame.sepc += 4;
            }
            let (nr, args) = frame.syscall();
            syscall::dispatch(&mut r.objects, &mut r.tasks, current, nr, args)
        }
        Trap::TimerInterrupt => {
            let now = arch::timer_now();
            arch::timer_set_deadline(ticks::on_tick(now));
            r.objects.sched.tick()
        }
        Trap::OtherInterrupt(_) => Decision::Continue,
        other => match fault_kind(other) {
            Some((kind, address)) => {
                let reason = ExitReason::Faulted { kind, address };
                syscall::kill(&mut r.objects, &mut r.tasks, current, reason)
            }
            None => Decision::Continue,
        },
    };
    let next = match decision {
        Decision::Continue => current,
        Decision::SwitchTo(next) => next,
        Decision::Idle => idle(r),
    };
    let Some(slot) = r.tasks.slots.get(next.slot()).copied().flatten() else {
        fail(format_args!("task {} has no context", next.slot()))
    };
    *frame = slot.frame;
    if next != current {
        slot.space.activate();
    }
}

/// Nothing is ready: every task waits for another. No device interrupts
/// reach tasks yet, so nothing can wake them; say so and wait.
fn idle(_: &mut Runner) -> TaskId {
    klog::print(format_args!("mica: every task is blocked; idling\n"));
    loop {
        arch::wait_for_interrupt();
    }
}
