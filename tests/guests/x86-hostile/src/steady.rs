//! x86 test guest `x86-steady`: the well-behaved VM beside `x86-hostile`.
//! It counts iterations of a busy loop that reads the TSC and, every
//! [`pace::tick_cycles`] TSC cycles, prints `steady: tick N at T spins S`: T the
//! TSC at the line, S the loop iterations since the last line (first
//! `steady: timebase C`, the cycles per tick). A hypervisor that starves
//! it shows as late ticks and as fewer spins per tick than alone.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pace;

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::x86::rdtsc;
    use mica_guest_common::x86_println;

    mica_guest_common::entry!(main);

    fn main(_cpu: usize, _info: usize) -> ! {
        let tick_cycles = crate::pace::tick_cycles();
        x86_println!("steady: timebase {tick_cycles}");
        let mut tick = 0u64;
        let mut start = rdtsc();
        loop {
            let mut spins = 0u64;
            let mut now = start;
            while now.wrapping_sub(start) < tick_cycles {
                spins += 1;
                now = rdtsc();
            }
            tick += 1;
            start = now;
            x86_println!("steady: tick {tick} at {now} spins {spins}");
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-steady is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
