//! A guest VM on x86_64 (SVM or VMX, chosen by CPUID): one vCPU with its
//! VMCB or VMCS, RAM from guest-physical 0 behind nested page tables (EPT
//! on VMX) under an ASID (VPID) of its own, and
//! the run that enters the guest and turns each exit into a port
//! access through the ioreq slot, a CPUID answer, a null hypercall (straight
//! back into the guest), a sleep, a power-off, a
//! return to the host scheduler or a stopped VM. A run starts under the
//! kernel lock ([`GuestVm::begin`]), each entry is made outside it
//! ([`GuestEntry::enter`], on any CPU that schedules vCPUs) and each exit
//! handled under it again ([`GuestVm::resume`]). The VM's memory over its
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

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;

use ipc::Error;
use ipc::ioreq_abi::slot::{self, IoRequest};
use ipc::syscall::{self as hc, X86_GUEST_PML4};

use super::cr4;
use super::fpu::{self, GuestFp};
use super::mov_cr;
use super::msr::{self, Access, GuestView, Outcome};
use super::pmu;
use super::smp::this_cpu;
use super::svm_exit::rax_after_in;
use super::vcpu::{Exit, Vcpu};
use super::vmx_caps::VmxError;
use crate::arch::RunOutcome;
use crate::arch::guest_ram::{IoreqFrames, VmRam};
use crate::vm::exit::{GuestExit, PioExit};
use crate::vm::ioreq_path::{self, VcpuRun};
use crate::vm::posted::PostLease;
use crate::vm::stats::{ExitKind, VcpuStats};
use crate::vm::vcpu_set::{VcpuSet, set_vcpu_from_fields};
use crate::vm::vectors::{FIRST_INTERRUPT_VECTOR, PendingVectors};
use crate::vm::{GuestAccess, StopReason, Vm, VmState};

/// A port access waiting in the ioreq slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingIo {
    /// The access.
    pub(super) pio: PioExit,
    /// Where the guest goes on once it is complete.
    pub(super) next_rip: u64,
}

/// What the CPU running a vCPU touches outside the kernel lock: the
/// vCPU's VMCB or VMCS and registers, and the exit its guest made. On the
/// heap, so that it stays put while the kernel changes the [`GuestVm`]
/// on another CPU.
pub(super) struct GuestFrame {
    pub(super) vcpu: Vcpu,
    /// The exit the guest last made, for [`GuestVm::resume`].
    pub(super) exit: Option<Exit>,
    /// Null hypercalls served outside the lock since the last exit the
    /// kernel handled (counted into the vCPU's exits then).
    pub(super) local_calls: u32,
    /// The run's leave to post device writes without the kernel lock, and
    /// the frame of the VM's ring it posts them to ([`GuestEntry::enter`]).
    pub(super) post: PostLease,
    pub(super) posted_ring: u64,
}

/// One vCPU of a VM.
pub struct GuestVcpu {
    pub(super) id: u8,
    pub(super) frame: Box<GuestFrame>,
    /// Whether it runs: vCPU 0 from the VM's start, the others once a
    /// sibling starts them (`X86_HYPERCALL_VCPU_START`).
    pub(super) started: bool,
    /// The CPU whose run of it is under way.
    pub(super) on_cpu: Option<u8>,
    /// The CPU it last ran on: another CPU's TLB entries and FP registers
    /// for it are out of date.
    pub(super) last_cpu: u8,
    /// Its x87/SSE registers while it is not in the CPU.
    pub(super) fp: GuestFp,
    pub(super) run: VcpuRun,
    /// Its exits and I/O round trips since the VM started.
    pub(super) stats: VcpuStats,
    pub(super) pending: Option<PendingIo>,
    /// Interrupt vectors sent to it and not yet offered to the CPU.
    pub(super) irr: PendingVectors,
}

