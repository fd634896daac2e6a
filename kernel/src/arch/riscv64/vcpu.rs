//! A guest VM on RISC-V: its G-stage tables and RAM in host frames, a VMID,
//! its vCPUs with their VS CSRs, and the run loop that enters the guest and
//! turns each exit into SBI service (`vcpu_sbi`), an MMIO request through
//! the vCPU's ioreq slot, a return to the host scheduler, or a stopped VM.
//!
//! A VM's vCPUs run on any of the kernel's harts, several at once. The
//! kernel runs under one lock, which a hart gives up only for the world
//! switch itself: a run of a vCPU is [`GuestVm::begin`], then per exit
//! [`GuestVm::resume`] (each under the lock), with [`GuestEntry::enter`]
//! between them outside it. While a run lasts, its hart holds the vCPU's
//! VS CSRs and is named in [`Vcpu::on_cpu`]; the vCPU's registers live in a
//! frame of their own on the heap, which the hart enters through a
//! [`GuestEntry`], so the kernel may rearrange the VM's vCPUs (the one it
//! works on is swapped into [`VcpuSet::cur`] under the lock) while
//! others run. Another hart never touches the live state of a vCPU that
//! runs: an interrupt for it goes to its mailbox, taken at its next entry,
//! and its hart is kicked out of the guest to take it; a fence or a change
//! of the whole VM (pause, reset, destroy) kicks it out and waits until it
//! is out ([`GuestVm::quiesce`]). Its memory over its life is
//! `guest_mem`, the VS CSRs `vs_csrs`, and the VMIDs and fences
//! `guest_tlb`.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::cpus::{MAX_HARTS, PerCpu, this_cpu};

use super::fpu::{self, FpRegs};
use super::gstage;
use super::guest_tlb::{LOADED_HGATP, hfence_gvma_all, hfence_gvma_vmid, hfence_vvma_all};
use super::mmio_decode::{self, AccessKind, MmioAccess};
use super::sv39::MapError;
use super::vs_csrs::VsCsrs;
use super::vs_fetch::{self, GuestMode};
use super::world_switch::{GuestFrame, enter_guest};
use super::{csr, guest_sbi, timer};
use crate::arch::RunOutcome;
use crate::arch::guest_ram::{IoreqFrames, VmRam};
use crate::vm::console::ConsoleLine;
use crate::vm::ioreq_path::{self, MmioExit, VcpuRun};
use crate::vm::stats::{ExitKind, VcpuStats};
use crate::vm::vcpu_set::{VcpuSet, set_vcpu_from_fields};
use crate::vm::{GuestAccess, StopReason, Vm, VmState, is_mmio};
use ipc::ioreq_abi::posted::PostedWrite;
use ipc::ioreq_abi::slot::IoRequest;
use ipc::{Error, Space};

const HSTATUS_SPVP: usize = 1 << 8;
/// `wfi` in VS-mode traps (virtual instruction) so the kernel can sleep it.
const HSTATUS_VTW: usize = 1 << 21;
/// The `wfi` instruction.
const WFI: usize = 0x1050_0073;
const SSTATUS_SPIE: usize = 1 << 5;
/// Exceptions the guest handles itself: misaligned fetch, illegal
/// instruction, breakpoint, misaligned load and store (when the firmware
/// lets them reach HS at all), U-mode ecall, and its own (VS-stage) page
/// faults.
const HEDELEG: usize = (1 << 0)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 6)
    | (1 << 8)
    | (1 << 12)
    | (1 << 13)
    | (1 << 15);
/// The illegal-instruction exception.
const ILLEGAL_INSTRUCTION: usize = 2;
/// The access-fault exceptions (instruction, load, store/AMO).
const INSTRUCTION_ACCESS_FAULT: usize = 1;
const LOAD_ACCESS_FAULT: usize = 5;
const STORE_ACCESS_FAULT: usize = 7;
/// VS software, timer and external interrupts go straight to the guest.
const HIDELEG: usize = (1 << 2) | (1 << 6) | (1 << 10);
pub(super) const HVIP_VSSIP: usize = 1 << 2;
pub(super) const HVIP_VSTIP: usize = 1 << 6;
/// The VS-level external interrupt (the device service's PLIC output).
const HVIP_VSEIP: usize = 1 << 10;
const HENVCFG_STCE: usize = 1 << 63;
/// `vsie` bits of the interrupts that can end a `wfi` without a timer:
/// supervisor software (an IPI) and external.
const VSIE_WAKERS: usize = (1 << 1) | (1 << 9);
const INTERRUPT: usize = 1 << 63;
/// `scause` of an `ecall` from VS-mode: an SBI call.
const ECALL_FROM_VS: usize = 10;
/// `scause` of a store guest-page fault: a device write, among others.
const STORE_GUEST_PAGE_FAULT: usize = 23;

/// Why a VM could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestSetupError {
    /// Not enough free frames for its RAM or tables.
    OutOfMemory,
    /// The image does not fit in its RAM.
    ImageTooLarge,
    /// The G-stage builder refused (a bug).
    Map(MapError),
}

