//! A guest VM on x86_64 (SVM or VMX, chosen by CPUID): one vCPU with its
//! VMCB or VMCS, RAM from guest-physical 0 behind nested page tables (EPT
//! on VMX) under an ASID (VPID) of its own, and
//! the run loop that enters the guest and turns each exit into a port
//! access through the ioreq slot, a CPUID answer, a null hypercall (straight
//! back into the guest), a sleep, a power-off, a
//! return to the host scheduler or a stopped VM. The VM's memory over its
//! life (create, load, start, reset, destroy) is in `guest_mem`.
//!
//! The guest owns its FS/GS bases, TR, LDTR and syscall and SYSENTER MSRs
//! (the world switch swaps them with the host's, see `msr`); any other
//! RDMSR/WRMSR exits and is answered by `msr::emulate`: a value, an EFER
//! change within the bits a guest may flip, or #GP(0) in the guest. A
//! MOV to CR4 that exits (VMX: it sets a bit the host owns; SVM: every
//! one) is answered by `cr4::write`: the guest keeps the bits it owns and
//! gets #GP(0) for PKE and the others (see `cr4`). RDPMC always exits and
//! gets #GP(0): the guest has no performance counters (see `pmu`).

extern crate alloc;

use alloc::vec::Vec;

use ipc::ioreq_abi::posted::PostedWrite;
use ipc::ioreq_abi::slot;
use ipc::{Error, Space};

use super::cr4;
use super::fpu::{self, GuestFp};
use super::mov_cr;
use super::msr::{self, Access, GuestView, Outcome};
use super::pmu;
use super::svm_exit::rax_after_in;
use super::vcpu::Vcpu;
use crate::arch::RunOutcome;
use crate::arch::guest_ram::{IoreqFrames, VmRam};
use crate::vm::exit::{GuestExit, PioExit};
use crate::vm::ioreq_path::{self, VcpuRun};
use crate::vm::stats::{ExitKind, VcpuStats};
use crate::vm::{GuestAccess, StopReason, Vm, VmState};

/// A port access waiting in the ioreq slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingIo {
    /// The access.
    pub(super) pio: PioExit,
    /// Where the guest goes on once it is complete.
    pub(super) next_rip: u64,
}

/// A VM with its memory and one vCPU.
pub struct GuestVm {
    /// The generic VM object.
    pub vm: Vm,
    pub(super) vcpu: Vcpu,
    /// The vCPU's x87/SSE registers while it is not in the CPU.
    pub(super) fp: GuestFp,
    pub(super) run: VcpuRun,
    /// Its vCPU's exits and I/O round trips since the VM started.
    pub(super) vcpu_stats: VcpuStats,
    pub(super) pending: Option<PendingIo>,
    /// Nested table frames below the root.
    pub(super) tables: Vec<u64>,
    /// Guest RAM (contiguous frames).
    pub(super) ram: VmRam,
    /// The ioreq page and the posted-write ring (shared with the ioreq
    /// task).
    pub io: IoreqFrames,
    /// Where the boot-info block lies, once set.
    pub(super) boot_info_gpa: u64,
}

impl GuestVm {
    /// Runs vCPU `vcpu` (an x86 VM has only vCPU 0) until the host must
    /// decide something. Its FP state goes into the CPU before the first
    /// entry (unless it is still there) and back into its save area on the
    /// way out.
    /// A run of vCPU `vcpu` as the generic scheduler loop starts one
    /// (`crate::userland`): on x86 the whole run happens here, under the
    /// kernel lock, on the one CPU that schedules, so it always ends in its
    /// outcome and never hands out an entry.
    pub fn begin(&mut self, vcpu: usize) -> Result<GuestEntry, RunOutcome> {
        Err(self.run(vcpu))
    }

    /// No CPU but the one calling runs a guest on x86: nothing to wait
    /// for.
    pub fn quiesce(&self) {}

    /// Never reached on x86 ([`GuestVm::begin`] hands out no entry).
    pub fn resume(&mut self, _vcpu: usize, _abandoned: bool) -> Result<GuestEntry, RunOutcome> {
        Err(RunOutcome::Preempted)
    }

    /// Runs vCPU `vcpu` until the host must decide something.
    pub fn run(&mut self, vcpu: usize) -> RunOutcome {
        if vcpu != 0 {
            return RunOutcome::HartStopped;
        }
        let outcome = self.run_loop();
        self.fp.after_run(&fpu::Cpu);
        outcome
    }