impl GuestVcpu {
    /// vCPU `id` over `vcpu` (its VMCB or VMCS), stopped.
    pub(super) fn new(id: u8, vcpu: Vcpu) -> Self {
        GuestVcpu {
            id,
            frame: Box::new(GuestFrame {
                vcpu,
                exit: None,
                local_calls: 0,
                post: PostLease::default(),
                posted_ring: 0,
            }),
            started: false,
            on_cpu: None,
            last_cpu: 0,
            fp: GuestFp::new(),
            run: VcpuRun::Stopped,
            stats: VcpuStats::new(),
            pending: None,
            irr: PendingVectors::new(),
        }
    }

    /// Stops it: no access waits, no interrupt is pending (a reset, a
    /// VM start, its own `X86_HYPERCALL_VCPU_STOP`).
    pub(super) fn stop(&mut self) {
        self.started = false;
        self.run = VcpuRun::Stopped;
        self.pending = None;
        self.irr.clear();
        self.frame.vcpu.withdraw_interrupt();
    }

    /// Starts it in the entry state at `rip` with `rsp` and RDI = `rdi`,
    /// its FP state at reset; runnable. An error leaves it stopped.
    pub(super) fn start(&mut self, rip: u64, rsp: u64, rdi: u64) -> Result<(), VmxError> {
        self.stop();
        self.frame.vcpu.set_long_mode(rip, rsp, X86_GUEST_PML4)?;
        self.frame.vcpu.gprs().regs[GPR_RDI] = rdi;
        self.fp.restart();
        self.stats = VcpuStats::new();
        self.started = true;
        self.run = VcpuRun::Runnable;
        Ok(())
    }
}

set_vcpu_from_fields!(GuestVcpu);

/// A VM with its memory and its vCPUs.
pub struct GuestVm {
    /// The generic VM object.
    pub vm: Vm,
    /// Its vCPUs: the one that ran last, or is about to run, and the
    /// others.
    pub vcpus: VcpuSet<GuestVcpu>,
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

/// RDI's index among [`super::svm::GuestGprs`] (RBX, RCX, RDX, RSI, RDI,
/// ...): the first hypercall argument.
const GPR_RDI: usize = 4;
/// RSI: the second.
const GPR_RSI: usize = 3;
/// RDX: the third.
const GPR_RDX: usize = 2;
/// R8: the fourth.
const GPR_R8: usize = 6;

/// Where a CPU enters a guest: the frame of the vCPU it runs
/// ([`GuestVm::begin`], [`GuestVm::resume`]).
pub struct GuestEntry(NonNull<GuestFrame>);

impl GuestEntry {
    /// Runs the guest until its next exit that needs the kernel, outside
    /// the kernel lock; the CPU then takes the lock and hands the exit to
    /// [`GuestVm::resume`]. A null hypercall, which depends on nothing but
    /// the vCPU's registers, is answered here at once (counted in
    /// [`GuestFrame::local_calls`]); a host interrupt is taken here, before
    /// the lock (a tick counts on this CPU's clock, a kick only ends the
    /// run).
    pub fn enter(self) {
        // SAFETY: the frame is the boxed frame of a vCPU whose run this CPU
        // holds (`GuestVcpu::on_cpu`): no other CPU reads or writes it
        // until the run ends, and it is not freed while the CPU is in the
        // guest (a destroy or reset first waits, in `quiesce`, for
        // `per_cpu::left_guest` to have run).
        let frame = unsafe { &mut *self.0.as_ptr() };
        loop {
            let exit = frame.vcpu.run();
            if let (GuestExit::Hypercall, Some(next_rip)) = (exit.exit, exit.next_rip)
                && frame.vcpu.rax() == hc::X86_HYPERCALL_NULL
            {
                frame.vcpu.set_rip(next_rip);
                frame.local_calls = frame.local_calls.wrapping_add(1);
                continue;
            }
            if let (GuestExit::Pio(pio), Some(next_rip)) = (exit.exit, exit.next_rip)
                && frame.post.held()
                && post_here(frame, pio)
            {
                frame.vcpu.set_rip(next_rip);
                continue;
            }
            if exit.exit == GuestExit::HostInterrupt {
                // SAFETY: opens the interrupt window for the host interrupt
                // that ended the guest's slice (GIF is set again), then
                // closes it; the kernel's vector takes it.
                unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
            }
            frame.exit = Some(exit);
            break;
        }
        crate::arch::per_cpu::left_guest();
    }
}

/// An OUT the run's lease posts ([`GuestEntry::enter`], outside the
/// kernel lock): to a port inside the range the lease covers, with room in
/// the ring. `false`, with nothing changed, for the kernel's path (which
/// counts the exit).
#[inline]
fn post_here(frame: &mut GuestFrame, pio: PioExit) -> bool {
    let Some(write) = pio.posted().filter(|_| !pio.past_last_port()) else {
        return false;
    };
    // SAFETY: `posted_ring` is the ring of the VM whose vCPU this CPU runs
    // (set with the lease, `GuestVm::prepare_entry`); the VM is not freed
    // while the CPU is in its guest or between two of its exits here (a
    // destroy waits in `quiesce` for `left_guest`).
    let ring = unsafe { crate::arch::guest_ram::leased_ring(frame.posted_ring) };
    frame.post.post(ring, &write)
}

impl GuestVm {
    /// Starts a run of vCPU `vcpu` on this CPU, under the kernel lock: the
    /// entry to make (outside the lock), or the outcome if it may not run.
    /// Its FP state goes into the CPU before the first entry (unless it is
    /// still there) and back into its save area when the run ends. A vCPU
    /// that last ran on another CPU gets its TLB entries flushed here
    /// (this CPU's may be older than its page tables).
    pub fn begin(&mut self, vcpu: usize) -> Result<GuestEntry, RunOutcome> {
        if !self.vcpus.select(vcpu) || !self.vcpus.cur.started {
            return Err(RunOutcome::HartStopped);
        }
        let cpu = this_cpu();
        if self.vcpus.cur.on_cpu.is_some_and(|c| usize::from(c) != cpu) {
            return Err(RunOutcome::Elsewhere);
        }
        if usize::from(self.vcpus.cur.last_cpu) != cpu {
            fpu::FpOwner::forget_here();
            self.vcpus.cur.frame.vcpu.flush_tlb_on_entry();
            self.vcpus.cur.last_cpu = cpu as u8;
        }
        self.vcpus.cur.on_cpu = Some(cpu as u8);
        match self.blocked() {
            Some(outcome) => Err(self.end_run(outcome)),
            None => Ok(self.prepare_entry()),
        }
    }

