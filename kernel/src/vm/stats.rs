//! Per-VM accounting, so that a guest that floods I/O is visible: how
//! often its vCPU left the guest, by kind ([`ExitKind`]), how many I/O
//! requests went round the services and how long they took (from the exit
//! that made the vCPU's slot PENDING to the resume that freed it), and how
//! many device writes were posted instead (completed at once).
//!
//! The arch run loops count each exit on its vCPU where they classify it
//! ([`VcpuStats::exit`], an indexed add; the VM's exits are its vCPUs'
//! summed when they are read); the kernel's run loop stamps the I/O exit on the
//! vCPU ([`VcpuStats::io_exit`]) and the resume paths close the round trip
//! ([`VcpuStats::io_resumed`], charged to the VM with
//! [`VmStats::round_trip`]) with the host timer's `now`, so none of the
//! hot functions reads the clock itself. A [`VmStats`] lives in the
//! generic [`super::Vm`], which is made anew when the VM starts: the
//! figures are those of the current boot (a reset VM starts again from
//! zero).

use super::exit::GuestExit;

/// Why a vCPU left the guest, as `vm info` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum ExitKind {
    /// A device access for the ioreq path: MMIO (RISC-V), port I/O (x86).
    Device = 0,
    /// A call to the hypervisor: SBI `ecall` (RISC-V), VMMCALL / VMCALL.
    Hypercall = 1,
    /// The guest waits for an interrupt: `wfi`, `hlt`.
    Wait = 2,
    /// A host interrupt (the timer tick) ended the guest's run.
    Interrupt = 3,
    /// Everything else: exceptions reflected into the guest, CPUID, stray
    /// accesses, faults that stop the VM.
    Other = 4,
}

/// How many [`ExitKind`]s there are.
pub const EXIT_KINDS: usize = 5;

impl ExitKind {
    /// The kind of a decoded x86 exit.
    pub fn of(exit: &GuestExit) -> ExitKind {
        match exit {
            GuestExit::Pio(_) => ExitKind::Device,
            GuestExit::Hypercall => ExitKind::Hypercall,
            GuestExit::Halt => ExitKind::Wait,
            GuestExit::HostInterrupt => ExitKind::Interrupt,
            GuestExit::Cpuid
            | GuestExit::Msr { .. }
            | GuestExit::PerfCounterRead
            | GuestExit::ControlRegisterWrite { .. }
            | GuestExit::GuestPageFault { .. }
            | GuestExit::Shutdown
            | GuestExit::Unhandled { .. } => ExitKind::Other,
        }
    }
}

/// One VM's counters since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmStats {
    round_trips: u64,
    service_ticks: u64,
    posted_writes: u64,
}

/// One vCPU's counters since its VM started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuStats {
    /// Its exits by [`ExitKind`] (indexed by its number).
    pub exits: [u64; EXIT_KINDS],
    /// Its I/O requests that went round the services and were resumed.
    pub round_trips: u64,
    /// When its I/O request in flight was made PENDING (timer ticks).
    io_since: Option<u64>,
}

impl VcpuStats {
    /// Nothing counted.
    pub const fn new() -> Self {
        VcpuStats {
            exits: [0; EXIT_KINDS],
            round_trips: 0,
            io_since: None,
        }
    }

    /// Counts one exit of `kind`.
    #[inline]
    pub fn exit(&mut self, kind: ExitKind) {
        self.exits_of(kind, 1);
    }

    /// `n` more exits of `kind`.
    #[inline]
    pub fn exits_of(&mut self, kind: ExitKind, n: u32) {
        let count = &mut self.exits[kind as usize];
        *count = count.wrapping_add(u64::from(n));
    }

    /// Its exits of every kind.
    pub fn total_exits(&self) -> u64 {
        self.exits.iter().fold(0u64, |sum, &n| sum.wrapping_add(n))
    }

    /// Its slot became PENDING at `now` (timer ticks). A second call
    /// before the resume keeps the first time.
    #[inline]
    pub fn io_exit(&mut self, now: u64) {
        if self.io_since.is_none() {
            self.io_since = Some(now);
        }
    }