/// The vCPU (by its [`Vcpu::fp_token`], new at every start) whose VS CSRs
/// the hart holds exactly as they were last saved; 0 for none. Its next
/// run skips loading them.
static VS_OWNER: PerCpu<AtomicU64> = PerCpu([const { AtomicU64::new(0) }; MAX_HARTS]);
/// Per CPU: whether `hedeleg`, `hideleg`, `hcounteren`, `htimedelta` and
/// `henvcfg` hold the values every VM runs with.
static DELEGATION_SET: PerCpu<AtomicBool> = PerCpu([const { AtomicBool::new(false) }; MAX_HARTS]);

/// Where a hart enters a guest: the frame of the vCPU it runs
/// ([`GuestVm::begin`], [`GuestVm::resume`]).
pub struct GuestEntry(NonNull<GuestFrame>);

impl GuestEntry {
    /// Runs the guest until its next exit that needs the kernel, outside
    /// the kernel lock; the hart then takes the lock and hands the exit to
    /// [`GuestVm::resume`]. Two exits are served here at once, without the
    /// lock: an SBI base-extension call, which depends on nothing but the
    /// calling vCPU's registers (counted in [`GuestFrame::local_calls`]),
    /// and a device write the run may post under its lease
    /// ([`post_here`]; counted by the lease): the cheapest call and the
    /// UART's transmit writes cost no lock.
    ///
    /// Inlined into the kernel's run loop, it has no loop of its own: the
    /// exits served here are, in [`serve_here`], so that the compiler
    /// computes their constants there, once per stretch of such exits,
    /// not before the kernel's loop on every call.
    #[inline]
    pub fn enter(self) {
        // SAFETY: the frame is the boxed frame of a vCPU whose run this
        // hart holds (`Vcpu::on_cpu`): no other hart reads or writes it
        // until the run ends, and it is not freed while the hart is in the
        // guest (a destroy or reset first waits, in `quiesce`, for
        // `per_cpu::left_guest` to have run).
        let frame = unsafe { &mut *self.0.as_ptr() };
        enter_guest(frame);
        if served_here(frame) {
            serve_here(frame);
        }
        crate::arch::per_cpu::left_guest();
    }
}

/// Whether the guest's exit (its `scause` still in the CSR) is one
/// [`serve_here`] may take: an SBI base-extension call, or a store
/// guest-page fault while the run holds the posting lease.
#[inline(always)]
fn served_here(frame: &GuestFrame) -> bool {
    let cause = csr::scause::read();
    base_call_exit(frame, cause) || leased_store_exit(frame, cause)
}

/// Whether the exit with cause `cause` is an SBI base-extension call.
#[inline(always)]
fn base_call_exit(frame: &GuestFrame, cause: usize) -> bool {
    cause == ECALL_FROM_VS && frame.regs[17] == guest_sbi::EID_BASE
}

/// Whether the exit with cause `cause` is a store guest-page fault while
/// the run holds the posting lease (one [`post_here`] may post).
#[inline(always)]
fn leased_store_exit(frame: &GuestFrame, cause: usize) -> bool {
    cause == STORE_GUEST_PAGE_FAULT && frame.post.held()
}

/// Serves the guest's exits that need no lock and re-enters it, until an
/// exit that needs the kernel (then in the CSRs and `frame`, as
/// [`enter_guest`] leaves it).
#[inline(never)]
fn serve_here(frame: &mut GuestFrame) {
    loop {
        let cause = csr::scause::read();
        if base_call_exit(frame, cause) {
            let r = &mut frame.regs;
            let ret = guest_sbi::base_call(r[16], [r[10], r[11], r[12], r[13], r[14], r[15]]);
            r[10] = ret.error;
            r[11] = ret.value;
            frame.sepc += 4;
            frame.local_calls = frame.local_calls.wrapping_add(1);
        } else if !(leased_store_exit(frame, cause) && post_here(frame)) {
            return;
        }
        enter_guest(frame);
    }
}

/// A store guest-page fault the run's lease posts ([`serve_here`],
/// outside the kernel lock): a store whose transformed instruction
/// (`htinst`) decodes, to a device window, inside a range the lease
/// covers, with room in the ring. It steps the guest past the store;
/// `false`, with nothing changed, for the kernel's path (which decodes a
/// store `htinst` leaves out from the guest's memory, and counts the
/// exit).
#[inline]
fn post_here(frame: &mut GuestFrame) -> bool {
    let Ok(access) = mmio_decode::decode_htinst(csr::htinst::read() as u64) else {
        return false;
    };
    let AccessKind::Store { rs2 } = access.kind else {
        return false;
    };
    let gpa = mmio_decode::fault_gpa(csr::htval::read() as u64, csr::stval::read() as u64);
    if !is_mmio(gpa) {
        return false;
    }
    let write = PostedWrite {
        space: Space::Mmio,
        addr: gpa,
        size: access.width.bytes(),
        value: frame.regs[rs2.index()] as u64,
    };
    // SAFETY: `posted_ring` is the ring of the VM whose vCPU this hart
    // runs (set with the lease, `GuestVm::prepare_entry`); the VM is not
    // freed while the hart is in its guest or between two of its exits
    // here (a destroy waits in `quiesce` for `left_guest`).
    let ring = unsafe { crate::arch::guest_ram::leased_ring(frame.posted_ring) };
    if !frame.post.post(ring, &write) {
        return false;
    }
    frame.sepc += usize::from(access.insn_len);
    true
}

