//! The device tree a RISC-V guest boots with: Mica's QEMU-virt-like board.
//!
//! [`generate`] writes a flattened device tree (FDT v17) for one VM into a
//! caller's buffer: RAM, harts, `/chosen` (bootargs, initrd, the VM's name as
//! `mica,vm-name`), the 16550 UART, the PLIC, virtio-mmio slots and the
//! `microsoft,vmgenid` device. A buffer that is too small is an error that
//! says how many bytes are needed, never a partial tree or a panic.
//!
//! PLIC contexts: `interrupts-extended` lists only each hart's S-mode
//! external interrupt (cause 9), so PLIC context `n` is hart `n`'s S-mode
//! context (a guest has no M-mode contexts).
//!
//! The generation ID lives in guest RAM, as the `microsoft,vmgenid` binding
//! (Linux `drivers/virt/vmgenid.c`) expects: the node's first `reg` is the
//! 16 bytes at the start of the generation-ID page (the page below the
//! device tree's, [`GENID_FROM_END`] bytes before the end of RAM, where the
//! kernel's `vm_write_genid` puts it), listed `no-map` under
//! `/reserved-memory`; its second `reg` is the device's registers (STATUS
//! to acknowledge a change), its `interrupts` the change notification. The
//! node keeps the register window's unit address (`vmgenid@10101000`).

mod writer;

use core::fmt;

use ipc::syscall::GUEST_GENID_FROM_END;

use crate::config::MAX_VCPUS;
use crate::name::VmName;
use writer::{FdtWriter, Prop};

/// Where guest RAM starts.
pub const RAM_BASE: u64 = 0x8000_0000;
/// The 16550 UART: base, register window and PLIC source.
pub const UART: MmioDevice = MmioDevice {
    base: 0x1000_0000,
    size: 0x100,
    irq: 10,
};
/// The PLIC: base, size and number of sources (QEMU virt's values).
pub const PLIC: Plic = Plic {
    base: 0x0c00_0000,
    size: 0x60_0000,
    ndev: 0x5f,
};
/// The first virtio-mmio slot; slot `i` is at `VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE`
/// with PLIC source `1 + i`.
pub const VIRTIO_MMIO_BASE: u64 = 0x1000_1000;
/// Bytes per virtio-mmio slot.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// Most virtio-mmio slots the board has (sources 1..=8, as on QEMU virt).
pub const VIRTIO_MMIO_SLOTS: usize = 8;
/// The VM generation ID device (32 bytes of registers, in a page of its own).
pub const VMGENID: MmioDevice = MmioDevice {
    base: 0x1010_1000,
    size: 0x20,
    irq: 12,
};
/// The generation-ID page starts this many bytes before the end of RAM.
pub const GENID_FROM_END: u64 = GUEST_GENID_FROM_END;
/// Bytes of the generation-ID page (reserved) and of the ID in it.
pub const GENID_PAGE: u64 = 4096;
/// Bytes of the ID.
pub const GENID_BYTES: u64 = 16;

/// Where a VM with `ram_size` bytes of RAM at `ram_base` finds its
/// generation ID.
pub const fn genid_address(ram_base: u64, ram_size: u64) -> u64 {
    ram_base + ram_size - GENID_FROM_END
}

/// The `/cpus` timebase (`rdtime` ticks per second) when the host's is
/// unknown (the kernel's `platform_info` gives the real one).
pub const TIMEBASE_HZ: u32 = 10_000_000;
/// The UART's input clock (a 1.8432 MHz crystal doubled, as on QEMU virt).
pub const UART_CLOCK_HZ: u32 = 3_686_400;
/// The ISA every guest hart advertises (`riscv,isa`), without Sstc.
pub const GUEST_ISA: &str = "rv64imafdc_zicntr_zicsr_zifencei";
/// The same with Sstc (the host has it, so guests get `vstimecmp`).
pub const GUEST_ISA_SSTC: &str = "rv64imafdc_zicntr_zicsr_zifencei_sstc";
/// `riscv,isa-base`.
pub const GUEST_ISA_BASE: &str = "rv64i";
/// `riscv,isa-extensions` of every guest hart; `sstc` follows when the host
/// has it.
pub const GUEST_ISA_EXTENSIONS: [&str; 9] =
    ["i", "m", "a", "f", "d", "c", "zicntr", "zicsr", "zifencei"];