    /// Its I/O request was resumed at `now`: one round trip; returns its
    /// time since [`VcpuStats::io_exit`] in ticks (for
    /// [`VmStats::round_trip`]), `None` without a request in flight.
    #[inline]
    pub fn io_resumed(&mut self, now: u64) -> Option<u64> {
        let since = self.io_since.take()?;
        self.round_trips = self.round_trips.wrapping_add(1);
        Some(now.saturating_sub(since))
    }
}

/// What `vm_stats` reports of a VM: its counters with the service time in
/// nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmFigures {
    /// Exits by [`ExitKind`] (indexed by its number).
    pub exits: [u64; EXIT_KINDS],
    /// I/O requests that went round the services and were resumed.
    pub round_trips: u64,
    /// Their time from exit to resume, summed, in nanoseconds.
    pub service_ns: u64,
    /// Device writes posted (completed at once, no round trip).
    pub posted_writes: u64,
}

impl VmStats {
    /// Nothing counted.
    pub const fn new() -> Self {
        VmStats {
            round_trips: 0,
            service_ticks: 0,
            posted_writes: 0,
        }
    }

    /// One of its vCPUs' I/O requests was resumed after `ticks` (from
    /// [`VcpuStats::io_resumed`]; nothing for `None`): one round trip,
    /// its time charged to the VM.
    #[inline]
    pub fn round_trip(&mut self, ticks: Option<u64>) {
        if let Some(ticks) = ticks {
            self.round_trips = self.round_trips.wrapping_add(1);
            self.service_ticks = self.service_ticks.saturating_add(ticks);
        }
    }

    /// A device write was posted (it was counted as a device exit).
    #[inline]
    pub fn posted_write(&mut self) {
        self.add_posted_writes(1);
    }

    /// `n` device writes were posted (counted as device exits).
    #[inline]
    pub fn add_posted_writes(&mut self, n: u32) {
        self.posted_writes = self.posted_writes.wrapping_add(u64::from(n));
    }

    /// The figures, with `vcpus`' exits summed and the service time
    /// converted from ticks of a `ticks_per_second` clock (0 when the
    /// clock is not known).
    pub fn figures<'a>(
        &self,
        ticks_per_second: u64,
        vcpus: impl IntoIterator<Item = &'a VcpuStats>,
    ) -> VmFigures {
        let mut exits = [0u64; EXIT_KINDS];
        for vcpu in vcpus {
            for (sum, n) in exits.iter_mut().zip(vcpu.exits) {
                *sum = sum.wrapping_add(n);
            }
        }
        let service_ns = match ticks_per_second {
            0 => 0,
            hz => {
                let ns = u128::from(self.service_ticks) * 1_000_000_000 / u128::from(hz);
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        };
        VmFigures {
            exits,
            round_trips: self.round_trips,
            service_ns,
            posted_writes: self.posted_writes,
        }
    }
}

