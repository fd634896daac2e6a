//! SBI calls with any arguments, and the bad ones the hostile guest makes
//! with the error each must get (SBI 2.0: -1 failed, -2 not supported,
//! -3 invalid param, -5 invalid address, -6 already available).

use mica_guest_common::sbi::{self, EID_DBCN, EID_SRST};

/// Extension IDs.
pub const EID_TIME: usize = 0x5449_4d45;
const EID_BASE: usize = 0x10;
const EID_IPI: usize = 0x0073_5049;
const EID_RFENCE: usize = 0x5246_4e43;
const EID_HSM: usize = 0x0048_534d;
const EID_SUSP: usize = 0x5355_5350;
const EID_PMU: usize = 0x0050_4d55;

pub const FAILED: isize = -1;
pub const NOT_SUPPORTED: isize = -2;
pub const INVALID_PARAM: isize = -3;
pub const INVALID_ADDRESS: isize = -5;
pub const ALREADY_AVAILABLE: isize = -6;

/// `ecall` with extension `eid`, function `fid` and `args` in a0..a5:
/// (error, value).
pub fn call(eid: usize, fid: usize, args: [usize; 6]) -> (isize, usize) {
    // SAFETY: an SBI call; none of these calls hands the hypervisor memory
    // it may write.
    unsafe { sbi::ecall(eid, fid, args) }
}

/// TIME `set_timer`.
#[allow(
    clippy::cast_possible_truncation,
    reason = "riscv64: a register holds the 64-bit time"
)]
pub fn set_timer(at: u64) {
    call(EID_TIME, 0, [at as usize, 0, 0, 0, 0, 0]);
}

/// IPI `send_ipi` to this hart (hart 0, the VM's only one).
pub fn ipi_self() -> isize {
    call(EID_IPI, 0, [1, 0, 0, 0, 0, 0]).0
}

/// One bad call: what it is, its extension, function, arguments and the
/// error it must get.
pub struct BadCall {
    pub what: &'static str,
    pub eid: usize,
    pub fid: usize,
    pub args: [usize; 6],
    pub error: isize,
}

const fn bad(
    what: &'static str,
    eid: usize,
    fid: usize,
    args: [usize; 6],
    error: isize,
) -> BadCall {
    BadCall {
        what,
        eid,
        fid,
        args,
        error,
    }
}

use mica_guest_common::OUTSIDE_RAM;

const HUGE: usize = 0xffff_ffff_ffff_0000;