const STDOUT_PATH: &str = "/soc/serial@10000000";
/// The hart-local interrupt cause of a supervisor external interrupt.
const S_EXTERNAL_IRQ: u32 = 9;
const PLIC_PHANDLE: u32 = 1;

/// The interrupt-controller phandle of hart `hart`.
const fn cpu_intc_phandle(hart: u32) -> u32 {
    2 + hart
}

/// A memory-mapped device: its register window and PLIC source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDevice {
    /// Guest-physical base address.
    pub base: u64,
    /// Bytes of the register window.
    pub size: u64,
    /// PLIC interrupt source (1..=`ndev`).
    pub irq: u32,
}

/// The platform-level interrupt controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plic {
    /// Guest-physical base address.
    pub base: u64,
    /// Bytes of the register window.
    pub size: u64,
    /// Number of interrupt sources (`riscv,ndev`).
    pub ndev: u32,
}

/// Where the loader placed an initial ramdisk: `start..end` in guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitrdRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Everything the guest's device tree describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestPlatform<'a> {
    /// The VM's name: `model` is `mica,<name>`, `/chosen/mica,vm-name` is the name.
    pub name: &'a VmName,
    /// Number of harts, 1..=[`MAX_VCPUS`].
    pub vcpus: u8,
    /// Guest-physical start of RAM.
    pub ram_base: u64,
    /// Bytes of RAM.
    pub ram_size: u64,
    /// The kernel command line (`/chosen/bootargs`); must not contain NUL.
    pub bootargs: &'a str,
    /// The initrd, when the loader placed one.
    pub initrd: Option<InitrdRange>,
    /// The 16550 UART (also the console: `stdout-path`).
    pub uart: MmioDevice,
    /// The interrupt controller.
    pub plic: Plic,
    /// The virtio-mmio transports, one node each.
    pub virtio_mmio: &'a [MmioDevice],
    /// The VM generation ID device, when the VM has one.
    pub vmgenid: Option<MmioDevice>,
    /// `/cpus/timebase-frequency`: the host's, which the guest's `rdtime`
    /// counts at.
    pub timebase_hz: u32,
    /// Whether the harts advertise Sstc (the host has it).
    pub sstc: bool,
}

impl<'a> GuestPlatform<'a> {
    /// The standard board: RAM at [`RAM_BASE`], [`UART`], [`PLIC`], the
    /// given virtio-mmio slots, [`VMGENID`], and no initrd.
    pub fn standard(
        name: &'a VmName,
        vcpus: u8,
        ram_size: u64,
        bootargs: &'a str,
        virtio_mmio: &'a [MmioDevice],
    ) -> Self {
        GuestPlatform {
            name,
            vcpus,
            ram_base: RAM_BASE,
            ram_size,
            bootargs,
            initrd: None,
            uart: UART,
            plic: PLIC,
            virtio_mmio,
            vmgenid: Some(VMGENID),
            timebase_hz: TIMEBASE_HZ,
            sstc: false,
        }
    }
}

/// Virtio-mmio slot `index` of the standard board (0-based).
pub const fn virtio_mmio_slot(index: u8) -> MmioDevice {
    MmioDevice {
        base: VIRTIO_MMIO_BASE + index as u64 * VIRTIO_MMIO_SIZE,
        size: VIRTIO_MMIO_SIZE,
        irq: 1 + index as u32,
    }
}

