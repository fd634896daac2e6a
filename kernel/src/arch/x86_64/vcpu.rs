//! A vCPU on either backend (SVM's VMCB or VMX's VMCS) behind one surface
//! for the run loop: enter the guest, get the exit decoded into a
//! [`GuestExit`] with the RIP after the instruction, read and write RIP,
//! RAX and the other registers.

use log::warn;

use super::cr4;
use super::mov_cr::{self, CodeView, GprSlot};
use super::svm::{self, GuestGprs};
use super::svm_exit;
use super::vmx_caps::VmxError;
use super::vmx_exit;
use super::vmx_vcpu;
use crate::vm::exit::GuestExit;

/// EFER.LMA.
const EFER_LMA: u64 = 1 << 10;

/// A decoded exit.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// What happened.
    pub exit: GuestExit,
    /// Where the guest goes on after the instruction that exited, when the
    /// backend knows it.
    pub next_rip: Option<u64>,
    /// The backend's exit number and first piece of information (for a
    /// stop report).
    pub code: u64,
    /// See `code`.
    pub info: u64,
}

/// One vCPU.
pub enum Vcpu {
    /// AMD SVM.
    Svm(svm::Vcpu),
    /// Intel VMX.
    Vmx(vmx_vcpu::Vcpu),
}

impl Vcpu {
    /// Enters the guest until its next exit and decodes it.
    pub fn run(&mut self) -> Exit {
        match self {
            Vcpu::Svm(v) => {
                let raw = v.run();
                let rip = v.rip();
                let next_rip = if raw.code == svm_exit::code::IOIO {
                    svm_exit::io_next_rip(rip, raw.info2)
                } else {
                    svm_exit::fixed_instruction_len(raw.code).map(|len| rip + len)
                };
                Exit {
                    exit: svm_exit::decode(raw.code, raw.info1, raw.info2, v.rax()),
                    next_rip,
                    code: raw.code,
                    info: raw.info1,
                }
            }
            Vcpu::Vmx(v) => {
                let raw = v.run();
                if raw.reason == u32::MAX {
                    warn!("vmx: VM entry failed: VM-instruction error {}", raw.error);
                    return Exit {
                        exit: GuestExit::Unhandled {
                            code: u64::from(raw.reason),
                            info: raw.error,
                        },
                        next_rip: None,
                        code: u64::from(raw.reason),
                        info: raw.error,
                    };
                }
                let rip = v.rip();
                Exit {
                    exit: vmx_exit::decode(raw.reason, raw.qualification, raw.gpa, v.regs.rax),
                    next_rip: Some(rip + raw.instruction_len),
                    code: u64::from(raw.reason),
                    info: raw.qualification,
                }
            }
        }
    }

    /// Flushes the guest's TLB entries on this CPU at the next entry: the
    /// vCPU last ran on another CPU, so this one's entries under its ASID
    /// may be older than its page tables (or an earlier VM's). Under VMX a
    /// vCPU never changes CPU (`cpus::scheduling_cpus`).
    pub fn flush_tlb_on_entry(&mut self) {
        match self {
            Vcpu::Svm(v) => v.flush_asid_on_entry(),
            Vcpu::Vmx(_) => {}
        }
    }

    /// Sets flat 64-bit long mode at `rip` with `rsp` and paging from
    /// guest-physical `cr3`; every register else is zero.
    pub fn set_long_mode(&mut self, rip: u64, rsp: u64, cr3: u64) -> Result<(), VmxError> {
        match self {
            Vcpu::Svm(v) => {
                v.set_long_mode(rip, rsp, cr3);
                v.gprs = GuestGprs::default();
                v.flush_asid_on_entry();
                Ok(())
            }
            Vcpu::Vmx(v) => v.set_long_mode(rip, rsp, cr3),
        }
    }

    /// The guest's registers besides RAX, RSP and RIP.
    pub fn gprs(&mut self) -> &mut GuestGprs {
        match self {
            Vcpu::Svm(v) => &mut v.gprs,
            Vcpu::Vmx(v) => &mut v.regs.gprs,
        }
    }

    /// The guest's RIP.
    pub fn rip(&self) -> u64 {
        match self {
            Vcpu::Svm(v) => v.rip(),
            Vcpu::Vmx(v) => v.rip(),
        }
    }

    /// Moves the guest's RIP.
    pub fn set_rip(&mut self, rip: u64) {
        match self {
            Vcpu::Svm(v) => v.set_rip(rip),
            Vcpu::Vmx(v) => v.set_rip(rip),
        }
    }

    /// The guest's RAX.
    pub fn rax(&self) -> u64 {
        match self {
            Vcpu::Svm(v) => v.rax(),
            Vcpu::Vmx(v) => v.regs.rax,
        }
    }

    /// Sets the guest's RAX.
    pub fn set_rax(&mut self, rax: u64) {
        match self {
            Vcpu::Svm(v) => v.set_rax(rax),
            Vcpu::Vmx(v) => v.regs.rax = rax,
        }
    }

    /// General register `gpr` in x86 numbering (0 RAX ... 15 R15).
    pub fn gpr(&mut self, gpr: u8) -> u64 {
        match mov_cr::gpr_slot(gpr) {
            GprSlot::Rax => self.rax(),
            GprSlot::Rsp => match self {
                Vcpu::Svm(v) => v.rsp(),
                Vcpu::Vmx(v) => v.rsp(),
            },
            GprSlot::Saved(i) => self.gprs().regs[i],
        }
    }

