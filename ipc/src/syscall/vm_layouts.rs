//! The layouts the VM calls answer in: `vm_adopt`'s and `vm_status`'s in
//! the caller's IPC buffer, `vm_status`'s values and `vm_stats`' groups
//! (re-exported by [`crate::syscall`]).

/// The IPC-buffer layout of `vm_adopt`'s answer.
pub mod vm_adopt {
    /// Bytes 0..16: the generation ID last written (`vm_write_genid`;
    /// zeros if none), little-endian.
    pub const GENID: core::ops::Range<usize> = 0..16;
    /// Byte 16: the name's length in bytes.
    pub const NAME_LEN: usize = 16;
    /// From byte 17: the name (UTF-8, `vm_set_name`'s; at most 31 bytes).
    pub const NAME: usize = 17;
    /// Bytes 48..50: the note's length (`vm_set_note`), little-endian.
    pub const NOTE_LEN: core::ops::Range<usize> = 48..50;
    /// From byte 64: the note.
    pub const NOTE: usize = 64;
    /// The longest note.
    pub const NOTE_MAX: usize = 448;
}

/// The values of `vm_status`.
pub mod vm_status {
    /// Created or reset; not started.
    pub const CREATED: usize = 0;
    /// Its vCPUs may run.
    pub const RUNNING: usize = 1;
    /// Held by `vm_pause`.
    pub const PAUSED: usize = 2;
    /// The guest powered itself off.
    pub const POWERED_OFF: usize = 3;
    /// The guest asked for a reboot.
    pub const REBOOT_REQUESTED: usize = 4;
    /// The kernel stopped it (the reason was printed on the console and
    /// is in the [`super::vm_exit`] record).
    pub const STOPPED: usize = 5;
}

/// How a VM left running, as `vm_status` writes it at the start of the
/// caller's IPC buffer: [`LEN`](vm_exit::LEN) bytes, every field little-endian. What
/// `DETAIL`, `A` and `B` hold depends on `KIND`; `PC` is the guest's
/// program counter (RISC-V `sepc`, x86 `rip`) when it left.
pub mod vm_exit {
    use core::ops::Range;

    /// Bytes 0..4: the kind, one of the constants below.
    pub const KIND: Range<usize> = 0..4;
    /// Bytes 4..8: a small detail (see each kind).
    pub const DETAIL: Range<usize> = 4..8;
    /// Bytes 8..16: the first word (see each kind).
    pub const A: Range<usize> = 8..16;
    /// Bytes 16..24: the second word (see each kind).
    pub const B: Range<usize> = 16..24;
    /// Bytes 24..32: the guest's pc.
    pub const PC: Range<usize> = 24..32;
    /// Bytes 32..40: when it left running, in milliseconds since Mica
    /// started its timer at boot (by the host timer's clock).
    pub const UPTIME_MS: Range<usize> = 32..40;
    /// The record's length.
    pub const LEN: usize = 40;

    /// It has not left running (created, running or paused).
    pub const NONE: u32 = 0;
    /// The guest powered itself off; `DETAIL` the SBI SRST reset reason
    /// (0 none, 1 system failure, 0xe000_0000.. SBI- and vendor-specific;
    /// 0 for the x86 power-off hypercall and the legacy SBI shutdown).
    pub const POWER_OFF: u32 = 1;
    /// The guest asked for a reboot; `DETAIL` the reset reason, `A` 1 for
    /// a warm reboot and 0 for a cold one.
    pub const REBOOT: u32 = 2;
    /// Stopped: an access where the guest has neither RAM nor a device;
    /// `DETAIL` the access (0 load, 1 store, 2 instruction fetch), `A` the
    /// guest-physical address.
    pub const GUEST_PAGE_FAULT: u32 = 3;
    /// Stopped: a device access the kernel cannot emulate; `A` the
    /// guest-physical address, `B` the instruction (0 if unknown).
    pub const UNDECODABLE_MMIO: u32 = 4;
    /// Stopped: an instruction the guest may not run; `A` its bits.
    pub const VIRTUAL_INSTRUCTION: u32 = 5;
    /// Stopped: the device side answered with what the kernel refuses.
    pub const BAD_IO_COMPLETION: u32 = 6;
    /// Stopped: an exception the guest did not handle; `A` the
    /// architecture's cause or exit code, `B` its value.
    pub const UNHANDLED_EXCEPTION: u32 = 7;
    /// Stopped, for a reason the arch layer did not record.
    pub const STOPPED_UNKNOWN: u32 = 8;