/// Why no device tree was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestDtError {
    /// The buffer holds fewer bytes than the tree; `needed` is its size.
    BufferTooSmall {
        /// Bytes the tree takes.
        needed: usize,
    },
    /// The vCPU count is 0 or above [`MAX_VCPUS`].
    BadVcpuCount(u8),
    /// RAM is empty or runs past the end of the address space.
    BadRam,
    /// The initrd ends before it starts or lies outside RAM.
    BadInitrd,
    /// The bootargs contain a NUL byte, which would cut the string short.
    NulInBootargs,
    /// The timebase is 0 Hz.
    NoTimebase,
    /// A device's PLIC source is 0 or above the PLIC's `ndev`.
    IrqOutOfRange(u32),
    /// Two register windows (devices, PLIC or RAM) overlap, or one is empty
    /// or wraps; the value is the base of one of them.
    Overlap(u64),
}

impl fmt::Display for GuestDtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestDtError::BufferTooSmall { needed } => {
                write!(
                    f,
                    "device tree buffer too small: give at least {needed} bytes"
                )
            }
            GuestDtError::BadVcpuCount(n) => {
                write!(f, "{n} vCPUs: use 1..={MAX_VCPUS}")
            }
            GuestDtError::BadRam => f.write_str("guest RAM is empty or wraps the address space"),
            GuestDtError::BadInitrd => {
                f.write_str("initrd must end after it starts and lie inside guest RAM")
            }
            GuestDtError::NulInBootargs => f.write_str("bootargs contain a NUL byte: remove it"),
            GuestDtError::NoTimebase => f.write_str("timebase-frequency is 0 Hz: give the host's"),
            GuestDtError::IrqOutOfRange(irq) => {
                write!(f, "interrupt source {irq} is outside the PLIC's 1..=ndev")
            }
            GuestDtError::Overlap(base) => {
                write!(
                    f,
                    "the window at {base:#x} is empty or overlaps another: move it"
                )
            }
        }
    }
}

fn check(platform: &GuestPlatform<'_>) -> Result<(), GuestDtError> {
    if platform.vcpus == 0 || platform.vcpus > MAX_VCPUS {
        return Err(GuestDtError::BadVcpuCount(platform.vcpus));
    }
    let ram_end = platform
        .ram_base
        .checked_add(platform.ram_size)
        .filter(|_| platform.ram_size != 0)
        .ok_or(GuestDtError::BadRam)?;
    if platform.vmgenid.is_some() && platform.ram_size < GENID_FROM_END {
        return Err(GuestDtError::BadRam);
    }
    if let Some(initrd) = platform.initrd {
        let inside = platform.ram_base <= initrd.start && initrd.end <= ram_end;
        if initrd.end < initrd.start || !inside {
            return Err(GuestDtError::BadInitrd);
        }
    }
    if platform.bootargs.as_bytes().contains(&0) {
        return Err(GuestDtError::NulInBootargs);
    }
    if platform.timebase_hz == 0 {
        return Err(GuestDtError::NoTimebase);
    }
    let devices = platform.virtio_mmio.iter().chain(platform.vmgenid.iter());
    for device in core::iter::once(&platform.uart).chain(devices) {
        if device.irq == 0 || device.irq > platform.plic.ndev {
            return Err(GuestDtError::IrqOutOfRange(device.irq));
        }
    }
    check_windows(platform)
}

/// Every window is non-empty, does not wrap, and overlaps no other one (so
/// every node's unit address is unique).
fn check_windows(platform: &GuestPlatform<'_>) -> Result<(), GuestDtError> {
    let fixed = [
        (platform.ram_base, platform.ram_size),
        (platform.plic.base, platform.plic.size),
        (platform.uart.base, platform.uart.size),
    ];
    let devices = platform.virtio_mmio.iter().chain(platform.vmgenid.iter());
    let windows = || {
        fixed
            .into_iter()
            .chain(devices.clone().map(|d| (d.base, d.size)))
    };
    for (i, (base, size)) in windows().enumerate() {
        let end = base
            .checked_add(size)
            .filter(|_| size != 0)
            .ok_or(GuestDtError::Overlap(base))?;
        let clash = windows()
            .enumerate()
            .any(|(j, (b, s))| j != i && b < end && base < b.saturating_add(s));
        if clash {
            return Err(GuestDtError::Overlap(base));
        }
    }
    Ok(())
}

