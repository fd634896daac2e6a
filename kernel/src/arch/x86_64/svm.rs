//! The SVM world switch: EFER.SVME and the host save area, a VMCB per vCPU
//! (intercepts, IOPM/MSRPM, ASID, nested paging) and `vmrun` with the host's
//! callee-saved and the guest's general registers swapped around it.
//! VMRUN itself saves and restores the host's RSP, RAX, RFLAGS, ES/CS/SS/DS
//! and control registers; the guest's RAX lives in the VMCB. The rest
//! (FS/GS with their bases, TR, LDTR, KernelGSBase, STAR/LSTAR/CSTAR/SFMASK,
//! SYSENTER) VMSAVE/VMLOAD swap: the host's in a VMSAVE area of their own,
//! the guest's in its VMCB, so the guest owns them (see `msr`).

use super::cpus::MAX_CPUS;
use super::mov_cr::CodeView;
use super::msr_io::{rdmsr, wrmsr};
use super::pt4::PAGE_SIZE;
use super::smp::this_cpu;

/// EFER and its SVM enable.
const EFER: u32 = 0xc000_0080;
const EFER_SVME: u64 = 1 << 12;
/// VM_HSAVE_PA: where VMRUN saves host state.
const VM_HSAVE_PA: u32 = 0xc001_0117;

/// VMCB control-area offsets (AMD APM vol. 2, appendix B).
mod ctl {
    pub const INTERCEPT_CR: usize = 0x000;
    pub const INTERCEPT_MISC1: usize = 0x00c;
    pub const INTERCEPT_MISC2: usize = 0x010;
    pub const IOPM_BASE: usize = 0x040;
    pub const MSRPM_BASE: usize = 0x048;
    pub const ASID: usize = 0x058;
    pub const TLB_CONTROL: usize = 0x05c;
    pub const INT_CONTROL: usize = 0x060;
    pub const INTERRUPT_SHADOW: usize = 0x068;
    pub const EVENT_INJECTION: usize = 0x0a8;
    pub const EXIT_CODE: usize = 0x070;
    pub const EXIT_INFO1: usize = 0x078;
    pub const EXIT_INFO2: usize = 0x080;
    pub const NP_ENABLE: usize = 0x090;
    pub const N_CR3: usize = 0x0b0;
}

/// VMCB state-save-area offsets.
mod save {
    pub const ES: usize = 0x400;
    pub const CS: usize = 0x410;
    pub const SS: usize = 0x420;
    pub const DS: usize = 0x430;
    pub const FS: usize = 0x440;
    pub const GS: usize = 0x450;
    pub const GDTR: usize = 0x460;
    pub const LDTR: usize = 0x470;
    pub const IDTR: usize = 0x480;
    pub const TR: usize = 0x490;
    pub const CPL: usize = 0x4cb;
    pub const EFER: usize = 0x4d0;
    pub const CR4: usize = 0x548;
    pub const CR3: usize = 0x550;
    pub const CR0: usize = 0x558;
    pub const DR7: usize = 0x560;
    pub const DR6: usize = 0x568;
    pub const RFLAGS: usize = 0x570;
    pub const RIP: usize = 0x578;
    pub const RSP: usize = 0x5d8;
    pub const RAX: usize = 0x5f8;
    /// STAR, LSTAR, CSTAR, SFMASK, KernelGSBase, SYSENTER_CS/ESP/EIP:
    /// eight quadwords from here.
    pub const STAR: usize = 0x600;
    pub const G_PAT: usize = 0x668;
}

