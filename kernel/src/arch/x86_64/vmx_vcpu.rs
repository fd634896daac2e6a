//! One VMX vCPU: its VMCS (controls, host state, the 64-bit long-mode
//! entry state, EPT and VPID) and the world switch, `vmlaunch`/`vmresume`
//! with the host's callee-saved and the guest's general registers swapped
//! around it. A failed entry reports the VM-instruction error.
//!
//! The guest owns the MSRs in `msr::GUEST_OWNED` (the bitmap passes them
//! through): FS/GS base and SYSENTER are in the VMCS guest-state area,
//! the rest (`msr::VMX_SWITCHED`) in an MSR area of the vCPU's that VM
//! entry loads and VM exit stores, with the host's values in an area VM
//! exit loads.

use core::sync::atomic::{AtomicU64, Ordering};

use super::cr4;
use super::gdt;
use super::msr;
use super::msr_io::rdmsr;
use super::svm::GuestGprs;
use super::vmcs::{self, f16, f32, f64, fnat};
use super::vmx_caps::{self, CR4_VMXE, VmxError};
use super::vmx_controls::{self, Controls};

/// The VMCS this CPU has current (0: none).
static CURRENT: AtomicU64 = AtomicU64::new(0);

const EFER: u32 = 0xc000_0080;
const FS_BASE: u32 = 0xc000_0100;
const GS_BASE: u32 = 0xc000_0101;
/// IA32_VMX_CR4_FIXED1: the CR4 bits that may be 1 in VMX operation.
const CR4_FIXED1: u32 = 0x489;
/// IA32_VMX_EPT_VPID_CAP: which INVEPT/INVVPID types exist.
const EPT_VPID_CAP: u32 = 0x48c;
/// Guest EFER for long mode: LME and LMA.
const EFER_LONG: u64 = 1 << 8 | 1 << 10;
/// Guest CR0 for long mode: PE, ET, NE, WP, PG.
const CR0_LONG: u64 = 1 | 1 << 4 | 1 << 5 | 1 << 16 | 1 << 31;
/// Guest CR4 for long mode: PAE.
const CR4_PAE: u64 = 1 << 5;
/// VM-entry interruption information: valid, a hardware exception (type
/// 3) with its error code, vector 13 (#GP).
const INJECT_GP: u64 = 1 << 31 | 1 << 11 | 3 << 8 | 13;
/// Interruption information: valid.
const INTERRUPTION_VALID: u64 = 1 << 31;
/// Interruption information: the event type (0: external interrupt).
const INTERRUPTION_TYPE: u64 = 7 << 8;
/// Interruptibility state: blocking by STI and by MOV SS.
const SHADOWS: u64 = 0b11;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;
/// Entries in an MSR area (16 bytes each: index, reserved, value).
const SWITCHED: usize = msr::VMX_SWITCHED.len();

/// Fills the MSR area at `area` (an identity-mapped frame its owner keeps
/// for it) with `msr::VMX_SWITCHED` and `value(index)` each.
pub fn fill_msr_area(area: u64, value: impl Fn(u32) -> u64) {
    for (i, index) in msr::VMX_SWITCHED.into_iter().enumerate() {
        let entry = (area as usize + 16 * i) as *mut u64;
        // SAFETY: `area` is a 16-byte aligned frame its owner keeps as an
        // MSR area; entry `i` lies in its first 80 bytes.
        unsafe {
            entry.write_volatile(u64::from(index));
            entry.add(1).write_volatile(value(index));
        }
    }
}

/// Fills the host's MSR area at `area` with the values the kernel runs
/// with now (set once at boot, before any VM).
pub fn fill_host_msr_area(area: u64) {
    fill_msr_area(area, rdmsr);
}

/// The MSR frames a vCPU runs with.
#[derive(Debug, Clone, Copy)]
pub struct MsrFrames {
    /// The MSR bitmap (every VM's).
    pub bitmap: u64,
    /// The host's values of `msr::VMX_SWITCHED` (every VM's).
    pub host: u64,
    /// This vCPU's values of them.
    pub guest: u64,
}

/// The guest's general registers as the world switch stores them: RBX to
/// R15 as SVM's, then RAX (the VMCS has no RAX).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct VmxRegs {
    /// RBX, RCX, RDX, RSI, RDI, RBP, R8-R15.
    pub gprs: GuestGprs,
    /// RAX.
    pub rax: u64,
}

