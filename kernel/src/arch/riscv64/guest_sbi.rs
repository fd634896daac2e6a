//! The SBI a guest sees, served in the kernel with `rustsbi`: base, DBCN
//! console (lines printed as `vm0 | ...`), legacy putchar and shutdown,
//! TIME, sPI to its own hart, HSM status, SRST. Pure logic: guest memory
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
    /// Make a supervisor software interrupt pending for the guest.
    SoftwareInterrupt,
    /// The guest powered its machine off.
    PowerOff,
    /// The guest asked for a reboot.
    Reboot,
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

    fn read(&self, _bytes: Physical<&mut [u8]>) -> SbiRet {
        // No console input for guests yet: zero bytes read.
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
}

impl rustsbi::Timer for Effects<'_> {
    fn set_timer(&self, stime_value: u64) {
        self.effect.set(SbiEffect::SetTimer(stime_value));
    }
}

impl rustsbi::Ipi for Effects<'_> {
    fn send_ipi(&self, hart_mask: HartMask) -> SbiRet {
        // One vCPU per VM for now: only its own hart can be named.
        if hart_mask.has_bit(self.hart) {
            self.effect.set(SbiEffect::SoftwareInterrupt);
        }
        SbiRet::success(0)
    }
}

impl rustsbi::Reset for Effects<'_> {
    fn system_reset(&self, reset_type: u32, _reset_reason: u32) -> SbiRet {
        match reset_type {
            sbi_spec::srst::RESET_TYPE_SHUTDOWN => self.effect.set(SbiEffect::PowerOff),
            sbi_spec::srst::RESET_TYPE_COLD_REBOOT | sbi_spec::srst::RESET_TYPE_WARM_REBOOT => {
                self.effect.set(SbiEffect::Reboot)
            }
            _ => return SbiRet::invalid_param(),
        }
        SbiRet::success(0)
    }
}

struct Harts {
    hart: usize,
}

impl rustsbi::Hsm for Harts {
    fn hart_start(&self, hartid: usize, _start_addr: usize, _opaque: usize) -> SbiRet {
        if hartid == self.hart {
            SbiRet::already_available()
        } else {
            // Secondary vCPUs come later.
            SbiRet::not_supported()
        }
    }

    fn hart_stop(&self) -> SbiRet {
        SbiRet::not_supported()
    }

    fn hart_get_status(&self, hartid: usize) -> SbiRet {
        if hartid == self.hart {
            SbiRet::success(sbi_spec::hsm::hart_state::STARTED)
        } else {
            SbiRet::invalid_param()
        }
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
    hsm: Harts,
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
        EID_LEGACY_SHUTDOWN => return (SbiRet::success(0), SbiEffect::PowerOff),
        EID_LEGACY_SET_TIMER => {
            return (SbiRet::success(0), SbiEffect::SetTimer(args[0] as u64));
        }
        _ => {}
    }
    let effect = Cell::new(SbiEffect::None);
    let hart = caller.hart;
    let effects = Effects {
        effect: &effect,
        hart,
    };
    let caller = RefCell::new(caller);
    let sbi = GuestSbi {
        console: Console { caller: &caller },
        timer: &effects,
        ipi: &effects,
        hsm: Harts { hart },
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

    fn call(
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
            hart: 0,
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
        assert_eq!(effect, SbiEffect::PowerOff);
        let (_, effect, _) = call(
            &ram,
            &mut line,
            srst::EID_SRST,
            srst::SYSTEM_RESET,
            [1, 0, 0, 0, 0, 0],
        );
        assert_eq!(effect, SbiEffect::Reboot);
        let (ret, effect, _) = call(
            &ram,
            &mut line,
            srst::EID_SRST,
            srst::SYSTEM_RESET,
            [9, 0, 0, 0, 0, 0],
        );
        assert_eq!((ret, effect), (SbiRet::invalid_param(), SbiEffect::None));
        let (_, effect, _) = call(&ram, &mut line, EID_LEGACY_SHUTDOWN, 0, [0; 6]);
        assert_eq!(effect, SbiEffect::PowerOff);
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
        assert_eq!(ret, SbiRet::not_supported());
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
}