/// CR intercepts: writes of CR4 (bit 16 + 4). Every MOV to CR4 exits and
/// is answered by `cr4::write`: SVM has no guest/host mask, and a guest
/// that set CR4.PKE would own PKRU, which nothing switches (see `cr4`).
const INTERCEPT_CR4_WRITE: u32 = 1 << (16 + 4);
/// MISC1 intercepts: INTR, NMI, RDPMC (the guest has no performance
/// counters: each RDPMC is #GP(0), see `pmu`), CPUID, HLT, IOIO_PROT,
/// MSR_PROT, SHUTDOWN.
const MISC1: u32 = 1 << 0 | 1 << 1 | 1 << 15 | 1 << 18 | 1 << 24 | 1 << 27 | 1 << 28 | 1 << 31;
/// MISC2 intercepts: VMRUN (required), VMMCALL, VMLOAD, VMSAVE, STGI,
/// CLGI, SKINIT, XSETBV (XCR0 is the host's and not switched: a guest
/// that writes it stops, see `fpu`).
const MISC2: u32 = 0x7f | 1 << 13;
/// V_INTR_MASKING: the host's RFLAGS.IF masks physical interrupts.
const V_INTR_MASKING: u64 = 1 << 24;
/// V_IRQ: a virtual interrupt waits for the guest (the CPU clears it when
/// the guest takes it).
const V_IRQ: u64 = 1 << 8;
/// V_INTR_PRIO 15 and V_IGN_TPR: the virtual interrupt is taken whatever
/// the guest's task priority.
const V_PRIO_ANY: u64 = 0xf << 16 | 1 << 20;
/// Where V_INTR_VECTOR sits in INT_CONTROL.
const V_INTR_VECTOR_SHIFT: u32 = 32;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;
/// Bytes of the I/O and MSR permission maps.
pub const IOPM_BYTES: u64 = 3 * PAGE_SIZE;
/// Bytes of the MSR permission map.
pub const MSRPM_BYTES: u64 = 2 * PAGE_SIZE;

/// The guest's general registers other than RAX and RSP (which the VMCB
/// holds), in the order the world switch saves them.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct GuestGprs {
    /// RBX, RCX, RDX, RSI, RDI, RBP, R8-R15.
    pub regs: [u64; 14],
}

core::arch::global_asm!(
    r#"
    .section .text
    .globl mica_svm_run
    /* rdi: the VMCB's physical address; rsi: &mut GuestGprs; rdx: the
       host's VMSAVE area. The host's FS/GS/TR/LDTR, KernelGSBase,
       STAR/LSTAR/CSTAR/SFMASK and SYSENTER MSRs go to that area, the
       guest's come from its VMCB (with GIF clear: no NMI or interrupt
       sees the guest's TR or GS), and the reverse after the exit. */
mica_svm_run:
    push    rbx
    push    rbp
    push    r12
    push    r13
    push    r14
    push    r15
    push    rdx
    push    rsi
    mov     rax, rdx
    vmsave  rax
    clgi
    mov     rax, rdi
    vmload  rax
    mov     rbx, [rsi + 0]
    mov     rcx, [rsi + 8]
    mov     rdx, [rsi + 16]
    mov     rdi, [rsi + 32]
    mov     rbp, [rsi + 40]
    mov     r8, [rsi + 48]
    mov     r9, [rsi + 56]
    mov     r10, [rsi + 64]
    mov     r11, [rsi + 72]
    mov     r12, [rsi + 80]
    mov     r13, [rsi + 88]
    mov     r14, [rsi + 96]
    mov     r15, [rsi + 104]
    mov     rsi, [rsi + 24]
    sti
    vmrun   rax
    cli
    vmsave  rax
    push    rsi
    mov     rsi, [rsp + 8]
    mov     [rsi + 0], rbx
    mov     [rsi + 8], rcx
    mov     [rsi + 16], rdx
    mov     [rsi + 32], rdi
    mov     [rsi + 40], rbp
    mov     [rsi + 48], r8
    mov     [rsi + 56], r9
    mov     [rsi + 64], r10
    mov     [rsi + 72], r11
    mov     [rsi + 80], r12
    mov     [rsi + 88], r13
    mov     [rsi + 96], r14
    mov     [rsi + 104], r15
    pop     rax
    mov     [rsi + 24], rax
    add     rsp, 8
    pop     rax
    vmload  rax
    stgi
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
    fn mica_svm_run(vmcb: u64, gprs: *mut GuestGprs, host_state: u64);
}

/// A page of each CPU's host state around VMRUN: the host save area
/// VMRUN writes (VM_HSAVE_PA) and the VMSAVE area the world switch keeps
/// the host's FS/GS, TR, LDTR and syscall MSRs in. Per CPU: each CPU's
/// TR and GDT are its own, and two CPUs may be in guests at once.
#[repr(C, align(4096))]
struct HostPage([u8; 4096]);

/// [`HostPage`]s: the save area, then the VMSAVE area, of each CPU (in
/// the kernel image, which runs identity-mapped: their addresses are
/// physical).
static HOST_PAGES: [[HostPage; 2]; MAX_CPUS] =
    [const { [const { HostPage([0; 4096]) }, const { HostPage([0; 4096]) }] }; MAX_CPUS];

