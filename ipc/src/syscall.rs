//! The system-call ABI between the kernel and user tasks on RISC-V: which
//! register carries what, the call numbers, and the fixed user addresses.
//!
//! - `ecall` with the call number in `a7` and arguments in `a0`-`a5`.
//! - On return `a0` is the status: [`OK`] (0) or an [`Error::code`]; extra
//!   results are in `a1`-`a3`. Every other register is preserved.
//! - Message bytes travel in the task's **IPC buffer**: one 4 KiB page at
//!   the fixed user address [`IPC_BUFFER`], of which the first
//!   [`MAX_MESSAGE_SIZE`] bytes are the message. `call`, `reply` and
//!   `reply_recv` send the first `len` bytes of it; a received message or a
//!   reply lands at its start. The kernel copies between the frames behind
//!   two buffers itself and never follows a user pointer into a message.
//! - A task starts at its ELF entry with `sp` at [`STACK_TOP`] (16-byte
//!   aligned), `a0` = [`IPC_BUFFER`] and `a1` = how many times the
//!   supervisor has restarted it (0 on the first start).

use crate::{Error, MAX_MESSAGE_SIZE};

/// Status of a call that succeeded.
pub const OK: usize = 0;

/// The user address of every task's IPC buffer page.
pub const IPC_BUFFER: usize = 0x2000_0000;
/// Bytes in the IPC buffer page (only [`MAX_MESSAGE_SIZE`] are a message).
pub const IPC_BUFFER_SIZE: usize = 4096;
/// One past the highest byte of a task's stack.
pub const STACK_TOP: usize = 0x4000_0000;
/// Bytes of stack every task gets, below [`STACK_TOP`].
pub const STACK_SIZE: usize = 64 * 1024;
/// Task images are linked at this address (`user/rt/link.ld`).
pub const IMAGE_BASE: usize = 0x1_0000;
/// Image segments must end at or below this address (below the IPC buffer).
pub const IMAGE_TOP: usize = IPC_BUFFER;

/// The longest line `debug_write` accepts in one call.
pub const MAX_DEBUG_WRITE: usize = 256;

/// The call numbers (`a7`). Pinned by a test: never renumber, only append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Sysno {
    /// `debug_write(ptr, len)`: prints `len` (at most [`MAX_DEBUG_WRITE`])
    /// bytes at `ptr` in the task's memory as one console line prefixed with
    /// the task's name. The range must be readable user memory of the task.
    DebugWrite = 0,
    /// `exit(status)`: ends the task; the supervisor is notified. No return.
    Exit = 1,
    /// `yield()`: lets other tasks of the same priority run.
    Yield = 2,
    /// `call(ep_slot, len) -> (reply_len)`: sends `len` bytes of the IPC
    /// buffer through the endpoint capability in `ep_slot` and waits for the
    /// reply, which overwrites the buffer. `Error::ServerDied` if the server
    /// died while it held the request.
    Call = 3,
    /// `recv(ep_slot) -> (len, badge)`: waits for a message on the endpoint
    /// capability in `ep_slot`; the message lands in the IPC buffer and
    /// `badge` names the capability it was sent through.
    Recv = 4,
    /// `reply(len)`: answers the last call received with `len` bytes.
    Reply = 5,
    /// `reply_recv(ep_slot, len) -> (len, badge)`: replies with `len` bytes
    /// (if a reply is owed) and then receives, in one call.
    ReplyRecv = 6,
    /// `signal(ntf_slot)`: ORs the capability's bits into the notification
    /// in `ntf_slot`, waking its waiter.
    Signal = 7,
    /// `wait(ntf_slot) -> (bits)`: waits until the notification has bits,
    /// takes and clears them.
    Wait = 8,
    /// `poll(ntf_slot) -> (bits)`: takes the notification's bits without
    /// waiting (0 if none).
    Poll = 9,
    /// `restart(task_slot) -> (new_slot)`: supervisor only; starts a fresh
    /// copy of the dead task in `task_slot` from its image (its `a1` counts
    /// restarts).
    Restart = 10,
}

impl Sysno {
    /// The call with number `n`, if there is one.
    pub const fn from_usize(n: usize) -> Option<Sysno> {
        Some(match n {
            0 => Sysno::DebugWrite,
            1 => Sysno::Exit,
            2 => Sysno::Yield,
            3 => Sysno::Call,
            4 => Sysno::Recv,
            5 => Sysno::Reply,
            6 => Sysno::ReplyRecv,
            7 => Sysno::Signal,
            8 => Sysno::Wait,
            9 => Sysno::Poll,
            10 => Sysno::Restart,
            _ => return None,
        })
    }
}

/// The status word a failed call returns in `a0`.
pub const fn status_of(error: Error) -> usize {
    error.code() as usize
}

/// The error a non-zero status names; `Error::KernelRefused` for a code no
/// [`Error`] has (a newer kernel), `None` for [`OK`].
pub fn error_of(status: usize) -> Option<Error> {
    if status == OK {
        return None;
    }
    Some(
        ALL_ERRORS
            .iter()
            .copied()
            .find(|e| e.code() as usize == status)
            .unwrap_or(Error::KernelRefused),
    )
}

/// The errors the kernel itself returns from system calls.
const ALL_ERRORS: [Error; 6] = [
    Error::MessageTooLarge,
    Error::ServerDied,
    Error::InvalidArgument,
    Error::PermissionDenied,
    Error::KernelRefused,
    Error::Malformed,
];

// The user layout's regions are disjoint and a message fits its buffer.
const _: () = assert!(MAX_MESSAGE_SIZE <= IPC_BUFFER_SIZE);
const _: () = assert!(IMAGE_BASE < IMAGE_TOP && IMAGE_TOP <= IPC_BUFFER);
const _: () = assert!(IPC_BUFFER + IPC_BUFFER_SIZE <= STACK_TOP - STACK_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_numbers_are_pinned() {
        let pinned = [
            (Sysno::DebugWrite, 0),
            (Sysno::Exit, 1),
            (Sysno::Yield, 2),
            (Sysno::Call, 3),
            (Sysno::Recv, 4),
            (Sysno::Reply, 5),
            (Sysno::ReplyRecv, 6),
            (Sysno::Signal, 7),
            (Sysno::Wait, 8),
            (Sysno::Poll, 9),
            (Sysno::Restart, 10),
        ];
        for (call, n) in pinned {
            assert_eq!(call as usize, n);
            assert_eq!(Sysno::from_usize(n), Some(call));
        }
        assert_eq!(Sysno::from_usize(11), None);
        assert_eq!(Sysno::from_usize(usize::MAX), None);
    }

    #[test]
    fn user_layout_is_pinned_and_disjoint() {
        assert_eq!(IPC_BUFFER, 0x2000_0000);
        assert_eq!(STACK_TOP, 0x4000_0000);
        assert_eq!(IMAGE_BASE, 0x1_0000);
    }

    #[test]
    fn status_words_round_trip_the_kernel_errors() {
        assert_eq!(error_of(OK), None);
        assert_eq!(status_of(Error::ServerDied), 3);
        for e in ALL_ERRORS {
            assert_eq!(error_of(status_of(e)), Some(e));
        }
        assert_eq!(error_of(9999), Some(Error::KernelRefused));
    }
}