    /// The guest this CPU entered for vCPU `vcpu` exited: handles the
    /// exit, under the kernel lock, and returns the next entry, or how the
    /// run ended. A run the kernel took away while the CPU was in the
    /// guest (the VM was paused, reset or destroyed) is not resumed:
    /// `abandoned` says so, and the exit is dropped (RIP is still on the
    /// instruction that exited, which the guest runs again at its next
    /// entry).
    pub fn resume(&mut self, vcpu: usize, abandoned: bool) -> Result<GuestEntry, RunOutcome> {
        // The CPU is out of the guest: the run's posting lease, if it holds
        // it, comes back (its writes are the kernel's).
        self.io.settle(vcpu as u8);
        if !self.vcpus.select(vcpu) || self.vcpus.cur.on_cpu != Some(this_cpu() as u8) {
            // Nothing of the run is left to save.
            return Err(RunOutcome::Preempted);
        }
        let local = core::mem::take(&mut self.vcpus.cur.frame.local_calls);
        if local != 0 {
            self.vcpus.cur.stats.exits_of(ExitKind::Hypercall, local);
        }
        let v = &mut self.vcpus.cur;
        v.frame.post.count_into(&mut v.stats, &mut self.vm.stats);
        if let Some(vector) = self.vcpus.cur.frame.vcpu.undelivered_interrupt() {
            self.vcpus.cur.irr.set(vector);
        }
        let exit = self.vcpus.cur.frame.exit.take();
        if abandoned || self.vm.state() != VmState::Running {
            return Err(self.end_run(RunOutcome::Preempted));
        }
        let Some(exit) = exit else {
            return Err(self.end_run(RunOutcome::Preempted));
        };
        match self.handle_exit(exit).or_else(|| self.blocked()) {
            Some(outcome) => Err(self.end_run(outcome)),
            None => Ok(self.prepare_entry()),
        }
    }

