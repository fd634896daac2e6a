//! The SBI a guest sees, served in the kernel with `rustsbi`: base (SBI
//! 2.0; the probe reports exactly the extensions below), DBCN console
//! (lines printed as `vm0 | ...`), legacy putchar, set_timer and shutdown,
//! TIME, sPI (software interrupts to any of the VM's harts), RFENCE
//! (fence.i and VS-stage TLB flushes of the VM), HSM (start, stop, status
//! and retentive or non-retentive suspend of its harts), SUSP (suspend to
//! RAM, with every other hart stopped: the VM sleeps until an interrupt and
//! resumes at the address it gave) and SRST.
//! Every hart mask is checked against the VM's harts: naming one it does
//! not have is `SBI_ERR_INVALID_PARAM`, as the spec says. Pure logic: guest memory
//! comes through [`GuestMemoryRead`] and what the call asks of the vCPU
//! (timer, interrupt, power-off) comes back as an [`SbiEffect`], so the
//! dispatch is tested on the host.

use core::cell::{Cell, RefCell};

use rustsbi::RustSBI;
use sbi_spec::binary::{HartMask, Physical, SbiRet};

use crate::vm::VmName;
use crate::vm::console::{ConsoleLine, PrefixedLine};

/// Bytes of one DBCN write copied per call (the guest loops on a short
/// count, as the spec allows).
pub const DBCN_CHUNK: usize = 256;

const EID_LEGACY_SET_TIMER: usize = 0x00;
const EID_LEGACY_PUTCHAR: usize = 0x01;
const EID_LEGACY_SHUTDOWN: usize = 0x08;

/// Guest-physical memory as the SBI implementation may read it.
pub trait GuestMemoryRead {
    /// Fills `buf` from `gpa` if the whole range is readable guest RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool;
}

/// What a call asks of the vCPU beyond its return registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbiEffect {
    /// Nothing.
    None,
    /// Raise the guest's timer interrupt at this absolute time (clears a
    /// pending one).
    SetTimer(u64),
    /// Make a supervisor software interrupt pending on the VM's harts in
    /// the mask (bit `n` = hart `n`; the caller's own bit included).
    SoftwareInterrupt(u64),
    /// The guest powered its machine off, with its SRST reset reason (0
    /// for none and for the legacy shutdown call).
    PowerOff {
        /// The SBI reset reason.
        reason: u32,
    },
    /// The guest asked for a reboot.
    Reboot {
        /// A warm reboot (a cold one otherwise).
        warm: bool,
        /// The SBI reset reason.
        reason: u32,
    },
    /// Flush the VS-stage translations of the VM's harts named by the
    /// call (`hfence.vvma` for its VMID; a flush of all of them is what a
    /// ranged request may get).
    FlushGuestTlb,
    /// Synchronize the instruction fetches of the VM's harts named by the
    /// call (`fence.i`).
    FenceI,
    /// Start hart `hart` (stopped) at `start` in S-mode with a0 = `hart`,
    /// a1 = `opaque`, satp = 0 and interrupts off (HSM `hart_start`).
    StartHart {
        /// The hart to start.
        hart: usize,
        /// Guest-physical start address.
        start: u64,
        /// The value for its a1.
        opaque: usize,
    },
    /// The calling hart stops (HSM `hart_stop`): it runs again only when
    /// another hart starts it.
    StopHart,
    /// The hart waits for an interrupt (HSM retentive suspend), as `wfi`.
    Suspend,
    /// The hart waits for an interrupt, then resumes in S-mode at `resume`
    /// with a0 = hart id, a1 = `opaque`, satp = 0 and interrupts off (HSM
    /// default non-retentive suspend).
    HartSuspend {
        /// Guest-physical resume address.
        resume: u64,
        /// The value for a1.
        opaque: usize,
    },
    /// The system sleeps until an interrupt, then the hart resumes in
    /// S-mode at `resume` with a0 = hart id, a1 = `opaque`, satp = 0 and
    /// interrupts off (SUSP suspend to RAM).
    SystemSuspend {
        /// Guest-physical resume address.
        resume: u64,
        /// The value for a1.
        opaque: usize,
    },
}

/// Bit `n` set for each hart `n` below `harts`.
fn all_harts(harts: usize) -> u64 {
    1u64.checked_shl(harts as u32)
        .map_or(u64::MAX, |bit| bit - 1)
}

/// The harts `mask` names (bit `n` = hart `n`; `base` `usize::MAX`
/// names every hart), when they are all below `harts`; `None` when it
/// names a hart the VM does not have.
fn hart_mask_of(mask: HartMask, harts: usize) -> Option<u64> {
    let (bits, base) = mask.into_inner();
    if base == usize::MAX {
        return Some(all_harts(harts));
    }
    let mut named = 0u64;
    for bit in 0..usize::BITS as usize {
        if bits & (1 << bit) == 0 {
            continue;
        }
        let hart = base.checked_add(bit)?;
        if hart >= harts {
            return None;
        }
        named |= 1 << hart;
    }
    Some(named)
}

