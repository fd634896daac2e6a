//! `shell`: the management shell task on the hypervisor console. It reads
//! typed bytes with `console_read` (waiting in the kernel, which polls the
//! console on its tick), runs `vm ...` commands through the vm-manager,
//! forwards an attached console's bytes the same way (`ConsoleInput`: the
//! vm-manager is the only service it may call), and powers off with
//! `halt` (HALT right).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use ipc::syscall::endpoints;
    use ipc::vm::{Request, Response, VM_MANAGER_DEADLINE_MS};
    use log::warn;
    use mica_mgmt::table::MemoryLine;
    use mica_rt::{Start, call_service, console, sys};
    use mica_shell::shell::{Flow, Hypervisor, Shell};

    /// The console and the services the manifest lets the shell call.
    struct Machine;

    impl Hypervisor for Machine {
        fn vm(&mut self, request: &Request) -> Result<Response, ipc::Error> {
            call_service(endpoints::VM_MANAGER, request, VM_MANAGER_DEADLINE_MS)
        }

        fn print(&mut self, text: &str) {
            if let Err(e) = console::put(text.as_bytes()) {
                warn!("console_put refused: {e}");
            }
        }

        fn memory(&mut self) -> Result<MemoryLine, ipc::Error> {
            let info = sys::mem_info()?;
            Ok(MemoryLine {
                free_frames: info.free_frames as u64,
                total_frames: info.total_frames as u64,
            })
        }
    }

    fn main(start: Start) -> u32 {
        let mut shell = Shell::new();
        let mut machine = Machine;
        if start.restarts > 0 {
            shell.start_again(&mut machine);
        } else {
            shell.start(&mut machine);
        }
        let mut buf = [0u8; 16];
        loop {
            let n = match console::read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    warn!("console_read refused: {e}");
                    return 1;
                }
            };
            if shell.feed(&buf[..n], &mut machine) == Flow::Halt {
                let e = console::halt(0);
                warn!("halt refused: {e}");
                return 1;
            }
        }
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    mica_rt::refuse_to_run_on_the_host("mica-shell");
}
