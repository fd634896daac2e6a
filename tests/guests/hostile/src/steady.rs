//! Test guest `steady`: the well-behaved VM beside `hostile`. It counts
//! iterations of a busy loop that reads `rdtime` and, each time a second
//! of its timebase has passed, prints `steady: tick N at T spins S`: T the
//! `time` CSR at the line, S the loop iterations since the last line. A
//! hypervisor that starves it shows as late ticks (T apart by more than
//! a second) and as fewer spins per tick than when it ran alone.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::uart::Uart;
    use mica_guest_common::{fdt, steady, time};

    mica_guest_common::entry!(main);

    fn main(_hart: usize, dtb: usize) -> ! {
        // SAFETY: under the boot protocol a1 points at the DTB in guest RAM;
        // `boot_dtb` refuses addresses below RAM, unaligned ones and bad headers.
        let timebase = fdt::timebase_hz(unsafe { fdt::boot_dtb(dtb) });
        steady::run(timebase, time::now, &mut Uart)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-steady is a bare-metal guest: build it with --target riscv64gc-unknown-none-elf"
    );
}