    /// Why the selected vCPU may not enter its guest now, if it may not.
    fn blocked(&self) -> Option<RunOutcome> {
        if self.vm.state() != VmState::Running {
            return Some(RunOutcome::Left(self.vm.state()));
        }
        if !self.vcpus.cur.started {
            return Some(RunOutcome::HartStopped);
        }
        (self.vcpus.cur.run != VcpuRun::Runnable).then_some(RunOutcome::BlockedOnIo)
    }

    /// The entry of the selected vCPU, which runs on this CPU: the highest
    /// interrupt sent to it offered to the CPU (if the CPU takes one now),
    /// its FP state in the CPU, and the CPU marked as in its guest.
    fn prepare_entry(&mut self) -> GuestEntry {
        let v = &mut self.vcpus.cur;
        if let Some(vector) = v.irr.take_highest()
            && !v.frame.vcpu.offer_interrupt(vector)
        {
            v.irr.set(vector);
        }
        v.fp.before_run(&mut fpu::Cpu);
        v.frame.post = self.io.lease(v.id);
        v.frame.posted_ring = self.io.posted;
        let frame = NonNull::from(&mut *v.frame);
        crate::arch::per_cpu::entering_guest(frame.as_ptr() as usize);
        GuestEntry(frame)
    }

    /// The run of the selected vCPU ends with `outcome`: the FP state goes
    /// back to memory and no CPU holds the vCPU.
    fn end_run(&mut self, outcome: RunOutcome) -> RunOutcome {
        self.vcpus.cur.fp.after_run(&fpu::Cpu);
        self.vcpus.cur.on_cpu = None;
        outcome
    }

    /// Makes sure no CPU but this one is in a guest of this VM, or will
    /// enter one without the kernel lock first: every CPU running one of
    /// its vCPUs is kicked out of the guest, and this waits (holding the
    /// lock) until each has left it. Their runs end when they next take
    /// the lock ([`GuestVm::resume`]). Before a pause, reset or destroy
    /// returns.
    pub fn quiesce(&self) {
        for (cpu, v) in self.vcpus.running_elsewhere(this_cpu()) {
            crate::arch::per_cpu::kick_out_of_guest(cpu, &*v.frame as *const GuestFrame as usize);
        }
    }

    /// Handles `exit` of the selected vCPU's guest (the null hypercall and
    /// the host interrupt window are [`GuestEntry::enter`]'s): `None` when
    /// the vCPU runs on, else how its run ends.
    fn handle_exit(&mut self, exit: Exit) -> Option<RunOutcome> {
        self.vcpus.cur.stats.exit(ExitKind::of(&exit.exit));
        let next_rip = exit.next_rip.unwrap_or(0);
        let unhandled = StopReason::UnhandledException {
            code: exit.code,
            value: exit.info,
        };
        match exit.exit {
            GuestExit::Pio(pio) => {
                if exit.next_rip.is_none() {
                    return Some(self.stop(unhandled));
                }
                self.port_access(pio, next_rip)
            }
            GuestExit::Cpuid => {
                self.cpuid();
                self.vcpus.cur.frame.vcpu.set_rip(next_rip);
                None
            }
            GuestExit::Msr { write } => {
                if exit.next_rip.is_none() {
                    return Some(self.stop(unhandled));
                }
                self.msr_access(write, next_rip);
                None
            }
            // The host's counters are never read for a guest: #GP(0),
            // as on a CPU without the counter ECX names. RIP stays.
            GuestExit::PerfCounterRead => {
                self.vcpus.cur.frame.vcpu.inject_gp();
                None
            }
            GuestExit::ControlRegisterWrite { gpr } => {
                self.cr4_write(gpr, exit.next_rip);
                None
            }
            GuestExit::Hypercall => self.hypercall(next_rip),
            GuestExit::Halt => {
                self.vcpus.cur.frame.vcpu.set_rip(next_rip);
                // An interrupt waits and the guest takes interrupts: HLT
                // ends at once (the entry delivers it).
                let v = &self.vcpus.cur;
                let woken = (v.irr.any() || v.frame.vcpu.interrupt_offered())
                    && v.frame.vcpu.interrupts_enabled();
                if woken {
                    return None;
                }
                Some(RunOutcome::Sleeping(
                    super::timer::timer_now().saturating_add(1),
                ))
            }
            // Taken in `GuestEntry::enter`: a tick or a kick, the
            // scheduler decides.
            GuestExit::HostInterrupt => Some(RunOutcome::Preempted),
            GuestExit::GuestPageFault { access, gpa } => {
                // No x86 instruction decoder yet: a device window's
                // access stops the VM like a wild one, named as such.
                if access != GuestAccess::Fetch && crate::vm::is_mmio(gpa) {
                    return Some(self.stop(StopReason::UndecodableMmio { gpa, insn: 0 }));
                }
                Some(self.stop(StopReason::GuestPageFault { access, gpa }))
            }
            GuestExit::Shutdown | GuestExit::Unhandled { .. } => Some(self.stop(unhandled)),
        }
    }