/// A vCPU's state as SBI HSM names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HartState {
    /// It runs (or waits in `wfi`, or for an I/O completion).
    Started,
    /// It waits for another hart to start it (`hart_start`).
    Stopped,
    /// It waits in a retentive suspend (`hart_suspend`) for an interrupt.
    Suspended,
}

/// One virtual hart.
pub struct Vcpu {
    pub(super) id: u8,
    /// Its HSM state.
    pub(super) hsm: HartState,
    /// Its registers, on the heap so that they stay put while the vCPU
    /// runs on one hart and the kernel moves the [`Vcpu`] on another.
    pub(super) frame: Box<GuestFrame>,
    /// The CPU whose run of it is under way, holding its VS CSRs.
    pub(super) on_cpu: Option<u8>,
    /// The CPU it last ran on: a CPU's record of the VS and FP state it
    /// holds is trusted only for the vCPU that last ran there.
    pub(super) last_cpu: u8,
    /// `hvip` bits to set and to clear at its next entry (interrupts
    /// another hart raised or lowered while it ran).
    pub(super) hvip_set: usize,
    pub(super) hvip_clear: usize,
    pub(super) vs: VsCsrs,
    pub(super) run: VcpuRun,
    /// The device access waiting in the ioreq slot.
    pub(super) pending: Option<PendingMmio>,
    /// Guest timer deadline without Sstc (delivered through hvip.VSTIP).
    pub(super) deadline: Option<u64>,
    /// Its FP registers, as last saved (see [`fpu`]).
    pub(super) fp: FpRegs,
    /// Which FP state is its in the hart ([`fpu::FpOwner`]); new at every
    /// start.
    pub(super) fp_token: u64,
    /// Its exits and I/O round trips since the VM started.
    pub(super) stats: VcpuStats,
}

set_vcpu_from_fields!(Vcpu);

/// A device access in flight: the decoded instruction, the request put in
/// the slot (a completion must still hold it) and the guest-virtual
/// address (the trap value of a fault the guest gets for a bad completion).
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingMmio {
    access: MmioAccess,
    request: IoRequest,
    gva: usize,
    /// Whether the access came from VS-mode (`hstatus.SPVP` at the exit).
    from_vs: bool,
}

/// A VM with its memory and its vCPUs.
pub struct GuestVm {
    /// The generic VM object.
    pub vm: Vm,
    pub(super) root: u64,
    /// Its VMID (`crate::vm::tlb_tag`), 0 when untagged.
    pub(super) vmid: u16,
    /// The CPUs (bit `n` = CPU `n`) that may cache translations under this
    /// VMID from an earlier VM: they flush them before they first run it.
    pub(super) vmid_stale: u64,
    /// The CPUs that must flush the VM's VS-stage translations
    /// (`hfence.vvma`) before they next run it: a remote `sfence.vma`.
    pub(super) vvma_stale: u64,
    /// The CPUs that must run `fence.i` before they next run it: a remote
    /// `fence.i`.
    pub(super) icache_stale: u64,
    pub(super) console: ConsoleLine,
    /// The ioreq page and the posted-write ring (shared with the ioreq
    /// task; the ring's frame is the one after the page's).
    pub io: IoreqFrames,
    /// Its vCPUs: the one that ran last, or is about to run, and the
    /// others.
    pub vcpus: VcpuSet<Vcpu>,
    /// Guest RAM (contiguous frames).
    pub(super) ram: VmRam,
    /// G-stage table frames below the root.
    pub(super) tables: Vec<u64>,
    /// Where the device tree lies, once set.
    pub(super) dtb_gpa: u64,
    /// Whether this boot's first stray access was reported.
    pub(super) stray_reported: bool,
    /// Whether this boot's first bad I/O completion was reported.
    pub(super) bad_completion_reported: bool,
}

impl GuestVm {
    /// Loads the hypervisor CSRs that are the same for every entry of this
    /// VM, each only when it changes: the delegation and counter CSRs once
    /// per hart (every VM uses the same), `hgatp` when another VM ran last
    /// (or always, with a G-stage flush, when VMIDs are not available).
    ///
    /// The spec ties VMID reuse to a fence: "if a VMID is reused, it may be
    /// necessary to execute an HFENCE.GVMA instruction before or after
    /// writing `hgatp`" (H chapter, `hgatp`). HFENCE.GVMA "need not flush"
    /// a cache of guest-virtual to guest-physical translations, and
    /// HFENCE.VVMA applies to "the setting of `hgatp`.VMID when
    /// HFENCE.VVMA executes" (H chapter, fence instructions): so a VM
    /// whose VMID another VM used (or, untagged, that follows another VM
    /// on VMID 0) gets both, after its `hgatp` is written and before it
    /// first runs.
    fn load_static(&mut self) {
        // Only this hart touches its own flag: a load, not a swap, on
        // every entry after the first.
        let delegation = DELEGATION_SET.here();
        if !delegation.load(Ordering::Relaxed) {
            delegation.store(true, Ordering::Relaxed);
            csr::hedeleg::write(HEDELEG);
            csr::hideleg::write(HIDELEG);
            csr::hcounteren::write(0b111);
            csr::htimedelta::write(0);
            csr::henvcfg::write(if timer::uses_sstc() { HENVCFG_STCE } else { 0 });
        }
        let hgatp = gstage::hgatp_value(self.root, self.vmid) as usize;
        let switched = LOADED_HGATP.here().load(Ordering::Relaxed) != hgatp;
        if self.vmid == 0 || switched {
            csr::hgatp::write(hgatp);
            LOADED_HGATP.here().store(hgatp, Ordering::Relaxed);
            if self.vmid == 0 {
                hfence_gvma_all();
                if switched {
                    hfence_vvma_all();
                }
            }
        }
        let me = 1u64 << this_cpu();
        if self.vmid_stale & me != 0 {
            hfence_gvma_vmid(self.vmid);
            hfence_vvma_all();
            self.vmid_stale &= !me;
        }
    }

