//! Guest x87/SSE state: each vCPU's FP and XMM registers and MXCSR in an
//! FXSAVE area of its own, put into the CPU before the vCPU runs when
//! another vCPU's state was there ([`FpOwner`]) and saved when the run
//! loop hands the CPU back to the host scheduler.
//!
//! The kernel and the ring-3 tasks are built for `x86_64-unknown-none`
//! (soft float, no SSE), so only guests use these registers. The host runs
//! with CR0.TS set (CR0.MP too, CR0.EM clear): an x87, SSE or WAIT
//! instruction in the kernel or a task is a #NM fault, so no task can read
//! a guest's registers; [`init`] sets this and CR4.OSFXSR/OSXMMEXCPT (so
//! FXSAVE covers the XMM registers), and EFER.FFXSR is kept clear (AMD's
//! fast FXSAVE would skip them at CPL 0). The kernel does not enable
//! XSAVE (CR4.OSXSAVE stays clear, XCR0 keeps its reset value, x87 only):
//! guests see no XSAVE, OSXSAVE or AVX in CPUID and XSETBV is intercepted,
//! so FXSAVE (x87 + SSE) is the whole state a guest can have.

use core::sync::atomic::{AtomicU64, Ordering};

/// Bytes of an FXSAVE area.
pub const FXSAVE_BYTES: usize = 512;
/// The x87 control word after FNINIT: every exception masked, 64-bit
/// precision, round to nearest.
pub const FCW_RESET: u16 = 0x037f;
/// MXCSR at reset: every SIMD exception masked, round to nearest.
pub const MXCSR_RESET: u32 = 0x1f80;
/// Offset of MXCSR in an FXSAVE area.
const MXCSR_OFFSET: usize = 24;
/// Offset of XMM0 in an FXSAVE area (16 bytes per register).
const XMM_OFFSET: usize = 160;

/// A vCPU's x87/SSE registers in FXSAVE layout (64-bit format).
#[repr(C, align(16))]
#[derive(Clone, PartialEq, Eq)]
pub struct FxArea(pub [u8; FXSAVE_BYTES]);

impl FxArea {
    /// The state after FNINIT with MXCSR at its reset value: FCW 0x037F,
    /// every tag empty (abridged tag word 0), MXCSR 0x1F80, all registers
    /// zero.
    pub const fn reset() -> Self {
        let mut bytes = [0u8; FXSAVE_BYTES];
        let fcw = FCW_RESET.to_le_bytes();
        bytes[0] = fcw[0];
        bytes[1] = fcw[1];
        let mxcsr = MXCSR_RESET.to_le_bytes();
        let mut i = 0;
        while i < 4 {
            bytes[MXCSR_OFFSET + i] = mxcsr[i];
            i += 1;
        }
        FxArea(bytes)
    }

    /// The x87 control word.
    pub fn fcw(&self) -> u16 {
        u16::from_le_bytes([self.0[0], self.0[1]])
    }

    /// MXCSR.
    pub fn mxcsr(&self) -> u32 {
        let b = &self.0[MXCSR_OFFSET..MXCSR_OFFSET + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// XMM register `n` (0..16) as a little-endian 128-bit value.
    pub fn xmm(&self, n: usize) -> u128 {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.0[XMM_OFFSET + 16 * n..XMM_OFFSET + 16 * (n + 1)]);
        u128::from_le_bytes(b)
    }

    /// Sets XMM register `n` (0..16).
    pub fn set_xmm(&mut self, n: usize, value: u128) {
        self.0[XMM_OFFSET + 16 * n..XMM_OFFSET + 16 * (n + 1)]
            .copy_from_slice(&value.to_le_bytes());
    }
}

/// The CPU's FP registers: which vCPU's state they hold (a token of
/// [`FpOwner`], 0 for none) and the two moves between them and memory.
pub trait FpUnit {
    /// The token of the state the registers hold.
    fn loaded(&self) -> u64;
    /// Loads `area` into the registers, which then hold `token`'s state.
    fn restore(&mut self, area: &FxArea, token: u64);
    /// Stores the registers into `area`.
    fn save(&self, area: &mut FxArea);
}

/// Which vCPU's FP state the CPU holds: a token per vCPU life (taken again
/// at every start), never reused, so a destroyed or restarted VM's state
/// can never be mistaken for a new one's.
pub struct FpOwner;

/// Per CPU: the token of the state its FP registers hold.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
static LOADED: crate::arch::per_cpu::PerCpu<AtomicU64> =
    crate::arch::per_cpu::PerCpu([const { AtomicU64::new(0) }; crate::obj::MAX_CPUS]);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

impl FpOwner {
    /// This CPU's registers hold no vCPU's state as far as the kernel
    /// trusts: a vCPU that ran elsewhere since it last ran here must load
    /// its saved state again.
    #[cfg(all(target_arch = "x86_64", target_os = "none"))]
    pub fn forget_here() {
        LOADED.here().store(0, Ordering::Relaxed);
    }

