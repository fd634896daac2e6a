//! A guest's SBI calls on RISC-V: the ecall's registers go to
//! [`guest_sbi::handle_ecall`] with the guest's RAM (read through its
//! G-stage tables) and its console line; its effect on the vCPU (timer,
//! software interrupt, fences, suspend, power-off and reboot) is applied
//! here.

use super::guest_sbi::{self, SbiCaller, SbiEffect};
use super::guest_tlb::{fence_i, hfence_vvma_all};
use super::vcpu::{GuestVm, HVIP_VSSIP, HVIP_VSTIP};
use super::{csr, timer};
use crate::arch::RunOutcome;
use crate::vm::VmState;
use crate::vm::ioreq_path::VcpuRun;

impl GuestVm {
    pub(super) fn sbi_call(&mut self) -> Option<RunOutcome> {
        let regs = &self.vcpu.frame.regs;
        let args = [regs[10], regs[11], regs[12], regs[13], regs[14], regs[15]];
        let (eid, fid) = (regs[17], regs[16]);
        let memory = self.guest_ram();
        let mut out = |line: crate::vm::console::PrefixedLine<'_>| {
            crate::klog::print(format_args!("{line}\n"));
        };
        let mut caller = SbiCaller {
            name: &self.vm.name,
            line: &mut self.console,
            memory: &memory,
            out: &mut out,
            hart: usize::from(self.vcpu.id),
            harts: 1,
        };
        let (ret, effect) = guest_sbi::handle_ecall(&mut caller, eid, fid, args);
        let v = &mut self.vcpu;
        v.frame.regs[10] = ret.error;
        v.frame.regs[11] = ret.value;
        v.frame.sepc += 4;
        match effect {
            SbiEffect::None => {}
            SbiEffect::SetTimer(at) => {
                csr::hvip::clear(HVIP_VSTIP);
                if timer::uses_sstc() {
                    csr::vstimecmp::write(at as usize);
                } else {
                    v.deadline = Some(at);
                }
            }
            SbiEffect::SoftwareInterrupt => csr::hvip::set(HVIP_VSSIP),
            SbiEffect::FlushGuestTlb => hfence_vvma_all(),
            SbiEffect::FenceI => fence_i(),
            SbiEffect::Suspend => return self.wait_for_interrupt(),
            SbiEffect::SystemSuspend { resume, opaque } => {
                // Resumes (after the wake-up interrupt) in VS-mode at
                // `resume`, MMU off, interrupts off, a0 = hart, a1 = opaque.
                v.vs.save();
                v.frame.sepc = resume as usize;
                v.frame.regs[10] = usize::from(v.id);
                v.frame.regs[11] = opaque;
                v.frame.sstatus |= csr::SSTATUS_SPP;
                v.vs.vsatp = 0;
                v.vs.vsstatus &= !csr::SSTATUS_SIE;
                v.vs.load();
                return self.wait_for_interrupt();
            }
            SbiEffect::PowerOff { .. } | SbiEffect::Reboot { .. } => {
                // Posted output first: the call is undone (its arguments
                // back, the pc on the `ecall`) and made again after.
                if self.io.drain_first() {
                    let v = &mut self.vcpu;
                    v.frame.regs[10] = args[0];
                    v.frame.regs[11] = args[1];
                    v.frame.sepc -= 4;
                    return Some(RunOutcome::Preempted);
                }
                let next = match effect {
                    SbiEffect::PowerOff { reason } => VmState::PoweredOff { reason },
                    SbiEffect::Reboot { warm, reason } => VmState::RebootRequested { warm, reason },
                    // Not reached: this arm takes only the two above.
                    _ => return None,
                };
                if !self.console.is_empty() {
                    let name = self.vm.name;
                    self.console.flush(&name, &mut out);
                }
                // The pc of the `ecall` (it was stepped past above).
                let pc = (self.vcpu.frame.sepc as u64).wrapping_sub(4);
                let at = crate::ticks::uptime_ms(timer::now());
                self.vm.leave(next, pc, at);
                self.vcpu.run = VcpuRun::Stopped;
                return Some(RunOutcome::Left(next));
            }
        }
        None
    }
}
