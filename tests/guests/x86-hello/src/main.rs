//! x86 test guest `x86-hello`: reads its VM name from the boot-info block
//! (address in `rdi`, bounded to the top page of the first GiB), prints
//! `hello from <name>` through COM1, then `<name>: tick N` lines. Guests
//! take no timer interrupts yet, so a tick is a busy wait of
//! [`TICK_CYCLES`] time-stamp-counter cycles (about a second at 1 GHz;
//! QEMU's TSC runs at the host's rate, so usually faster).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::boot_info;
    use mica_guest_common::x86::rdtsc;
    use mica_guest_common::x86_println;

    /// Cycles between two tick lines.
    const TICK_CYCLES: u64 = 1_000_000_000;
    /// The guest's identity map ends here; the block must lie below.
    const MAPPED: usize = 1 << 30;
    /// Bytes of the block the guest reads (it fills at most a page).
    const BLOCK: usize = 4096;

    mica_guest_common::entry!(main);

    fn main(_cpu: usize, info: usize) -> ! {
        let block: &[u8] = if info != 0 && info.checked_add(BLOCK).is_some_and(|e| e <= MAPPED) {
            // SAFETY: `info..info + 4096` lies in the identity-mapped first
            // GiB (checked); Mica put the block in the top page of RAM, and
            // nothing writes it while the guest reads.
            unsafe { core::slice::from_raw_parts(info as *const u8, BLOCK) }
        } else {
            &[]
        };
        let name = boot_info::vm_name(block);
        match name {
            Some(name) => x86_println!("hello from {name}"),
            None => x86_println!("hello from an unnamed VM"),
        }
        let name = name.unwrap_or("guest");
        let mut tick = 0u64;
        loop {
            let start = rdtsc();
            while rdtsc().wrapping_sub(start) < TICK_CYCLES {
                core::hint::spin_loop();
            }
            tick += 1;
            x86_println!("{name}: tick {tick}");
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-hello is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