/// Writes `platform`'s device tree to the start of `buf` and returns its
/// length. On error `buf` may hold a partial tree that is not valid.
pub fn generate(platform: &GuestPlatform<'_>, buf: &mut [u8]) -> Result<usize, GuestDtError> {
    check(platform)?;
    let mut w = FdtWriter::new(buf);
    w.begin_node("");
    w.prop_cells(Prop::AddressCells, &[2]);
    w.prop_cells(Prop::SizeCells, &[2]);
    w.prop_strings(Prop::Compatible, &["riscv-virtio"]);
    w.prop_string(Prop::Model, &["mica,", platform.name.as_str()]);
    chosen(&mut w, platform);
    cpus(&mut w, platform);
    w.begin_node_at("memory", platform.ram_base);
    w.prop_strings(Prop::DeviceType, &["memory"]);
    w.prop_u64s(Prop::Reg, &[platform.ram_base, platform.ram_size]);
    w.end_node();
    if platform.vmgenid.is_some() {
        reserved_memory(&mut w, platform);
    }
    soc(&mut w, platform);
    w.end_node();
    w.finish()
        .map_err(|needed| GuestDtError::BufferTooSmall { needed })
}

fn chosen(w: &mut FdtWriter<'_>, platform: &GuestPlatform<'_>) {
    w.begin_node("chosen");
    w.prop_string(Prop::Bootargs, &[platform.bootargs]);
    w.prop_string(Prop::StdoutPath, &[STDOUT_PATH]);
    if let Some(initrd) = platform.initrd {
        w.prop_u64s(Prop::InitrdStart, &[initrd.start]);
        w.prop_u64s(Prop::InitrdEnd, &[initrd.end]);
    }
    w.prop_string(Prop::VmName, &[platform.name.as_str()]);
    w.end_node();
}

/// `/reserved-memory`: the generation-ID page, which the guest must not use
/// as ordinary RAM.
fn reserved_memory(w: &mut FdtWriter<'_>, platform: &GuestPlatform<'_>) {
    let page = genid_address(platform.ram_base, platform.ram_size);
    w.begin_node("reserved-memory");
    w.prop_cells(Prop::AddressCells, &[2]);
    w.prop_cells(Prop::SizeCells, &[2]);
    w.prop_empty(Prop::Ranges);
    w.begin_node_at("vmgenid", page);
    w.prop_u64s(Prop::Reg, &[page, GENID_PAGE]);
    w.prop_empty(Prop::NoMap);
    w.end_node();
    w.end_node();
}

