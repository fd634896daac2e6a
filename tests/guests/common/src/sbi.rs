//! SBI calls from S-mode to the hypervisor (`ecall`), and the extensions
//! more than one test guest calls.

/// The debug console extension ("DBCN").
pub const EID_DBCN: usize = 0x4442_434e;
/// The system reset extension ("SRST").
pub const EID_SRST: usize = 0x5352_5354;

/// `ecall` with extension `eid`, function `fid` and `args` in a0..a5:
/// (error, value) from a0 and a1.
///
/// # Safety
/// The caller answers for what the call makes the hypervisor do: it may
/// read guest memory the arguments name, but must not write memory Rust
/// owns, and the call may not return (a shutdown).
pub unsafe fn ecall(eid: usize, fid: usize, args: [usize; 6]) -> (isize, usize) {
    let (error, value): (usize, usize);
    // SAFETY: the caller's guarantee covers the call's effects; the
    // instruction itself writes only a0 and a1, both named.
    unsafe {
        core::arch::asm!(
            "ecall",
            inlateout("a0") args[0] => error,
            inlateout("a1") args[1] => value,
            in("a2") args[2],
            in("a3") args[3],
            in("a4") args[4],
            in("a5") args[5],
            in("a6") fid,
            in("a7") eid,
            options(nostack),
        );
    }
    (error as isize, value)
}
