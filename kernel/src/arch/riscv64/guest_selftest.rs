//! The boot self-test of the guest path: two tiny position-independent
//! guests run in real VMs. `vm0` prints through SBI DBCN, reads the UART's
//! line status through an MMIO exit (completed by the in-kernel stand-in
//! for the ioreq service) and powers off through SRST; `vm1` stores to an
//! unmapped address outside its RAM and is stopped while the kernel goes on.

use ioreq::page::IoreqPage;
use ioreq::slot::{Direction, IoRequest, SlotError};

use super::vcpu::{GuestVm, RunOutcome};
use crate::frame::FrameAllocator;
use crate::klog;
use crate::vm::VmName;
use crate::vm::ioreq_path::{IoreqDispatch, complete_in_kernel_for_boot_self_test};

/// Guest RAM per self-test VM.
const RAM_BYTES: u64 = 4 << 20;
/// The 16550 line-status register and its "transmitter empty" answer.
const UART_LSR: u64 = 0x1000_0005;
const LSR_TX_EMPTY: u64 = 0x60;

core::arch::global_asm!(
    r#"
    .section .rodata.guests, "a"
    .option push
    .option norelax
    .balign 4
    .globl __guest_hello_start
__guest_hello_start:
    la      a1, 10f
    la      t0, 11f
    jal     ra, 90f
    li      t1, 0x10000000
    lbu     t2, 5(t1)
    li      t3, 0x60
    bne     t2, t3, 50f
    li      t4, 0x4b
    sb      t4, 0(t1)
    la      a1, 12f
    la      t0, 13f
    jal     ra, 90f
    j       60f
50: la      a1, 14f
    la      t0, 15f
    jal     ra, 90f
60: li      a7, 0x53525354
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
70: j       70b
90: sub     a0, t0, a1
    li      a2, 0
    li      a7, 0x4442434e
    li      a6, 0
    ecall
    ret
10: .ascii  "hello from vm0\n"
11: .ascii  ""
12: .ascii  "mmio read of the UART status ok\n"
13: .ascii  ""
14: .ascii  "mmio read returned a wrong value\n"
15: .ascii  ""
    .balign 4
    .globl __guest_hello_end
__guest_hello_end:

    .balign 4
    .globl __guest_wild_start
__guest_wild_start:
    li      t0, 0x40000000
    sd      zero, 0(t0)
1:  j       1b
    .globl __guest_wild_end
__guest_wild_end:
    .option pop
    "#
);

unsafe extern "C" {
    static __guest_hello_start: u8;
    static __guest_hello_end: u8;
    static __guest_wild_start: u8;
    static __guest_wild_end: u8;
}

fn image(start: &'static u8, end: &'static u8) -> &'static [u8] {
    let (s, e) = (start as *const u8, end as *const u8);
    let len = (e as usize).saturating_sub(s as usize);
    // SAFETY: both symbols delimit one guest image in the kernel's
    // read-only data, which lives (and stays mapped) for the whole run.
    unsafe { core::slice::from_raw_parts(s, len) }
}

/// Stands in for the ioreq service and the device service during the boot
/// self-test: a UART that always reports "transmitter empty".
struct SelfTestUart {
    completed: usize,
}

impl IoreqDispatch for SelfTestUart {
    fn pending(&mut self, page: &mut IoreqPage, vcpu: u8) -> Result<(), SlotError> {
        self.completed += 1;
        complete_in_kernel_for_boot_self_test(page, vcpu, &mut |request: &IoRequest| match (
            request.direction,
            request.addr,
        ) {
            (Direction::Read, UART_LSR) => LSR_TX_EMPTY,
            _ => 0,
        })
    }
}

fn run_to_end(vm: &mut GuestVm, dispatch: &mut dyn IoreqDispatch) -> bool {
    for _ in 0..1000 {
        match vm.run(dispatch) {
            RunOutcome::Left(_) => {
                klog::print(format_args!("mica: {}\n", vm.vm.report()));
                return true;
            }
            RunOutcome::Preempted | RunOutcome::BlockedOnIo | RunOutcome::Sleeping(_) => {}
        }
    }
    false
}

/// Runs both self-test guests; false (after a `mica: ...` line) if either
/// did not end as it should.
pub fn run<const W: usize>(frames: &mut FrameAllocator<W>) -> bool {
    // SAFETY: only the symbols' addresses are taken.
    let (hello, wild) = unsafe {
        (
            image(&__guest_hello_start, &__guest_hello_end),
            image(&__guest_wild_start, &__guest_wild_end),
        )
    };
    let mut uart = SelfTestUart { completed: 0 };
    for (name, image) in [("vm0", hello), ("vm1", wild)] {
        let Some(name) = VmName::new(name) else {
            return false;
        };
        let mut vm = match GuestVm::with_image(frames, name, RAM_BYTES, image) {
            Ok(vm) => vm,
            Err(e) => {
                klog::print(format_args!("mica: cannot create {name}: {e:?}\n"));
                return false;
            }
        };
        let finished = run_to_end(&mut vm, &mut uart);
        vm.destroy(frames);
        if !finished {
            klog::print(format_args!("mica: {name} did not finish\n"));
            return false;
        }
    }
    log::info!(
        "guests: {} device access(es) went through the ioreq slot (in-kernel stand-in)",
        uart.completed
    );
    true
}
