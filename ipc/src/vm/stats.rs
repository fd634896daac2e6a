//! What `Stats` reports of a VM: its exits by kind, its I/O round trips
//! and, per vCPU, what the vCPU is doing and how often it left the guest.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::syscall::MAX_VCPUS;
use crate::syscall::vm_stats::{
    VCPU, VCPU_CPU_SHIFT, VCPU_HELD, VCPU_IO, VCPU_RUNNING, VCPU_STOPPED, VCPU_WAITING,
};

/// Every vCPU's figures, vCPU 0 first.
pub type VcpuList = heapless::Vec<VcpuInfo, MAX_VCPUS>;

/// What `Stats` reports of a VM, since it last started (a reset or a
/// fresh start begins again from zero): how often its vCPUs left the guest,
/// by kind, and its I/O requests through the ioreq and device services.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStats {
    /// Exits for device accesses: MMIO on RISC-V, port I/O on x86.
    pub device_exits: u64,
    /// Exits for hypervisor calls: SBI `ecall` on RISC-V, VMMCALL/VMCALL.
    pub hypercall_exits: u64,
    /// Exits to wait for an interrupt: `wfi`, `hlt`.
    pub wait_exits: u64,
    /// Runs ended by a host interrupt (the scheduler's tick).
    pub interrupt_exits: u64,
    /// Every other exit: exceptions reflected into the guest, CPUID,
    /// stray accesses.
    pub other_exits: u64,
    /// I/O requests that went round the services and were completed.
    pub ioreq_round_trips: u64,
    /// Their time from the exit to the vCPU's resume, summed, in
    /// nanoseconds of the host timer: the services' time on the VM's
    /// requests, with any wait for them to run.
    pub service_ns: u64,
    /// Device writes posted: completed at once and queued for the services
    /// (a UART's transmit register), so device exits are round trips plus
    /// these.
    pub posted_writes: u64,
    /// What its network card counted (the device service's figures);
    /// `None` for a VM without one (x86) or when the service did not say.
    pub net: Option<crate::devices::NetCounters>,
    /// Each vCPU's state and counts, vCPU 0 first (the kernel's
    /// `vm_stats` groups `VCPU + n`).
    pub vcpus: VcpuList,
}

impl VmStats {
    /// Every exit, of any kind.
    pub fn total_exits(&self) -> u64 {
        [
            self.device_exits,
            self.hypercall_exits,
            self.wait_exits,
            self.interrupt_exits,
            self.other_exits,
        ]
        .iter()
        .fold(0u64, |sum, &n| sum.saturating_add(n))
    }
}

/// What a vCPU is doing (the kernel's `vm_stats::VCPU_*` codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VcpuState {
    /// It runs the guest or is ready to.
    Running,
    /// It waits for the services to complete its I/O request.
    Io,
    /// It waits in `wfi` (or `hlt`) for an interrupt or its timer.
    Waiting,
    /// Stopped (SBI HSM): the guest has not started it yet, or it stopped
    /// itself.
    Stopped,
    /// The VM is not running (created, paused or ended), so neither is
    /// the vCPU.
    Held,
}

impl VcpuState {
    /// The state of a kernel `vm_stats::VCPU_*` code; `Error::Malformed`
    /// for a code this side does not know.
    pub fn from_code(code: u64) -> Result<Self, Error> {
        match code {
            VCPU_RUNNING => Ok(VcpuState::Running),
            VCPU_IO => Ok(VcpuState::Io),
            VCPU_WAITING => Ok(VcpuState::Waiting),
            VCPU_STOPPED => Ok(VcpuState::Stopped),
            VCPU_HELD => Ok(VcpuState::Held),
            _ => Err(Error::Malformed),
        }
    }

    /// A word for scripts (`--json`'s `"state"`): `running`, `io`,
    /// `waiting`, `stopped`, `held`.
    pub fn key(self) -> &'static str {
        match self {
            VcpuState::Running => "running",
            VcpuState::Io => "io",
            VcpuState::Waiting => "waiting",
            VcpuState::Stopped => "stopped",
            VcpuState::Held => "held",
        }
    }
}

impl fmt::Display for VcpuState {
    /// `running`, `waiting for I/O`, `waiting`, `stopped`, `held`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            VcpuState::Io => "waiting for I/O",
            other => other.key(),
        })
    }
}

/// One vCPU's figures since the VM last started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuInfo {
    /// What it is doing now.
    pub state: VcpuState,
    /// How often it left the guest, of any kind.
    pub exits: u64,
    /// Its I/O requests that went round the services and were completed.
    pub round_trips: u64,
    /// The host CPU it is on right now, if any.
    pub cpu: Option<u8>,
}

