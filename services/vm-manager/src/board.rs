//! What a guest sees, per architecture: the [`GuestBoard`] names the
//! devices a VM gets (where, in which address space) and the boot
//! description the kernel copies into the top page of its RAM
//! (`vm_set_dtb`).
//!
//! - [`GuestBoard::RiscvVirt`]: QEMU-virt-like; the PLIC, the 16550, the
//!   vmgenid device, a virtio-mmio entropy device, a virtio-mmio console
//!   (Linux's `/dev/hvc0`) and a virtio-mmio network card (Linux's `eth0`,
//!   on the device service's switch) in MMIO (`guest_dt`), described by a
//!   generated device tree.
//! - [`GuestBoard::X86Pc`]: RAM from 0, the 16550 as COM1 at port 0x3f8
//!   (`Space::Pio`), and a small boot-info block instead of a device tree
//!   (layout below).
//!
//! The x86 boot-info block, all little-endian: bytes 0-3 [`X86_BOOT_MAGIC`]
//! (`MICA`), 4-7 the length `n` of the VM name, 8-15 the guest RAM size in
//! bytes, 16-19 the vCPU count, then the `n` name bytes (ASCII, no NUL).
//! The kernel puts it in the top page of guest RAM and starts the vCPU
//! with its guest-physical address in `rdi`.

use ipc::devices::DeviceKind;
use ipc::{Space, syscall};

use crate::guest_dt::{self, GuestDtError, GuestPlatform, InitrdRange};
use crate::name::VmName;

/// First bytes of the x86 boot-info block.
pub const X86_BOOT_MAGIC: [u8; 4] = *b"MICA";
/// Bytes of the x86 boot-info block before the name.
pub const X86_BOOT_HEADER: usize = 20;
/// COM1's first port on the x86 board.
pub const COM1: u64 = 0x3f8;
/// Ports of COM1 (0x3f8..0x400).
pub const COM1_PORTS: u64 = 8;
/// COM1's legacy interrupt line.
pub const COM1_IRQ: u32 = 4;

/// One device of a board: what, in which address space, where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardDevice {
    /// The device model.
    pub kind: DeviceKind,
    /// MMIO or port I/O.
    pub space: Space,
    /// First address or port.
    pub base: u64,
    /// Bytes (or ports) of its window, registered with the ioreq service.
    pub size: u64,
    /// Its interrupt line.
    pub irq: u32,
}

/// The virtio-mmio slots a RISC-V VM with a disk gets, in the device tree
/// and on the bus: slot 0 is its entropy device (virtio-rng, fed from the
/// host's real entropy), which Linux reads as `/dev/hwrng`; slot 1 its
/// virtio-blk device ([`RISCV_DISK`]); slot 2 its virtio console
/// ([`RISCV_CONSOLE`], Linux's `/dev/hvc0`); slot 3 its network card
/// ([`RISCV_NIC`], Linux's `eth0`).
const RISCV_VIRTIO_WITH_DISK: [guest_dt::MmioDevice; 4] = [
    guest_dt::virtio_mmio_slot(0),
    guest_dt::virtio_mmio_slot(1),
    guest_dt::virtio_mmio_slot(2),
    guest_dt::virtio_mmio_slot(3),
];

/// The virtio-mmio slots of a RISC-V VM without a disk: slot 1 stays
/// empty, so every device keeps its place (and its PLIC source).
const RISCV_VIRTIO: [guest_dt::MmioDevice; 3] = [
    RISCV_VIRTIO_WITH_DISK[0],
    RISCV_VIRTIO_WITH_DISK[2],
    RISCV_VIRTIO_WITH_DISK[3],
];

/// Where a RISC-V VM's disk is: virtio-mmio slot 1 (PLIC source 2).
pub const RISCV_DISK: guest_dt::MmioDevice = RISCV_VIRTIO_WITH_DISK[1];

