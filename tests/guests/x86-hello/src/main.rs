//! x86 test guest `x86-hello`: reads its VM name from the boot-info block
//! (address in `rdi`, bounded to the top page of the first GiB), prints
//! `hello from <name>` through COM1, then `<name>: tick N` lines. Before
//! the first tick it turns SSE on, says whether its XMM0 and MXCSR start
//! at reset (`<name>: fp state fresh`) and puts a marker made from its name
//! into XMM0; at tick 2 it says whether XMM0 still holds that marker
//! (`<name>: xmm0 kept`), after the other VMs ran in between. Guests
//! take no timer interrupts yet, so a tick is a busy wait of
//! [`TICK_CYCLES`] time-stamp-counter cycles (about a second at 1 GHz;
//! QEMU's TSC runs at the host's rate, so usually faster).
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
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
        enable_sse();
        let (xmm0, mxcsr) = read_fp();
        if xmm0 == 0 && mxcsr == 0x1f80 {
            x86_println!("{name}: fp state fresh");
        } else {
            x86_println!("{name}: fp state not reset: xmm0 {xmm0:#x}, mxcsr {mxcsr:#x}");
        }
        let marker = name.bytes().fold(0x6d69_6361_0000_0000u64, |m, b| {
            m.rotate_left(8) ^ u64::from(b)
        });
        write_xmm0(marker);
        let mut tick = 0u64;
        loop {
            let start = rdtsc();
            while rdtsc().wrapping_sub(start) < TICK_CYCLES {
                core::hint::spin_loop();
            }
            tick += 1;
            x86_println!("{name}: tick {tick}");
            if tick == 2 {
                let (xmm0, _) = read_fp();
                if xmm0 == marker {
                    x86_println!("{name}: xmm0 kept");
                } else {
                    x86_println!("{name}: xmm0 is {xmm0:#x}, not its own {marker:#x}");
                }
            }
        }
    }

    /// Sets CR4.OSFXSR and OSXMMEXCPT: SSE instructions run.
    fn enable_sse() {
        // SAFETY: the guest runs at CPL 0 in long mode; the two bits only
        // allow SSE instructions (the compiled code uses none).
        unsafe {
            core::arch::asm!(
                "mov {t}, cr4",
                "or {t}, {bits}",
                "mov cr4, {t}",
                t = out(reg) _,
                bits = const (1 << 9) | (1 << 10),
                options(nomem, nostack),
            );
        }
    }

    /// The low half of XMM0 and MXCSR.
    fn read_fp() -> (u64, u32) {
        let xmm0: u64;
        let mut mxcsr = 0u32;
        // SAFETY: SSE is on (`enable_sse`); reads XMM0 into a register and
        // stores MXCSR into a local.
        unsafe {
            core::arch::asm!(
                "movq {x}, xmm0",
                "stmxcsr [{m}]",
                x = out(reg) xmm0,
                m = in(reg) &raw mut mxcsr,
                options(nostack),
            );
        }
        (xmm0, mxcsr)
    }

    /// Puts `value` into the low half of XMM0 (the compiled code, soft
    /// float, never touches XMM registers).
    fn write_xmm0(value: u64) {
        // SAFETY: SSE is on (`enable_sse`); only XMM0 changes, which no
        // compiled code uses.
        unsafe { core::arch::asm!("movq xmm0, {}", in(reg) value, options(nomem, nostack)) };
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-hello is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
