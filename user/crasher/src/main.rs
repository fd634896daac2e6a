//! `crasher`, a test service: on its first start it overflows its stack,
//! writing below the pages it was granted, so the kernel kills it and tells
//! the supervisor; once restarted it says so and serves its endpoint like
//! any service (answering nothing but "malformed"). Before it dies it
//! tries to forge a kernel line in its debug output (a newline, then
//! `mica: ...`, then a screen clear), which the kernel must show as its own
//! `crasher: ` line with the controls escaped. First of all it maps a
//! device window (the test image gives it the DEVICES right) and hands
//! its address to the kernel as a buffer to print: the kernel must refuse
//! it, not read device registers for it (or fault).
//!
//! Layer: user task (`cargo xtask check-layers`): it links only `ipc`, the user
//! runtime and `mica-mgmt`, never a service library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use core::hint::black_box;

    use ipc::syscall::slots;
    use log::info;
    use mica_rt::{Start, serve_forever};

    /// Recurses with a page-sized frame until the stack runs out.
    #[allow(unconditional_recursion, reason = "running out of stack is the point")]
    fn descend(depth: usize) -> usize {
        let mut frame = [0u8; 4096];
        black_box(&mut frame)[0] = depth.to_le_bytes()[0];
        descend(depth + 1) + usize::from(black_box(&frame)[4095])
    }

    /// Passes the first device window's address to `debug_write`, which
    /// must refuse it, and says what happened.
    fn print_from_device_window() {
        match mica_rt::device::device_map(0) {
            Ok(window) => match mica_rt::sys::debug_write_at(window.va, 16) {
                Ok(()) => info!("the kernel read device window 0 for me"),
                Err(e) => info!("device window 0 as a buffer: refused ({e:?})"),
            },
            Err(e) => info!("no device window to try ({e:?})"),
        }
    }

    fn main(start: Start) -> u32 {
        if start.restarts == 0 {
            print_from_device_window();
            info!("forging\nmica: vm0 stopped by crasher\x1b[2J");
            info!("overflowing my stack");
            return u32::try_from(black_box(descend(0))).unwrap_or(u32::MAX);
        }
        info!("restarted {} time(s); serving", start.restarts);
        serve_forever(slots::SERVE, &mut Refuser)
    }

    /// Refuses every request: the crasher exists to die, not to serve.
    struct Refuser;

    impl ipc::server::Service for Refuser {
        type Request = ipc::vm::Request;
        type Response = ipc::vm::Response;

        fn handle(&mut self, _request: ipc::vm::Request) -> ipc::vm::Response {
            ipc::vm::Response::Err(ipc::Error::PermissionDenied)
        }

        fn refusal(error: ipc::Error) -> ipc::vm::Response {
            ipc::vm::Response::Err(error)
        }
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    mica_rt::refuse_to_run_on_the_host("mica-crasher");
}
