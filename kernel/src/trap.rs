//! What the kernel does with a trap, decided without naming any register:
//! the arch layer decodes the cause into a [`Trap`] and carries out the
//! returned [`TrapAction`].

use crate::ticks;

/// Where the trap came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The kernel itself.
    Kernel,
    /// A user-mode task.
    User,
}

/// The kind of memory access that faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A load.
    Read,
    /// A store or atomic.
    Write,
    /// An instruction fetch.
    Execute,
}

/// A decoded trap cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trap {
    /// The timer deadline passed.
    TimerInterrupt,
    /// Another interrupt, by the architecture's number.
    OtherInterrupt(usize),
    /// A system call instruction.
    Syscall,
    /// A page fault at `addr`.
    PageFault {
        /// The faulting virtual address.
        addr: usize,
        /// What the access tried to do.
        access: Access,
    },
    /// An illegal instruction (its bits, when the hardware reports them).
    IllegalInstruction(usize),
    /// A breakpoint instruction.
    Breakpoint,
    /// Any other exception, by the architecture's number and value.
    Exception {
        /// The cause number.
        code: usize,
        /// The trap value (address or instruction bits).
        value: usize,
    },
}

/// What the arch layer does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapAction {
    /// Arm the timer for this absolute deadline, then resume.
    ArmTimer(u64),
    /// Resume at the instruction after the trapping one.
    SkipInstruction,
    /// Report the trap and shut down with a failure status.
    Fatal,
}

/// Decides what to do with `trap`; `now` is the current timer count.
pub fn handle(origin: Origin, trap: Trap, now: u64) -> TrapAction {
    match (origin, trap) {
        (_, Trap::TimerInterrupt) => TrapAction::ArmTimer(ticks::on_timer(now)),
        (_, Trap::Breakpoint) => TrapAction::SkipInstruction,
        // No U-mode tasks exist yet; every other trap is a kernel bug.
        _ => TrapAction::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_interrupts_rearm_for_the_next_tick() {
        let TrapAction::ArmTimer(deadline) = handle(Origin::Kernel, Trap::TimerInterrupt, 5_000)
        else {
            panic!("a timer interrupt arms the timer");
        };
        assert!(deadline > 5_000);
    }

    #[test]
    fn kernel_page_faults_are_fatal() {
        let fault = Trap::PageFault {
            addr: 0,
            access: Access::Read,
        };
        assert_eq!(handle(Origin::Kernel, fault, 0), TrapAction::Fatal);
    }
}