/// The calling vCPU and its VM's console.
pub struct SbiCaller<'a> {
    /// The VM's name, for console lines.
    pub name: &'a VmName,
    /// The VM's unfinished console line.
    pub line: &'a mut ConsoleLine,
    /// Guest memory.
    pub memory: &'a dyn GuestMemoryRead,
    /// Where finished console lines go.
    pub out: &'a mut dyn FnMut(PrefixedLine<'_>),
    /// The calling vCPU's hart id.
    pub hart: usize,
    /// How many harts (vCPUs) the VM has.
    pub harts: usize,
    /// The VM's stopped harts (bit `n` = hart `n`, SBI HSM).
    pub stopped: u64,
    /// The VM's harts in a retentive suspend (HSM `hart_suspend`, `wfi`).
    pub suspended: u64,
}

struct Console<'a, 'c> {
    caller: &'a RefCell<&'a mut SbiCaller<'c>>,
}

impl Console<'_, '_> {
    fn push(&self, bytes: &[u8]) {
        let mut caller = self.caller.borrow_mut();
        let caller = &mut **caller;
        for &b in bytes {
            caller.line.push(caller.name, b, caller.out);
        }
    }
}

impl rustsbi::Console for Console<'_, '_> {
    fn write(&self, bytes: Physical<&[u8]>) -> SbiRet {
        if bytes.phys_addr_hi() != 0 {
            return SbiRet::invalid_param();
        }
        let len = bytes.num_bytes().min(DBCN_CHUNK);
        let mut buf = [0u8; DBCN_CHUNK];
        let gpa = bytes.phys_addr_lo() as u64;
        if !self.caller.borrow().memory.read(gpa, &mut buf[..len]) {
            return SbiRet::invalid_param();
        }
        self.push(&buf[..len]);
        SbiRet::success(len)
    }

    fn read(&self, bytes: Physical<&mut [u8]>) -> SbiRet {
        // No console input for guests yet: zero bytes read, into a buffer
        // that must still be the guest's RAM, as for a write.
        if bytes.phys_addr_hi() != 0 {
            return SbiRet::invalid_param();
        }
        let len = bytes.num_bytes().min(DBCN_CHUNK);
        let mut buf = [0u8; DBCN_CHUNK];
        let gpa = bytes.phys_addr_lo() as u64;
        if !self.caller.borrow().memory.read(gpa, &mut buf[..len]) {
            return SbiRet::invalid_param();
        }
        SbiRet::success(0)
    }

    fn write_byte(&self, byte: u8) -> SbiRet {
        self.push(&[byte]);
        SbiRet::success(0)
    }
}

struct Effects<'a> {
    effect: &'a Cell<SbiEffect>,
    hart: usize,
    harts: usize,
    stopped: u64,
    suspended: u64,
}

impl Effects<'_> {
    /// Checks `mask`; when it names any hart, the effect `effect` makes
    /// of the harts it names happens (an IPI to them, or a flush the vCPU
    /// layer applies to the harts that need it).
    fn to_harts(&self, mask: HartMask, effect: impl FnOnce(u64) -> SbiEffect) -> SbiRet {
        match hart_mask_of(mask, self.harts) {
            None => SbiRet::invalid_param(),
            Some(named) => {
                if named != 0 {
                    self.effect.set(effect(named));
                }
                SbiRet::success(0)
            }
        }
    }
}

/// Whether `start..start+size` is a range the spec allows (the whole
/// address space is `start = 0, size = usize::MAX`).
fn valid_range(start: usize, size: usize) -> bool {
    size == usize::MAX || start.checked_add(size).is_some()
}

impl rustsbi::Fence for Effects<'_> {
    fn remote_fence_i(&self, hart_mask: HartMask) -> SbiRet {
        self.to_harts(hart_mask, |_| SbiEffect::FenceI)
    }

    fn remote_sfence_vma(&self, hart_mask: HartMask, start: usize, size: usize) -> SbiRet {
        if !valid_range(start, size) {
            return SbiRet::invalid_address();
        }
        self.to_harts(hart_mask, |_| SbiEffect::FlushGuestTlb)
    }

    fn remote_sfence_vma_asid(
        &self,
        hart_mask: HartMask,
        start: usize,
        size: usize,
        _asid: usize,
    ) -> SbiRet {
        if !valid_range(start, size) {
            return SbiRet::invalid_address();
        }
        self.to_harts(hart_mask, |_| SbiEffect::FlushGuestTlb)
    }
}

impl rustsbi::Timer for Effects<'_> {
    fn set_timer(&self, stime_value: u64) {
        self.effect.set(SbiEffect::SetTimer(stime_value));
    }
}

impl rustsbi::Ipi for Effects<'_> {
    fn send_ipi(&self, hart_mask: HartMask) -> SbiRet {
        self.to_harts(hart_mask, SbiEffect::SoftwareInterrupt)
    }
}

impl rustsbi::Reset for Effects<'_> {
    fn system_reset(&self, reset_type: u32, reset_reason: u32) -> SbiRet {
        // A reserved reason is refused before anything happens (SBI 2.0
        // SRST: no reason, system failure, SBI- and vendor-specific).
        if let 0x2..=0xdfff_ffff = reset_reason {
            return SbiRet::invalid_param();
        }
        match reset_type {
            sbi_spec::srst::RESET_TYPE_SHUTDOWN => self.effect.set(SbiEffect::PowerOff {
                reason: reset_reason,
            }),
            sbi_spec::srst::RESET_TYPE_COLD_REBOOT | sbi_spec::srst::RESET_TYPE_WARM_REBOOT => {
                self.effect.set(SbiEffect::Reboot {
                    warm: reset_type == sbi_spec::srst::RESET_TYPE_WARM_REBOOT,
                    reason: reset_reason,
                })
            }
            // Vendor or platform-specific types: valid, not offered.
            0xf000_0000..=u32::MAX => return SbiRet::not_supported(),
            _ => return SbiRet::invalid_param(),
        }
        SbiRet::success(0)
    }
}