core::arch::global_asm!(
    r#"
    .section .text
    .globl mica_vmx_run
    /* rdi: &mut VmxRegs; esi: 1 once launched. eax: 0 after an exit,
       1 when the entry instruction failed. */
mica_vmx_run:
    push    rbx
    push    rbp
    push    r12
    push    r13
    push    r14
    push    r15
    push    rdi
    mov     rax, 0x6c14
    vmwrite rax, rsp
    lea     rdx, [rip + .Lmica_vmx_exit]
    mov     rax, 0x6c16
    vmwrite rax, rdx
    cmp     esi, 0
    mov     rax, [rdi + 112]
    mov     rbx, [rdi + 0]
    mov     rcx, [rdi + 8]
    mov     rdx, [rdi + 16]
    mov     rsi, [rdi + 24]
    mov     rbp, [rdi + 40]
    mov     r8, [rdi + 48]
    mov     r9, [rdi + 56]
    mov     r10, [rdi + 64]
    mov     r11, [rdi + 72]
    mov     r12, [rdi + 80]
    mov     r13, [rdi + 88]
    mov     r14, [rdi + 96]
    mov     r15, [rdi + 104]
    mov     rdi, [rdi + 32]
    jne     .Lmica_vmx_resume
    vmlaunch
    jmp     .Lmica_vmx_failed
.Lmica_vmx_resume:
    vmresume
.Lmica_vmx_failed:
    mov     eax, 1
    jmp     .Lmica_vmx_return
.Lmica_vmx_exit:
    push    rdi
    mov     rdi, [rsp + 8]
    mov     [rdi + 112], rax
    mov     [rdi + 0], rbx
    mov     [rdi + 8], rcx
    mov     [rdi + 16], rdx
    mov     [rdi + 24], rsi
    mov     [rdi + 40], rbp
    mov     [rdi + 48], r8
    mov     [rdi + 56], r9
    mov     [rdi + 64], r10
    mov     [rdi + 72], r11
    mov     [rdi + 80], r12
    mov     [rdi + 88], r13
    mov     [rdi + 96], r14
    mov     [rdi + 104], r15
    pop     rax
    mov     [rdi + 32], rax
    xor     eax, eax
.Lmica_vmx_return:
    add     rsp, 8
    pop     r15
    pop     r14
    pop     r13
    pop     r12
    pop     rbp
    pop     rbx
    ret
    "#
);

unsafe extern "C" {
    fn mica_vmx_run(regs: *mut VmxRegs, launched: u32) -> u32;
}

fn vmwrite(field: u32, value: u64) {
    // SAFETY: VMX is on and the caller made this vCPU's VMCS current
    // (`load`); a VMWRITE changes only that VMCS (a bad field fails the
    // instruction and later shows as a failed entry).
    unsafe {
        core::arch::asm!("vmwrite {}, {}", in(reg) u64::from(field), in(reg) value, options(nostack));
    }
}

fn vmread(field: u32) -> u64 {
    let value: u64;
    // SAFETY: as `vmwrite`, reading.
    unsafe {
        core::arch::asm!("vmread {}, {}", out(reg) value, in(reg) u64::from(field), options(nostack));
    }
    value
}

/// What the VMCS says about the last exit.
#[derive(Debug, Clone, Copy)]
pub struct RawExit {
    /// The exit reason (bit 31: the entry failed); `u32::MAX` when the
    /// entry instruction itself failed (`error` says why).
    pub reason: u32,
    /// The exit qualification.
    pub qualification: u64,
    /// The guest-physical address (EPT violations).
    pub gpa: u64,
    /// Bytes of the instruction that exited.
    pub instruction_len: u64,
    /// The VM-instruction error after a failed VMLAUNCH/VMRESUME.
    pub error: u64,
}

/// Whether INVVPID can drop the mappings of one VPID (or of all): what a
/// recycled VPID needs before its new VM runs ([`Vcpu::set_long_mode`]).
pub fn vpids_flushable() -> bool {
    vmx_caps::invalidation_types(rdmsr(EPT_VPID_CAP))
        .1
        .is_some()
}

/// One vCPU's VMCS (a frame) and registers.
pub struct Vcpu {
    vmcs: u64,
    launched: bool,
    /// The EPT pointer and VPID (for invalidation).
    eptp: u64,
    vpid: u16,
    /// The guest's registers besides RSP and RIP.
    pub regs: VmxRegs,
    /// The guest's MSR area (see `MsrFrames`).
    guest_msrs: u64,
    /// An interrupt went into the entry's interruption information since
    /// the last exit was looked at ([`Vcpu::undelivered_interrupt`]): only
    /// then may the IDT-vectoring information name one of Mica's.
    injected: bool,
}

