//! The loop of the `steady` guests (RISC-V `steady`, x86 `x86-steady`): the
//! well-behaved VM beside a hostile one, whose ticks show how fairly the
//! hypervisor shares the CPU. Arch-neutral: the clock and the console come
//! from the caller.

use core::fmt::Write;

/// Prints `steady: timebase T`, then for ever counts iterations of a busy
/// loop that reads `clock` and, each time `timebase` of its units has
/// passed, prints `steady: tick N at T spins S` to `out`: T the clock at
/// the line, S the loop iterations since the last line.
pub fn run(timebase: u64, clock: impl Fn() -> u64, out: &mut impl Write) -> ! {
    let _ = writeln!(out, "steady: timebase {timebase}");
    let mut tick: u64 = 0;
    let mut start = clock();
    loop {
        let mut spins: u64 = 0;
        let mut now = start;
        while now.wrapping_sub(start) < timebase {
            spins += 1;
            now = clock();
        }
        tick += 1;
        start = now;
        let _ = writeln!(out, "steady: tick {tick} at {now} spins {spins}");
    }
}
