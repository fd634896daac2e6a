//! x86 test guest `x86-poweroff`: prints `poweroff: bye` through COM1, then
//! asks Mica to power its VM off (VMMCALL); nothing runs after that.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::x86_println;

    mica_guest_common::entry!(main);

    fn main(_cpu: usize, _info: usize) -> ! {
        x86_println!("poweroff: bye");
        mica_guest_common::x86::power_off()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-poweroff is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
