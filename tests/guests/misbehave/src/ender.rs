//! Test guest `ender`: ends its VM in the way its name says, so a test can
//! check that the vm-manager learns how and why (`vm info`'s `last exit:`).
//! It prints `ender: <name> up`, then:
//!
//! - a name starting with `off`: `ender: powering off` and SBI SRST
//!   shutdown (no reason): "powered off by the guest";
//! - any other name: `ender: faulting`, then its trap vector set to
//!   [`NO_VECTOR`] (no RAM there) and a load from [`OUTSIDE_RAM`]: Mica
//!   injects the load access fault, the hart cannot fetch the vector, and
//!   Mica stops the VM ("instruction guest page fault at 0x1000").
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::OUTSIDE_RAM;
    use mica_guest_common::fdt;
    use mica_guest_common::{println, sbi};

    /// A trap vector with nothing behind it.
    const NO_VECTOR: usize = 0x1000;
    /// SBI SRST's `system_reset` function.
    const SYSTEM_RESET: usize = 0;

    mica_guest_common::entry!(main);

    fn main(_hart: usize, dtb: usize) -> ! {
        // SAFETY: under the boot protocol a1 points at the DTB in guest RAM;
        // `boot_dtb` refuses addresses below RAM, unaligned ones and bad headers.
        let dtb = unsafe { fdt::boot_dtb(dtb) };
        let name = fdt::vm_name_in(dtb).unwrap_or("unnamed");
        println!("ender: {name} up");
        if name.starts_with("off") {
            println!("ender: powering off");
            // SAFETY: SBI SRST shutdown (type 0, reason 0); it does not
            // return under Mica, and touches no memory.
            unsafe { sbi::ecall(sbi::EID_SRST, SYSTEM_RESET, [0; 6]) };
            println!("ender: FAILED: still running after the power-off");
            loop {
                core::hint::spin_loop();
            }
        }
        println!("ender: faulting");
        // SAFETY: deliberately fatal for the guest: its trap vector points
        // where nothing is, then a load from unbacked guest-physical memory
        // faults into it. Nothing Rust owns is touched.
        unsafe {
            core::arch::asm!(
                "csrw stvec, {vector}",
                "ld {tmp}, 0({wild})",
                vector = in(reg) NO_VECTOR,
                wild = in(reg) OUTSIDE_RAM,
                tmp = out(reg) _,
                options(nostack),
            );
        }
        println!("ender: FAILED: still running after the fault");
        loop {
            core::hint::spin_loop();
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-ender is a bare-metal guest: build it with --target riscv64gc-unknown-none-elf"
    );
}
