//! Tests of the guest SBI: each call answered as the SBI spec says, through
//! a fake guest RAM.

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

/// A DBCN console write with `args` from `ram`, on a fresh console line.
fn dbcn_write(ram: &Ram, args: [usize; 6]) -> (SbiRet, SbiEffect, Vec<String>) {
    call_on(
        ONE_HART,
        ram,
        &mut ConsoleLine::new(),
        dbcn::EID_DBCN,
        dbcn::CONSOLE_WRITE,
        args,
    )
}

fn ram_with(at: usize, bytes: &[u8]) -> Ram {
    let mut ram = vec![0u8; 64 * 1024];
    ram[at..at + bytes.len()].copy_from_slice(bytes);
    Ram(ram)
}

#[test]
fn dbcn_write_prints_a_prefixed_line_from_guest_memory() {
    let ram = ram_with(0x100, b"hello from vm0\n");
    let (ret, effect, lines) = dbcn_write(&ram, [15, 0x8000_0100, 0, 0, 0, 0]);
    assert_eq!(ret, SbiRet::success(15));
    assert_eq!(effect, SbiEffect::None);
    assert_eq!(lines, ["vm0 | hello from vm0"]);
}

#[test]
fn dbcn_write_outside_guest_ram_is_refused() {
    let ram = ram_with(0, b"");
    for args in [
        [16, 0x4000_0000, 0, 0, 0, 0],
        [16, 0x8000_fff8, 0, 0, 0, 0],
        [16, 0x8000_0000, 1, 0, 0, 0],
    ] {
        let (ret, _, lines) = dbcn_write(&ram, args);
        assert_eq!(ret, SbiRet::invalid_param(), "{args:x?}");
        assert!(lines.is_empty());
    }
}

#[test]
fn a_long_write_is_cut_to_one_chunk() {
    let ram = ram_with(0, &[b'a'; 1000]);
    let (ret, _, _) = dbcn_write(&ram, [1000, 0x8000_0000, 0, 0, 0, 0]);
    assert_eq!(ret, SbiRet::success(DBCN_CHUNK));
}

#[test]
fn legacy_putchar_and_write_byte_join_lines() {
    let ram = ram_with(0, b"");
    let mut line = ConsoleLine::new();
    let mut lines = Vec::new();
    for (a7, a6, byte) in [
        (EID_LEGACY_PUTCHAR, 0, b'o'),
        (dbcn::EID_DBCN, dbcn::CONSOLE_WRITE_BYTE, b'k'),
        (EID_LEGACY_PUTCHAR, 0, b'\n'),
    ] {
        let args = [usize::from(byte), 0, 0, 0, 0, 0];
        lines.extend(call_on(ONE_HART, &ram, &mut line, a7, a6, args).2);
    }
    assert_eq!(lines, ["vm0 | ok"], "one line, printed at the newline");
}

#[test]
fn srst_shutdown_and_reboot_reach_the_vcpu() {
    for (args, want) in [
        ([0, 0, 0, 0, 0, 0], SbiEffect::PowerOff { reason: 0 }),
        (
            [1, 0, 0, 0, 0, 0],
            SbiEffect::Reboot {
                warm: false,
                reason: 0,
            },
        ),
        (
            [2, 1, 0, 0, 0, 0],
            SbiEffect::Reboot {
                warm: true,
                reason: 1,
            },
        ),
    ] {
        let (ret, effect) = ecall(srst::EID_SRST, srst::SYSTEM_RESET, args);
        assert_eq!((ret, effect), (SbiRet::success(0), want), "{args:x?}");
    }
    let (ret, effect) = ecall(srst::EID_SRST, srst::SYSTEM_RESET, [9, 0, 0, 0, 0, 0]);
    assert_eq!((ret, effect), (SbiRet::invalid_param(), SbiEffect::None));
    let (_, effect) = ecall(EID_LEGACY_SHUTDOWN, 0, [0; 6]);
    assert_eq!(effect, SbiEffect::PowerOff { reason: 0 });
}

