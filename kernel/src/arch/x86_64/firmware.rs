//! The x86 boot path's side of the generic boot: the Multiboot information
//! the loader left (read through the boot identity map, bounded), the
//! CPUID virtualization check, what the frame allocator must avoid, and the
//! processors the ACPI MADT lists (read with the information, on the boot
//! tables: ACPI tables sit in RAM the kernel's own tables need not map).

use log::info;
use mica_boot::acpi::{self, AcpiError, Madt};
use mica_boot::multiboot::{MultibootError, MultibootInfo, PhysMemory};
use mica_boot::{MachineInfo, MemRange};

use super::entry::BOOT_MAP_BYTES;
use super::{testhook, virt};

/// Low memory (real-mode IVT, BIOS data, EBDA, the loader's structures,
/// VGA and option ROMs): never handed out as frames.
const LOW_MEMORY: MemRange = MemRange::new(0, 1 << 20);

/// Physical memory as the boot page tables map it: identity, the first
/// 4 GiB.
struct IdentityMap;

impl PhysMemory for IdentityMap {
    fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let end = addr.checked_add(u64::try_from(len).ok()?)?;
        if addr == 0 || end > BOOT_MAP_BYTES {
            return None;
        }
        let start = usize::try_from(addr).ok()?;
        // SAFETY: `[addr, end)` is non-null and inside the identity map the
        // entry code built (all of the first 4 GiB), so it is mapped and
        // readable; the loader's structures there are never written by the
        // kernel while the boot info is read.
        Some(unsafe { core::slice::from_raw_parts(start as *const u8, len) })
    }
}

static IDENTITY: IdentityMap = IdentityMap;

/// What the loader told the kernel.
pub struct Firmware {
    info: MultibootInfo<'static>,
    madt: Result<Madt, AcpiError>,
}

/// Reads the Multiboot information at `addr` that the loader passed with
/// `magic` (EAX and EBX at entry).
pub fn read_firmware(magic: usize, addr: usize) -> Result<Firmware, MultibootError> {
    let magic = u32::try_from(magic).unwrap_or(0);
    let info = MultibootInfo::parse(&IDENTITY, magic, addr as u64)?;
    let madt = acpi::read_madt(&IDENTITY);
    Ok(Firmware { info, madt })
}

impl Firmware {
    /// The firmware-neutral view the generic kernel boots from.
    pub fn machine(&self) -> MachineInfo<'static> {
        self.info.machine()
    }

    /// Ranges the frame allocator must leave alone besides the machine's
    /// reservations: low memory and the command line the kernel keeps.
    pub fn taken(&self) -> [MemRange; 2] {
        [LOW_MEMORY, self.info.cmdline_range]
    }
}

/// Remembers the command line's test hook (`mica.test=`, see `testhook`);
/// shutdown needs nothing (the exit ports are fixed).
pub fn firmware_init(firmware: &Firmware) {
    match testhook::parse(firmware.machine().cmdline) {
        Ok(hook) => super::timer::set_test_hook(hook),
        Err(value) => info!("ignoring unknown test hook mica.test={value}"),
    }
}

/// Whether the CPU can run guests: SVM or VMX by CPUID. Logs the backend.
pub fn check_virtualization(_: &Firmware) -> Result<(), &'static str> {
    match virt::probe() {
        Some(backend) => {
            info!("virtualization: {backend}");
            Ok(())
        }
        None => Err("no VMX or SVM available"),
    }
}

/// Starts the other processors the MADT lists (`smp`); they park until SMP
/// scheduling. Logs how many are online.
pub fn cpus_start(firmware: &Firmware, kernel_root: u64) {
    let machine = firmware.machine();
    let mut taken = [MemRange::new(0, 0); 2];
    taken[0] = firmware.info.cmdline_range;
    if let Some(image) = machine.boot_image {
        taken[1] = image;
    }
    let listed = firmware
        .madt
        .as_ref()
        .map(|madt| &madt.cpus)
        .map_err(|e| *e);
    super::smp::start_aps(listed, kernel_root, &taken);
}
