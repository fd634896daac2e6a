//! x86 test guest `x86-misbehave`: announces itself through COM1, then
//! stores to an address outside its RAM and outside every device window
//! (but inside its identity map), so Mica must stop the VM; it prints
//! nothing after the announcement.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::x86_println;

    /// Neither RAM nor a device: 640 MiB, below the 1 GiB identity map.
    const OUTSIDE_RAM: usize = 0x2800_0000;

    mica_guest_common::entry!(main);

    fn main(_cpu: usize, _info: usize) -> ! {
        x86_println!("misbehave: about to write outside RAM");
        // SAFETY: deliberately unsound for the guest: this store targets
        // unbacked guest-physical memory so the hypervisor must stop the VM.
        // It does not alias anything Rust owns.
        unsafe { (OUTSIDE_RAM as *mut u64).write_volatile(0xbad0_bad0_bad0_bad0) };
        mica_guest_common::x86::power_off()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-misbehave is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
