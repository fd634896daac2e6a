//! A guest's SBI calls on RISC-V: the ecall's registers go to
//! [`guest_sbi::handle_ecall`] with the guest's RAM (read through its
//! G-stage tables), its console line and its harts' HSM states; its effect
//! on the vCPUs (timer, software interrupts, fences, starting, stopping and
//! suspending harts, power-off and reboot) is applied here.
//!
//! A remote fence is done here and asked of every other hart, which does
//! it before it next runs the VM; harts in the VM's guest now are kicked
//! out first, so the fence is complete when the call returns
//! ([`GuestVm::remote_fence`]). The guest's hart mask is not narrowed to
//! the vCPUs named: vCPUs move between harts, and the fences are cheap.

use super::guest_sbi::{self, SbiCaller, SbiEffect};
use super::guest_tlb::{fence_i, hfence_vvma_all};
use super::vcpu::{GuestVm, HVIP_VSSIP, HVIP_VSTIP, HartState};
use super::{csr, timer};
use crate::arch::RunOutcome;
use crate::vm::VmState;
use crate::vm::ioreq_path::VcpuRun;

impl GuestVm {
    pub(super) fn sbi_call(&mut self) -> Option<RunOutcome> {
        let regs = &self.vcpus.cur.frame.regs;
        let args = [regs[10], regs[11], regs[12], regs[13], regs[14], regs[15]];
        let (eid, fid) = (regs[17], regs[16]);
        // Only HSM and SUSP read the harts' states.
        let (stopped, suspended) =
            if eid == sbi_spec::hsm::EID_HSM || eid == sbi_spec::susp::EID_SUSP {
                (
                    self.harts_in(HartState::Stopped),
                    self.harts_in(HartState::Suspended),
                )
            } else {
                (0, 0)
            };
        let harts = self.vcpus.count();
        let memory = self.guest_ram();
        let mut out = |line: crate::vm::console::PrefixedLine<'_>| {
            crate::klog::print(format_args!("{line}\n"));
        };
        let mut caller = SbiCaller {
            name: &self.vm.name,
            line: &mut self.console,
            memory: &memory,
            out: &mut out,
            hart: usize::from(self.vcpus.cur.id),
            harts,
            stopped,
            suspended,
        };
        let (ret, effect) = guest_sbi::handle_ecall(&mut caller, eid, fid, args);
        let v = &mut self.vcpus.cur;
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
            SbiEffect::SoftwareInterrupt(harts) => self.send_ipi(harts),
            SbiEffect::FlushGuestTlb => {
                hfence_vvma_all();
                self.remote_fence(true, false);
            }
            SbiEffect::FenceI => {
                fence_i();
                self.remote_fence(false, true);
            }
            SbiEffect::StartHart {
                hart,
                start,
                opaque,
            } => {
                if let Some(target) = self.vcpus.get_mut(hart) {
                    target.enter(start, hart, opaque);
                    self.vcpus.wake(1 << hart);
                }
            }
            SbiEffect::StopHart => {
                self.vcpus.cur.hsm = HartState::Stopped;
                return Some(RunOutcome::HartStopped);
            }
            SbiEffect::Suspend => {
                let outcome = self.wait_for_interrupt();
                if outcome.is_some() {
                    self.vcpus.cur.hsm = HartState::Suspended;
                }
                return outcome;
            }
            SbiEffect::SystemSuspend { resume, opaque }
            | SbiEffect::HartSuspend { resume, opaque } => {
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
                let outcome = self.wait_for_interrupt();
                if outcome.is_some() {
                    self.vcpus.cur.hsm = HartState::Suspended;
                }
                return outcome;
            }
            SbiEffect::PowerOff { .. } | SbiEffect::Reboot { .. } => {
                // Posted output first: the call is undone (its arguments
                // back, the pc on the `ecall`) and made again after.
                if self.io.drain_first(timer::now()) {
                    let v = &mut self.vcpus.cur;
                    v.frame.regs[10] = args[0];
                    v.frame.regs[11] = args[1];
                    v.frame.sepc -= 4;
                    return Some(super::vcpu::drain_wait());
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
                let pc = (self.vcpus.cur.frame.sepc as u64).wrapping_sub(4);
                let at = crate::ticks::uptime_ms(timer::now());
                self.vm.leave(next, pc, at);
                self.vcpus.cur.run = VcpuRun::Stopped;
                return Some(RunOutcome::Left(next));
            }
        }
        None
    }

    /// Makes a supervisor software interrupt pending on the harts in
    /// `harts`: the calling one in the hart's `hvip` (it runs here), the
    /// others through [`GuestVm::signal`] (a sibling running on another
    /// hart is kicked to take it), and a sibling that is not stopped is
    /// woken if it sleeps.
    fn send_ipi(&mut self, harts: u64) {
        let me = self.vcpus.cur.id;
        if harts & 1 << me != 0 {
            csr::hvip::set(HVIP_VSSIP);
        }
        let others = harts & !(1 << me);
        if others == 0 {
            return;
        }
        let mut woken = 0;
        for sibling in self.vcpus.parked_mut() {
            if others & 1 << sibling.id != 0 {
                GuestVm::signal(sibling, HVIP_VSSIP, 0);
                if sibling.hsm != HartState::Stopped {
                    woken |= 1 << sibling.id;
                }
            }
        }
        self.vcpus.wake(woken);
    }
}