/// Whether a hart may start or resume at `gpa`: it is guest RAM the hart
/// can fetch from. Kept out of line: the common calls never need it.
#[inline(never)]
fn fetchable(caller: &RefCell<&mut SbiCaller<'_>>, gpa: u64) -> bool {
    let mut insn = [0u8; 2];
    caller.borrow().memory.read(gpa, &mut insn)
}

struct Harts<'a, 'c> {
    effects: &'a Effects<'a>,
    caller: &'a RefCell<&'a mut SbiCaller<'c>>,
}

impl rustsbi::Hsm for Harts<'_, '_> {
    fn hart_start(&self, hartid: usize, start_addr: usize, opaque: usize) -> SbiRet {
        let effects = self.effects;
        if hartid >= effects.harts {
            return SbiRet::invalid_param();
        }
        if effects.stopped & 1 << hartid == 0 {
            return SbiRet::already_available();
        }
        let start = start_addr as u64;
        if !fetchable(self.caller, start) {
            return SbiRet::invalid_address();
        }
        effects.effect.set(SbiEffect::StartHart {
            hart: hartid,
            start,
            opaque,
        });
        SbiRet::success(0)
    }

    fn hart_stop(&self) -> SbiRet {
        // The last hart that is not stopped cannot stop: nothing could
        // ever start it again (the guest powers off with SRST for that).
        let effects = self.effects;
        let others = all_harts(effects.harts) & !(1 << effects.hart);
        if effects.stopped & others == others {
            return SbiRet::failed();
        }
        // No return on success: the hart runs again only when started.
        effects.effect.set(SbiEffect::StopHart);
        SbiRet::success(0)
    }

    fn hart_get_status(&self, hartid: usize) -> SbiRet {
        use sbi_spec::hsm::hart_state;
        let effects = self.effects;
        if hartid >= effects.harts {
            SbiRet::invalid_param()
        } else if effects.stopped & 1 << hartid != 0 {
            SbiRet::success(hart_state::STOPPED)
        } else if effects.suspended & 1 << hartid != 0 {
            SbiRet::success(hart_state::SUSPENDED)
        } else {
            SbiRet::success(hart_state::STARTED)
        }
    }

    fn hart_suspend(&self, suspend_type: u32, resume_addr: usize, opaque: usize) -> SbiRet {
        match suspend_type {
            sbi_spec::hsm::suspend_type::RETENTIVE => {
                self.effects.effect.set(SbiEffect::Suspend);
                SbiRet::success(0)
            }
            sbi_spec::hsm::suspend_type::NON_RETENTIVE => {
                let resume = resume_addr as u64;
                if !fetchable(self.caller, resume) {
                    return SbiRet::invalid_address();
                }
                self.effects
                    .effect
                    .set(SbiEffect::HartSuspend { resume, opaque });
                SbiRet::success(0)
            }
            // Valid types Mica does not offer: the platform-specific ones.
            0x1000_0000..=0x7fff_ffff | 0x9000_0000..=0xffff_ffff => SbiRet::not_supported(),
            _ => SbiRet::invalid_param(),
        }
    }
}

/// SUSP's sleep type "suspend to RAM" (the one every SUSP offers).
const SUSPEND_TO_RAM: u32 = 0;

struct Sleep<'a, 'c> {
    caller: &'a RefCell<&'a mut SbiCaller<'c>>,
    effects: &'a Effects<'a>,
}

impl rustsbi::Susp for Sleep<'_, '_> {
    fn system_suspend(&self, sleep_type: u32, resume_addr: usize, opaque: usize) -> SbiRet {
        match sleep_type {
            SUSPEND_TO_RAM => {}
            0x8000_0000..=u32::MAX => return SbiRet::not_supported(),
            _ => return SbiRet::invalid_param(),
        }
        // Only the last started hart may suspend the system (SBI SUSP:
        // every other hart must be stopped).
        let effects = self.effects;
        let others = all_harts(effects.harts) & !(1 << effects.hart);
        if effects.stopped & others != others {
            return SbiRet::denied();
        }
        let resume = resume_addr as u64;
        if !fetchable(self.caller, resume) {
            return SbiRet::invalid_address();
        }
        effects
            .effect
            .set(SbiEffect::SystemSuspend { resume, opaque });
        SbiRet::success(0)
    }
}

struct Info;

impl rustsbi::EnvInfo for Info {
    fn mvendorid(&self) -> usize {
        0
    }
    fn marchid(&self) -> usize {
        0
    }
    fn mimpid(&self) -> usize {
        0
    }
}

#[derive(RustSBI)]
struct GuestSbi<'a, 'c> {
    console: Console<'a, 'c>,
    timer: &'a Effects<'a>,
    ipi: &'a Effects<'a>,
    fence: &'a Effects<'a>,
    hsm: Harts<'a, 'c>,
    susp: Sleep<'a, 'c>,
    reset: &'a Effects<'a>,
    info: Info,
}