    /// A hypercall of the selected vCPU (number in RAX, arguments in RDI,
    /// RSI, RDX and R8; see `ipc::syscall::X86_HYPERCALL_NULL`): the vCPU
    /// calls and IPIs answer in RAX with RIP past the call; any other
    /// number powers the VM off.
    fn hypercall(&mut self, next_rip: u64) -> Option<RunOutcome> {
        let number = self.vcpus.cur.frame.vcpu.rax();
        let regs = self.vcpus.cur.frame.vcpu.gprs().regs;
        let (a0, a1, a2, a3) = (regs[GPR_RDI], regs[GPR_RSI], regs[GPR_RDX], regs[GPR_R8]);
        let answer = match number {
            hc::X86_HYPERCALL_NULL => hc::X86_HC_OK,
            hc::X86_HYPERCALL_VCPU_ID => u64::from(self.vcpus.cur.id),
            hc::X86_HYPERCALL_VCPU_STATUS => {
                match self.vcpus.iter().find(|v| u64::from(v.id) == a0) {
                    Some(v) if v.started => hc::X86_VCPU_STARTED,
                    Some(_) => hc::X86_VCPU_STOPPED,
                    None => hc::X86_HC_INVALID,
                }
            }
            hc::X86_HYPERCALL_VCPU_START => self.start_vcpu(a0, a1, a2, a3),
            hc::X86_HYPERCALL_SEND_IPI => self.send_ipi(a0, a1),
            hc::X86_HYPERCALL_VCPU_STOP => {
                self.vcpus.cur.frame.vcpu.set_rip(next_rip);
                self.vcpus.cur.stop();
                return Some(RunOutcome::HartStopped);
            }
            _ => return Some(self.power_off(next_rip)),
        };
        self.vcpus.cur.frame.vcpu.set_rax(answer);
        self.vcpus.cur.frame.vcpu.set_rip(next_rip);
        None
    }

    /// `X86_HYPERCALL_VCPU_START` of vCPU `id` at `rip` with `rsp` and
    /// RDI = `arg`: it must be stopped; it runs once the host hears
    /// ([`VcpuSet::take_wakeups`]).
    fn start_vcpu(&mut self, id: u64, rip: u64, rsp: u64, arg: u64) -> u64 {
        let Some(target) = usize::try_from(id)
            .ok()
            .and_then(|id| self.vcpus.get_mut(id))
        else {
            return hc::X86_HC_INVALID;
        };
        if target.started {
            return hc::X86_HC_ALREADY_STARTED;
        }
        if target.start(rip, rsp, arg).is_err() {
            // The backend refused the entry state (VMX): the vCPU stays
            // stopped, as if the address were out of range.
            return hc::X86_HC_INVALID;
        }
        self.vcpus.wake(1 << id);
        hc::X86_HC_OK
    }