    /// Starts a run of vCPU `vcpu` on this hart, under the kernel lock:
    /// the entry to make (outside the lock), or the outcome if it may not
    /// run. The VS CSRs are loaded once per run and saved once when it
    /// ends: between the exits it handles itself (SBI calls, a completed
    /// MMIO access) they stay in the hart, where the handlers change the
    /// two the kernel sets (`hvip`, `vstimecmp`) directly, and a handler
    /// that needs the others saves them first ([`GuestVm::sync_vs`]).
    ///
    /// When the hart still holds this vCPU's VS CSRs as they were saved (no
    /// other vCPU ran here since, it ran nowhere else, and the kernel
    /// changed none of them, [`VS_OWNER`]), they are not loaded again.
    pub fn begin(&mut self, vcpu: usize) -> Result<GuestEntry, RunOutcome> {
        if !self.vcpus.select(vcpu) || self.vcpus.cur.hsm == HartState::Stopped {
            return Err(RunOutcome::HartStopped);
        }
        let cpu = this_cpu();
        if self.vcpus.cur.on_cpu.is_some_and(|c| usize::from(c) != cpu) {
            return Err(RunOutcome::Elsewhere);
        }
        self.vcpus.cur.hsm = HartState::Started;
        if usize::from(self.vcpus.cur.last_cpu) != cpu {
            // What this hart recorded of the vCPU is older than what it
            // did elsewhere since.
            VS_OWNER.here().store(0, Ordering::Relaxed);
            fpu::FpOwner::forget_here();
            self.vcpus.cur.last_cpu = cpu as u8;
        }
        self.load_static();
        let token = self.vcpus.cur.fp_token;
        if VS_OWNER.here().load(Ordering::Relaxed) != token {
            self.vcpus.cur.vs.load();
            VS_OWNER.here().store(token, Ordering::Relaxed);
        }
        self.vcpus.cur.on_cpu = Some(cpu as u8);
        match self.run_loaded() {
            Some(outcome) => Err(self.end_run(outcome)),
            None => Ok(self.prepare_entry()),
        }
    }

    /// The guest this hart entered for vCPU `vcpu` exited (the exit's
    /// trap values are still in their CSRs): handles the exit, under the
    /// kernel lock, and returns the next entry, or how the run ended.
    /// A run the kernel took away while the hart was in the guest (the VM
    /// was paused, reset or destroyed, or the vCPU taken off this hart) is
    /// not resumed: `abandoned` says so, and the exit is dropped (the
    /// guest's pc is still on the instruction that trapped, which it runs
    /// again at its next entry).
    pub fn resume(&mut self, vcpu: usize, abandoned: bool) -> Result<GuestEntry, RunOutcome> {
        let cpu = this_cpu() as u8;
        // The hart is out of the guest: the run's posting lease, if it
        // holds it, comes back (its writes are the kernel's).
        self.io.settle(vcpu as u8);
        if !self.vcpus.select(vcpu) || self.vcpus.cur.on_cpu != Some(cpu) {
            // Nothing of the run is left to save.
            return Err(RunOutcome::Preempted);
        }
        let v = &mut self.vcpus.cur;
        v.frame.post.count_into(&mut v.stats, &mut self.vm.stats);
        // Interrupts other harts raised while it ran count for this exit
        // already (a `wfi` must see them).
        take_mailbox(v);
        let local = core::mem::take(&mut v.frame.local_calls);
        if local != 0 {
            v.stats.exits_of(ExitKind::Hypercall, local);
        }
        if fpu::dirtied(v.frame.sstatus) {
            fpu::save(&mut v.fp);
            v.frame.sstatus = fpu::guest_sstatus(v.frame.sstatus);
        }
        if abandoned || self.vm.state() != VmState::Running {
            return Err(self.end_run(RunOutcome::Preempted));
        }
        match self.handle_exit() {
            Some(outcome) => Err(self.end_run(outcome)),
            None => Ok(self.prepare_entry()),
        }
    }

    /// The run of the selected vCPU ends with `outcome`: its VS CSRs go
    /// back to memory and no hart holds it.
    fn end_run(&mut self, outcome: RunOutcome) -> RunOutcome {
        self.vcpus.cur.vs.save();
        self.vcpus.cur.on_cpu = None;
        outcome
    }