    /// Whether the guest runs 64-bit code (outside it, a MOV to a control
    /// register takes the low 32 bits of its source).
    pub fn in_64bit_code(&self) -> bool {
        match self {
            Vcpu::Svm(v) => v.cs_long(),
            Vcpu::Vmx(v) => v.cs_long(),
        }
    }

    /// What `cr4::write` needs of the guest: CR4 as it reads it, whether
    /// it is in long mode, CR3.
    pub fn cr4_guest(&self) -> cr4::Guest {
        let (cr4, cr3) = match self {
            Vcpu::Svm(v) => (v.cr4(), v.cr3()),
            Vcpu::Vmx(v) => (v.cr4(), v.cr3()),
        };
        cr4::Guest {
            cr4,
            long_mode: self.efer() & EFER_LMA != 0,
            cr3,
        }
    }

    /// The CR4 bits the guest may own on this CPU: `cr4::GUEST_OWNABLE`
    /// that CPUID shows (and, under VMX, that VMX operation allows).
    pub fn cr4_owned(&self) -> u64 {
        let leaf1 = core::arch::x86_64::__cpuid(1);
        let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
        let cpu = cr4::supported(&cr4::Features {
            leaf1_ecx: leaf1.ecx,
            leaf1_edx: leaf1.edx,
            leaf7_ebx: leaf7.ebx,
            leaf7_ecx: leaf7.ecx,
        });
        match self {
            Vcpu::Svm(_) => cpu,
            Vcpu::Vmx(_) => cpu & vmx_vcpu::Vcpu::cr4_fixed1(),
        }
    }

    /// Sets CR4 as the guest reads it (one `cr4::write` accepted);
    /// `flush`: the VM's cached translations go.
    pub fn set_cr4(&mut self, value: u64, flush: bool) {
        match self {
            Vcpu::Svm(v) => v.set_cr4(value, flush),
            Vcpu::Vmx(v) => v.set_cr4(value, flush),
        }
    }

    /// What locates the guest's code, where the backend must decode an
    /// instruction itself (SVM); `None` under VMX, whose exits name the
    /// register and the instruction's length.
    pub fn code_view(&self) -> Option<CodeView> {
        match self {
            Vcpu::Svm(v) => Some(v.code_view()),
            Vcpu::Vmx(_) => None,
        }
    }

    /// EFER as the guest sees it.
    pub fn efer(&self) -> u64 {
        match self {
            Vcpu::Svm(v) => v.efer(),
            Vcpu::Vmx(v) => v.efer(),
        }
    }

    /// Sets the guest's EFER.
    pub fn set_efer(&mut self, efer: u64) {
        match self {
            Vcpu::Svm(v) => v.set_efer(efer),
            Vcpu::Vmx(v) => v.set_efer(efer),
        }
    }

    /// Raises #GP(0) in the guest on the next entry; RIP stays at the
    /// instruction that faults.
    pub fn inject_gp(&mut self) {
        match self {
            Vcpu::Svm(v) => v.inject_gp(),
            Vcpu::Vmx(v) => v.inject_gp(),
        }
    }

    /// Offers interrupt `vector` for delivery through the guest's IDT: SVM
    /// makes it the virtual interrupt, which the CPU delivers once the
    /// guest's RFLAGS.IF allows; VMX injects it at the next entry if the
    /// guest takes interrupts now. False (nothing changed) if the vector
    /// cannot go yet: the caller offers it after the next exit.
    pub fn offer_interrupt(&mut self, vector: u8) -> bool {
        match self {
            Vcpu::Svm(v) => v.offer_interrupt(vector),
            Vcpu::Vmx(v) => v.offer_interrupt(vector),
        }
    }

    /// The interrupt the last exit left undelivered (SVM: the virtual
    /// interrupt still waits, and stays; VMX: its IDT-vectoring
    /// information), which goes back among the pending ones.
    pub fn undelivered_interrupt(&mut self) -> Option<u8> {
        match self {
            Vcpu::Svm(_) => None,
            Vcpu::Vmx(v) => v.undelivered_interrupt(),
        }
    }

    /// Whether an interrupt offered on SVM still waits for the guest.
    pub fn interrupt_offered(&self) -> bool {
        match self {
            Vcpu::Svm(v) => v.interrupt_offered(),
            Vcpu::Vmx(_) => false,
        }
    }

    /// Takes back an offered interrupt (a stopped or reset vCPU).
    pub fn withdraw_interrupt(&mut self) {
        match self {
            Vcpu::Svm(v) => v.withdraw_interrupt(),
            Vcpu::Vmx(v) => v.withdraw_interrupt(),
        }
    }

    /// Whether the guest takes interrupts (RFLAGS.IF).
    pub fn interrupts_enabled(&self) -> bool {
        match self {
            Vcpu::Svm(v) => v.interrupts_enabled(),
            Vcpu::Vmx(v) => v.interrupts_enabled(),
        }
    }

    /// Lets go of the backend's state before its frame is freed.
    pub fn release(&mut self) {
        if let Vcpu::Vmx(v) = self {
            v.release();
        }
    }
}
