//! Test guest `hello`: prints `hello from <name>` with the VM name from the
//! device tree's `/chosen/mica,vm-name` (or `hello from an unnamed VM` when the
//! tree has none or is unreadable), then `<name>: tick N` about once a second.
//!
//! Every byte goes out through the 16550 at 0x1000_0000, polling LSR.THRE
//! before each THR write: under Mica that is the MMIO exit path under test.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::fdt;
    use mica_guest_common::{println, time};

    mica_guest_common::entry!(main);

    fn main(_hart: usize, dtb: usize) -> ! {
        // SAFETY: under the boot protocol a1 points at the DTB in guest RAM;
        // `boot_dtb` refuses addresses below RAM, unaligned ones and bad headers.
        let dtb = unsafe { fdt::boot_dtb(dtb) };
        let name = fdt::vm_name_in(dtb);
        let timebase = fdt::timebase_hz(dtb);
        match name {
            Some(name) => println!("hello from {name}"),
            None => println!("hello from an unnamed VM"),
        }
        let label = name.unwrap_or("unnamed");
        let mut tick: u64 = 0;
        loop {
            time::wait_ticks(timebase);
            tick += 1;
            println!("{label}: tick {tick}");
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-hello is a bare-metal guest: build it with --target riscv64gc-unknown-none-elf"
    );
}