    /// A token no vCPU had before.
    pub fn fresh_token() -> u64 {
        NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
    }
}

/// One vCPU's FP state: its token and its saved registers.
pub struct GuestFp {
    token: u64,
    area: FxArea,
}

impl GuestFp {
    /// A vCPU's state at reset, under a fresh token.
    pub fn new() -> Self {
        GuestFp {
            token: FpOwner::fresh_token(),
            area: FxArea::reset(),
        }
    }

    /// Back to the reset state under a fresh token (at every VM start), so
    /// whatever the CPU still holds from the last life is never used.
    pub fn restart(&mut self) {
        *self = GuestFp::new();
    }

    /// Before the guest runs: loads its state unless the CPU holds it.
    pub fn before_run(&self, unit: &mut impl FpUnit) {
        if unit.loaded() != self.token {
            unit.restore(&self.area, self.token);
        }
    }

    /// When the run loop returns to the host: saves the guest's state if
    /// the CPU holds it (another vCPU may load its own before this one
    /// runs again).
    pub fn after_run(&mut self, unit: &impl FpUnit) {
        if unit.loaded() == self.token {
            unit.save(&mut self.area);
        }
    }

    /// The saved state.
    pub fn area(&self) -> &FxArea {
        &self.area
    }
}

impl Default for GuestFp {
    fn default() -> Self {
        GuestFp::new()
    }
}

/// The FP registers of the CPU the kernel runs on.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub struct Cpu;

/// CR0.MP: WAIT/FWAIT honour CR0.TS.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
const CR0_MP: u64 = 1 << 1;
/// CR0.EM: x87 emulation (clear: the FPU exists).
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
const CR0_EM: u64 = 1 << 2;
/// CR0.TS: the next FP/SSE instruction raises #NM.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
const CR0_TS: u64 = 1 << 3;
/// CR4.OSFXSR: FXSAVE/FXRSTOR cover XMM and MXCSR; SSE is allowed.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
const CR4_OSFXSR: u64 = 1 << 9;
/// CR4.OSXMMEXCPT: unmasked SIMD exceptions are #XM.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// EFER.FFXSR: fast FXSAVE/FXRSTOR (skip XMM at CPL 0 in long mode).
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
const EFER_FFXSR: u64 = 1 << 14;
/// The EFER MSR.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
const MSR_EFER: u32 = 0xc000_0080;

/// Sets up the host's FP control bits (see the module text); before any
/// vCPU exists, since VMX copies CR0 and CR4 into each VMCS's host state.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub fn init() {
    use super::msr_io::{rdmsr, wrmsr};
    // SAFETY: sets CR0.MP/TS and clears CR0.EM (the kernel executes no FP
    // instruction, so no code depends on them), sets CR4.OSFXSR/OSXMMEXCPT
    // (every x86_64 CPU has FXSR and SSE) and clears EFER.FFXSR (only
    // changes what FXSAVE/FXRSTOR store, which nothing used before).
    unsafe {
        core::arch::asm!(
            "mov {t}, cr0",
            "and {t}, {em_off}",
            "or {t}, {mp_ts}",
            "mov cr0, {t}",
            "mov {t}, cr4",
            "or {t}, {fxsr}",
            "mov cr4, {t}",
            t = out(reg) _,
            em_off = in(reg) !CR0_EM,
            mp_ts = in(reg) CR0_MP | CR0_TS,
            fxsr = in(reg) CR4_OSFXSR | CR4_OSXMMEXCPT,
            options(nomem, nostack),
        );
    }
    let efer = rdmsr(MSR_EFER) & !EFER_FFXSR;
    // SAFETY: writes EFER back with only FFXSR cleared (see above).
    unsafe { wrmsr(MSR_EFER, efer) };
}

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
impl FpUnit for Cpu {
    fn loaded(&self) -> u64 {
        LOADED.here().load(Ordering::Relaxed)
    }

    fn restore(&mut self, area: &FxArea, token: u64) {
        // SAFETY: CLTS allows FP instructions for the FXRSTOR, which reads
        // 512 bytes from `area` (16-byte aligned by its type; written only
        // by `FxArea::reset` or FXSAVE, so MXCSR has no reserved bit set);
        // CR0.TS is set again before any other code runs.
        unsafe {
            core::arch::asm!(
                "clts",
                "fxrstor64 [{p}]",
                "mov {t}, cr0",
                "or {t}, {ts}",
                "mov cr0, {t}",
                p = in(reg) area.0.as_ptr(),
                ts = in(reg) CR0_TS,
                t = out(reg) _,
                options(nostack, readonly),
            );
        }
        LOADED.here().store(token, Ordering::Relaxed);
    }