    /// `X86_HYPERCALL_SEND_IPI` of `vector` to the vCPUs of `mask`: each
    /// started one gets it pending; one running on another CPU is kicked
    /// out of its guest to take it, one sleeping in HLT is woken.
    fn send_ipi(&mut self, mask: u64, vector: u64) -> u64 {
        let count = self.vcpus.count();
        let all = if count >= 64 {
            u64::MAX
        } else {
            (1 << count) - 1
        };
        let Ok(vector) = u8::try_from(vector) else {
            return hc::X86_HC_INVALID;
        };
        if vector < FIRST_INTERRUPT_VECTOR || mask & !all != 0 {
            return hc::X86_HC_INVALID;
        }
        let me = this_cpu();
        let mut kicks = 0u64;
        let mut woken = 0u64;
        for v in self.vcpus.iter_mut() {
            if mask & 1 << v.id == 0 || !v.started {
                continue;
            }
            v.irr.set(vector);
            match v.on_cpu.map(usize::from) {
                Some(cpu) if cpu != me => kicks |= 1 << cpu,
                Some(_) => {}
                None => woken |= 1 << v.id,
            }
        }
        self.vcpus.wake(woken);
        if kicks != 0 {
            super::smp::kick(kicks);
        }
        hc::X86_HC_OK
    }

    /// The selected vCPU powers the VM off (after its posted output).
    fn power_off(&mut self, next_rip: u64) -> RunOutcome {
        if self.io.drain_first(super::timer::timer_now()) {
            return RunOutcome::Preempted;
        }
        let pc = self.vcpus.cur.frame.vcpu.rip();
        self.vcpus.cur.frame.vcpu.set_rip(next_rip);
        let off = VmState::PoweredOff { reason: 0 };
        let at = crate::ticks::uptime_ms(super::timer::timer_now());
        self.vm.leave(off, pc, at);
        self.vcpus.cur.run = VcpuRun::Stopped;
        RunOutcome::Left(off)
    }