#[test]
fn srst_refuses_reserved_reasons_and_vendor_types_without_acting() {
    for (args, want) in [
        // Shutdown and reboots with a reserved reason.
        ([0, 2, 0, 0, 0, 0], SbiRet::invalid_param()),
        ([1, 0x1234, 0, 0, 0, 0], SbiRet::invalid_param()),
        ([2, 0xdfff_ffff, 0, 0, 0, 0], SbiRet::invalid_param()),
        // A vendor-specific type: valid, not offered.
        ([0xf000_0000, 0, 0, 0, 0, 0], SbiRet::not_supported()),
    ] {
        let (ret, effect) = ecall(srst::EID_SRST, srst::SYSTEM_RESET, args);
        assert_eq!((ret, effect), (want, SbiEffect::None), "{args:x?}");
    }
    // System failure and implementation- or vendor-specific reasons
    // are valid.
    for reason in [1, 0xe000_0000, 0xffff_ffff] {
        let (ret, effect) = ecall(srst::EID_SRST, srst::SYSTEM_RESET, [0, reason, 0, 0, 0, 0]);
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
    for args in [
        [16, 0xffff_ffff_ffff_0000, 0, 0, 0, 0],
        [16, 0x8000_0000, 1, 0, 0, 0],
        [8, 0x2800_0000, 0, 0, 0, 0],
    ] {
        let (ret, _) = ecall(dbcn::EID_DBCN, dbcn::CONSOLE_READ, args);
        assert_eq!(ret, SbiRet::invalid_param(), "{args:x?}");
    }
    let (ret, _) = ecall(
        dbcn::EID_DBCN,
        dbcn::CONSOLE_READ,
        [16, 0x8000_0000, 0, 0, 0, 0],
    );
    assert_eq!(ret, SbiRet::success(0), "no input: zero bytes read");
}

#[test]
fn timer_hsm_and_base_answer_like_an_sbi() {
    let (_, effect) = ecall(time::EID_TIME, time::SET_TIMER, [12345, 0, 0, 0, 0, 0]);
    assert_eq!(effect, SbiEffect::SetTimer(12345));
    let (ret, _) = ecall(hsm::EID_HSM, hsm::HART_GET_STATUS, [0; 6]);
    assert_eq!(ret, SbiRet::success(hsm::hart_state::STARTED));
    let (ret, _) = ecall(hsm::EID_HSM, hsm::HART_START, [1, 0x8000_0000, 0, 0, 0, 0]);
    assert_eq!(ret, SbiRet::invalid_param(), "the VM has no hart 1");
    let (ret, _) = ecall(
        base::EID_BASE,
        base::PROBE_EXTENSION,
        [dbcn::EID_DBCN, 0, 0, 0, 0, 0],
    );
    assert_ne!(ret.value, 0, "DBCN is advertised");
    let (ret, _) = ecall(base::EID_BASE, base::GET_SBI_SPEC_VERSION, [0; 6]);
    assert!(ret.value >= 0x0100_0000 || ret.value >= 2, "SBI >= 0.2");
    let (ret, _) = ecall(0x0A00_0000, 0, [0; 6]);
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

#[test]
fn the_lock_free_base_call_answers_as_the_full_dispatch_does() {
    let ram = ram_with(0, b"");
    let four_harts = Harts {
        hart: 2,
        harts: 4,
        stopped: 0b1000,
        suspended: 0b0010,
    };
    let probes = [
        base::EID_BASE,
        time::EID_TIME,
        hsm::EID_HSM,
        srst::EID_SRST,
        dbcn::EID_DBCN,
        sbi_spec::spi::EID_SPI,
        sbi_spec::rfnc::EID_RFNC,
        sbi_spec::susp::EID_SUSP,
        sbi_spec::pmu::EID_PMU,
        0x0A00_0000,
    ];
    let mut calls: Vec<(usize, usize)> = (0..=7).map(|fid| (fid, 0)).collect();
    calls.extend(probes.iter().map(|&eid| (base::PROBE_EXTENSION, eid)));
    for (fid, arg) in calls {
        let args = [arg, 0, 0, 0, 0, 0];
        let (full, effect, lines) = call_on(
            four_harts,
            &ram,
            &mut ConsoleLine::new(),
            EID_BASE,
            fid,
            args,
        );
        assert_eq!(base_call(fid, args), full, "fid {fid} arg {arg:#x}");
        assert_eq!(effect, SbiEffect::None);
        assert!(lines.is_empty());
    }
    // What it answers is what a guest reads: SBI 2.0, and HSM present.
    assert_eq!(
        base_call(base::GET_SBI_SPEC_VERSION, [0; 6]),
        SbiRet::success(0x0200_0000)
    );
    assert_eq!(
        base_call(base::PROBE_EXTENSION, [hsm::EID_HSM, 0, 0, 0, 0, 0]).value,
        1
    );
}
