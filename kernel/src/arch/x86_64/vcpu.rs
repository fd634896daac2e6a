//! A vCPU on either backend (SVM's VMCB or VMX's VMCS) behind one surface
//! for the run loop: enter the guest, get the exit decoded into a
//! [`GuestExit`] with the RIP after the instruction, read and write RIP,
//! RAX and the other registers.

use log::warn;

use super::svm::{self, GuestGprs};
use super::svm_exit;
use super::vmx_caps::VmxError;
use super::vmx_exit;
use super::vmx_vcpu;
use crate::vm::exit::GuestExit;

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

    /// Lets go of the backend's state before its frame is freed.
    pub fn release(&mut self) {
        if let Vcpu::Vmx(v) = self {
            v.release();
        }
    }
}
