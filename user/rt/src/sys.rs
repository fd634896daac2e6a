//! The system calls of `ipc::syscall`, one safe wrapper each, and the task
//! entry point (RISC-V `ecall`, x86_64 `syscall`). The call stubs and the IPC buffer accessors are the only
//! unsafe code of a task.

use ipc::Error;
use ipc::MAX_MESSAGE_SIZE;
use ipc::syscall::{
    IOREQ_BADGE, IPC_BUFFER, IPC_BUFFER_SIZE, MAX_CALL_TICKS, OK, Sysno, TICK_HZ, error_of,
};

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
#[inline(always)]
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

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
core::arch::global_asm!(
    r#"
    .section .text.entry
    .globl _start
_start:
    /* rsp, rdi and rsi come from the kernel; a zero rbp ends backtraces,
       and the call leaves rsp 8 below a 16-byte boundary as the ABI says. */
    xor     ebp, ebp
    call    __mica_rt_start
1:  jmp     1b
    "#
);

/// The raw call (`ipc::syscall`'s x86_64 mapping): number in rax, six
/// arguments; returns rax, rdi, rsi, rdx.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
#[inline(always)]
fn raw(call: Sysno, args: [usize; 6]) -> [usize; 4] {
    let (status, r1, r2, r3): (usize, usize, usize, usize);
    // SAFETY: `syscall` enters the kernel, which preserves every register
    // but rax, rdi, rsi, rdx (results) and rcx, r11 (used by the
    // instruction, declared clobbered), and only touches this task's memory
    // through the IPC buffer page (which no Rust reference aliases across
    // the call, see `with_buffer`).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") call as usize => status,
            inlateout("rdi") args[0] => r1,
            inlateout("rsi") args[1] => r2,
            inlateout("rdx") args[2] => r3,
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    [status, r1, r2, r3]
}

/// Host builds (for `cargo check`) have no kernel: every call fails.
#[cfg(not(target_os = "none"))]
fn raw(_call: Sysno, _args: [usize; 6]) -> [usize; 4] {
    [ipc::syscall::status_of(Error::KernelRefused), 0, 0, 0]
}

#[inline(always)]
pub(crate) fn checked(call: Sysno, args: [usize; 6]) -> Result<[usize; 3], Error> {
    let [status, a1, a2, a3] = raw(call, args);
    if status == OK {
        Ok([a1, a2, a3])
    } else {
        Err(refusal(status))
    }
}

/// The error a failed call's status names (kept off the success path).
#[cold]
#[inline(never)]
fn refusal(status: usize) -> Error {
    error_of(status).unwrap_or(Error::KernelRefused)
}

/// Runs `f` on the message part of the IPC buffer. No reference to the
/// buffer outlives `f`, so no system call runs while one exists.
#[inline(always)]
pub fn with_buffer<R>(f: impl FnOnce(&mut [u8; MAX_MESSAGE_SIZE]) -> R) -> R {
    // SAFETY: the kernel maps IPC_BUFFER read-write in every task, 4 KiB
    // long and page-aligned; the task is single-threaded and this reference
    // is the only one and ends before `f` returns.
    let buffer = unsafe { &mut *(IPC_BUFFER as *mut [u8; MAX_MESSAGE_SIZE]) };
    f(buffer)
}

/// Runs `f` on the whole IPC buffer page (for `vm_set_dtb`, which takes up
/// to a page). Same rules as [`with_buffer`].
pub fn with_page<R>(f: impl FnOnce(&mut [u8; IPC_BUFFER_SIZE]) -> R) -> R {
    // SAFETY: as in `with_buffer`: the kernel maps the whole IPC_BUFFER_SIZE
    // page read-write, the task is single-threaded, and this is the only
    // reference to it; it ends before `f` returns, before any system call.
    let page = unsafe { &mut *(IPC_BUFFER as *mut [u8; IPC_BUFFER_SIZE]) };
    f(page)
}

/// Prints `line` on the console, prefixed with the task's name.
pub fn debug_write(line: &[u8]) -> Result<(), Error> {
    checked(
        Sysno::DebugWrite,
        [line.as_ptr() as usize, line.len(), 0, 0, 0, 0],
    )
    .map(|_| ())
}