    /// The run loop behind [`GuestVm::run`].
    fn run_loop(&mut self) -> RunOutcome {
        loop {
            if self.vm.state() != VmState::Running {
                return RunOutcome::Left(self.vm.state());
            }
            if self.run != VcpuRun::Runnable {
                return RunOutcome::BlockedOnIo;
            }
            self.fp.before_run(&mut fpu::Cpu);
            let exit = self.vcpu.run();
            self.vcpu_stats.exit(ExitKind::of(&exit.exit));
            let next_rip = exit.next_rip.unwrap_or(0);
            let unhandled = StopReason::UnhandledException {
                code: exit.code,
                value: exit.info,
            };
            match exit.exit {
                GuestExit::Pio(pio) => {
                    if exit.next_rip.is_none() {
                        return self.stop(unhandled);
                    }
                    if let Some(outcome) = self.port_access(pio, next_rip) {
                        return outcome;
                    }
                }
                GuestExit::Cpuid => {
                    self.cpuid();
                    self.vcpu.set_rip(next_rip);
                }
                GuestExit::Msr { write } => {
                    if exit.next_rip.is_none() {
                        return self.stop(unhandled);
                    }
                    self.msr_access(write, next_rip);
                }
                // The host's counters are never read for a guest: #GP(0),
                // as on a CPU without the counter ECX names. RIP stays.
                GuestExit::PerfCounterRead => self.vcpu.inject_gp(),
                GuestExit::ControlRegisterWrite { gpr } => self.cr4_write(gpr, exit.next_rip),
                GuestExit::Hypercall => {
                    let null = self.vcpu.rax() == ipc::syscall::X86_HYPERCALL_NULL;
                    // A power-off: posted output first.
                    if !null && self.io.drain_first(super::timer::timer_now()) {
                        return RunOutcome::Preempted;
                    }
                    if null {
                        self.vcpu.set_rip(next_rip);
                        continue;
                    }
                    let pc = self.vcpu.rip();
                    self.vcpu.set_rip(next_rip);
                    let off = VmState::PoweredOff { reason: 0 };
                    let at = crate::ticks::uptime_ms(super::timer::timer_now());
                    self.vm.leave(off, pc, at);
                    self.run = VcpuRun::Stopped;
                    return RunOutcome::Left(off);
                }
                GuestExit::Halt => {
                    self.vcpu.set_rip(next_rip);
                    return RunOutcome::Sleeping(super::timer::timer_now().saturating_add(1));
                }
                GuestExit::HostInterrupt => {
                    // SAFETY: opens the interrupt window for the host
                    // interrupt that ended the guest's slice (GIF is set
                    // again), then closes it; the kernel's vector takes it.
                    unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
                    return RunOutcome::Preempted;
                }
                GuestExit::GuestPageFault { access, gpa } => {
                    // No x86 instruction decoder yet: a device window's
                    // access stops the VM like a wild one, named as such.
                    if access != GuestAccess::Fetch && crate::vm::is_mmio(gpa) {
                        return self.stop(StopReason::UndecodableMmio { gpa, insn: 0 });
                    }
                    return self.stop(StopReason::GuestPageFault { access, gpa });
                }
                GuestExit::Shutdown | GuestExit::Unhandled { .. } => {
                    return self.stop(unhandled);
                }
            }
        }
    }

    /// Stops the VM for `reason` (after its posted output, see
    /// [`crate::vm::posted::Posting::drain_first`]: until then the vCPU
    /// yields and the guest exits again on the same instruction).
    fn stop(&mut self, reason: StopReason) -> RunOutcome {
        if self.io.drain_first(super::timer::timer_now()) {
            return RunOutcome::Preempted;
        }
        let pc = self.vcpu.rip();
        let at = crate::ticks::uptime_ms(super::timer::timer_now());
        self.vm.leave(VmState::Stopped(reason), pc, at);
        self.run = VcpuRun::Stopped;
        RunOutcome::Left(self.vm.state())
    }

    /// A port access: one past the last port is answered here (all ones
    /// for an IN) and an OUT the VM's posted-write ring takes is done (RIP
    /// steps past either, `None`: the vCPU runs on); anything else goes into
    /// the vCPU's ioreq slot (PENDING) and blocks the vCPU until the ioreq
    /// service resumes it ([`GuestVm::resume_io`]).
    fn port_access(&mut self, pio: PioExit, next_rip: u64) -> Option<RunOutcome> {
        if pio.past_last_port() {
            // No port answers past 0xffff and no slot takes such an access:
            // an `in` reads all ones, an `out` goes nowhere, as on a PC.
            if pio.write.is_none() {
                let rax = rax_after_in(self.vcpu.rax(), pio.size, pio.open_bus());
                self.vcpu.set_rax(rax);
            }
            self.vcpu.set_rip(next_rip);
            return None;
        }
        if let Some(value) = pio.write
            && self.io.post(
                &PostedWrite {
                    space: Space::Pio,
                    addr: u64::from(pio.port),
                    size: pio.size,
                    value: u64::from(value),
                },
                &mut self.vm.stats,
            )
        {
            self.vcpu.set_rip(next_rip);
            return None;
        }
        let request = pio.request(0);
        if slot::fill(self.io.page(), &request).is_err() {
            return Some(self.stop(StopReason::BadIoCompletion));
        }
        self.pending = Some(PendingIo { pio, next_rip });
        self.run = VcpuRun::BlockedOnIo;
        Some(RunOutcome::BlockedOnIo)
    }