/// Turns SVM on for the calling CPU, with its own host save area. Each
/// CPU that runs guests calls it once, before its first VMRUN.
pub fn enable_here() {
    let save = (&raw const HOST_PAGES[this_cpu() % MAX_CPUS][0]) as u64;
    // SAFETY: EFER.SVME only allows the SVM instructions (CPUID said SVM is
    // there); VM_HSAVE_PA points at this CPU's page of the kernel image,
    // which nothing else writes.
    unsafe {
        wrmsr(EFER, rdmsr(EFER) | EFER_SVME);
        wrmsr(VM_HSAVE_PA, save);
    }
}

/// The calling CPU's VMSAVE area for the host's state.
fn host_state_here() -> u64 {
    (&raw const HOST_PAGES[this_cpu() % MAX_CPUS][1]) as u64
}

/// A flat segment for the VMCB: selector, attributes, limit, base 0.
#[derive(Clone, Copy)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// The VMCB's packed attributes (type, S, DPL, P, AVL, L, D/B, G).
    pub attributes: u16,
    /// Limit.
    pub limit: u32,
}

/// Flat 32-bit code, ring 0.
pub const CODE32: Segment = Segment {
    selector: 0x08,
    attributes: 0xc9b,
    limit: 0xffff_ffff,
};
/// Flat 32-bit data, ring 0.
pub const DATA32: Segment = Segment {
    selector: 0x10,
    attributes: 0xc93,
    limit: 0xffff_ffff,
};

/// Flat 64-bit code, ring 0 (L set, D clear).
pub const CODE64: Segment = Segment {
    selector: 0x08,
    attributes: 0xa9b,
    limit: 0xffff_ffff,
};

/// Guest EFER for long mode: LME, LMA and SVME (VMRUN requires it).
const EFER_LONG: u64 = 1 << 8 | 1 << 10 | EFER_SVME;
/// Guest CR0 for long mode: PE, ET, NE, WP, PG.
const CR0_LONG: u64 = 1 | 1 << 4 | 1 << 5 | 1 << 16 | 1 << 31;
/// Guest CR4 for long mode: PAE.
const CR4_PAE: u64 = 1 << 5;
/// CR0.PG and EFER.LMA.
const CR0_PG: u64 = 1 << 31;
const EFER_LMA: u64 = 1 << 10;

/// EVENTINJ: valid, an exception (type 3) with its error code.
const INJECT_EXCEPTION: u64 = 1 << 31 | 3 << 8 | 1 << 11;
/// The #GP vector.
const GP_VECTOR: u64 = 13;

/// One vCPU's VMCB (a zeroed frame) and general registers.
pub struct Vcpu {
    vmcb: u64,
    /// The guest's registers besides RAX, RSP and RIP.
    pub gprs: GuestGprs,
}

/// What the VMCB says about the last exit.
#[derive(Debug, Clone, Copy)]
pub struct RawExit {
    /// EXITCODE.
    pub code: u64,
    /// EXITINFO1.
    pub info1: u64,
    /// EXITINFO2.
    pub info2: u64,
}

impl Vcpu {
    /// A vCPU whose VMCB is the zeroed, identity-mapped frame `vmcb`,
    /// intercepting I/O (all ports in `iopm`), MSRs (`msrpm`), CR4 writes,
    /// HLT, RDPMC, CPUID, VMMCALL, interrupts and shutdown, with nested paging from `npt_root`
    /// under `asid` (non-zero).
    pub fn new(vmcb: u64, iopm: u64, msrpm: u64, npt_root: u64, asid: u32) -> Self {
        let v = Self {
            vmcb,
            gprs: GuestGprs::default(),
        };
        v.write32(ctl::INTERCEPT_CR, INTERCEPT_CR4_WRITE);
        v.write32(ctl::INTERCEPT_MISC1, MISC1);
        v.write32(ctl::INTERCEPT_MISC2, MISC2);
        v.write64(ctl::IOPM_BASE, iopm);
        v.write64(ctl::MSRPM_BASE, msrpm);
        v.write32(ctl::ASID, asid.max(1));
        v.write8(ctl::TLB_CONTROL, 1); // flush every ASID's entries on the first entry
        v.write64(ctl::INT_CONTROL, V_INTR_MASKING);
        v.write64(ctl::NP_ENABLE, 1);
        v.write64(ctl::N_CR3, npt_root);
        v
    }