impl Vcpu {
    /// A vCPU whose VMCS is the zeroed, identity-mapped frame `vmcs`, with
    /// `controls`, EPT from `ept_root` and `vpid` (non-zero).
    pub fn new(
        vmcs: u64,
        revision: u32,
        controls: &Controls,
        ept_root: u64,
        vpid: u32,
        msrs: MsrFrames,
    ) -> Self {
        // SAFETY: `vmcs` is a kernel-owned frame for this vCPU alone; its
        // first word is the revision id VMCLEAR/VMPTRLD check. VMX is on.
        unsafe {
            core::ptr::write_volatile(vmcs as *mut u32, revision);
            core::arch::asm!("vmclear [{}]", in(reg) &raw const vmcs, options(nostack));
        }
        let v = Self {
            vmcs,
            launched: false,
            injected: false,
            eptp: vmcs::ept_pointer(ept_root),
            vpid: vpid.clamp(1, 0xffff) as u16,
            regs: VmxRegs::default(),
            guest_msrs: msrs.guest,
        };
        v.load();
        fill_msr_area(msrs.guest, |_| 0);
        vmwrite(f64::MSR_BITMAP, msrs.bitmap);
        vmwrite(f64::ENTRY_MSR_LOAD_ADDR, msrs.guest);
        vmwrite(f64::EXIT_MSR_STORE_ADDR, msrs.guest);
        vmwrite(f64::EXIT_MSR_LOAD_ADDR, msrs.host);
        for count in [
            f32::ENTRY_MSR_LOAD_COUNT,
            f32::EXIT_MSR_STORE_COUNT,
            f32::EXIT_MSR_LOAD_COUNT,
        ] {
            vmwrite(count, SWITCHED as u64);
        }
        vmwrite(f32::PIN_CONTROLS, controls.pin.into());
        if let Some(shift) = controls.preemption_timer_shift {
            // Every entry starts the timer from this value (the field is
            // not saved at exit): no run lasts longer than a host tick,
            // whatever the guest's RFLAGS.IF (see `PIN_PREEMPTION_TIMER`).
            let value = vmx_controls::preemption_timer_value(crate::ticks::interval(), shift);
            vmwrite(f32::PREEMPTION_TIMER_VALUE, value.into());
        }
        vmwrite(f32::PROC_CONTROLS, controls.proc.into());
        vmwrite(f32::PROC2_CONTROLS, controls.proc2.into());
        vmwrite(f32::EXIT_CONTROLS, controls.exit.into());
        vmwrite(f32::ENTRY_CONTROLS, controls.entry.into());
        vmwrite(f32::EXCEPTION_BITMAP, 0);
        vmwrite(f64::EPT_POINTER, v.eptp);
        vmwrite(f16::VPID, v.vpid.into());
        vmwrite(f64::VMCS_LINK_POINTER, u64::MAX);
        vmwrite(fnat::CR0_MASK, 0);
        // The host owns every CR4 bit a guest may not (VMXE, PKE,
        // OSXSAVE, reserved bits...): the shadow keeps them clear, and a
        // MOV to CR4 that sets one exits (see `cr4`).
        vmwrite(fnat::CR4_MASK, cr4::VMX_HOST_OWNED);
        vmwrite(fnat::CR4_SHADOW, 0);
        v.host_state();
        v
    }

    /// Makes this VMCS the CPU's current one.
    fn load(&self) {
        if CURRENT.load(Ordering::Relaxed) != self.vmcs {
            // SAFETY: the frame holds a VMCS this vCPU initialised
            // (revision id, VMCLEAR) and owns; VMX is on.
            unsafe {
                core::arch::asm!("vmptrld [{}]", in(reg) &raw const self.vmcs, options(nostack));
            }
            CURRENT.store(self.vmcs, Ordering::Relaxed);
        }
    }

