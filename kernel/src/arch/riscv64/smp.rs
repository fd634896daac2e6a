//! Secondary-hart bring-up: once the boot hart has paging, traps and its
//! timer, it starts every other usable hart the device tree lists (see
//! [`cpus::verdict`]) with SBI HSM at `__secondary_start` (`entry.rs`),
//! waits (at most [`BRING_UP_SECONDS`] of timer time) for each to announce
//! itself in [`CPUS`], names every hart that stays stopped, and logs how
//! many are online. The started harts run on the kernel's page table with
//! the trap vector installed and interrupts off, parked in [`park`], until
//! the kernel's tasks are loaded ([`release`]); then each takes its CPU
//! number and enters the scheduler (`crate::userland::run_cpu`). The boot
//! hart is CPU 0, the online ones follow in the device tree's order.

use log::{info, warn};
use mica_boot::BootInfo;

use super::cpus::{self, CPUS, MAX_HARTS, NUMBERS, Verdict, set_this_cpu};
use super::{csr, paging, sbi, timer, trap};

/// How long the boot hart waits for the started harts to come online.
pub const BRING_UP_SECONDS: u64 = 1;

unsafe extern "C" {
    fn __secondary_start();
}

/// Starts the other harts from the boot hart `boot` (its id from a0) and
/// logs the outcome. `kernel_root` is the kernel page table's root
/// (`enable_kernel_paging`), which every hart runs on.
pub fn start_secondaries(boot: usize, info: &BootInfo<'_>, kernel_root: u64) {
    CPUS.announce(boot);
    NUMBERS.number(boot);
    let hsm = sbi::probe(sbi::EID_HSM);
    let entry = __secondary_start as *const () as usize;
    let mut started = [false; MAX_HARTS];
    for hart in info.harts.as_slice() {
        let id = hart.id;
        match cpus::verdict(boot, hart) {
            Verdict::Boot => {}
            Verdict::NoStack => warn!(
                "cpus: hart {id} left stopped: only harts 0-{} have a boot stack",
                MAX_HARTS - 1
            ),
            Verdict::NoSv39 => warn!("cpus: hart {id} left stopped: its mmu-type has no Sv39"),
            Verdict::Start if !hsm => {
                warn!("cpus: hart {id} left stopped: the SBI firmware has no HSM extension")
            }
            Verdict::Start => {
                // `verdict` let only ids below MAX_HARTS through.
                let index = id as usize;
                match sbi::hart_start(index, entry, kernel_root as usize) {
                    Ok(()) => started[index] = true,
                    Err(e) => warn!(
                        "cpus: hart {id} did not start: SBI error {e} ({})",
                        sbi::error_name(e)
                    ),
                }
            }
        }
    }
    let unlisted = info.harts.unlisted();
    if unlisted > 0 {
        warn!(
            "cpus: {unlisted} enabled cpu(s) left stopped: no readable hart id, or past the first {}",
            mica_boot::MAX_LISTED_HARTS
        );
    }

    let waiting = |started: &[bool; MAX_HARTS]| {
        started
            .iter()
            .enumerate()
            .any(|(id, &s)| s && !CPUS.is_online(id))
    };
    let deadline = timer::now().saturating_add(BRING_UP_SECONDS * timer::ticks_per_second());
    while waiting(&started) && timer::now() < deadline {
        core::hint::spin_loop();
    }
    for (id, _) in started.iter().enumerate().filter(|(_, s)| **s) {
        if !CPUS.is_online(id) {
            warn!("cpus: hart {id} started but did not come online within {BRING_UP_SECONDS} s");
        }
    }

    // The boot hart may have an id past MAX_HARTS, which CPUS cannot hold.
    let parked = started
        .iter()
        .enumerate()
        .filter(|(id, s)| **s && CPUS.is_online(*id))
        .count();
    for (id, _) in started.iter().enumerate().filter(|(_, s)| **s) {
        if CPUS.is_online(id) {
            NUMBERS.number(id);
        }
    }
    let online = parked + 1;
    if parked == 0 {
        info!("cpus: 1 hart online (hart {boot} runs the services and the vCPUs)");
    } else {
        info!(
            "cpus: {online} harts online (boot hart {boot}; all {online} run the services and vCPUs)"
        );
    }
}

/// How many CPUs the kernel runs on (the boot hart and the online ones).
pub fn cpu_count() -> usize {
    NUMBERS.count().max(1)
}

/// Lets the parked harts enter the scheduler (once the kernel's tasks are
/// loaded).
pub fn release() {
    csr::sie::set(csr::SIE_SSIE);
    CPUS.release();
    let others = (1u64 << cpu_count()) - 2;
    kick(others);
}

/// Interrupts the CPUs in `cpus` (bit `n` = CPU `n`) with a supervisor
/// software interrupt: each leaves its guest, or its `wfi`, and decides
/// again.
pub fn kick(cpus: u64) {
    let mut rest = cpus;
    while rest != 0 {
        let cpu = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        if let Some(hart) = NUMBERS.hart_of(cpu) {
            sbi::send_ipi(1, hart);
        }
    }
}

/// Rust entry of a started hart (from `__secondary_start`, on its own boot
/// stack, interrupts off, `sscratch` = 0): the trap vector, then the
/// kernel's page table, then it announces itself and parks.
#[unsafe(no_mangle)]
extern "C" fn secondary_entry(hart: usize, kernel_root: usize) -> ! {
    // A trap from here on reaches the kernel's vector (on this stack, as
    // a trap in the kernel).
    trap::init();
    paging::activate(kernel_root as u64, 0);
    if timer::uses_sstc() {
        // No timer interrupt until this hart schedules.
        csr::stimecmp::write(usize::MAX);
    }
    CPUS.announce(hart);
    park();
    let Some(cpu) = NUMBERS.cpu_of(hart) else {
        // Online too late to be numbered: it stays out.
        csr::sie::write(0);
        loop {
            wait();
        }
    };
    set_this_cpu(cpu);
    csr::sip::clear(csr::SIP_SSIP);
    csr::sie::write(csr::SIE_SSIE | csr::SIE_STIE);
    crate::userland::run_cpu()
}

/// Where a started hart waits, interrupts off (`sstatus.SIE` clear, so no
/// trap is taken), until [`cpus::CpuSet::release`]: only a software
/// interrupt (an IPI, `sie.SSIE`) ends its `wfi` early: [`release`] sends
/// one.
pub fn park() {
    csr::sie::write(csr::SIE_SSIE);
    while !CPUS.released() {
        wait();
    }
}

fn wait() {
    // SAFETY: `wfi` only pauses the hart until an interrupt is pending;
    // with sstatus.SIE clear, none is taken.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
}