    /// Stops the VM for `reason` (after its posted output, see
    /// [`crate::vm::posted::Posting::drain_first`]: until then the vCPU
    /// yields and the guest exits again on the same instruction).
    fn stop(&mut self, reason: StopReason) -> RunOutcome {
        if self.io.drain_first(super::timer::timer_now()) {
            return RunOutcome::Preempted;
        }
        let pc = self.vcpus.cur.frame.vcpu.rip();
        let at = crate::ticks::uptime_ms(super::timer::timer_now());
        self.vm.leave(VmState::Stopped(reason), pc, at);
        self.vcpus.cur.run = VcpuRun::Stopped;
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
                let rax = rax_after_in(self.vcpus.cur.frame.vcpu.rax(), pio.size, pio.open_bus());
                self.vcpus.cur.frame.vcpu.set_rax(rax);
            }
            self.vcpus.cur.frame.vcpu.set_rip(next_rip);
            return None;
        }
        if let Some(write) = pio.posted()
            && self.io.post(&write, &mut self.vm.stats)
        {
            self.vcpus.cur.frame.vcpu.set_rip(next_rip);
            return None;
        }
        let request = pio.request(self.vcpus.cur.id);
        if slot::fill(self.io.page(), &request).is_err() {
            return Some(self.stop(StopReason::BadIoCompletion));
        }
        self.vcpus.cur.pending = Some(PendingIo { pio, next_rip });
        self.vcpus.cur.run = VcpuRun::BlockedOnIo;
        Some(RunOutcome::BlockedOnIo)
    }

    /// Finishes the vCPU's port access if its slot is COMPLETE: an IN's
    /// value goes into AL/AX/EAX, RIP steps past the instruction and the
    /// vCPU is runnable (`Ok(true)`); `Ok(false)` while it is not done.
    fn complete_io(&mut self) -> Result<bool, StopReason> {
        let Some(pending) = self.vcpus.cur.pending else {
            return Ok(false);
        };
        let id = self.vcpus.cur.id;
        let value = match ioreq_path::collect(self.io.page(), id, &pending.pio.request(id)) {
            Ok(Some(value)) => value,
            Ok(None) => return Ok(false),
            Err(_) => return Err(StopReason::BadIoCompletion),
        };
        self.finish_io(pending, value)?;
        Ok(true)
    }

    /// Hands an IN's `value` to AL/AX/EAX, steps RIP past the instruction
    /// of `pending`, the vCPU's access, and lets the vCPU run.
    fn finish_io(&mut self, pending: PendingIo, value: u64) -> Result<(), StopReason> {
        if pending.pio.write.is_none() {
            let rax = rax_after_in(self.vcpus.cur.frame.vcpu.rax(), pending.pio.size, value);
            self.vcpus.cur.frame.vcpu.set_rax(rax);
        }
        self.vcpus.cur.frame.vcpu.set_rip(pending.next_rip);
        self.vcpus.cur.pending = None;
        self.vcpus.cur.run = self
            .vcpus
            .cur
            .run
            .resume()
            .map_err(|_| StopReason::BadIoCompletion)?;
        Ok(())
    }

    /// A client answered vCPU `vcpu`'s forwarded access with `answer`: if
    /// it is the plain answer of the access's kind, the PROCESSING slot is
    /// completed and taken at once (`ioreq_path::take_plain_answer`) and
    /// the result goes to the guest as [`GuestVm::resume_io`] hands it
    /// (`Ok(true)`); any other answer changes nothing (`Ok(false)`).
    /// `Error::BadSlotState`, with nothing changed, when no access waits
    /// or its slot is not PROCESSING.
    pub fn take_answer(
        &mut self,
        vcpu: usize,
        answer: Option<ipc::devices::Response>,
    ) -> Result<bool, Error> {
        if !self.vcpus.select(vcpu) {
            return Err(Error::BadSlotState);
        }
        let Some(pending) = self.vcpus.cur.pending else {
            return Err(Error::BadSlotState);
        };
        let request = pending.pio.request(self.vcpus.cur.id);
        let taken = ioreq_path::take_plain_answer(self.io.page(), &request, answer);
        let Some(value) = taken.map_err(|_| Error::BadSlotState)? else {
            return Ok(false);
        };
        self.finish_io(pending, value)
            .map(|()| true)
            .map_err(|_| Error::BadSlotState)
    }

    /// The access vCPU `vcpu` waits on, as the kernel submitted it.
    pub fn submitted(&mut self, vcpu: usize) -> Option<IoRequest> {
        if !self.vcpus.select(vcpu) {
            return None;
        }
        let id = self.vcpus.cur.id;
        self.vcpus
            .cur
            .pending
            .map(|pending| pending.pio.request(id))
    }

    /// Takes the COMPLETE request of the vCPU's slot, hands an IN's value
    /// to the guest and lets it run (`Ok`); `Error::BadSlotState`, with
    /// nothing changed, while the slot is not COMPLETE or no access waits.
    /// A completion whose slot does not hold the access submitted stops the
    /// VM with a reason line (a port access has no bus error to inject);
    /// the vCPU is released, so the run loop reports it at once.
    pub fn resume_io(&mut self, vcpu: usize) -> Result<(), Error> {
        if !self.vcpus.select(vcpu) || self.vcpus.cur.pending.is_none() {
            return Err(Error::BadSlotState);
        }
        match self.complete_io() {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::BadSlotState),
            Err(reason) => {
                self.vcpus.cur.pending = None;
                let pc = self.vcpus.cur.frame.vcpu.rip();
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
        let leaf = self.vcpus.cur.frame.vcpu.rax() as u32;
        let sub = self.vcpus.cur.frame.vcpu.gprs().regs[1] as u32;
        let mut r = core::arch::x86_64::__cpuid_count(leaf, sub);
        let mut words = [r.eax, r.ebx, r.ecx, r.edx];
        cr4::hide(leaf, sub, &mut words, self.vcpus.cur.frame.vcpu.cr4_owned());
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
        self.vcpus.cur.frame.vcpu.set_rax(r.eax.into());
        let gprs = self.vcpus.cur.frame.vcpu.gprs();
        gprs.regs[0] = r.ebx.into();
        gprs.regs[1] = r.ecx.into();
        gprs.regs[2] = r.edx.into();
    }

    /// An intercepted RDMSR (`write` false) or WRMSR of the MSR in ECX:
    /// answered as `msr::emulate` decides, RIP past the instruction, or
    /// #GP(0) injected with RIP left on it.
    fn msr_access(&mut self, write: bool, next_rip: u64) {
        let index = self.vcpus.cur.frame.vcpu.gprs().regs[1] as u32;
        let edx = self.vcpus.cur.frame.vcpu.gprs().regs[2];
        let access = if write {
            Access::Write((edx & 0xffff_ffff) << 32 | self.vcpus.cur.frame.vcpu.rax() & 0xffff_ffff)
        } else {
            Access::Read
        };
        let guest = GuestView {
            efer: self.vcpus.cur.frame.vcpu.efer(),
            efer_writable: efer_writable(),
            tsc: super::timer::timer_now(),
        };
        match msr::emulate(index, access, &guest) {
            Outcome::Value(value) => {
                self.vcpus.cur.frame.vcpu.set_rax(value & 0xffff_ffff);
                self.vcpus.cur.frame.vcpu.gprs().regs[2] = value >> 32;
            }
            Outcome::SetEfer(efer) => self.vcpus.cur.frame.vcpu.set_efer(efer),
            Outcome::Ignored => {}
            Outcome::GeneralProtection => {
                self.vcpus.cur.frame.vcpu.inject_gp();
                return;
            }
        }
        self.vcpus.cur.frame.vcpu.set_rip(next_rip);
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
            self.vcpus.cur.frame.vcpu.inject_gp();
            return;
        };
        let mut value = self.vcpus.cur.frame.vcpu.gpr(gpr);
        if !self.vcpus.cur.frame.vcpu.in_64bit_code() {
            value &= 0xffff_ffff;
        }
        match cr4::write(
            value,
            &self.vcpus.cur.frame.vcpu.cr4_guest(),
            self.vcpus.cur.frame.vcpu.cr4_owned(),
        ) {
            cr4::Write::Accept { value, flush } => {
                self.vcpus.cur.frame.vcpu.set_cr4(value, flush);
                self.vcpus.cur.frame.vcpu.set_rip(next_rip);
            }
            cr4::Write::GeneralProtection => self.vcpus.cur.frame.vcpu.inject_gp(),
        }
    }

    /// The source register and next RIP of the MOV to CR4 at the guest's
    /// RIP, fetched from its RAM through its page tables.
    fn fetch_mov_to_cr4(&self) -> Option<(u8, u64)> {
        let code = self.vcpus.cur.frame.vcpu.code_view()?;
        let mov = mov_cr::fetch_at_rip(&code, |gpa| self.read_u64(gpa), |gpa| self.read_u8(gpa))?;
        (mov.cr == 4).then(|| (mov.gpr, code.rip.wrapping_add(mov.len)))
    }

    /// Raises or lowers vCPU `vcpu`'s external interrupt line (nothing on
    /// x86 yet: no device model raises one; the vCPUs' IPIs are
    /// `X86_HYPERCALL_SEND_IPI`).
    pub fn set_external_irq(&mut self, vcpu: usize, _raised: bool) -> Result<(), Error> {
        if vcpu >= self.vcpus.count() {
            return Err(Error::InvalidArgument);
        }
        Ok(())
    }

    /// The vCPU was resumed at `now`: its round trip ends and is charged
    /// to the VM.
    #[inline]
    pub fn io_resumed_at(&mut self, now: u64) {
        let ticks = self.vcpus.cur.stats.io_resumed(now);
        self.vm.stats.round_trip(ticks);
    }
}

/// CPUID leaf 1 ECX: XSAVE (26), OSXSAVE (27), AVX (28).
const CPUID1_ECX_XSAVE_AVX: u32 = 0b111 << 26;

/// The EFER bits a guest may flip: SCE, and NXE when the CPU has NX.
fn efer_writable() -> u64 {
    let nx = core::arch::x86_64::__cpuid(0x8000_0001).edx & 1 << 20 != 0;
    msr::EFER_SCE | if nx { msr::EFER_NXE } else { 0 }
}
