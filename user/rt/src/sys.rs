//! The system calls of `ipc::syscall`, one safe wrapper each, and the task
//! entry point. The `ecall` stubs and the IPC buffer accessors are the only
//! unsafe code of a task.

use ipc::Error;
use ipc::MAX_MESSAGE_SIZE;
use ipc::syscall::{IPC_BUFFER, Sysno, error_of};

/// What the kernel tells a task at start.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Start {
    /// The IPC buffer's address (always `ipc::syscall::IPC_BUFFER`).
    pub ipc_buffer: usize,
    /// How many times the supervisor restarted this task (0 at first start).
    pub restarts: usize,
}

#[cfg(all(target_arch = "riscv64", target_os = "none"))]
core::arch::global_asm!(
    r#"
    .section .text.entry
    .globl _start
_start:
    /* sp, a0 and a1 come from the kernel; a zero ra ends backtraces. */
    li      ra, 0
    call    __mica_rt_start
1:  j       1b
    "#
);

/// The raw call: number, six arguments; returns a0-a3.
#[cfg(all(target_arch = "riscv64", target_os = "none"))]
fn raw(call: Sysno, args: [usize; 6]) -> [usize; 4] {
    let (a0, a1, a2, a3): (usize, usize, usize, usize);
    // SAFETY: `ecall` enters the kernel, which preserves every register but
    // a0-a3 and only touches this task's memory through the IPC buffer page
    // (which no Rust reference aliases across the call, see `with_buffer`).
    unsafe {
        core::arch::asm!(
            "ecall",
            inlateout("a0") args[0] => a0,
            inlateout("a1") args[1] => a1,
            inlateout("a2") args[2] => a2,
            inlateout("a3") args[3] => a3,
            in("a4") args[4],
            in("a5") args[5],
            in("a7") call as usize,
            options(nostack),
        );
    }
    [a0, a1, a2, a3]
}

/// Host builds (for `cargo check`) have no kernel: every call fails.
#[cfg(not(all(target_arch = "riscv64", target_os = "none")))]
fn raw(_call: Sysno, _args: [usize; 6]) -> [usize; 4] {
    [ipc::syscall::status_of(Error::KernelRefused), 0, 0, 0]
}

fn checked(call: Sysno, args: [usize; 6]) -> Result<[usize; 3], Error> {
    let [status, a1, a2, a3] = raw(call, args);
    match error_of(status) {
        None => Ok([a1, a2, a3]),
        Some(e) => Err(e),
    }
}

/// Runs `f` on the message part of the IPC buffer. No reference to the
/// buffer outlives `f`, so no system call runs while one exists.
pub fn with_buffer<R>(f: impl FnOnce(&mut [u8; MAX_MESSAGE_SIZE]) -> R) -> R {
    // SAFETY: the kernel maps IPC_BUFFER read-write in every task, 4 KiB
    // long and page-aligned; the task is single-threaded and this reference
    // is the only one and ends before `f` returns.
    let buffer = unsafe { &mut *(IPC_BUFFER as *mut [u8; MAX_MESSAGE_SIZE]) };
    f(buffer)
}

/// Prints `line` on the console, prefixed with the task's name.
pub fn debug_write(line: &[u8]) -> Result<(), Error> {
    checked(
        Sysno::DebugWrite,
        [line.as_ptr() as usize, line.len(), 0, 0, 0, 0],
    )
    .map(|_| ())
}

/// Ends the task with `status`.
pub fn exit(status: u32) -> ! {
    let _ = raw(Sysno::Exit, [status as usize, 0, 0, 0, 0, 0]);
    // The kernel never returns from exit.
    loop {
        core::hint::spin_loop();
    }
}

/// Lets other tasks of the same priority run.
pub fn yield_now() {
    let _ = raw(Sysno::Yield, [0; 6]);
}

/// Sends the first `len` buffer bytes through endpoint slot `ep` and waits
/// for the reply (in the buffer); returns its length.
pub fn call(ep: usize, len: usize) -> Result<usize, Error> {
    checked(Sysno::Call, [ep, len, 0, 0, 0, 0]).map(|[n, ..]| n)
}

/// Waits for a message on endpoint slot `ep`; returns (length, badge).
pub fn recv(ep: usize) -> Result<(usize, u64), Error> {
    checked(Sysno::Recv, [ep, 0, 0, 0, 0, 0]).map(|[n, badge, _]| (n, badge as u64))
}

/// Answers the last call with the first `len` buffer bytes.
pub fn reply(len: usize) -> Result<(), Error> {
    checked(Sysno::Reply, [len, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Replies with `len` buffer bytes (if owed), then receives on `ep`.
pub fn reply_recv(ep: usize, len: usize) -> Result<(usize, u64), Error> {
    checked(Sysno::ReplyRecv, [ep, len, 0, 0, 0, 0]).map(|[n, badge, _]| (n, badge as u64))
}

/// Signals notification slot `ntf` with its capability's bits.
pub fn signal(ntf: usize) -> Result<(), Error> {
    checked(Sysno::Signal, [ntf, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Waits for bits on notification slot `ntf`.
pub fn wait(ntf: usize) -> Result<u64, Error> {
    checked(Sysno::Wait, [ntf, 0, 0, 0, 0, 0]).map(|[bits, ..]| bits as u64)
}

/// Takes the bits of notification slot `ntf` without waiting.
pub fn poll(ntf: usize) -> Result<u64, Error> {
    checked(Sysno::Poll, [ntf, 0, 0, 0, 0, 0]).map(|[bits, ..]| bits as u64)
}

/// Supervisor only: starts a fresh copy of the dead task in `task_slot`;
/// returns the new task's slot.
pub fn restart(task_slot: usize) -> Result<usize, Error> {
    checked(Sysno::Restart, [task_slot, 0, 0, 0, 0, 0]).map(|[slot, ..]| slot)
}