    /// Finishes the vCPU's port access if its slot is COMPLETE: an IN's
    /// value goes into AL/AX/EAX, RIP steps past the instruction and the
    /// vCPU is runnable (`Ok(true)`); `Ok(false)` while it is not done.
    fn complete_io(&mut self) -> Result<bool, StopReason> {
        let Some(pending) = self.pending else {
            return Ok(false);
        };
        let value = match ioreq_path::collect(self.io.page(), 0, &pending.pio.request(0)) {
            Ok(Some(value)) => value,
            Ok(None) => return Ok(false),
            Err(_) => return Err(StopReason::BadIoCompletion),
        };
        if pending.pio.write.is_none() {
            let rax = rax_after_in(self.vcpu.rax(), pending.pio.size, value);
            self.vcpu.set_rax(rax);
        }
        self.vcpu.set_rip(pending.next_rip);
        self.pending = None;
        self.run = self.run.resume().map_err(|_| StopReason::BadIoCompletion)?;
        Ok(true)
    }

    /// Takes the COMPLETE request of the vCPU's slot, hands an IN's value
    /// to the guest and lets it run (`Ok`); `Error::BadSlotState`, with
    /// nothing changed, while the slot is not COMPLETE or no access waits.
    /// A completion whose slot does not hold the access submitted stops the
    /// VM with a reason line (a port access has no bus error to inject);
    /// the vCPU is released, so the run loop reports it at once.
    pub fn resume_io(&mut self, vcpu: usize) -> Result<(), Error> {
        if vcpu != 0 || self.pending.is_none() {
            return Err(Error::BadSlotState);
        }
        match self.complete_io() {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::BadSlotState),
            Err(reason) => {
                self.pending = None;
                let pc = self.vcpu.rip();
                let at = crate::ticks::uptime_ms(super::timer::timer_now());
                self.vm.leave(VmState::Stopped(reason), pc, at);
                Ok(())
            }
        }
    }

    /// Answers CPUID with the host's values for the leaf in EAX/ECX, minus
    /// SVM and VMX (the guest cannot nest), minus XSAVE, OSXSAVE and AVX
    /// (only the FXSAVE state is switched, see `fpu`), minus protection
    /// keys and the other features behind CR4 bits the host owns
    /// (`cr4::hide`), minus the performance-monitoring unit (`pmu::hide`:
    /// leaf 0xA reports version 0), and with the hypervisor bit set.
    fn cpuid(&mut self) {
        let leaf = self.vcpu.rax() as u32;
        let sub = self.vcpu.gprs().regs[1] as u32;
        let mut r = core::arch::x86_64::__cpuid_count(leaf, sub);
        let mut words = [r.eax, r.ebx, r.ecx, r.edx];
        cr4::hide(leaf, sub, &mut words, self.vcpu.cr4_owned());
        pmu::hide(leaf, &mut words);
        [r.eax, r.ebx, r.ecx, r.edx] = words;
        match leaf {
            1 => r.ecx = (r.ecx | 1 << 31) & !(1 << 5 | CPUID1_ECX_XSAVE_AVX),
            0x8000_0001 => r.ecx &= !(1 << 2),
            0x8000_000a => {
                r = core::arch::x86_64::CpuidResult {
                    eax: 0,
                    ebx: 0,
                    ecx: 0,
                    edx: 0,
                }
            }
            _ => {}
        }
        self.vcpu.set_rax(r.eax.into());
        let gprs = self.vcpu.gprs();
        gprs.regs[0] = r.ebx.into();
        gprs.regs[1] = r.ecx.into();
        gprs.regs[2] = r.edx.into();
    }

    /// An intercepted RDMSR (`write` false) or WRMSR of the MSR in ECX:
    /// answered as `msr::emulate` decides, RIP past the instruction, or
    /// #GP(0) injected with RIP left on it.
    fn msr_access(&mut self, write: bool, next_rip: u64) {
        let index = self.vcpu.gprs().regs[1] as u32;
        let edx = self.vcpu.gprs().regs[2];
        let access = if write {
            Access::Write((edx & 0xffff_ffff) << 32 | self.vcpu.rax() & 0xffff_ffff)
        } else {
            Access::Read
        };
        let guest = GuestView {
            efer: self.vcpu.efer(),
            efer_writable: efer_writable(),
            tsc: super::timer::timer_now(),
        };
        match msr::emulate(index, access, &guest) {
            Outcome::Value(value) => {
                self.vcpu.set_rax(value & 0xffff_ffff);
                self.vcpu.gprs().regs[2] = value >> 32;
            }
            Outcome::SetEfer(efer) => self.vcpu.set_efer(efer),
            Outcome::Ignored => {}
            Outcome::GeneralProtection => {
                self.vcpu.inject_gp();
                return;
            }
        }
        self.vcpu.set_rip(next_rip);
    }

    /// An intercepted MOV to CR4 from register `gpr` (x86 numbering),
    /// the instruction ending at `next_rip`; under SVM neither is known and
    /// the instruction is fetched at RIP through the guest's page tables
    /// and decoded (`mov_cr`). CR4 changes as `cr4::write` decides (RIP
    /// past the instruction), or #GP(0) is injected with RIP left on it:
    /// a host-owned bit (PKE, OSXSAVE, VMXE, reserved...), a check the
    /// CPU skipped for the intercept, or an instruction that cannot be
    /// fetched or is no MOV to CR4. Never a stopped VM.
    fn cr4_write(&mut self, gpr: Option<u8>, next_rip: Option<u64>) {
        let decoded = match (gpr, next_rip) {
            (Some(gpr), Some(next_rip)) => Some((gpr, next_rip)),
            _ => self.fetch_mov_to_cr4(),
        };
        let Some((gpr, next_rip)) = decoded else {
            self.vcpu.inject_gp();
            return;
        };
        let mut value = self.vcpu.gpr(gpr);
        if !self.vcpu.in_64bit_code() {
            value &= 0xffff_ffff;
        }
        match cr4::write(value, &self.vcpu.cr4_guest(), self.vcpu.cr4_owned()) {
            cr4::Write::Accept { value, flush } => {
                self.vcpu.set_cr4(value, flush);
                self.vcpu.set_rip(next_rip);
            }
            cr4::Write::GeneralProtection => self.vcpu.inject_gp(),
        }
    }

    /// The source register and next RIP of the MOV to CR4 at the guest's
    /// RIP, fetched from its RAM through its page tables.
    fn fetch_mov_to_cr4(&self) -> Option<(u8, u64)> {
        let code = self.vcpu.code_view()?;
        let mov = mov_cr::fetch_at_rip(&code, |gpa| self.read_u64(gpa), |gpa| self.read_u8(gpa))?;
        (mov.cr == 4).then(|| (mov.gpr, code.rip.wrapping_add(mov.len)))
    }

    /// Raises or lowers vCPU `vcpu`'s external interrupt (nothing on x86
    /// yet: the guests run with interrupts off).
    pub fn set_external_irq(&mut self, vcpu: usize, _raised: bool) -> Result<(), Error> {
        if vcpu != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(())
    }

    /// The vCPU made its slot PENDING at `now` (timer ticks).
    #[inline]
    pub fn io_exit_at(&mut self, now: u64) {
        self.vcpu_stats.io_exit(now);
    }

    /// The vCPU was resumed at `now`: its round trip ends and is charged
    /// to the VM.
    #[inline]
    pub fn io_resumed_at(&mut self, now: u64) {
        let ticks = self.vcpu_stats.io_resumed(now);
        self.vm.stats.round_trip(ticks);
    }

    /// The VM's figures: its own counters with its vCPU's exits.
    pub fn figures(&self, ticks_per_second: u64) -> crate::vm::stats::VmFigures {
        self.vm.stats.figures(ticks_per_second, [&self.vcpu_stats])
    }

    /// vCPU `vcpu`'s counters (vCPU 0 only).
    pub fn vcpu_stats(&self, vcpu: usize) -> Option<VcpuStats> {
        (vcpu == 0).then_some(self.vcpu_stats)
    }

    /// vCPUs a sibling woke: none, with one vCPU per x86 VM.
    #[inline]
    pub fn take_wakeups(&mut self) -> u64 {
        0
    }
}

/// CPUID leaf 1 ECX: XSAVE (26), OSXSAVE (27), AVX (28).
const CPUID1_ECX_XSAVE_AVX: u32 = 0b111 << 26;

/// The EFER bits a guest may flip: SCE, and NXE when the CPU has NX.
fn efer_writable() -> u64 {
    let nx = core::arch::x86_64::__cpuid(0x8000_0001).edx & 1 << 20 != 0;
    msr::EFER_SCE | if nx { msr::EFER_NXE } else { 0 }
}

/// A guest entry to make outside the kernel lock; x86 makes none
/// ([`GuestVm::begin`] runs the whole run).
pub enum GuestEntry {}

impl GuestEntry {
    /// Never called: no value of the type exists.
    pub fn enter(self) {
        match self {}
    }
}