/// Asks the kernel to print `len` bytes at user address `addr`, which need
/// not be memory this task can make a slice of (a device window, an
/// unmapped page): for tests of what the kernel refuses to read for a task
/// (`Error::InvalidArgument`).
pub fn debug_write_at(addr: usize, len: usize) -> Result<(), Error> {
    checked(Sysno::DebugWrite, [addr, len, 0, 0, 0, 0]).map(|_| ())
}

/// Prints `line` (at most `MAX_DEBUG_WRITE` bytes) as one raw console line
/// without the task-name prefix: guest console output such as
/// `vm0 | hello from vm0`. Needs the CONSOLE kernel right.
pub fn console_write(line: &[u8]) -> Result<(), Error> {
    checked(
        Sysno::ConsoleWrite,
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
#[inline]
pub fn call(ep: usize, len: usize) -> Result<usize, Error> {
    checked(Sysno::Call, [ep, len, 0, 0, 0, 0]).map(|[n, ..]| n)
}

/// [`call`] that gives up after `ticks` timer ticks (1 to
/// `MAX_CALL_TICKS`, at `TICK_HZ`) without an answer: `Error::TimedOut`,
/// and the late reply, if one comes, is dropped by the kernel.
#[inline]
pub fn call_timed(ep: usize, len: usize, ticks: usize) -> Result<usize, Error> {
    checked(Sysno::CallTimed, [ep, len, ticks, 0, 0, 0]).map(|[n, ..]| n)
}

/// `ms` milliseconds in kernel timer ticks, rounded up, within what
/// `call_timed` and `wait_timed` take.
pub fn ticks_for(ms: u64) -> usize {
    let ticks = ms.saturating_mul(TICK_HZ as u64).div_ceil(1000);
    usize::try_from(ticks).map_or(MAX_CALL_TICKS, |t| t.clamp(1, MAX_CALL_TICKS))
}

/// What `recv` / `reply_recv` returned: a message, or (for the task that
/// attached ioreq pages) the news that guest I/O is pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A message of `len` bytes (at most `MAX_MESSAGE_SIZE`) is at the start
    /// of the IPC buffer; `badge` names the capability it came through.
    Message {
        /// Message length in bytes.
        len: usize,
        /// The sender's badge.
        badge: u64,
    },
    /// vCPUs wait for I/O: bit `n` of `vms` is set for each VM number `n`
    /// with PENDING ioreq slots. No reply is owed for this wake-up.
    IoreqPending {
        /// The set of VMs with pending I/O requests.
        vms: u64,
    },
}

impl Received {
    /// Decodes the result registers of a successful `recv`/`reply_recv`:
    /// a1 = length, a2 = badge, a3 = pending VM bits (only meaningful with
    /// the badge [`IOREQ_BADGE`]). A length beyond `MAX_MESSAGE_SIZE` is cut
    /// to it (the kernel never copies more).
    #[inline]
    pub fn from_registers(len: usize, badge: usize, vms: usize) -> Received {
        if badge == IOREQ_BADGE {
            Received::IoreqPending { vms: vms as u64 }
        } else {
            Received::Message {
                len: len.min(MAX_MESSAGE_SIZE),
                badge: badge as u64,
            }
        }
    }
}

/// Waits for a message (or pending ioreq work) on endpoint slot `ep`.
#[inline]
pub fn recv(ep: usize) -> Result<Received, Error> {
    checked(Sysno::Recv, [ep, 0, 0, 0, 0, 0])
        .map(|[len, badge, vms]| Received::from_registers(len, badge, vms))
}

/// Answers the last call with the first `len` buffer bytes.
#[inline]
pub fn reply(len: usize) -> Result<(), Error> {
    checked(Sysno::Reply, [len, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Replies with `len` buffer bytes (if owed), then receives on `ep`.
#[inline]
pub fn reply_recv(ep: usize, len: usize) -> Result<Received, Error> {
    checked(Sysno::ReplyRecv, [ep, len, 0, 0, 0, 0])
        .map(|[len, badge, vms]| Received::from_registers(len, badge, vms))
}

/// Signals notification slot `ntf` with its capability's bits.
pub fn signal(ntf: usize) -> Result<(), Error> {
    checked(Sysno::Signal, [ntf, 0, 0, 0, 0, 0]).map(|_| ())
}

/// Waits for bits on notification slot `ntf`.
pub fn wait(ntf: usize) -> Result<u64, Error> {
    checked(Sysno::Wait, [ntf, 0, 0, 0, 0, 0]).map(|[bits, ..]| bits as u64)
}

/// [`wait`] that gives up after `ticks` timer ticks (1 to
/// `MAX_CALL_TICKS`) with `Error::TimedOut` when no bit came.
pub fn wait_timed(ntf: usize, ticks: usize) -> Result<u64, Error> {
    checked(Sysno::WaitTimed, [ntf, ticks, 0, 0, 0, 0]).map(|[bits, ..]| bits as u64)
}

/// Supervisor only: kills the task serving endpoint number `endpoint`
/// (it stopped answering); returns its task slot. Its death is then
/// reported like any other.
pub fn kill_server(endpoint: usize) -> Result<usize, Error> {
    checked(Sysno::KillServer, [endpoint, 0, 0, 0, 0, 0]).map(|[slot, ..]| slot)
}

/// Takes the bits of notification slot `ntf` without waiting.
pub fn poll(ntf: usize) -> Result<u64, Error> {
    checked(Sysno::Poll, [ntf, 0, 0, 0, 0, 0]).map(|[bits, ..]| bits as u64)
}

/// A service started again in place of a dead one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restarted {
    /// The new task's slot.
    pub slot: usize,
    /// The endpoint number it serves, if any.
    pub serves: Option<usize>,
    /// How long the dead copy ran, in milliseconds.
    pub lived_ms: u64,
}

/// Supervisor only: starts a fresh copy of the dead task in `task_slot`.
pub fn restart(task_slot: usize) -> Result<Restarted, Error> {
    checked(Sysno::Restart, [task_slot, 0, 0, 0, 0, 0]).map(|[slot, serves, lived]| Restarted {
        slot,
        serves: (serves != ipc::syscall::SERVES_NOTHING).then_some(serves),
        lived_ms: lived as u64,
    })
}

/// The kernel's frame allocator now: free 4 KiB frames and frames managed
/// in total (`mem_info`; any task may ask).
pub fn mem_info() -> Result<MemInfo, Error> {
    checked(Sysno::MemInfo, [0; 6]).map(|[free_frames, total_frames, _]| MemInfo {
        free_frames,
        total_frames,
    })
}

/// 64 bits from the machine's hardware random source (`entropy`; needs
/// the ENTROPY right): `Error::NoEntropy` when the machine has none,
/// `Error::PermissionDenied` without the right.
pub fn entropy() -> Result<u64, Error> {
    checked(Sysno::Entropy, [0; 6]).map(|[bits, _, _]| bits as u64)
}

/// What `mem_info` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemInfo {
    /// 4 KiB frames free now.
    pub free_frames: usize,
    /// 4 KiB frames the kernel manages, free or in use.
    pub total_frames: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_whole_ticks_within_the_kernel_limit() {
        assert_eq!(ticks_for(0), 1);
        assert_eq!(ticks_for(1), 1);
        assert_eq!(ticks_for(10), 1);
        assert_eq!(ticks_for(11), 2);
        assert_eq!(ticks_for(10_000), 1_000);
        assert_eq!(ticks_for(u64::MAX), MAX_CALL_TICKS);
    }

    #[test]
    fn the_ioreq_badge_means_pending_work_with_the_vm_bits_in_a3() {
        assert_eq!(
            Received::from_registers(0, IOREQ_BADGE, 0b101),
            Received::IoreqPending { vms: 0b101 }
        );
        // The length register is ignored for an ioreq wake-up.
        assert_eq!(
            Received::from_registers(77, IOREQ_BADGE, 1 << 15),
            Received::IoreqPending { vms: 1 << 15 }
        );
    }

    #[test]
    fn any_other_badge_is_a_message_with_its_length() {
        assert_eq!(
            Received::from_registers(12, 7, 0b11),
            Received::Message { len: 12, badge: 7 }
        );
        assert_eq!(
            Received::from_registers(0, 0, 0),
            Received::Message { len: 0, badge: 0 }
        );
    }

    #[test]
    fn an_overlong_length_is_cut_to_the_message_size() {
        assert_eq!(
            Received::from_registers(usize::MAX, 3, 0),
            Received::Message {
                len: MAX_MESSAGE_SIZE,
                badge: 3
            }
        );
    }

    #[test]
    fn without_a_kernel_every_call_is_refused() {
        assert_eq!(recv(0), Err(Error::KernelRefused));
        assert_eq!(console_write(b"x"), Err(Error::KernelRefused));
        assert_eq!(mem_info(), Err(Error::KernelRefused));
    }
}