    /// Sets flat 32-bit protected mode, paging off, at `rip` with `rsp`.
    pub fn set_protected_mode(&self, rip: u64, rsp: u64) {
        for at in [save::ES, save::SS, save::DS, save::FS, save::GS] {
            self.segment(at, DATA32);
        }
        self.segment(save::CS, CODE32);
        let tss = Segment {
            selector: 0x18,
            attributes: 0x8b,
            limit: 0xffff,
        };
        self.segment(save::TR, tss);
        let ldt = Segment {
            selector: 0,
            attributes: 0x82,
            limit: 0xffff,
        };
        self.segment(save::LDTR, ldt);
        let table = Segment {
            selector: 0,
            attributes: 0,
            limit: 0xffff,
        };
        self.segment(save::GDTR, table);
        self.segment(save::IDTR, table);
        // FS/GS bases 0 (above), and the syscall, KernelGSBase and
        // SYSENTER MSRs at their reset value 0.
        for i in 0..8 {
            self.write64(save::STAR + 8 * i, 0);
        }
        self.write64(ctl::EVENT_INJECTION, 0);
        self.write8(save::CPL, 0);
        self.write64(save::EFER, EFER_SVME);
        self.write64(save::CR0, 0x11); // PE | ET
        self.write64(save::CR3, 0);
        self.write64(save::CR4, 0);
        self.write64(save::DR7, 0x400);
        self.write64(save::DR6, 0xffff_0ff0);
        self.write64(save::RFLAGS, 0x2);
        self.write64(save::G_PAT, 0x0007_0406_0007_0406);
        self.write64(save::RIP, rip);
        self.write64(save::RSP, rsp);
    }

    /// Sets flat 64-bit long mode (CPL 0, paging through the guest's own
    /// tables at guest-physical `cr3`) at `rip` with `rsp`, RFLAGS.IF clear.
    pub fn set_long_mode(&self, rip: u64, rsp: u64, cr3: u64) {
        self.set_protected_mode(rip, rsp);
        self.segment(save::CS, CODE64);
        self.write64(save::EFER, EFER_LONG);
        self.write64(save::CR0, CR0_LONG);
        self.write64(save::CR3, cr3);
        self.write64(save::CR4, CR4_PAE);
        self.write64(save::RAX, 0);
    }

    /// Asks VMRUN to flush this vCPU's ASID on the next entry (a fresh
    /// guest, or an ASID another VM used before): TLB_CONTROL 01h flushes
    /// the entries of every ASID, a superset that every SVM CPU accepts
    /// (03h, this ASID only, needs CPUID Fn8000_000A EDX FlushByAsid).
    pub fn flush_asid_on_entry(&self) {
        self.write8(ctl::TLB_CONTROL, 1);
    }

    fn segment(&self, at: usize, s: Segment) {
        self.write16(at, s.selector);
        self.write16(at + 2, s.attributes);
        self.write32(at + 4, s.limit);
        self.write64(at + 8, 0);
    }

    /// Enters the guest until its next exit.
    pub fn run(&mut self) -> RawExit {
        // SAFETY: the VMCB is this vCPU's frame, filled by `new` and
        // `set_protected_mode` (valid state, VMRUN intercepted, ASID
        // non-zero, nested paging over frames the self-test owns); SVM is
        // enabled on this CPU with its own host save and VMSAVE areas. The switch saves and restores the
        // host's callee-saved registers and VMRUN/#VMEXIT the rest; the
        // host runs on with interrupts off and GIF set again.
        unsafe { mica_svm_run(self.vmcb, &raw mut self.gprs, host_state_here()) };
        self.write8(ctl::TLB_CONTROL, 0);
        // An injected #GP was delivered, or the guest faults again on the
        // instruction it stays at.
        self.write64(ctl::EVENT_INJECTION, 0);
        RawExit {
            code: self.read64(ctl::EXIT_CODE),
            info1: self.read64(ctl::EXIT_INFO1),
            info2: self.read64(ctl::EXIT_INFO2),
        }
    }

    /// Offers interrupt `vector` to the guest as the virtual interrupt,
    /// which the CPU delivers through the guest's IDT as soon as its
    /// RFLAGS.IF allows; false (nothing changed) while an earlier one is
    /// still waiting.
    pub fn offer_interrupt(&self, vector: u8) -> bool {
        if self.interrupt_offered() {
            return false;
        }
        let vector = u64::from(vector) << V_INTR_VECTOR_SHIFT;
        self.write64(
            ctl::INT_CONTROL,
            V_INTR_MASKING | V_IRQ | V_PRIO_ANY | vector,
        );
        true
    }

    /// Whether an offered interrupt is still waiting for the guest.
    pub fn interrupt_offered(&self) -> bool {
        self.read64(ctl::INT_CONTROL) & V_IRQ != 0
    }