impl VmFigures {
    /// The three values of `vm_stats` group `group` (see
    /// `ipc::syscall::vm_stats`); `None` for a group that does not exist.
    pub fn group(&self, group: usize) -> Option<[u64; 3]> {
        use ipc::syscall::vm_stats;
        let e = &self.exits;
        let kind = |k: ExitKind| e[k as usize];
        match group {
            vm_stats::EXITS => Some([
                kind(ExitKind::Device),
                kind(ExitKind::Hypercall),
                kind(ExitKind::Wait),
            ]),
            vm_stats::MORE_EXITS => Some([
                kind(ExitKind::Interrupt),
                kind(ExitKind::Other),
                self.round_trips,
            ]),
            vm_stats::SERVICE_TIME => Some([self.service_ns, self.posted_writes, 0]),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::GuestAccess;
    use crate::vm::exit::PioExit;

    #[test]
    fn exits_are_counted_by_kind_per_vcpu_and_summed_for_the_vm() {
        let (s, mut a, mut b) = (VmStats::new(), VcpuStats::new(), VcpuStats::new());
        for _ in 0..3 {
            a.exit(ExitKind::Device);
        }
        a.exit(ExitKind::Hypercall);
        b.exit(ExitKind::Other);
        b.exit(ExitKind::Device);
        assert_eq!(a.exits, [3, 1, 0, 0, 0]);
        assert_eq!((a.total_exits(), b.total_exits()), (4, 2));
        assert_eq!(s.figures(1, [&a, &b]).exits, [4, 1, 0, 0, 1]);
        assert_eq!(s.figures(1, []).exits, [0; EXIT_KINDS]);
    }

    #[test]
    fn a_round_trip_is_charged_from_exit_to_resume() {
        let (mut s, mut v) = (VmStats::new(), VcpuStats::new());
        s.round_trip(v.io_resumed(50));
        assert_eq!(s.figures(1, [&v]).round_trips, 0, "no request in flight");
        v.io_exit(100);
        v.io_exit(120);
        s.round_trip(v.io_resumed(130));
        v.io_exit(200);
        s.round_trip(v.io_resumed(210));
        s.round_trip(v.io_resumed(400));
        // 10 MHz: 30 + 10 ticks are 4 microseconds.
        let f = s.figures(10_000_000, [&v]);
        assert_eq!((f.round_trips, f.service_ns), (2, 4_000));
        assert_eq!(v.round_trips, 2);
        assert_eq!(s.figures(0, [&v]).service_ns, 0, "an unknown clock");
    }

    #[test]
    fn vcpus_waiting_at_once_each_get_their_round_trip() {
        let mut s = VmStats::new();
        let (mut a, mut b) = (VcpuStats::new(), VcpuStats::new());
        a.io_exit(100);
        b.io_exit(110);
        s.round_trip(b.io_resumed(130));
        s.round_trip(a.io_resumed(150));
        assert_eq!((a.round_trips, b.round_trips), (1, 1));
        let f = s.figures(1_000_000_000, [&a, &b]);
        assert_eq!((f.round_trips, f.service_ns), (2, 50 + 20));
    }

    #[test]
    fn posted_writes_are_counted_apart_from_round_trips() {
        let mut s = VmStats::new();
        let mut v = VcpuStats::new();
        v.exit(ExitKind::Device);
        s.posted_write();
        v.exit(ExitKind::Device);
        v.io_exit(1);
        s.round_trip(v.io_resumed(2));
        let f = s.figures(1, [&v]);
        assert_eq!((f.exits[0], f.round_trips, f.posted_writes), (2, 1, 1));
    }

    #[test]
    fn a_resume_before_its_exit_time_charges_nothing_and_sums_saturate() {
        let (mut s, mut v) = (VmStats::new(), VcpuStats::new());
        v.io_exit(100);
        s.round_trip(v.io_resumed(90));
        assert_eq!(s.figures(1, [&v]).service_ns, 0);
        v.io_exit(0);
        s.round_trip(v.io_resumed(u64::MAX));
        v.io_exit(0);
        s.round_trip(v.io_resumed(u64::MAX));
        assert_eq!(s.figures(1, [&v]).service_ns, u64::MAX);
    }

    #[test]
    fn groups_split_the_figures_as_the_abi_says() {
        let f = VmFigures {
            exits: [1, 2, 3, 4, 5],
            round_trips: 6,
            service_ns: 7,
            posted_writes: 8,
        };
        assert_eq!(f.group(0), Some([1, 2, 3]));
        assert_eq!(f.group(1), Some([4, 5, 6]));
        assert_eq!(f.group(2), Some([7, 8, 0]));
        assert_eq!(f.group(3), None);
    }

    #[test]
    fn x86_exits_have_their_kinds() {
        let pio = GuestExit::Pio(PioExit {
            port: 0x3f8,
            size: 1,
            write: None,
        });
        assert_eq!(ExitKind::of(&pio), ExitKind::Device);
        assert_eq!(ExitKind::of(&GuestExit::Hypercall), ExitKind::Hypercall);
        assert_eq!(ExitKind::of(&GuestExit::Halt), ExitKind::Wait);
        assert_eq!(ExitKind::of(&GuestExit::HostInterrupt), ExitKind::Interrupt);
        assert_eq!(ExitKind::of(&GuestExit::Cpuid), ExitKind::Other);
        let fault = GuestExit::GuestPageFault {
            access: GuestAccess::Load,
            gpa: 0,
        };
        assert_eq!(ExitKind::of(&fault), ExitKind::Other);
    }
}