fn cpus(w: &mut FdtWriter<'_>, platform: &GuestPlatform<'_>) {
    w.begin_node("cpus");
    w.prop_cells(Prop::AddressCells, &[1]);
    w.prop_cells(Prop::SizeCells, &[0]);
    w.prop_cells(Prop::TimebaseFrequency, &[platform.timebase_hz]);
    let mut extensions = [""; GUEST_ISA_EXTENSIONS.len() + 1];
    extensions[..GUEST_ISA_EXTENSIONS.len()].copy_from_slice(&GUEST_ISA_EXTENSIONS);
    extensions[GUEST_ISA_EXTENSIONS.len()] = "sstc";
    let (isa, extensions) = if platform.sstc {
        (GUEST_ISA_SSTC, &extensions[..])
    } else {
        (GUEST_ISA, &extensions[..GUEST_ISA_EXTENSIONS.len()])
    };
    for hart in 0..u32::from(platform.vcpus) {
        w.begin_node_at("cpu", u64::from(hart));
        w.prop_strings(Prop::DeviceType, &["cpu"]);
        w.prop_cells(Prop::Reg, &[hart]);
        w.prop_strings(Prop::Status, &["okay"]);
        w.prop_strings(Prop::Compatible, &["riscv"]);
        w.prop_strings(Prop::RiscvIsa, &[isa]);
        w.prop_strings(Prop::RiscvIsaBase, &[GUEST_ISA_BASE]);
        w.prop_strings(Prop::RiscvIsaExtensions, extensions);
        w.prop_strings(Prop::MmuType, &["riscv,sv39"]);
        w.begin_node("interrupt-controller");
        w.prop_cells(Prop::AddressCells, &[0]);
        w.prop_cells(Prop::InterruptCells, &[1]);
        w.prop_empty(Prop::InterruptController);
        w.prop_strings(Prop::Compatible, &["riscv,cpu-intc"]);
        w.prop_cells(Prop::Phandle, &[cpu_intc_phandle(hart)]);
        w.end_node();
        w.end_node();
    }
    w.end_node();
}

/// A device node under `/soc` wired to the PLIC.
fn device(w: &mut FdtWriter<'_>, name: &str, compatible: &str, device: &MmioDevice) {
    w.begin_node_at(name, device.base);
    w.prop_strings(Prop::Compatible, &[compatible]);
    w.prop_u64s(Prop::Reg, &[device.base, device.size]);
    w.prop_cells(Prop::Interrupts, &[device.irq]);
    w.prop_cells(Prop::InterruptParent, &[PLIC_PHANDLE]);
}

fn soc(w: &mut FdtWriter<'_>, platform: &GuestPlatform<'_>) {
    w.begin_node("soc");
    w.prop_cells(Prop::AddressCells, &[2]);
    w.prop_cells(Prop::SizeCells, &[2]);
    w.prop_strings(Prop::Compatible, &["simple-bus"]);
    w.prop_empty(Prop::Ranges);

    device(w, "serial", "ns16550a", &platform.uart);
    w.prop_cells(Prop::ClockFrequency, &[UART_CLOCK_HZ]);
    w.end_node();

    let plic = &platform.plic;
    w.begin_node_at("plic", plic.base);
    w.prop_strings(Prop::Compatible, &["sifive,plic-1.0.0", "riscv,plic0"]);
    w.prop_u64s(Prop::Reg, &[plic.base, plic.size]);
    w.prop_cells(Prop::AddressCells, &[0]);
    w.prop_cells(Prop::InterruptCells, &[1]);
    w.prop_empty(Prop::InterruptController);
    let harts = u32::from(platform.vcpus);
    let contexts = (0..harts).flat_map(|hart| [cpu_intc_phandle(hart), S_EXTERNAL_IRQ]);
    w.prop_cells_iter(Prop::InterruptsExtended, 2 * harts as usize, contexts);
    w.prop_cells(Prop::RiscvNdev, &[plic.ndev]);
    w.prop_cells(Prop::Phandle, &[PLIC_PHANDLE]);
    w.end_node();

    for slot in platform.virtio_mmio {
        device(w, "virtio_mmio", "virtio,mmio", slot);
        w.end_node();
    }
    if let Some(genid) = &platform.vmgenid {
        let id = genid_address(platform.ram_base, platform.ram_size);
        w.begin_node_at("vmgenid", genid.base);
        w.prop_strings(Prop::Compatible, &["microsoft,vmgenid"]);
        w.prop_u64s(Prop::Reg, &[id, GENID_BYTES, genid.base, genid.size]);
        w.prop_cells(Prop::Interrupts, &[genid.irq]);
        w.prop_cells(Prop::InterruptParent, &[PLIC_PHANDLE]);
        w.end_node();
    }
    w.end_node();
}

#[cfg(test)]
mod tests;