    /// The entry of the selected vCPU, which runs on this hart: the
    /// fences other harts asked for, the interrupts they raised or
    /// lowered, and the guest timer's deadline without Sstc.
    #[inline(always)]
    fn prepare_entry(&mut self) -> GuestEntry {
        let me = 1u64 << this_cpu();
        if (self.vvma_stale | self.icache_stale) & me != 0 {
            if self.vvma_stale & me != 0 {
                hfence_vvma_all();
            }
            if self.icache_stale & me != 0 {
                super::guest_tlb::fence_i();
            }
            self.vvma_stale &= !me;
            self.icache_stale &= !me;
        }
        let v = &mut self.vcpus.cur;
        take_mailbox(v);
        if let Some(deadline) = v.deadline {
            if timer::now() >= deadline {
                csr::hvip::set(HVIP_VSTIP);
            } else {
                // Without Sstc the host timer must end the run at the
                // guest's deadline (or the next tick, if earlier).
                timer::set_deadline(crate::ticks::deadline(Some(deadline)));
            }
        }
        v.frame.post = self.io.lease(v.id);
        v.frame.posted_ring = self.io.posted;
        let frame = NonNull::from(&mut *v.frame);
        crate::arch::per_cpu::entering_guest(frame.as_ptr() as usize);
        GuestEntry(frame)
    }

    /// Makes sure no hart but this one is in a guest of this VM, or will
    /// enter one without the kernel lock first: every hart running one of
    /// its vCPUs is kicked out of the guest, and this waits (holding the
    /// lock) until each has left it. Their runs end when they next take
    /// the lock ([`GuestVm::resume`]). Before a pause, reset or destroy
    /// returns, and before a remote fence completes.
    pub fn quiesce(&self) {
        for (cpu, v) in self.vcpus.running_elsewhere(this_cpu()) {
            crate::arch::per_cpu::kick_out_of_guest(cpu, &*v.frame as *const GuestFrame as usize);
        }
    }

    /// Raises (`set`) and lowers (`clear`) `hvip` bits of vCPU `v`: in the
    /// hart if it runs here, in its mailbox (and its hart kicked) if it
    /// runs elsewhere, in its saved state otherwise.
    pub(super) fn signal(v: &mut Vcpu, set: usize, clear: usize) {
        match v.on_cpu.map(usize::from) {
            Some(cpu) if cpu == this_cpu() => {
                csr::hvip::set(set);
                csr::hvip::clear(clear);
            }
            Some(cpu) => {
                v.hvip_set = (v.hvip_set & !clear) | set;
                v.hvip_clear = (v.hvip_clear & !set) | clear;
                super::smp::kick(1 << cpu);
            }
            None => {
                v.vs.hvip = (v.vs.hvip | set) & !clear;
                vs_changed(v);
            }
        }
    }

    /// A remote fence of the VM's translations (`vvma`) or instruction
    /// fetches (`icache`), for every hart but this one (which the caller
    /// fences itself): each fences before it next runs the VM, and the
    /// harts in it now are kicked out first.
    pub(super) fn remote_fence(&mut self, vvma: bool, icache: bool) {
        let others = !(1u64 << this_cpu());
        if vvma {
            self.vvma_stale |= others;
        }
        if icache {
            self.icache_stale |= others;
        }
        self.quiesce();
    }

    /// The saved VS CSRs were changed outside a run: the next run loads
    /// them.
    fn vs_changed(&self) {
        vs_changed(&self.vcpus.cur);
    }

    /// The VM's harts in HSM state `state` (bit `n` = hart `n`).
    pub(super) fn harts_in(&self, state: HartState) -> u64 {
        self.vcpus
            .iter()
            .filter(|v| v.hsm == state)
            .fold(0, |mask, v| mask | 1 << v.id)
    }

    /// The vCPU [`GuestVm::resume_io`] resumed was resumed at `now`: its
    /// round trip ends and is charged to the VM.
    #[inline]
    pub fn io_resumed_at(&mut self, now: u64) {
        let ticks = self.vcpus.cur.stats.io_resumed(now);
        self.vm.stats.round_trip(ticks);
    }

    /// Brings the saved VS CSRs up to date with the hart (inside
    /// [`GuestVm::run`], where the hart holds the live ones).
    fn sync_vs(&mut self) {
        self.vcpus.cur.vs.save();
    }

    /// The checks and hart state of a run's start; `Some` if it may not
    /// enter.
    fn run_loaded(&mut self) -> Option<RunOutcome> {
        if self.vm.state() != VmState::Running {
            return Some(RunOutcome::Left(self.vm.state()));
        }
        if self.vcpus.cur.run != VcpuRun::Runnable {
            return Some(RunOutcome::BlockedOnIo);
        }
        fpu::load(self.vcpus.cur.fp_token, &self.vcpus.cur.fp);
        let v = &mut self.vcpus.cur;
        // The entry sets SPV; after an exit SPVP says the mode the guest
        // trapped in. No host interrupt is taken between the switch's
        // setting of the guest's trap vector and its `sret`.
        csr::hstatus::set(HSTATUS_SPVP | HSTATUS_VTW);
        csr::sstatus::clear(csr::SSTATUS_SIE);
        // SPP as the last exit left it: a guest trapped in VU-mode (its
        // user programs) resumes in VU-mode, not in VS-mode.
        let sstatus = fpu::guest_sstatus(csr::sstatus::read() | csr::SSTATUS_SPP)
            & !(csr::SSTATUS_SIE | SSTATUS_SPIE);
        v.frame.sstatus = sstatus & !csr::SSTATUS_SPP | v.frame.sstatus & csr::SSTATUS_SPP;
        // Between two entries the frame keeps the `sstatus` the exit saved
        // (the guest's mode in SPP, interrupts off); only FS goes back to
        // Clean once the guest's FP writes are saved. Every exit that
        // changes the VM's or the vCPU's state ends the run.
        None
    }