    /// The host state every exit returns to (RSP and RIP are set by the
    /// world switch; CR3 and the FS/GS bases before each entry).
    fn host_state(&self) {
        let (cr0, cr3, cr4): (u64, u64, u64);
        let mut gdtr = [0u8; 10];
        let mut idtr = [0u8; 10];
        // SAFETY: reads control registers and stores the descriptor-table
        // registers into local buffers of their size.
        unsafe {
            core::arch::asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack));
            core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack));
            core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack));
            core::arch::asm!("sgdt [{}]", in(reg) gdtr.as_mut_ptr(), options(nostack));
            core::arch::asm!("sidt [{}]", in(reg) idtr.as_mut_ptr(), options(nostack));
        }
        let base = |t: [u8; 10]| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&t[2..]);
            u64::from_le_bytes(b)
        };
        vmwrite(fnat::HOST_CR0, cr0);
        vmwrite(fnat::HOST_CR3, cr3);
        vmwrite(fnat::HOST_CR4, cr4);
        vmwrite(f16::HOST_CS, gdt::KERNEL_CS.into());
        for field in [f16::HOST_SS, f16::HOST_DS, f16::HOST_ES] {
            vmwrite(field, gdt::KERNEL_DS.into());
        }
        vmwrite(f16::HOST_FS, 0);
        vmwrite(f16::HOST_GS, 0);
        vmwrite(f16::HOST_TR, gdt::TSS_SELECTOR.into());
        vmwrite(fnat::HOST_TR_BASE, gdt::tss_base());
        vmwrite(fnat::HOST_GDTR_BASE, base(gdtr));
        vmwrite(fnat::HOST_IDTR_BASE, base(idtr));
        vmwrite(f64::HOST_EFER, rdmsr(EFER));
        vmwrite(f32::HOST_SYSENTER_CS, 0);
        vmwrite(fnat::HOST_SYSENTER_ESP, 0);
        vmwrite(fnat::HOST_SYSENTER_EIP, 0);
    }

    /// Sets flat 64-bit long mode (CPL 0, paging through the guest's own
    /// tables at guest-physical `cr3`) at `rip` with `rsp`, RFLAGS.IF clear;
    /// CR0/CR4 get the bits VMX operation fixes.
    pub fn set_long_mode(&mut self, rip: u64, rsp: u64, cr3: u64) -> Result<(), VmxError> {
        let cr0 = vmx_caps::apply_fixed("CR0", CR0_LONG, rdmsr(0x486), rdmsr(0x487))?;
        let cr4 =
            vmx_caps::apply_fixed("CR4", CR4_PAE | CR4_VMXE, rdmsr(0x488), rdmsr(CR4_FIXED1))?;
        self.load();
        for i in 0..vmcs::SEGMENTS {
            let (selector, limit, access) = match i {
                vmcs::CS => (gdt::KERNEL_CS, 0xffff_ffff, vmcs::AR_CODE64),
                vmcs::LDTR => (0, 0xffff, vmcs::AR_UNUSABLE),
                vmcs::TR => (0x18, 0x67, vmcs::AR_TSS_BUSY),
                _ => (gdt::KERNEL_DS, 0xffff_ffff, vmcs::AR_DATA),
            };
            let at = 2 * i as u32;
            vmwrite(f16::GUEST_ES + at, selector.into());
            vmwrite(f32::GUEST_ES_LIMIT + at, limit);
            vmwrite(f32::GUEST_ES_ACCESS + at, access.into());
            vmwrite(fnat::GUEST_ES_BASE + at, 0);
        }
        vmwrite(f32::GUEST_GDTR_LIMIT, 0xffff);
        vmwrite(f32::GUEST_IDTR_LIMIT, 0xffff);
        vmwrite(fnat::GUEST_GDTR_BASE, 0);
        vmwrite(fnat::GUEST_IDTR_BASE, 0);
        vmwrite(fnat::GUEST_CR0, cr0);
        vmwrite(fnat::CR0_SHADOW, CR0_LONG);
        vmwrite(fnat::GUEST_CR3, cr3);
        vmwrite(fnat::GUEST_CR4, cr4);
        vmwrite(fnat::CR4_SHADOW, CR4_PAE);
        vmwrite(f64::GUEST_EFER, EFER_LONG);
        vmwrite(fnat::GUEST_DR7, 0x400);
        vmwrite(fnat::GUEST_RFLAGS, 0x2);
        vmwrite(fnat::GUEST_RIP, rip);
        vmwrite(fnat::GUEST_RSP, rsp);
        vmwrite(f32::GUEST_INTERRUPTIBILITY, 0);
        vmwrite(f32::GUEST_ACTIVITY, 0);
        vmwrite(f32::GUEST_SYSENTER_CS, 0);
        vmwrite(fnat::GUEST_SYSENTER_ESP, 0);
        vmwrite(fnat::GUEST_SYSENTER_EIP, 0);
        vmwrite(f32::ENTRY_INTERRUPTION_INFO, 0);
        fill_msr_area(self.guest_msrs, |_| 0);
        self.regs = VmxRegs::default();
        self.flush();
        Ok(())
    }

    /// Drops the CPU's cached translations for this VM's EPT and VPID (a
    /// fresh guest, or a table root or VPID another VM had before): INVEPT
    /// and INVVPID single-context ("invalidates all mappings tagged with
    /// the VPID specified in the INVVPID descriptor", Intel SDM vol. 3C,
    /// INVVPID), or all-context where single is missing.
    fn flush(&self) {
        let (ept, vpid) = vmx_caps::invalidation_types(rdmsr(EPT_VPID_CAP));
        let ept_desc: [u64; 2] = [self.eptp, 0];
        let vpid_desc: [u64; 2] = [u64::from(self.vpid), 0];
        if let Some(kind) = ept {
            // SAFETY: INVEPT of a type the CPU offers (checked above) with
            // a descriptor naming this VM's EPT pointer; it only drops
            // cached translations.
            unsafe {
                core::arch::asm!("invept {}, [{}]", in(reg) kind, in(reg) ept_desc.as_ptr(), options(nostack));
            }
        }
        if let Some(kind) = vpid {
            // SAFETY: INVVPID of a type the CPU offers with this VM's
            // (non-zero) VPID; it only drops cached translations.
            unsafe {
                core::arch::asm!("invvpid {}, [{}]", in(reg) kind, in(reg) vpid_desc.as_ptr(), options(nostack));
            }
        }
    }

    /// Enters the guest until its next exit.
    pub fn run(&mut self) -> RawExit {
        self.load();
        let cr3: u64;
        // SAFETY: reads CR3 (the address space the host returns to).
        unsafe { core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack)) };
        vmwrite(fnat::HOST_CR3, cr3);
        vmwrite(fnat::HOST_FS_BASE, rdmsr(FS_BASE));
        vmwrite(fnat::HOST_GS_BASE, rdmsr(GS_BASE));
        // SAFETY: the VMCS is current and filled by `new` and
        // `set_long_mode` (controls adjusted to the CPU, host state of the
        // running kernel, EPT over frames the VM owns); interrupts are off.
        // The switch saves and restores the host's callee-saved registers;
        // VM exit loads the host's RSP, RIP, segments and control registers
        // from the VMCS.
        let failed = unsafe { mica_vmx_run(&raw mut self.regs, u32::from(self.launched)) };
        if failed != 0 {
            return RawExit {
                reason: u32::MAX,
                qualification: 0,
                gpa: 0,
                instruction_len: 0,
                error: vmread(f32::VM_INSTRUCTION_ERROR),
            };
        }
        self.launched = true;
        RawExit {
            reason: vmread(f32::EXIT_REASON) as u32,
            qualification: vmread(fnat::EXIT_QUALIFICATION),
            gpa: vmread(f64::GUEST_PHYSICAL_ADDRESS),
            instruction_len: vmread(f32::EXIT_INSTRUCTION_LEN),
            error: 0,
        }
    }

    /// The guest's RIP.
    pub fn rip(&self) -> u64 {
        self.load();
        vmread(fnat::GUEST_RIP)
    }

    /// Moves the guest's RIP (past an instruction the host emulated: a
    /// `sti` or `mov ss` shadow before it is over, as after the
    /// instruction on the CPU).
    pub fn set_rip(&self, rip: u64) {
        self.load();
        vmwrite(fnat::GUEST_RIP, rip);
        let state = vmread(f32::GUEST_INTERRUPTIBILITY);
        if state & SHADOWS != 0 {
            vmwrite(f32::GUEST_INTERRUPTIBILITY, state & !SHADOWS);
        }
    }

    /// Injects interrupt `vector` at the next entry if the guest takes
    /// interrupts now (RFLAGS.IF set, no `sti` or `mov ss` shadow, no
    /// other event being injected); false (nothing changed) if it does not:
    /// the caller offers it again after the next exit.
    pub fn offer_interrupt(&mut self, vector: u8) -> bool {
        self.load();
        let open = vmread(fnat::GUEST_RFLAGS) & RFLAGS_IF != 0
            && vmread(f32::GUEST_INTERRUPTIBILITY) & SHADOWS == 0
            && vmread(f32::ENTRY_INTERRUPTION_INFO) & INTERRUPTION_VALID == 0;
        if open {
            vmwrite(
                f32::ENTRY_INTERRUPTION_INFO,
                INTERRUPTION_VALID | u64::from(vector),
            );
            self.injected = true;
        }
        open
    }

    /// Whether the guest takes interrupts (RFLAGS.IF).
    pub fn interrupts_enabled(&self) -> bool {
        self.load();
        vmread(fnat::GUEST_RFLAGS) & RFLAGS_IF != 0
    }

    /// The external interrupt an exit kept from being delivered (its
    /// IDT-vectoring information), to offer again; `None` at once, with no
    /// VMCS read, after an entry that injected nothing (the exit path).
    pub fn undelivered_interrupt(&mut self) -> Option<u8> {
        if !core::mem::take(&mut self.injected) {
            return None;
        }
        self.load();
        let info = vmread(f32::IDT_VECTORING_INFO);
        (info & INTERRUPTION_VALID != 0 && info & INTERRUPTION_TYPE == 0).then_some(info as u8)
    }

    /// Takes back an interrupt set for injection (a stopped or reset
    /// vCPU).
    pub fn withdraw_interrupt(&mut self) {
        self.injected = false;
        self.load();
        let info = vmread(f32::ENTRY_INTERRUPTION_INFO);
        if info & INTERRUPTION_VALID != 0 && info & INTERRUPTION_TYPE == 0 {
            vmwrite(f32::ENTRY_INTERRUPTION_INFO, 0);
        }
    }

    /// CR4 as the guest reads it: its own bits, and the read shadow's for
    /// the bits the host owns.
    pub fn cr4(&self) -> u64 {
        self.load();
        vmread(fnat::GUEST_CR4) & !cr4::VMX_HOST_OWNED
            | vmread(fnat::CR4_SHADOW) & cr4::VMX_HOST_OWNED
    }

    /// Sets CR4 as the guest reads it (`cr4::write` accepted it: no
    /// host-owned bit set); the host-owned bits of the real CR4 (VMXE)
    /// stay. `flush`: drop the VM's cached translations, as the CPU would
    /// for this change (an emulated write does not).
    pub fn set_cr4(&self, value: u64, flush: bool) {
        self.load();
        let real = vmread(fnat::GUEST_CR4) & cr4::VMX_HOST_OWNED | value & !cr4::VMX_HOST_OWNED;
        vmwrite(fnat::GUEST_CR4, real);
        vmwrite(fnat::CR4_SHADOW, value & cr4::VMX_HOST_OWNED);
        if flush {
            self.flush();
        }
    }

    /// The CR4 bits that may be 1 in VMX operation.
    pub fn cr4_fixed1() -> u64 {
        rdmsr(CR4_FIXED1)
    }

    /// Whether the guest runs 64-bit code (CS.L, access-rights bit 13).
    pub fn cs_long(&self) -> bool {
        self.load();
        vmread(f32::GUEST_ES_ACCESS + 2 * vmcs::CS as u32) & 1 << 13 != 0
    }

    /// CR3.
    pub fn cr3(&self) -> u64 {
        self.load();
        vmread(fnat::GUEST_CR3)
    }

    /// RSP.
    pub fn rsp(&self) -> u64 {
        self.load();
        vmread(fnat::GUEST_RSP)
    }

    /// The guest's EFER.
    pub fn efer(&self) -> u64 {
        self.load();
        vmread(f64::GUEST_EFER)
    }

    /// Sets the guest's EFER (the caller keeps LME/LMA as they are).
    pub fn set_efer(&self, efer: u64) {
        self.load();
        vmwrite(f64::GUEST_EFER, efer);
    }

    /// Raises #GP(0) in the guest on the next entry (VM exit clears it).
    pub fn inject_gp(&self) {
        self.load();
        vmwrite(f32::ENTRY_EXCEPTION_ERROR_CODE, 0);
        vmwrite(f32::ENTRY_INTERRUPTION_INFO, INJECT_GP);
    }

    /// Clears the VMCS before its frame goes back to the allocator.
    pub fn release(&mut self) {
        // SAFETY: the frame holds this vCPU's VMCS; VMCLEAR writes its
        // state back and makes it not current.
        unsafe {
            core::arch::asm!("vmclear [{}]", in(reg) &raw const self.vmcs, options(nostack));
        }
        let _ = CURRENT.compare_exchange(self.vmcs, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}
