//! `mgmt`: the management channel task. It finds the virtio console that
//! `cargo xtask qemu --mgmt SOCKET` puts behind the host's management
//! socket (a virtio-mmio window with device id 3), drives it with
//! `virtio-drivers` (no interrupts for tasks yet: it polls, sleeping one
//! timer tick whenever nothing arrived, so the guests keep the CPU), and
//! answers each framed request of the `mica` CLI through the vm-manager.
//! Without a virtio console it says so once and sleeps for good (it does
//! not exit, so init has nothing to restart).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use ipc::syscall::{MAX_SLEEP_TICKS, endpoints};
    use ipc::vm::{Request, Response, VM_MANAGER_DEADLINE_MS};
    use log::{info, warn};
    use mica_mgmt_task::Channel;
    use mica_rt::virtio::{MicaHal, find_device};
    use mica_rt::{Start, call_service, device};
    use virtio_drivers::device::console::VirtIOConsole;
    use virtio_drivers::transport::DeviceType;

    /// Bytes taken from the console per round before they are served.
    const CHUNK: usize = 64;

    /// Sleeps for good: nothing to serve, nothing for init to restart.
    fn park() -> ! {
        loop {
            if let Err(e) = device::sleep(MAX_SLEEP_TICKS) {
                warn!("sleep refused: {e}");
                mica_rt::sys::yield_now();
            }
        }
    }

    /// The vm-manager's answer, or the call's own failure as an answer.
    fn vm_manager(request: Request) -> Response {
        call_service(endpoints::VM_MANAGER, &request, VM_MANAGER_DEADLINE_MS)
            .unwrap_or_else(Response::Err)
    }

    fn main(_start: Start) -> u32 {
        let Some(transport) = find_device(DeviceType::Console) else {
            info!("no virtio console: management channel off");
            park()
        };
        let mut console = match VirtIOConsole::<MicaHal, _>::new(transport) {
            Ok(console) => console,
            Err(e) => {
                warn!("cannot start the virtio console: {e}; management channel off");
                park()
            }
        };
        info!("management channel on the virtio console");
        let mut channel = Channel::new();
        let mut bytes = [0u8; CHUNK];
        loop {
            let mut n = 0;
            while n < CHUNK {
                match console.recv(true) {
                    Ok(Some(byte)) => {
                        bytes[n] = byte;
                        n += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!("virtio console receive failed: {e}");
                        break;
                    }
                }
            }
            if n == 0 {
                if let Err(e) = device::sleep(1) {
                    warn!("sleep refused: {e}");
                }
                continue;
            }
            channel.feed(&bytes[..n], vm_manager, |frame| {
                if let Err(e) = console.send_bytes(frame) {
                    warn!("virtio console send failed: {e}");
                }
            });
        }
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    mica_rt::refuse_to_run_on_the_host("mica-mgmt-task");
}
