//! `init`, the first task and the supervisor: services never end on their
//! own, so every death notice means a service failed; init restarts it, up
//! to [`MAX_RESTARTS`] times per task so a service that keeps dying cannot
//! keep the machine busy, and reports each step.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use ipc::syscall::slots::DEATHS;
    use log::{info, warn};
    use mica_rt::{Start, sys};

    /// Restarts granted to one task slot before init gives up on it.
    pub const MAX_RESTARTS: u8 = 3;
    /// Task slots a death notice can name (bits of the notification word).
    const SLOTS: usize = 64;

    fn main(_start: Start) -> u32 {
        info!("started; supervising the services");
        let mut restarts = [0u8; SLOTS];
        loop {
            let bits = match sys::wait(DEATHS) {
                Ok(bits) => bits,
                Err(e) => {
                    warn!("cannot wait for death notices: {e}");
                    return 1;
                }
            };
            for slot in (0..SLOTS).filter(|s| bits & (1 << s) != 0) {
                let Some(count) = restarts.get_mut(slot) else {
                    continue;
                };
                if *count >= MAX_RESTARTS {
                    warn!("task {slot} died again after {MAX_RESTARTS} restarts; leaving it down");
                    continue;
                }
                *count += 1;
                match sys::restart(slot) {
                    Ok(new) => info!("task {slot} died; restarted it as task {new}"),
                    Err(e) => warn!("task {slot} died; restart failed: {e}"),
                }
            }
        }
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("mica-init is a Mica task: build it with --target riscv64gc-unknown-none-elf");
    std::process::exit(2);
}