/// Every extension Mica offers, and some it does not, called with bad
/// arguments (none of them may stop, power off or reboot the VM).
pub const BAD_CALLS: &[BadCall] = &[
    bad("unknown extension", 0x0bad_0e1d, 0, [0; 6], NOT_SUPPORTED),
    bad(
        "unknown extension, fid 7",
        0x7fff_ffff,
        7,
        [1; 6],
        NOT_SUPPORTED,
    ),
    bad(
        "base: unknown function",
        EID_BASE,
        99,
        [0; 6],
        NOT_SUPPORTED,
    ),
    bad("PMU (not offered)", EID_PMU, 0, [0; 6], NOT_SUPPORTED),
    bad("TIME: unknown function", EID_TIME, 1, [0; 6], NOT_SUPPORTED),
    bad("IPI: hart 5", EID_IPI, 0, [1, 5, 0, 0, 0, 0], INVALID_PARAM),
    bad(
        "IPI: mask base wraps",
        EID_IPI,
        0,
        [0b110, usize::MAX - 1, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "IPI: hart 63",
        EID_IPI,
        0,
        [1 << 63, 0, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "IPI: unknown function",
        EID_IPI,
        1,
        [1, 0, 0, 0, 0, 0],
        NOT_SUPPORTED,
    ),
    bad(
        "RFENCE fence.i: hart 3",
        EID_RFENCE,
        0,
        [0b1000, 0, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "RFENCE sfence.vma: range wraps",
        EID_RFENCE,
        1,
        [1, 0, usize::MAX - 1, 16, 0, 0],
        INVALID_ADDRESS,
    ),
    bad(
        "RFENCE sfence.vma: hart 2",
        EID_RFENCE,
        1,
        [0b100, 0, 0, 4096, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "RFENCE sfence.vma.asid: range wraps",
        EID_RFENCE,
        2,
        [1, 0, HUGE, HUGE, 1, 0],
        INVALID_ADDRESS,
    ),
    bad(
        "RFENCE hfence.gvma (not offered)",
        EID_RFENCE,
        3,
        [1, 0, 0, usize::MAX, 0, 0],
        NOT_SUPPORTED,
    ),
    bad(
        "RFENCE hfence.vvma (not offered)",
        EID_RFENCE,
        5,
        [1, 0, 0, usize::MAX, 0, 0],
        NOT_SUPPORTED,
    ),
    bad(
        "RFENCE: unknown function",
        EID_RFENCE,
        42,
        [1, 0, 0, 0, 0, 0],
        NOT_SUPPORTED,
    ),
    bad(
        "HSM start: hart 7",
        EID_HSM,
        0,
        [7, OUTSIDE_RAM, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "HSM start: a running hart",
        EID_HSM,
        0,
        [0, OUTSIDE_RAM, 0, 0, 0, 0],
        ALREADY_AVAILABLE,
    ),
    bad(
        "HSM start: hart usize::MAX",
        EID_HSM,
        0,
        [usize::MAX, HUGE, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad("HSM stop: the only hart", EID_HSM, 1, [0; 6], FAILED),
    bad(
        "HSM status: hart 99",
        EID_HSM,
        2,
        [99, 0, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "HSM suspend: reserved type",
        EID_HSM,
        3,
        [0x1234, 0, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "HSM suspend: non-retentive, resuming outside RAM",
        EID_HSM,
        3,
        [0x8000_0000, OUTSIDE_RAM, 0, 0, 0, 0],
        INVALID_ADDRESS,
    ),
    bad(
        "DBCN write: huge address",
        EID_DBCN,
        0,
        [16, HUGE, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "DBCN write: high half",
        EID_DBCN,
        0,
        [16, 0x8000_0000, 1, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "DBCN write: outside RAM",
        EID_DBCN,
        0,
        [8, OUTSIDE_RAM, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "DBCN read: huge address",
        EID_DBCN,
        1,
        [16, HUGE, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "DBCN read: outside RAM",
        EID_DBCN,
        1,
        [8, OUTSIDE_RAM, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad("DBCN: unknown function", EID_DBCN, 9, [0; 6], NOT_SUPPORTED),
    bad(
        "SUSP: reserved type",
        EID_SUSP,
        0,
        [5, 0, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "SUSP: platform type",
        EID_SUSP,
        0,
        [0x8000_0000, 0, 0, 0, 0, 0],
        NOT_SUPPORTED,
    ),
    bad(
        "SUSP: resume outside RAM",
        EID_SUSP,
        0,
        [0, OUTSIDE_RAM, 0, 0, 0, 0],
        INVALID_ADDRESS,
    ),
    bad(
        "SRST: reserved type",
        EID_SRST,
        0,
        [0x1234, 0, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "SRST: shutdown, reserved reason",
        EID_SRST,
        0,
        [0, 0x1234, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "SRST: cold reboot, reserved reason",
        EID_SRST,
        0,
        [1, 0xdead, 0, 0, 0, 0],
        INVALID_PARAM,
    ),
    bad(
        "SRST: vendor type",
        EID_SRST,
        0,
        [0xf000_0000, 0, 0, 0, 0, 0],
        NOT_SUPPORTED,
    ),
    bad("SRST: unknown function", EID_SRST, 1, [0; 6], NOT_SUPPORTED),
    bad("legacy console_getchar", 0x02, 0, [0; 6], NOT_SUPPORTED),
    bad(
        "legacy remote_sfence_vma",
        0x06,
        0,
        [HUGE, 0, 0, 0, 0, 0],
        NOT_SUPPORTED,
    ),
];