/// Serves the guest's `ecall` with extension `a7`, function `a6` and
/// arguments `a0..a5`: the values for `a0`/`a1` and what the vCPU must do.
pub fn handle_ecall(
    caller: &mut SbiCaller<'_>,
    a7: usize,
    a6: usize,
    args: [usize; 6],
) -> (SbiRet, SbiEffect) {
    match a7 {
        EID_LEGACY_PUTCHAR => {
            caller.line.push(caller.name, args[0] as u8, caller.out);
            return (SbiRet::success(0), SbiEffect::None);
        }
        EID_LEGACY_SHUTDOWN => return (SbiRet::success(0), SbiEffect::PowerOff { reason: 0 }),
        EID_LEGACY_SET_TIMER => {
            return (SbiRet::success(0), SbiEffect::SetTimer(args[0] as u64));
        }
        _ => {}
    }
    let effect = Cell::new(SbiEffect::None);
    let effects = Effects {
        effect: &effect,
        hart: caller.hart,
        harts: caller.harts,
        stopped: caller.stopped,
        suspended: caller.suspended,
    };
    let caller = RefCell::new(caller);
    let sbi = GuestSbi {
        console: Console { caller: &caller },
        timer: &effects,
        ipi: &effects,
        fence: &effects,
        hsm: Harts {
            effects: &effects,
            caller: &caller,
        },
        susp: Sleep {
            caller: &caller,
            effects: &effects,
        },
        reset: &effects,
        info: Info,
    };
    let ret = sbi.handle_ecall(a7, a6, args);
    (ret, effect.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sbi_spec::{base, dbcn, hsm, srst, time};

    /// 64 KiB of guest RAM at 0x8000_0000.
    struct Ram(Vec<u8>);

    impl GuestMemoryRead for Ram {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
            let Some(off) = gpa.checked_sub(0x8000_0000) else {
                return false;
            };
            let off = off as usize;
            match self.0.get(off..off + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }

    /// The calling hart, the VM's hart count and its stopped and
    /// suspended harts.
    #[derive(Clone, Copy)]
    struct Harts {
        hart: usize,
        harts: usize,
        stopped: u64,
        suspended: u64,
    }

    const ONE_HART: Harts = Harts {
        hart: 0,
        harts: 1,
        stopped: 0,
        suspended: 0,
    };

    fn call(
        ram: &Ram,
        line: &mut ConsoleLine,
        a7: usize,
        a6: usize,
        args: [usize; 6],
    ) -> (SbiRet, SbiEffect, Vec<String>) {
        call_on(ONE_HART, ram, line, a7, a6, args)
    }

    fn call_on(
        harts: Harts,
        ram: &Ram,
        line: &mut ConsoleLine,
        a7: usize,
        a6: usize,
        args: [usize; 6],
    ) -> (SbiRet, SbiEffect, Vec<String>) {
        let name = VmName::new("vm0").unwrap();
        let mut lines = Vec::new();
        let mut out = |l: PrefixedLine<'_>| lines.push(l.to_string());
        let mut caller = SbiCaller {
            name: &name,
            line,
            memory: ram,
            out: &mut out,
            hart: harts.hart,
            harts: harts.harts,
            stopped: harts.stopped,
            suspended: harts.suspended,
        };
        let (ret, effect) = handle_ecall(&mut caller, a7, a6, args);
        (ret, effect, lines)
    }

    fn ram_with(at: usize, bytes: &[u8]) -> Ram {
        let mut ram = vec![0u8; 64 * 1024];
        ram[at..at + bytes.len()].copy_from_slice(bytes);
        Ram(ram)
    }

    #[test]
    fn dbcn_write_prints_a_prefixed_line_from_guest_memory() {
        let ram = ram_with(0x100, b"hello from vm0\n");
        let mut line = ConsoleLine::new();
        let (ret, effect, lines) = call(
            &ram,
            &mut line,
            dbcn::EID_DBCN,
            dbcn::CONSOLE_WRITE,
            [15, 0x8000_0100, 0, 0, 0, 0],
        );
        assert_eq!(ret, SbiRet::success(15));
        assert_eq!(effect, SbiEffect::None);
        assert_eq!(lines, ["vm0 | hello from vm0"]);
    }

    #[test]
    fn dbcn_write_outside_guest_ram_is_refused() {
        let ram = ram_with(0, b"");
        let mut line = ConsoleLine::new();
        for args in [
            [16, 0x4000_0000, 0, 0, 0, 0],
            [16, 0x8000_fff8, 0, 0, 0, 0],
            [16, 0x8000_0000, 1, 0, 0, 0],
        ] {
            let (ret, _, lines) = call(&ram, &mut line, dbcn::EID_DBCN, dbcn::CONSOLE_WRITE, args);
            assert_eq!(ret, SbiRet::invalid_param(), "{args:x?}");
            assert!(lines.is_empty());
        }
    }

    #[test]
    fn a_long_write_is_cut_to_one_chunk() {
        let ram = ram_with(0, &[b'a'; 1000]);
        let mut line = ConsoleLine::new();
        let (ret, _, _) = call(
            &ram,
            &mut line,
            dbcn::EID_DBCN,
            dbcn::CONSOLE_WRITE,
            [1000, 0x8000_0000, 0, 0, 0, 0],
        );
        assert_eq!(ret, SbiRet::success(DBCN_CHUNK));
    }

    #[test]
    fn legacy_putchar_and_write_byte_join_lines() {
        let ram = ram_with(0, b"");
        let mut line = ConsoleLine::new();
        call(
            &ram,
            &mut line,
            EID_LEGACY_PUTCHAR,
            0,
            [usize::from(b'o'), 0, 0, 0, 0, 0],
        );
        call(
            &ram,
            &mut line,
            dbcn::EID_DBCN,
            dbcn::CONSOLE_WRITE_BYTE,
            [usize::from(b'k'), 0, 0, 0, 0, 0],
        );
        let (_, _, lines) = call(
            &ram,
            &mut line,
            EID_LEGACY_PUTCHAR,
            0,
            [usize::from(b'\n'), 0, 0, 0, 0, 0],
        );
        assert_eq!(lines, ["vm0 | ok"]);
    }

    #[test]
    fn srst_shutdown_and_reboot_reach_the_vcpu() {
        let ram = ram_with(0, b"");
        let mut line = ConsoleLine::new();
        let (_, effect, _) = call(
            &ram,
            &mut line,
            srst::EID_SRST,
            srst::SYSTEM_RESET,
            [0, 0, 0, 0, 0, 0],
        );
        assert_eq!(effect, SbiEffect::PowerOff { reason: 0 });
        let (_, effect, _) = call(
            &ram,
            &mut line,
            srst::EID_SRST,
            srst::SYSTEM_RESET,
            [1, 0, 0, 0, 0, 0],
        );
        assert_eq!(
            effect,
            SbiEffect::Reboot {
                warm: false,
                reason: 0
            }
        );
        let (_, effect, _) = call(
            &ram,
            &mut line,
            srst::EID_SRST,
            srst::SYSTEM_RESET,
            [2, 1, 0, 0, 0, 0],
        );
        assert_eq!(
            effect,
            SbiEffect::Reboot {
                warm: true,
                reason: 1
            }
        );
        let (ret, effect, _) = call(
            &ram,
            &mut line,
            srst::EID_SRST,
            srst::SYSTEM_RESET,
            [9, 0, 0, 0, 0, 0],
        );
        assert_eq!((ret, effect), (SbiRet::invalid_param(), SbiEffect::None));
        let (_, effect, _) = call(&ram, &mut line, EID_LEGACY_SHUTDOWN, 0, [0; 6]);
        assert_eq!(effect, SbiEffect::PowerOff { reason: 0 });
    }

    #[test]
    fn srst_refuses_reserved_reasons_and_vendor_types_without_acting() {
        let ram = ram_with(0, b"");
        let mut line = ConsoleLine::new();
        for (args, want) in [
            // Shutdown and reboots with a reserved reason.
            ([0, 2, 0, 0, 0, 0], SbiRet::invalid_param()),
            ([1, 0x1234, 0, 0, 0, 0], SbiRet::invalid_param()),
            ([2, 0xdfff_ffff, 0, 0, 0, 0], SbiRet::invalid_param()),
            // A vendor-specific type: valid, not offered.
            ([0xf000_0000, 0, 0, 0, 0, 0], SbiRet::not_supported()),
        ] {
            let (ret, effect, _) = call(&ram, &mut line, srst::EID_SRST, srst::SYSTEM_RESET, args);
            assert_eq!((ret, effect), (want, SbiEffect::None), "{args:x?}");
        }
        // System failure and implementation- or vendor-specific reasons
        // are valid.
        for reason in [1, 0xe000_0000, 0xffff_ffff] {
            let (ret, effect, _) = call(
                &ram,
                &mut line,
                srst::EID_SRST,
                srst::SYSTEM_RESET,
                [0, reason, 0, 0, 0, 0],
            );
            assert_eq!(
                (ret, effect),
                (
                    SbiRet::success(0),
                    SbiEffect::PowerOff {
                        reason: reason as u32
                    }
                )
            );
        }
    }

    #[test]
    fn dbcn_read_into_memory_that_is_not_ram_is_refused() {
        let ram = ram_with(0, b"");
        let mut line = ConsoleLine::new();
        for args in [
            [16, 0xffff_ffff_ffff_0000, 0, 0, 0, 0],
            [16, 0x8000_0000, 1, 0, 0, 0],
            [8, 0x2800_0000, 0, 0, 0, 0],
        ] {
            let (ret, _, _) = call(&ram, &mut line, dbcn::EID_DBCN, dbcn::CONSOLE_READ, args);
            assert_eq!(ret, SbiRet::invalid_param(), "{args:x?}");
        }
        let (ret, _, _) = call(
            &ram,
            &mut line,
            dbcn::EID_DBCN,
            dbcn::CONSOLE_READ,
            [16, 0x8000_0000, 0, 0, 0, 0],
        );
        assert_eq!(ret, SbiRet::success(0), "no input: zero bytes read");
    }

    #[test]
    fn timer_hsm_and_base_answer_like_an_sbi() {
        let ram = ram_with(0, b"");
        let mut line = ConsoleLine::new();
        let (_, effect, _) = call(
            &ram,
            &mut line,
            time::EID_TIME,
            time::SET_TIMER,
            [12345, 0, 0, 0, 0, 0],
        );
        assert_eq!(effect, SbiEffect::SetTimer(12345));
        let (ret, _, _) = call(&ram, &mut line, hsm::EID_HSM, hsm::HART_GET_STATUS, [0; 6]);
        assert_eq!(ret, SbiRet::success(hsm::hart_state::STARTED));
        let (ret, _, _) = call(
            &ram,
            &mut line,
            hsm::EID_HSM,
            hsm::HART_START,
            [1, 0x8000_0000, 0, 0, 0, 0],
        );
        assert_eq!(ret, SbiRet::invalid_param(), "the VM has no hart 1");
        let (ret, _, _) = call(
            &ram,
            &mut line,
            base::EID_BASE,
            base::PROBE_EXTENSION,
            [dbcn::EID_DBCN, 0, 0, 0, 0, 0],
        );
        assert_ne!(ret.value, 0, "DBCN is advertised");
        let (ret, _, _) = call(
            &ram,
            &mut line,
            base::EID_BASE,
            base::GET_SBI_SPEC_VERSION,
            [0; 6],
        );
        assert!(ret.value >= 0x0100_0000 || ret.value >= 2, "SBI >= 0.2");
        let (ret, _, _) = call(&ram, &mut line, 0x0A00_0000, 0, [0; 6]);
        assert_eq!(ret, SbiRet::not_supported());
    }

    fn ecall(a7: usize, a6: usize, args: [usize; 6]) -> (SbiRet, SbiEffect) {
        ecall_on(ONE_HART, a7, a6, args)
    }

    fn ecall_on(harts: Harts, a7: usize, a6: usize, args: [usize; 6]) -> (SbiRet, SbiEffect) {
        let ram = ram_with(0, b"");
        let mut line = ConsoleLine::new();
        let (ret, effect, _) = call_on(harts, &ram, &mut line, a7, a6, args);
        (ret, effect)
    }

    /// Hart 1 of four: hart 2 stopped, hart 3 suspended.
    const FOUR_HARTS: Harts = Harts {
        hart: 1,
        harts: 4,
        stopped: 0b0100,
        suspended: 0b1000,
    };

    #[test]
    fn the_probe_reports_exactly_the_extensions_served() {
        use sbi_spec::{rfnc, spi};
        for eid in [
            base::EID_BASE,
            time::EID_TIME,
            spi::EID_SPI,
            rfnc::EID_RFNC,
            hsm::EID_HSM,
            srst::EID_SRST,
            dbcn::EID_DBCN,
            sbi_spec::susp::EID_SUSP,
        ] {
            let (ret, _) = ecall(base::EID_BASE, base::PROBE_EXTENSION, [eid, 0, 0, 0, 0, 0]);
            assert_eq!(ret.value, 1, "{eid:#x} is served and probed present");
        }
        // PMU, CPPC, NACL, STA, FWFT, SSE: not served, probed absent.
        for eid in [
            0x0050_4d55,
            0x4350_5043,
            0x4e41_434c,
            0x0053_5441,
            0x4657_4654,
            0x0053_5345,
        ] {
            let (ret, _) = ecall(base::EID_BASE, base::PROBE_EXTENSION, [eid, 0, 0, 0, 0, 0]);
            assert_eq!(ret.value, 0, "{eid:#x} is probed absent");
            let (ret, _) = ecall(eid, 0, [0; 6]);
            assert_eq!(
                ret,
                SbiRet::not_supported(),
                "{eid:#x} answers not supported"
            );
        }
        let (ret, _) = ecall(base::EID_BASE, base::GET_SBI_SPEC_VERSION, [0; 6]);
        assert_eq!(ret.value, 2 << 24, "SBI 2.0");
    }

    #[test]
    fn rfence_flushes_the_vms_harts_and_refuses_harts_the_vm_lacks() {
        use sbi_spec::rfnc;
        let (ret, effect) = ecall(rfnc::EID_RFNC, rfnc::REMOTE_FENCE_I, [1, 0, 0, 0, 0, 0]);
        assert_eq!((ret, effect), (SbiRet::success(0), SbiEffect::FenceI));
        let all = [0, usize::MAX, 0, usize::MAX, 0, 0];
        let (ret, effect) = ecall(rfnc::EID_RFNC, rfnc::REMOTE_SFENCE_VMA, all);
        assert_eq!(
            (ret, effect),
            (SbiRet::success(0), SbiEffect::FlushGuestTlb)
        );
        let (ret, effect) = ecall(
            rfnc::EID_RFNC,
            rfnc::REMOTE_SFENCE_VMA_ASID,
            [1, 0, 0x1000, 0x2000, 7, 0],
        );
        assert_eq!(
            (ret, effect),
            (SbiRet::success(0), SbiEffect::FlushGuestTlb)
        );
        // Hart 1 (bit 1, or base 1) is not a hart of this VM.
        for args in [[2, 0, 0, 0x1000, 0, 0], [1, 1, 0, 0x1000, 0, 0]] {
            let (ret, effect) = ecall(rfnc::EID_RFNC, rfnc::REMOTE_SFENCE_VMA, args);
            assert_eq!(
                (ret, effect),
                (SbiRet::invalid_param(), SbiEffect::None),
                "{args:x?}"
            );
        }
        let wraps = [1, 0, usize::MAX - 10, 0x1000, 0, 0];
        let (ret, effect) = ecall(rfnc::EID_RFNC, rfnc::REMOTE_SFENCE_VMA, wraps);
        assert_eq!((ret, effect), (SbiRet::invalid_address(), SbiEffect::None));
        // An empty mask names nobody: success, nothing to do.
        let (ret, effect) = ecall(rfnc::EID_RFNC, rfnc::REMOTE_FENCE_I, [0, 0, 0, 0, 0, 0]);
        assert_eq!((ret, effect), (SbiRet::success(0), SbiEffect::None));
        // The guest is no hypervisor: hfence calls are not supported.
        let (ret, _) = ecall(rfnc::EID_RFNC, rfnc::REMOTE_HFENCE_GVMA, all);
        assert_eq!(ret, SbiRet::not_supported());
    }

    #[test]
    fn ipi_to_any_mask_of_the_vms_harts_and_hsm_answers_every_case() {
        use sbi_spec::spi;
        let (ret, effect) = ecall(spi::EID_SPI, spi::SEND_IPI, [1, 0, 0, 0, 0, 0]);
        assert_eq!(
            (ret, effect),
            (SbiRet::success(0), SbiEffect::SoftwareInterrupt(0b1))
        );
        let (ret, effect) = ecall(spi::EID_SPI, spi::SEND_IPI, [0, usize::MAX, 0, 0, 0, 0]);
        assert_eq!(
            (ret, effect),
            (SbiRet::success(0), SbiEffect::SoftwareInterrupt(0b1)),
            "all harts"
        );
        let (ret, effect) = ecall(spi::EID_SPI, spi::SEND_IPI, [0b10, 0, 0, 0, 0, 0]);
        assert_eq!((ret, effect), (SbiRet::invalid_param(), SbiEffect::None));
        // Four harts: a mask at a base, every hart, one too far.
        for (args, want) in [
            (
                [0b11, 2, 0, 0, 0, 0],
                (SbiRet::success(0), SbiEffect::SoftwareInterrupt(0b1100)),
            ),
            (
                [0, usize::MAX, 0, 0, 0, 0],
                (SbiRet::success(0), SbiEffect::SoftwareInterrupt(0b1111)),
            ),
            (
                [0b1, 4, 0, 0, 0, 0],
                (SbiRet::invalid_param(), SbiEffect::None),
            ),
            ([0, 0, 0, 0, 0, 0], (SbiRet::success(0), SbiEffect::None)),
        ] {
            assert_eq!(
                ecall_on(FOUR_HARTS, spi::EID_SPI, spi::SEND_IPI, args),
                want,
                "{args:x?}"
            );
        }

        let (ret, _) = ecall(hsm::EID_HSM, hsm::HART_START, [0, 0x8020_0000, 0, 0, 0, 0]);
        assert_eq!(ret, SbiRet::already_available());
        let (ret, _) = ecall(hsm::EID_HSM, hsm::HART_GET_STATUS, [3, 0, 0, 0, 0, 0]);
        assert_eq!(ret, SbiRet::invalid_param());
        let (ret, effect) = ecall(hsm::EID_HSM, hsm::HART_STOP, [0; 6]);
        assert_eq!(
            (ret, effect),
            (SbiRet::failed(), SbiEffect::None),
            "the only hart"
        );
        let (ret, effect) = ecall_on(FOUR_HARTS, hsm::EID_HSM, hsm::HART_STOP, [0; 6]);
        assert_eq!((ret, effect), (SbiRet::success(0), SbiEffect::StopHart));
        let last = Harts {
            stopped: 0b1101,
            ..FOUR_HARTS
        };
        let (ret, effect) = ecall_on(last, hsm::EID_HSM, hsm::HART_STOP, [0; 6]);
        assert_eq!(
            (ret, effect),
            (SbiRet::failed(), SbiEffect::None),
            "the last started hart"
        );
        let (ret, effect) = ecall(hsm::EID_HSM, hsm::HART_SUSPEND, [0, 0, 0, 0, 0, 0]);
        assert_eq!((ret, effect), (SbiRet::success(0), SbiEffect::Suspend));
        let (ret, effect) = ecall(
            hsm::EID_HSM,
            hsm::HART_SUSPEND,
            [0x8000_0000, 0x8000_1000, 9, 0, 0, 0],
        );
        assert_eq!(
            (ret, effect),
            (
                SbiRet::success(0),
                SbiEffect::HartSuspend {
                    resume: 0x8000_1000,
                    opaque: 9
                }
            ),
            "non-retentive"
        );
        let (ret, effect) = ecall(
            hsm::EID_HSM,
            hsm::HART_SUSPEND,
            [0x8000_0000, 0x4000_0000, 9, 0, 0, 0],
        );
        assert_eq!(
            (ret, effect),
            (SbiRet::invalid_address(), SbiEffect::None),
            "resume outside RAM"
        );
        for (kind, want) in [
            (0x1000_0000, SbiRet::not_supported()),
            (0x9000_0000, SbiRet::not_supported()),
            (0x0000_0001, SbiRet::invalid_param()),
            (0x8000_0001, SbiRet::invalid_param()),
        ] {
            let (ret, effect) = ecall(
                hsm::EID_HSM,
                hsm::HART_SUSPEND,
                [kind, 0x8020_0000, 0, 0, 0, 0],
            );
            assert_eq!(
                (ret, effect),
                (want, SbiEffect::None),
                "suspend type {kind:#x}"
            );
        }
    }

    #[test]
    fn hsm_starts_only_stopped_harts_at_guest_ram_and_reports_each_state() {
        use hsm::hart_state::{STARTED, STOPPED, SUSPENDED};
        for (hart, state) in [(0, STARTED), (1, STARTED), (2, STOPPED), (3, SUSPENDED)] {
            let (ret, _) = ecall_on(
                FOUR_HARTS,
                hsm::EID_HSM,
                hsm::HART_GET_STATUS,
                [hart, 0, 0, 0, 0, 0],
            );
            assert_eq!(ret, SbiRet::success(state), "hart {hart}");
        }
        let (ret, effect) = ecall_on(
            FOUR_HARTS,
            hsm::EID_HSM,
            hsm::HART_START,
            [2, 0x8000_1000, 42, 0, 0, 0],
        );
        assert_eq!(ret, SbiRet::success(0));
        assert_eq!(
            effect,
            SbiEffect::StartHart {
                hart: 2,
                start: 0x8000_1000,
                opaque: 42
            }
        );
        for (args, want) in [
            ([0, 0x8000_1000, 0, 0, 0, 0], SbiRet::already_available()),
            ([3, 0x8000_1000, 0, 0, 0, 0], SbiRet::already_available()),
            ([4, 0x8000_1000, 0, 0, 0, 0], SbiRet::invalid_param()),
            ([2, 0x4000_0000, 0, 0, 0, 0], SbiRet::invalid_address()),
            ([2, 0x8010_0000, 0, 0, 0, 0], SbiRet::invalid_address()),
        ] {
            assert_eq!(
                ecall_on(FOUR_HARTS, hsm::EID_HSM, hsm::HART_START, args),
                (want, SbiEffect::None),
                "{args:x?}"
            );
        }
    }

    #[test]
    fn rfence_to_other_harts_flushes_and_system_suspend_needs_them_stopped() {
        use sbi_spec::rfnc;
        use sbi_spec::susp::{EID_SUSP, SUSPEND};
        // Hart 1 names only hart 3: every vCPU shares the hart, so the
        // flush happens all the same.
        let (ret, effect) = ecall_on(
            FOUR_HARTS,
            rfnc::EID_RFNC,
            rfnc::REMOTE_SFENCE_VMA,
            [0b1000, 0, 0, 0x1000, 0, 0],
        );
        assert_eq!(
            (ret, effect),
            (SbiRet::success(0), SbiEffect::FlushGuestTlb)
        );
        let (ret, effect) = ecall_on(
            FOUR_HARTS,
            rfnc::EID_RFNC,
            rfnc::REMOTE_FENCE_I,
            [0b1, 3, 0, 0, 0, 0],
        );
        assert_eq!((ret, effect), (SbiRet::success(0), SbiEffect::FenceI));
        let (ret, effect) = ecall_on(
            FOUR_HARTS,
            rfnc::EID_RFNC,
            rfnc::REMOTE_FENCE_I,
            [0b1, 4, 0, 0, 0, 0],
        );
        assert_eq!((ret, effect), (SbiRet::invalid_param(), SbiEffect::None));
        let (ret, effect) = ecall_on(FOUR_HARTS, EID_SUSP, SUSPEND, [0, 0x8000_1000, 0, 0, 0, 0]);
        assert_eq!(
            (ret, effect),
            (SbiRet::denied(), SbiEffect::None),
            "harts 0 and 3 run"
        );
        let last = Harts {
            stopped: 0b1101,
            suspended: 0,
            ..FOUR_HARTS
        };
        let (ret, _) = ecall_on(last, EID_SUSP, SUSPEND, [0, 0x8000_1000, 0, 0, 0, 0]);
        assert_eq!(ret, SbiRet::success(0), "the last started hart");
    }

    #[test]
    fn suspend_to_ram_resumes_at_an_address_in_guest_ram_only() {
        use sbi_spec::susp::{EID_SUSP, SUSPEND};
        let (ret, effect) = ecall(EID_SUSP, SUSPEND, [0, 0x8000_1000, 77, 0, 0, 0]);
        assert_eq!(ret, SbiRet::success(0));
        assert_eq!(
            effect,
            SbiEffect::SystemSuspend {
                resume: 0x8000_1000,
                opaque: 77
            }
        );
        for (kind, addr, want) in [
            (0, 0x4000_0000, SbiRet::invalid_address()),
            (0, 0x8010_0000, SbiRet::invalid_address()),
            (1, 0x8000_1000, SbiRet::invalid_param()),
            (0x7fff_ffff, 0x8000_1000, SbiRet::invalid_param()),
            (0x8000_0000, 0x8000_1000, SbiRet::not_supported()),
        ] {
            let (ret, effect) = ecall(EID_SUSP, SUSPEND, [kind, addr, 0, 0, 0, 0]);
            assert_eq!(
                (ret, effect),
                (want, SbiEffect::None),
                "type {kind:#x} at {addr:#x}"
            );
        }
    }
}
