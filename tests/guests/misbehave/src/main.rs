//! Test guest `misbehave`: announces itself, stores to an address outside its
//! RAM and outside every device, and if it is still running jumps to a wild
//! address. It prints nothing after the announcement: a hypervisor test
//! checks that the fault was contained (Mica injects a store access fault,
//! which this guest's trap vector takes by parking the hart).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::println;

    /// Neither RAM nor a device on Mica's board (nor anything on QEMU virt's).
    const OUTSIDE_RAM: usize = 0x2800_0000;
    /// An address with no code: far above RAM.
    const WILD_JUMP: usize = 0x7_dead_0000;

    mica_guest_common::entry!(main);

    fn main(_hart: usize, _dtb: usize) -> ! {
        println!("misbehave: about to write outside RAM");
        // SAFETY: deliberately unsound for the guest: this store targets
        // unbacked guest-physical memory, which faults.
        // It does not alias anything Rust owns.
        unsafe { (OUTSIDE_RAM as *mut u64).write_volatile(0xbad0_bad0_bad0_bad0) };
        // SAFETY: deliberately wild: a jump to an address with no code, the
        // second fault the hypervisor must contain. Nothing runs after it.
        unsafe { core::arch::asm!("jr {0}", in(reg) WILD_JUMP, options(noreturn)) }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-misbehave is a bare-metal guest: build it with --target riscv64gc-unknown-none-elf"
    );
}
