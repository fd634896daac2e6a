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
    use mica_guest_common::steady;
    use mica_guest_common::x86::{Com1, rdtsc};

    mica_guest_common::entry!(main);

    fn main(_cpu: usize, _info: usize) -> ! {
        steady::run(crate::pace::tick_cycles(), rdtsc, &mut Com1)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-steady is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
