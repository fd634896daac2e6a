//! `init`, the first task and the supervisor: services never end on their
//! own, so every death notice means a service failed; init restarts it and
//! reports each step. A service that dies again soon after each restart is
//! in a crash loop: after [`MAX_QUICK_RESTARTS`] such restarts in a row
//! init leaves it down, so it cannot keep the machine busy; a death after
//! a copy ran for [`STABLE_MS`] starts the count again. When the restarted
//! service is the ioreq or the device service, which start knowing
//! nothing, init tells the vm-manager, which hands it every live VM again.
//! Between deaths init is the services' watchdog ([`watchdog`]): one that
//! stops answering is killed, and so restarted.
//!
//! Layer: user task (`cargo xtask check-layers`): it links only `ipc`, the user
//! runtime and `mica-mgmt`, never a service library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(any(test, target_os = "none"))]
mod watchdog;

#[cfg(target_os = "none")]
mod task {
    use ipc::Error;
    use ipc::syscall::endpoints::{DEVICES, IOREQ, VM_MANAGER};
    use ipc::syscall::slots;
    use ipc::syscall::slots::DEATHS;
    use ipc::vm::{Request, Response, VM_MANAGER_DEADLINE_MS};
    use log::{info, warn};
    use mica_rt::sys::Restarted;
    use mica_rt::{Start, call_service, sys};

    use crate::watchdog;

    /// Restarts in a row, each of a copy that died within [`STABLE_MS`],
    /// before init gives up on a task slot.
    pub const MAX_QUICK_RESTARTS: u8 = 3;
    /// A copy that ran this long before it died was not crash-looping.
    pub const STABLE_MS: u64 = 1000;
    /// Task slots a death notice can name (bits of the notification word).
    const SLOTS: usize = 64;

    /// Tells the vm-manager that the service in `restarted` starts afresh,
    /// if it is one that holds VM state.
    fn hand_over(restarted: &Restarted) {
        let Some(endpoint) = restarted.serves.filter(|&e| e == IOREQ || e == DEVICES) else {
            return;
        };
        let Ok(endpoint) = u8::try_from(endpoint) else {
            return;
        };
        let request = Request::ServiceRestarted { endpoint };
        match call_service::<_, Response>(VM_MANAGER, &request, VM_MANAGER_DEADLINE_MS) {
            Ok(Response::Ok) => info!("the vm-manager handed endpoint {endpoint} its VMs again"),
            Ok(Response::Err(e)) => {
                warn!("the vm-manager could not restore endpoint {endpoint}: {e}")
            }
            Ok(other) => warn!("the vm-manager answered {other:?} for endpoint {endpoint}"),
            Err(e) => warn!("cannot reach the vm-manager for endpoint {endpoint}: {e}"),
        }
    }

    /// Probes the service on `endpoint` with an empty message, which it
    /// answers (with `Malformed`) without acting on it.
    fn probe(endpoint: usize, deadline_ms: u64) -> Result<(), Error> {
        sys::call_timed(slots::call(endpoint), 0, sys::ticks_for(deadline_ms)).map(|_| ())
    }

    /// A watchdog round: the first service that did not answer in time is
    /// killed (its death comes back as a notice, and it is restarted).
    fn watch() {
        let Some(silent) = watchdog::round(probe) else {
            return;
        };
        let (name, ms) = (silent.name, silent.deadline_ms);
        match sys::kill_server(silent.endpoint) {
            Ok(slot) => warn!("the {name} did not answer within {ms} ms; killed it (task {slot})"),
            Err(e) => warn!("the {name} did not answer within {ms} ms; cannot kill it: {e}"),
        }
    }

    fn main(_start: Start) -> u32 {
        info!("started; supervising the services");
        let mut quick = [0u8; SLOTS];
        loop {
            let bits = match sys::wait_timed(DEATHS, sys::ticks_for(watchdog::PERIOD_MS)) {
                Ok(bits) => bits,
                Err(Error::TimedOut) => {
                    watch();
                    continue;
                }
                Err(e) => {
                    warn!("cannot wait for death notices: {e}");
                    return 1;
                }
            };
            for slot in (0..SLOTS).filter(|s| bits & (1 << s) != 0) {
                let Some(count) = quick.get_mut(slot) else {
                    continue;
                };
                if *count >= MAX_QUICK_RESTARTS {
                    warn!(
                        "task {slot} died again after {MAX_QUICK_RESTARTS} quick restarts; leaving it down"
                    );
                    continue;
                }
                match sys::restart(slot) {
                    Ok(restarted) => {
                        *count = if restarted.lived_ms >= STABLE_MS {
                            1
                        } else {
                            count.saturating_add(1)
                        };
                        info!(
                            "task {slot} died after {} ms; restarted it as task {}",
                            restarted.lived_ms, restarted.slot
                        );
                        hand_over(&restarted);
                    }
                    Err(e) => warn!("task {slot} died; restart failed: {e}"),
                }
            }
        }
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    mica_rt::refuse_to_run_on_the_host("mica-init");
}