    /// The guest ran `wfi`: it goes on at once if an interrupt is due,
    /// otherwise it sleeps until its timer (or yields if it set none).
    fn wfi(&mut self) -> Option<RunOutcome> {
        self.vcpus.cur.frame.sepc += 4;
        self.wait_for_interrupt()
    }

    /// The vCPU (past its `wfi` or suspend call) waits for an interrupt.
    pub(super) fn wait_for_interrupt(&mut self) -> Option<RunOutcome> {
        self.sync_vs();
        let v = &mut self.vcpus.cur;
        let deadline = if timer::uses_sstc() {
            Some(v.vs.vstimecmp as u64).filter(|&t| t != u64::MAX)
        } else {
            v.deadline
        };
        if v.vs.hvip & (HVIP_VSSIP | HVIP_VSTIP | HVIP_VSEIP) != 0 {
            return None;
        }
        // With no timer set it sleeps until an interrupt it enabled: an
        // external one (`vm_set_external_irq`) or a sibling's IPI wakes it.
        // With none enabled nothing could: the `wfi` is a no-op, as the
        // privileged spec lets a hart treat it.
        match deadline {
            Some(t) if t <= timer::now() => None,
            Some(t) => Some(RunOutcome::Sleeping(t)),
            None if v.vs.vsie & VSIE_WAKERS == 0 => None,
            None => Some(RunOutcome::Sleeping(u64::MAX)),
        }
    }

    /// Stops the VM for `reason` (after its posted output, see
    /// [`crate::vm::posted::Posting::drain_first`]: until then the vCPU yields and the guest
    /// faults again).
    fn stop(&mut self, reason: StopReason) -> Option<RunOutcome> {
        if self.io.drain_first(timer::now()) {
            return Some(drain_wait());
        }
        let pc = self.vcpus.cur.frame.sepc as u64;
        let at = crate::ticks::uptime_ms(timer::now());
        self.vm.leave(VmState::Stopped(reason), pc, at);
        self.vcpus.cur.run = VcpuRun::Stopped;
        Some(RunOutcome::Left(self.vm.state()))
    }

    fn handle_exit(&mut self) -> Option<RunOutcome> {
        // The exit's trap values are still in their CSRs: nothing trapped
        // in HS-mode since (the kernel runs with interrupts off).
        let cause = csr::scause::read();
        if cause & INTERRUPT != 0 {
            self.vcpus.cur.stats.exit(ExitKind::Interrupt);
            // Let the kernel's own vector take it (only the timer is enabled).
            csr::sstatus::set(csr::SSTATUS_SIE);
            csr::sstatus::clear(csr::SSTATUS_SIE);
            return Some(RunOutcome::Preempted);
        }
        if cause == ECALL_FROM_VS {
            self.vcpus.cur.stats.exit(ExitKind::Hypercall);
            return self.sbi_call();
        }
        let stval = csr::stval::read();
        match cause {
            20 | 21 | 23 => {
                let (htval, htinst) = (csr::htval::read(), csr::htinst::read());
                let gpa = mmio_decode::fault_gpa(htval as u64, stval as u64);
                let access = match cause {
                    20 => GuestAccess::Fetch,
                    21 => GuestAccess::Load,
                    _ => GuestAccess::Store,
                };
                if access == GuestAccess::Fetch || !is_mmio(gpa) {
                    self.vcpus.cur.stats.exit(ExitKind::Other);
                    return self.stray_access(access, gpa, stval);
                }
                self.vcpus.cur.stats.exit(ExitKind::Device);
                self.mmio(gpa, stval, htinst as u64)
            }
            22 if stval == WFI => {
                self.vcpus.cur.stats.exit(ExitKind::Wait);
                self.wfi()
            }
            // An instruction the guest may not run virtualized and Mica
            // does not emulate: the guest sees it as illegal (as KVM does).
            22 => {
                self.vcpus.cur.stats.exit(ExitKind::Other);
                self.inject(ILLEGAL_INSTRUCTION, stval)
            }
            // Anything else the hart brought to HS-mode (access faults...)
            // is the guest's to handle, as on a machine of its own.
            code => {
                self.vcpus.cur.stats.exit(ExitKind::Other);
                self.inject(code, stval)
            }
        }
    }