/// Where a RISC-V VM's virtio console is: virtio-mmio slot 2 (PLIC
/// source 3).
pub const RISCV_CONSOLE: guest_dt::MmioDevice = RISCV_VIRTIO_WITH_DISK[2];

/// Where a RISC-V VM's network card is: virtio-mmio slot 3 (PLIC source
/// 4). Its MAC address is `02:4d:49:43:41:NN`, NN the low byte of the VM's
/// id (the device service's `virtio::net::mac_for`).
pub const RISCV_NIC: guest_dt::MmioDevice = RISCV_VIRTIO_WITH_DISK[3];

const RISCV_DEVICES: [BoardDevice; 6] = [
    // First, so the other devices' lines have somewhere to go; it raises no
    // line itself (irq 0) and drives the VM's external interrupt.
    BoardDevice {
        kind: DeviceKind::Plic,
        space: Space::Mmio,
        base: guest_dt::PLIC.base,
        size: guest_dt::PLIC.size,
        irq: 0,
    },
    BoardDevice {
        kind: DeviceKind::Uart16550,
        space: Space::Mmio,
        base: guest_dt::UART.base,
        size: guest_dt::UART.size,
        irq: guest_dt::UART.irq,
    },
    BoardDevice {
        kind: DeviceKind::VmGenId,
        space: Space::Mmio,
        base: guest_dt::VMGENID.base,
        size: guest_dt::VMGENID.size,
        irq: guest_dt::VMGENID.irq,
    },
    BoardDevice {
        kind: DeviceKind::VirtioRng,
        space: Space::Mmio,
        base: RISCV_VIRTIO[0].base,
        size: RISCV_VIRTIO[0].size,
        irq: RISCV_VIRTIO[0].irq,
    },
    BoardDevice {
        kind: DeviceKind::VirtioConsole,
        space: Space::Mmio,
        base: RISCV_CONSOLE.base,
        size: RISCV_CONSOLE.size,
        irq: RISCV_CONSOLE.irq,
    },
    BoardDevice {
        kind: DeviceKind::VirtioNet,
        space: Space::Mmio,
        base: RISCV_NIC.base,
        size: RISCV_NIC.size,
        irq: RISCV_NIC.irq,
    },
];

const X86_DEVICES: [BoardDevice; 1] = [BoardDevice {
    kind: DeviceKind::Uart16550,
    space: Space::Pio,
    base: COM1,
    size: COM1_PORTS,
    irq: COM1_IRQ,
}];

/// Why a boot description could not be written: the buffer was too small
/// (`needed` bytes would do), or the description is invalid (`needed` 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootInfoTooLarge {
    /// Bytes the description needs; 0 if no buffer would do.
    pub needed: usize,
}

/// What a VM's boot description says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestBoot<'a> {
    /// The VM's name.
    pub name: &'a VmName,
    /// It has a disk (a virtio-blk device in [`RISCV_DISK`]'s slot).
    pub disk: bool,
    /// vCPUs.
    pub vcpus: u8,
    /// Bytes of RAM.
    pub ram_bytes: u64,
    /// The kernel command line ("" for none).
    pub bootargs: &'a str,
    /// Where the initrd was loaded, if any (guest-physical).
    pub initrd: Option<InitrdRange>,
    /// The host's timebase, which the guest's `rdtime` counts at.
    pub timebase_hz: u32,
    /// Whether the host has Sstc.
    pub sstc: bool,
}

/// The platform a guest sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestBoard {
    /// RISC-V, QEMU-virt-like, described by a device tree.
    RiscvVirt,
    /// x86 PC-like: COM1 in port space, a boot-info block.
    X86Pc,
}

impl GuestBoard {
    /// The board of the architecture this is built for (the task's).
    #[cfg(target_arch = "x86_64")]
    pub const NATIVE: GuestBoard = GuestBoard::X86Pc;
    /// The board of the architecture this is built for (the task's).
    #[cfg(not(target_arch = "x86_64"))]
    pub const NATIVE: GuestBoard = GuestBoard::RiscvVirt;