    /// The record's fields.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ExitRecord {
        /// One of the kinds above.
        pub kind: u32,
        /// The kind's small detail.
        pub detail: u32,
        /// The kind's first word.
        pub a: u64,
        /// The kind's second word.
        pub b: u64,
        /// The guest's pc.
        pub pc: u64,
        /// When, in milliseconds since Mica booted.
        pub uptime_ms: u64,
    }

    impl ExitRecord {
        /// The record's bytes.
        pub fn to_bytes(&self) -> [u8; LEN] {
            let mut out = [0u8; LEN];
            out[KIND].copy_from_slice(&self.kind.to_le_bytes());
            out[DETAIL].copy_from_slice(&self.detail.to_le_bytes());
            out[A].copy_from_slice(&self.a.to_le_bytes());
            out[B].copy_from_slice(&self.b.to_le_bytes());
            out[PC].copy_from_slice(&self.pc.to_le_bytes());
            out[UPTIME_MS].copy_from_slice(&self.uptime_ms.to_le_bytes());
            out
        }

        /// The record in `bytes` (its first [`LEN`]); `None` if shorter.
        pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
            let word = |range: Range<usize>| -> Option<u64> {
                Some(u64::from_le_bytes(bytes.get(range)?.try_into().ok()?))
            };
            let half = |range: Range<usize>| -> Option<u32> {
                Some(u32::from_le_bytes(bytes.get(range)?.try_into().ok()?))
            };
            Some(Self {
                kind: half(KIND)?,
                detail: half(DETAIL)?,
                a: word(A)?,
                b: word(B)?,
                pc: word(PC)?,
                uptime_ms: word(UPTIME_MS)?,
            })
        }
    }
}

/// The groups of `vm_stats`: which counters come back in a1, a2, a3.
pub mod vm_stats {
    /// Exits for device accesses (MMIO on RISC-V, port I/O on x86),
    /// hypervisor calls (SBI `ecall`; VMMCALL / VMCALL) and waits (`wfi`,
    /// `hlt`).
    pub const EXITS: usize = 0;
    /// Exits for host interrupts and for everything else (exceptions
    /// reflected into the guest, CPUID, stray accesses), then I/O request
    /// round trips through the services.
    pub const MORE_EXITS: usize = 1;
    /// The round trips' time summed, in nanoseconds; a2 the device
    /// writes posted (completed at once, not round trips); a3 is 0.
    pub const SERVICE_TIME: usize = 2;
    /// How many groups there are besides the per-vCPU ones.
    pub const GROUPS: usize = 3;
    /// Group `VCPU + n` is vCPU `n`'s: its state (one of the `VCPU_*`
    /// values below, in the low byte; above it, from bit
    /// [`VCPU_CPU_SHIFT`], 1 + the host CPU it is on right now, or 0), its
    /// exits and its I/O round trips since the VM started;
    /// `Error::InvalidArgument` past the VM's last vCPU.
    pub const VCPU: usize = 16;
    /// Where the host CPU a vCPU is on starts in its state word.
    pub const VCPU_CPU_SHIFT: u32 = 8;
    /// The vCPU runs or is ready to.
    pub const VCPU_RUNNING: u64 = 0;
    /// It waits for the services to complete its I/O request.
    pub const VCPU_IO: u64 = 1;
    /// It waits in `wfi` (or `hlt`) for an interrupt or its timer.
    pub const VCPU_WAITING: u64 = 2;
    /// It is stopped (SBI HSM): the guest has not started it, or it
    /// stopped itself.
    pub const VCPU_STOPPED: u64 = 3;
    /// The VM is not running (created, paused or ended): every vCPU is
    /// held.
    pub const VCPU_HELD: u64 = 4;
}
