//! `init`, the first task and the supervisor: it asks the vm-manager service
//! for its VMs over IPC, then waits for death notices and restarts a dead
//! task once; when a restarted task ends too, init exits (and the kernel
//! shuts the machine down).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use ipc::vm::{Request, Response};
    use log::info;
    use mica_rt::{Start, call_message, sys};

    use ipc::syscall::endpoints;
    use ipc::syscall::slots::{DEATHS, call};

    /// Capability slot of the call right to the vm-manager endpoint.
    const VM_MANAGER: usize = call(endpoints::VM_MANAGER);

    fn main(_start: Start) -> u32 {
        info!("started");
        match call_message::<_, Response>(VM_MANAGER, &Request::List { from: 0 }) {
            Ok(Response::List { vms, next }) => {
                info!("vm-manager answered List: {} VMs, next {next:?}", vms.len())
            }
            Ok(other) => info!("vm-manager answered {other:?}"),
            Err(e) => info!("vm-manager call failed: {e}"),
        }
        let mut restarted = false;
        loop {
            let bits = match sys::wait(DEATHS) {
                Ok(bits) => bits,
                Err(e) => {
                    info!("cannot wait for deaths: {e}");
                    return 1;
                }
            };
            for slot in (0..64).filter(|s| bits & (1 << s) != 0) {
                if restarted {
                    info!("task {slot} ended after its restart; all done");
                    return 0;
                }
                match sys::restart(slot) {
                    Ok(new) => info!("task {slot} died; restarted it as task {new}"),
                    Err(e) => info!("task {slot} died; restart failed: {e}"),
                }
                restarted = true;
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