    /// Takes back an offered interrupt the guest did not take (a stopped
    /// or reset vCPU).
    pub fn withdraw_interrupt(&self) {
        self.write64(ctl::INT_CONTROL, V_INTR_MASKING);
    }

    /// Whether the guest takes interrupts (RFLAGS.IF).
    pub fn interrupts_enabled(&self) -> bool {
        self.read64(save::RFLAGS) & RFLAGS_IF != 0
    }

    /// The guest's RIP.
    pub fn rip(&self) -> u64 {
        self.read64(save::RIP)
    }

    /// Moves the guest's RIP.
    /// (Past an instruction the host emulated: an `sti` or `mov ss`
    /// shadow before it is over, as after the instruction on the CPU, so
    /// `sti; hlt; cli` takes a waiting interrupt before the `cli`.)
    pub fn set_rip(&self, rip: u64) {
        self.write64(save::RIP, rip);
        self.write64(ctl::INTERRUPT_SHADOW, 0);
    }

    /// EFER as the guest sees it (SVME, which VMRUN needs, hidden).
    pub fn efer(&self) -> u64 {
        self.read64(save::EFER) & !EFER_SVME
    }

    /// Sets the guest's EFER (SVME kept on).
    pub fn set_efer(&self, efer: u64) {
        self.write64(save::EFER, efer | EFER_SVME);
    }

    /// Raises #GP(0) in the guest on the next entry (RIP stays at the
    /// faulting instruction).
    pub fn inject_gp(&self) {
        self.write64(ctl::EVENT_INJECTION, INJECT_EXCEPTION | GP_VECTOR);
    }

    /// CR4 (the guest's own: SVM has no read shadow).
    pub fn cr4(&self) -> u64 {
        self.read64(save::CR4)
    }

    /// Sets CR4; `flush`: the guest's ASID loses its cached translations
    /// on the next entry (as a MOV to CR4 that changes PGE drops them).
    pub fn set_cr4(&self, cr4: u64, flush: bool) {
        self.write64(save::CR4, cr4);
        if flush {
            self.flush_asid_on_entry();
        }
    }

    /// CR3.
    pub fn cr3(&self) -> u64 {
        self.read64(save::CR3)
    }

    /// RSP.
    pub fn rsp(&self) -> u64 {
        self.read64(save::RSP)
    }

    /// Whether the guest runs 64-bit code (CS.L: bit 9 of the VMCB's
    /// packed attributes).
    pub fn cs_long(&self) -> bool {
        self.read64(save::CS) >> 16 & 1 << 9 != 0
    }

    /// What locates the guest's code (CR0.PG, EFER.LMA, CS, RIP, CR3).
    pub fn code_view(&self) -> CodeView {
        CodeView {
            paging: self.read64(save::CR0) & CR0_PG != 0,
            long_mode: self.read64(save::EFER) & EFER_LMA != 0,
            cs_long: self.cs_long(),
            cs_base: self.read64(save::CS + 8),
            rip: self.rip(),
            cr3: self.cr3(),
        }
    }

    /// The guest's RAX.
    pub fn rax(&self) -> u64 {
        self.read64(save::RAX)
    }

    /// Sets the guest's RAX.
    pub fn set_rax(&self, rax: u64) {
        self.write64(save::RAX, rax);
    }

    fn field(&self, at: usize) -> *mut u8 {
        debug_assert!(at < PAGE_SIZE as usize);
        (self.vmcb as usize + at) as *mut u8
    }

    fn write8(&self, at: usize, v: u8) {
        // SAFETY: `at` is a field offset inside this vCPU's VMCB frame,
        // identity-mapped RW; no VMRUN uses it concurrently.
        unsafe { self.field(at).write_volatile(v) }
    }

    fn write16(&self, at: usize, v: u16) {
        // SAFETY: as `write8`; the field is 2-byte aligned.
        unsafe { self.field(at).cast::<u16>().write_volatile(v) }
    }

    fn write32(&self, at: usize, v: u32) {
        // SAFETY: as `write8`; the field is 4-byte aligned.
        unsafe { self.field(at).cast::<u32>().write_volatile(v) }
    }

    fn write64(&self, at: usize, v: u64) {
        // SAFETY: as `write8`; the field is 8-byte aligned.
        unsafe { self.field(at).cast::<u64>().write_volatile(v) }
    }

    fn read64(&self, at: usize) -> u64 {
        // SAFETY: as `write8`, reading.
        unsafe { self.field(at).cast::<u64>().read_volatile() }
    }
}