    /// A guest access to a guest-physical address with neither RAM nor a
    /// device: the guest gets the access fault a machine of its own would
    /// raise (instruction, load or store/AMO access fault, the guest
    /// virtual address as trap value), and the console says so once per
    /// boot. Only when the guest cannot take it (its own trap vector is
    /// where the fetch failed) is the VM stopped.
    fn stray_access(&mut self, access: GuestAccess, gpa: u64, gva: usize) -> Option<RunOutcome> {
        if self.io.drain_first(timer::now()) {
            return Some(drain_wait());
        }
        self.sync_vs();
        let v = &self.vcpus.cur;
        if access == GuestAccess::Fetch && v.frame.sepc == v.vs.vstvec & !0b11 {
            return self.stop(StopReason::GuestPageFault { access, gpa });
        }
        if !self.stray_reported {
            self.stray_reported = true;
            crate::klog::print(format_args!(
                "mica: {}: {} access fault at {gpa:#x} injected (no RAM or device there)\n",
                self.vm.name,
                access.noun()
            ));
        }
        let code = match access {
            GuestAccess::Fetch => INSTRUCTION_ACCESS_FAULT,
            GuestAccess::Load => LOAD_ACCESS_FAULT,
            GuestAccess::Store => STORE_ACCESS_FAULT,
        };
        self.inject(code, gva)
    }

    /// Delivers exception `cause` with `tval` to the guest as the hart
    /// would have if it were delegated: `vsepc`/`vscause`/`vstval`,
    /// `vsstatus.SPP` from the mode it trapped in, SPIE from SIE, SIE
    /// cleared, and the guest resumes in VS-mode at its trap vector.
    fn inject(&mut self, cause: usize, tval: usize) -> Option<RunOutcome> {
        self.sync_vs();
        let from_vs = csr::hstatus::read() & HSTATUS_SPVP != 0;
        self.deliver_exception(cause, tval, from_vs);
        // The VS CSRs changed in memory: load them all for the entry.
        self.vcpus.cur.vs.load();
        None
    }

    /// The part of [`GuestVm::inject`] on the saved state (outside a run,
    /// or after [`GuestVm::sync_vs`] inside one).
    fn deliver_exception(&mut self, cause: usize, tval: usize, from_vs: bool) {
        let v = &mut self.vcpus.cur;
        let mut vsstatus = v.vs.vsstatus & !(csr::SSTATUS_SPP | SSTATUS_SPIE | csr::SSTATUS_SIE);
        if from_vs {
            vsstatus |= csr::SSTATUS_SPP;
        }
        if v.vs.vsstatus & csr::SSTATUS_SIE != 0 {
            vsstatus |= SSTATUS_SPIE;
        }
        v.vs.vsstatus = vsstatus;
        v.vs.vsepc = v.frame.sepc;
        v.vs.vscause = cause;
        v.vs.vstval = tval;
        v.frame.sepc = v.vs.vstvec & !0b11;
        v.frame.sstatus |= csr::SSTATUS_SPP;
    }

    /// Raises or lowers vCPU `vcpu`'s VS external interrupt
    /// (`hvip.VSEIP`), taken by the guest at its next entry once it
    /// enables it. `Error::InvalidArgument` for a vCPU the VM lacks.
    pub fn set_external_irq(&mut self, vcpu: usize, raised: bool) -> Result<(), Error> {
        let v = self.vcpus.get_mut(vcpu).ok_or(Error::InvalidArgument)?;
        if raised {
            Self::signal(v, HVIP_VSEIP, 0);
        } else {
            Self::signal(v, 0, HVIP_VSEIP);
        }
        Ok(())
    }

    /// The instruction at the guest's pc, read as `hlvx.hu` would: through
    /// its VS-stage tables with the execute permission of the mode it
    /// trapped in, then the G-stage ([`vs_fetch`]).
    fn fetch_insn(&mut self) -> Option<u32> {
        self.sync_vs();
        let memory = self.guest_ram();
        let mode = if csr::hstatus::read() & HSTATUS_SPVP != 0 {
            GuestMode::Supervisor
        } else {
            GuestMode::User
        };
        let pc = self.vcpus.cur.frame.sepc as u64;
        vs_fetch::fetch(&memory, self.vcpus.cur.vs.vsatp as u64, pc, mode)
    }

    /// A device access: decoded; a store the VM's posted-write ring takes
    /// is done (the vCPU steps past it and runs on); anything else is put
    /// in the vCPU's ioreq slot (PENDING), and the vCPU blocks until the
    /// ioreq service resumes it ([`GuestVm::resume_io`]).
    fn mmio(&mut self, gpa: u64, gva: usize, htinst: u64) -> Option<RunOutcome> {
        let decoded = match mmio_decode::decode_htinst(htinst) {
            Err(mmio_decode::DecodeError::NoTransformedInstruction) => match self.fetch_insn() {
                Some(insn) => mmio_decode::decode_raw(insn),
                None => return self.stop(StopReason::UndecodableMmio { gpa, insn: 0 }),
            },
            other => other,
        };
        let Ok(access) = decoded else {
            return self.stop(StopReason::UndecodableMmio { gpa, insn: htinst });
        };
        let store = match access.kind {
            AccessKind::Store { rs2 } => Some(self.vcpus.cur.frame.regs[rs2.index()] as u64),
            AccessKind::Load { .. } => None,
        };
        let exit = MmioExit {
            gpa,
            size: access.width.bytes(),
            store,
        };
        if let Some(value) = store
            && self.io.post(
                &PostedWrite {
                    space: Space::Mmio,
                    addr: gpa,
                    size: exit.size,
                    value,
                },
                &mut self.vm.stats,
            )
        {
            self.vcpus.cur.frame.sepc += usize::from(access.insn_len);
            return None;
        }
        let id = self.vcpus.cur.id;
        if ioreq_path::submit(self.io.page(), id, exit).is_err() {
            return self.stop(StopReason::BadIoCompletion);
        }
        self.vcpus.cur.pending = Some(PendingMmio {
            access,
            request: exit.request(id),
            gva,
            from_vs: csr::hstatus::read() & HSTATUS_SPVP != 0,
        });
        self.vcpus.cur.run = VcpuRun::BlockedOnIo;
        Some(RunOutcome::BlockedOnIo)
    }