impl VcpuInfo {
    /// The figures of a kernel `vm_stats` group `VCPU + n`: `[state and
    /// host CPU, exits, round trips]`; `Error::Malformed` for an unknown
    /// state code or a CPU past 255.
    pub fn from_group([word, exits, round_trips]: [u64; 3]) -> Result<Self, Error> {
        let on = word >> VCPU_CPU_SHIFT;
        let cpu = match on.checked_sub(1) {
            None => None,
            Some(cpu) => Some(u8::try_from(cpu).map_err(|_| Error::Malformed)?),
        };
        Ok(VcpuInfo {
            state: VcpuState::from_code(word & ((1 << VCPU_CPU_SHIFT) - 1))?,
            exits,
            round_trips,
            cpu,
        })
    }
}

/// Reads every vCPU's group with `read_group` (the kernel's `vm_stats`
/// for one VM): groups `VCPU`, `VCPU + 1`, .. until the kernel answers
/// `Error::InvalidArgument` (past the last vCPU) or `MAX_VCPUS` are read.
/// Any other error, or an unknown state code (`Error::Malformed`), is
/// the answer.
pub fn read_vcpus(
    mut read_group: impl FnMut(usize) -> Result<[u64; 3], Error>,
) -> Result<VcpuList, Error> {
    let mut vcpus = VcpuList::new();
    for n in 0..MAX_VCPUS {
        match read_group(VCPU + n) {
            Ok(group) => {
                // At most MAX_VCPUS turns: the push always has room.
                let _ = vcpus.push(VcpuInfo::from_group(group)?);
            }
            Err(Error::InvalidArgument) => break,
            Err(error) => return Err(error),
        }
    }
    Ok(vcpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_code_decodes_and_an_unknown_one_is_an_error() {
        let known = [
            (VCPU_RUNNING, VcpuState::Running, "running"),
            (VCPU_IO, VcpuState::Io, "io"),
            (VCPU_WAITING, VcpuState::Waiting, "waiting"),
            (VCPU_STOPPED, VcpuState::Stopped, "stopped"),
            (VCPU_HELD, VcpuState::Held, "held"),
        ];
        for (code, state, key) in known {
            assert_eq!(VcpuState::from_code(code), Ok(state));
            assert_eq!(state.key(), key);
        }
        assert_eq!(VcpuState::from_code(5), Err(Error::Malformed));
        assert_eq!(VcpuState::from_code(u64::MAX), Err(Error::Malformed));
    }

    #[test]
    fn a_group_becomes_a_vcpu_info() {
        assert_eq!(
            VcpuInfo::from_group([VCPU_WAITING, 12_345, 17]),
            Ok(VcpuInfo {
                state: VcpuState::Waiting,
                exits: 12_345,
                round_trips: 17,
                cpu: None,
            })
        );
        let on_cpu_2 = VCPU_RUNNING | 3 << VCPU_CPU_SHIFT;
        assert_eq!(
            VcpuInfo::from_group([on_cpu_2, 5, 0]).map(|v| (v.state, v.cpu)),
            Ok((VcpuState::Running, Some(2)))
        );
        assert_eq!(VcpuInfo::from_group([9, 1, 1]), Err(Error::Malformed));
        let past_255 = VCPU_RUNNING | 257 << VCPU_CPU_SHIFT;
        assert_eq!(
            VcpuInfo::from_group([past_255, 1, 1]),
            Err(Error::Malformed)
        );
        assert_eq!(
            VcpuInfo::from_group([VCPU_RUNNING | 256 << VCPU_CPU_SHIFT, 1, 1]).map(|v| v.cpu),
            Ok(Some(255))
        );
    }

    #[test]
    fn the_vcpus_are_read_until_the_kernel_says_there_are_no_more() {
        extern crate std;
        use std::vec::Vec;
        let mut asked = Vec::new();
        let two = read_vcpus(|group| {
            asked.push(group);
            match group - VCPU {
                0 => Ok([VCPU_RUNNING, 40, 2]),
                1 => Ok([VCPU_STOPPED, 0, 0]),
                _ => Err(Error::InvalidArgument),
            }
        });
        let two = two.unwrap();
        assert_eq!(asked, [VCPU, VCPU + 1, VCPU + 2]);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].state, VcpuState::Running);
        assert_eq!((two[0].exits, two[0].round_trips), (40, 2));
        assert_eq!(two[1].state, VcpuState::Stopped);
        // A kernel that never says "no more" is asked MAX_VCPUS times.
        let all = read_vcpus(|_| Ok([VCPU_HELD, 1, 0])).unwrap();
        assert_eq!(all.len(), MAX_VCPUS);
        // A bad state code or another error is the answer.
        assert_eq!(read_vcpus(|_| Ok([7, 1, 0])), Err(Error::Malformed));
        assert_eq!(
            read_vcpus(|_| Err(Error::KernelRefused)),
            Err(Error::KernelRefused)
        );
    }
}
