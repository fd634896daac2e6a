//! The RISC-V boot path's side of the generic boot (`kmain`): the DTB that
//! OpenSBI passes, read into a `BootInfo`; the H-extension check; the timer
//! from the device tree's timebase. Built on the names `riscv64::hal`
//! exports; `arch/mod.rs` includes this file next to them.

use log::info;
use mica_boot::{BootInfo, BootInfoError, MachineInfo, MemRange};

use super::riscv64::hal as rv;

/// What OpenSBI told the kernel.
pub struct Firmware {
    hart: usize,
    dtb: &'static [u8],
    info: BootInfo<'static>,
}

/// Reads the DTB at `dtb_addr` that OpenSBI passed to `hart` (a0 and a1 at
/// entry).
pub fn read_firmware(hart: usize, dtb_addr: usize) -> Result<Firmware, BootInfoError> {
    let dtb = rv::dtb_slice(dtb_addr)?;
    let info = BootInfo::from_dtb(dtb)?;
    Ok(Firmware { hart, dtb, info })
}

impl Firmware {
    /// The firmware-neutral view the generic kernel boots from.
    pub fn machine(&self) -> MachineInfo<'static> {
        self.info.machine()
    }

    /// Ranges the frame allocator must leave alone besides the machine's
    /// reservations: the DTB.
    pub fn taken(&self) -> [MemRange; 1] {
        [MemRange::new(
            self.dtb.as_ptr() as u64,
            self.dtb.len() as u64,
        )]
    }
}

/// Remembers what shutdown needs from the device tree.
pub fn firmware_init(firmware: &Firmware) {
    rv::platform_init(&firmware.info);
}

/// Whether the harts can run guests (the H extension). Logs the boot hart.
pub fn check_virtualization(firmware: &Firmware) -> Result<(), &'static str> {
    if !rv::hypervisor_available(&firmware.info) {
        return Err("RISC-V H extension not available");
    }
    info!(
        "boot hart {}, isa {}",
        firmware.hart,
        firmware.info.isa.as_str()
    );
    Ok(())
}

/// Starts the timer at the device tree's timebase (Sstc when the ISA has
/// it); returns its counts per second.
pub fn timer_start(firmware: &Firmware) -> Option<u64> {
    let hz = firmware
        .info
        .timebase_hz
        .unwrap_or(rv::timer_ticks_per_second());
    rv::timer_init(hz, rv::timer_has_sstc(&firmware.info));
    Some(hz)
}

/// Starts every other usable hart and parks it until SMP scheduling
/// (after paging, traps and the timer on the boot hart); logs how many
/// harts are online and names those left stopped. `kernel_root` is what
/// `enable_kernel_paging` returned.
pub fn cpus_start(firmware: &Firmware, kernel_root: u64) {
    rv::start_secondaries(firmware.hart, &firmware.info, kernel_root);
}

/// Where ticks come from, for the boot log.
pub fn timer_source() -> &'static str {
    if rv::timer_uses_sstc() {
        "Sstc"
    } else {
        "SBI TIME"
    }
}

/// The paging mode, for the boot log.
pub const PAGING: &str = "Sv39";