    /// The devices every VM on this board gets, in attach order.
    pub fn devices(self) -> &'static [BoardDevice] {
        match self {
            GuestBoard::RiscvVirt => &RISCV_DEVICES,
            GuestBoard::X86Pc => &X86_DEVICES,
        }
    }

    /// Where a VM's disk number `disk` goes on this board: a virtio-blk
    /// device in [`RISCV_DISK`]'s slot; `None` on the x86 board, which has
    /// no virtio-mmio bus.
    pub fn disk_device(self, disk: u8) -> Option<BoardDevice> {
        match self {
            GuestBoard::RiscvVirt => Some(BoardDevice {
                kind: DeviceKind::VirtioBlk { disk },
                space: Space::Mmio,
                base: RISCV_DISK.base,
                size: RISCV_DISK.size,
                irq: RISCV_DISK.irq,
            }),
            GuestBoard::X86Pc => None,
        }
    }

    /// Writes VM `name`'s boot description into `out` (a device tree, or
    /// the x86 boot-info block); returns its length. `BootInfoTooLarge`
    /// says how many bytes it needs (0 when it cannot be written at all).
    pub fn boot_info(
        self,
        guest: &GuestBoot<'_>,
        out: &mut [u8],
    ) -> Result<usize, BootInfoTooLarge> {
        match self {
            GuestBoard::RiscvVirt => {
                let mut board = GuestPlatform::standard(
                    guest.name,
                    guest.vcpus,
                    guest.ram_bytes,
                    guest.bootargs,
                    if guest.disk {
                        &RISCV_VIRTIO_WITH_DISK
                    } else {
                        &RISCV_VIRTIO
                    },
                );
                board.initrd = guest.initrd;
                board.timebase_hz = guest.timebase_hz;
                board.sstc = guest.sstc;
                guest_dt::generate(&board, out).map_err(|e| match e {
                    GuestDtError::BufferTooSmall { needed } => BootInfoTooLarge { needed },
                    _ => BootInfoTooLarge { needed: 0 },
                })
            }
            GuestBoard::X86Pc => {
                x86_boot_info(guest.name.as_str(), guest.vcpus, guest.ram_bytes, out)
            }
        }
    }

    /// Where a raw guest image is loaded and entered, from the start of RAM.
    pub fn image_offset(self) -> u64 {
        match self {
            GuestBoard::RiscvVirt => syscall::RISCV_GUEST_IMAGE_OFFSET,
            GuestBoard::X86Pc => syscall::X86_GUEST_IMAGE_OFFSET,
        }
    }

    /// Where guest RAM starts on this board.
    pub fn ram_base(self) -> u64 {
        match self {
            GuestBoard::RiscvVirt => syscall::RISCV_GUEST_RAM_BASE,
            GuestBoard::X86Pc => syscall::X86_GUEST_RAM_BASE,
        }
    }
}

fn x86_boot_info(
    name: &str,
    vcpus: u8,
    ram_bytes: u64,
    out: &mut [u8],
) -> Result<usize, BootInfoTooLarge> {
    let len = X86_BOOT_HEADER + name.len();
    let out = out.get_mut(..len).ok_or(BootInfoTooLarge { needed: len })?;
    let name_len = u32::try_from(name.len()).map_err(|_| BootInfoTooLarge { needed: 0 })?;
    out[..4].copy_from_slice(&X86_BOOT_MAGIC);
    out[4..8].copy_from_slice(&name_len.to_le_bytes());
    out[8..16].copy_from_slice(&ram_bytes.to_le_bytes());
    out[16..20].copy_from_slice(&u32::from(vcpus).to_le_bytes());
    out[X86_BOOT_HEADER..].copy_from_slice(name.as_bytes());
    Ok(len)
}