    fn save(&self, area: &mut FxArea) {
        // SAFETY: CLTS allows FP instructions for the FXSAVE, which writes
        // 512 bytes into `area` (16-byte aligned by its type, exclusively
        // borrowed); CR0.TS is set again before any other code runs.
        unsafe {
            core::arch::asm!(
                "clts",
                "fxsave64 [{p}]",
                "mov {t}, cr0",
                "or {t}, {ts}",
                "mov cr0, {t}",
                p = in(reg) area.0.as_mut_ptr(),
                ts = in(reg) CR0_TS,
                t = out(reg) _,
                options(nostack),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register file in memory.
    struct FakeUnit {
        regs: FxArea,
        loaded: u64,
        restores: usize,
    }

    impl FpUnit for FakeUnit {
        fn loaded(&self) -> u64 {
            self.loaded
        }
        fn restore(&mut self, area: &FxArea, token: u64) {
            self.regs = area.clone();
            self.loaded = token;
            self.restores += 1;
        }
        fn save(&self, area: &mut FxArea) {
            *area = self.regs.clone();
        }
    }

    fn unit() -> FakeUnit {
        let mut regs = FxArea::reset();
        regs.set_xmm(0, 0xdead_beef);
        FakeUnit {
            regs,
            loaded: 0,
            restores: 0,
        }
    }

    #[test]
    fn the_reset_area_is_the_fninit_state() {
        let a = FxArea::reset();
        assert_eq!(a.fcw(), 0x037f);
        assert_eq!(a.mxcsr(), 0x1f80);
        assert_eq!(a.0[4], 0, "abridged tag word: every register empty");
        assert!((0..16).all(|n| a.xmm(n) == 0));
        assert_eq!(core::mem::align_of::<FxArea>(), 16);
        assert_eq!(core::mem::size_of::<FxArea>(), 512);
    }

    #[test]
    fn a_vcpu_never_sees_another_vcpus_registers() {
        let mut cpu = unit();
        let mut a = GuestFp::new();
        let mut b = GuestFp::new();
        a.before_run(&mut cpu);
        assert_eq!(cpu.regs.xmm(0), 0, "A starts from reset, not the CPU's");
        cpu.regs.set_xmm(0, 0xaaaa); // A's guest writes XMM0
        a.after_run(&cpu);
        b.before_run(&mut cpu);
        assert_eq!(cpu.regs.xmm(0), 0, "B must not see A's marker");
        cpu.regs.set_xmm(0, 0xbbbb);
        b.after_run(&cpu);
        a.before_run(&mut cpu);
        assert_eq!(cpu.regs.xmm(0), 0xaaaa, "A gets its own value back");
        a.after_run(&cpu);
        b.before_run(&mut cpu);
        assert_eq!(cpu.regs.xmm(0), 0xbbbb);
        assert_eq!(b.area().xmm(0), 0xbbbb);
    }

    #[test]
    fn the_owner_runs_again_without_a_reload() {
        let mut cpu = unit();
        let mut a = GuestFp::new();
        a.before_run(&mut cpu);
        cpu.regs.set_xmm(3, 7);
        a.after_run(&cpu);
        a.before_run(&mut cpu);
        assert_eq!(cpu.restores, 1);
        assert_eq!(cpu.regs.xmm(3), 7);
    }

    #[test]
    fn a_restarted_vcpu_starts_from_reset() {
        let mut cpu = unit();
        let mut a = GuestFp::new();
        a.before_run(&mut cpu);
        cpu.regs.set_xmm(0, 0x1234);
        a.after_run(&cpu);
        a.restart();
        a.before_run(&mut cpu);
        assert_eq!(cpu.regs.xmm(0), 0, "the CPU's copy is from the last life");
        assert_eq!(cpu.regs.mxcsr(), MXCSR_RESET);
        assert_eq!(cpu.restores, 2);
    }

    #[test]
    fn a_vcpu_that_lost_the_cpu_does_not_save_over_its_state() {
        let mut cpu = unit();
        let mut a = GuestFp::new();
        let b = GuestFp::new();
        a.before_run(&mut cpu);
        cpu.regs.set_xmm(1, 5);
        a.after_run(&cpu);
        b.before_run(&mut cpu);
        cpu.regs.set_xmm(1, 9);
        a.after_run(&cpu);
        assert_eq!(a.area().xmm(1), 5);
    }

    #[test]
    fn tokens_are_never_reused() {
        let a = FpOwner::fresh_token();
        let b = FpOwner::fresh_token();
        assert_ne!(a, b);
        assert!(a > 0 && b > 0, "0 is the token of no vCPU");
    }
}
