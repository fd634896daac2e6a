//! `crasher`: on its first start it overflows its stack, writing below the
//! pages it was granted, so the kernel kills it and tells the supervisor;
//! once restarted it says so and exits cleanly.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use core::hint::black_box;

    use log::info;
    use mica_rt::Start;

    /// Recurses with a page-sized frame until the stack runs out.
    #[allow(unconditional_recursion, reason = "running out of stack is the point")]
    fn descend(depth: usize) -> usize {
        let mut frame = [0u8; 4096];
        black_box(&mut frame)[0] = depth.to_le_bytes()[0];
        descend(depth + 1) + usize::from(black_box(&frame)[4095])
    }

    fn main(start: Start) -> u32 {
        if start.restarts == 0 {
            info!("overflowing my stack");
            return u32::try_from(black_box(descend(0))).unwrap_or(u32::MAX);
        }
        info!("restarted {} time(s); exiting cleanly", start.restarts);
        0
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("mica-crasher is a Mica task: build it with --target riscv64gc-unknown-none-elf");
    std::process::exit(2);
}