    /// The access vCPU `vcpu` waits on, as the kernel submitted it.
    pub fn submitted(&mut self, vcpu: usize) -> Option<IoRequest> {
        if !self.vcpus.select(vcpu) {
            return None;
        }
        self.vcpus.cur.pending.map(|pending| pending.request)
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
        let taken = ioreq_path::take_plain_answer(self.io.page(), &pending.request, answer);
        let Some(value) = taken.map_err(|_| Error::BadSlotState)? else {
            return Ok(false);
        };
        self.finish_io(pending.access, value).map(|()| true)
    }

    /// The ioreq service says vCPU `vcpu`'s access is done: its result goes to
    /// the guest and the vCPU may run (`Ok`). `Error::BadSlotState`, with
    /// nothing changed, while the slot is not COMPLETE or no access waits.
    /// A completion whose slot does not hold the access submitted (bad
    /// contents, another address, width or direction) is answered by the
    /// kernel: the guest gets the access fault a bus error raises, at the
    /// address it accessed, and the console says so once per boot; the
    /// vCPU runs on.
    pub fn resume_io(&mut self, vcpu: usize) -> Result<(), Error> {
        if !self.vcpus.select(vcpu) {
            return Err(Error::BadSlotState);
        }
        let Some(pending) = self.vcpus.cur.pending else {
            return Err(Error::BadSlotState);
        };
        let id = self.vcpus.cur.id;
        match ioreq_path::collect(self.io.page(), id, &pending.request) {
            Ok(Some(value)) => self.finish_io(pending.access, value),
            Ok(None) => Err(Error::BadSlotState),
            Err(error) => {
                if !self.bad_completion_reported {
                    self.bad_completion_reported = true;
                    crate::klog::print(format_args!(
                        "mica: {}: bad I/O completion for {:#x} ({error:?}): access fault injected\n",
                        self.vm.name, pending.request.addr
                    ));
                }
                let cause = match pending.access.kind {
                    AccessKind::Load { .. } => LOAD_ACCESS_FAULT,
                    AccessKind::Store { .. } => STORE_ACCESS_FAULT,
                };
                self.deliver_exception(cause, pending.gva, pending.from_vs);
                self.vs_changed();
                let v = &mut self.vcpus.cur;
                v.pending = None;
                v.run = v.run.resume().map_err(|_| Error::BadSlotState)?;
                Ok(())
            }
        }
    }

    /// Hands a load's value to its destination register, steps past the
    /// instruction and lets the vCPU run.
    fn finish_io(&mut self, access: MmioAccess, value: u64) -> Result<(), Error> {
        let v = &mut self.vcpus.cur;
        if let AccessKind::Load {
            rd: Some(rd),
            sign_extend,
        } = access.kind
        {
            v.frame.regs[rd.index()] =
                mmio_decode::load_value(access.width, sign_extend, value) as usize;
        }
        v.frame.sepc += usize::from(access.insn_len);
        v.pending = None;
        v.run = v.run.resume().map_err(|_| Error::BadSlotState)?;
        Ok(())
    }
}

/// How a vCPU yields for its posted writes to come out first
/// ([`crate::vm::posted::Posting::drain_first`]): on the boot CPU the
/// services outrank it and run first; on another CPU it sleeps a tick
/// and looks at the ring again.
pub(super) fn drain_wait() -> RunOutcome {
    if this_cpu() == 0 {
        RunOutcome::Preempted
    } else {
        RunOutcome::Sleeping(timer::now().saturating_add(crate::ticks::interval()))
    }
}

/// Puts the interrupts other harts raised or lowered for `v`, which runs
/// on this hart, into the hart's `hvip`.
#[inline]
fn take_mailbox(v: &mut Vcpu) {
    if v.hvip_set | v.hvip_clear != 0 {
        csr::hvip::set(v.hvip_set);
        csr::hvip::clear(v.hvip_clear);
        v.hvip_set = 0;
        v.hvip_clear = 0;
    }
}

/// `vcpu`'s saved VS CSRs were changed outside its run: its next run loads
/// them.
pub(super) fn vs_changed(vcpu: &Vcpu) {
    for owner in VS_OWNER.all() {
        let _ = owner.compare_exchange(vcpu.fp_token, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}
