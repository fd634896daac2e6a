//! Loads and stores of each width at any address, and the addresses the
//! hostile guest tries: every device window of Mica's guest board (at
//! aligned and unaligned offsets, past the device's registers and across
//! the window's end) and guest-physical addresses with nothing there.

/// Access widths in bytes.
pub const WIDTHS: [usize; 4] = [1, 2, 4, 8];

/// A load of `width` bytes at `addr` (0 when it trapped).
pub fn load(addr: usize, width: usize) -> usize {
    let value: usize;
    // SAFETY: deliberately at any address: a device window, or nothing
    // (the hypervisor answers or injects an access fault, which the
    // guest's vector takes and steps over, leaving `value` 0). It does
    // not alias anything Rust owns.
    unsafe {
        match width {
            1 => {
                core::arch::asm!("li {v}, 0", "lbu {v}, 0({a})", a = in(reg) addr, v = out(reg) value, options(nostack))
            }
            2 => {
                core::arch::asm!("li {v}, 0", "lhu {v}, 0({a})", a = in(reg) addr, v = out(reg) value, options(nostack))
            }
            4 => {
                core::arch::asm!("li {v}, 0", "lwu {v}, 0({a})", a = in(reg) addr, v = out(reg) value, options(nostack))
            }
            _ => {
                core::arch::asm!("li {v}, 0", "ld {v}, 0({a})", a = in(reg) addr, v = out(reg) value, options(nostack))
            }
        }
    }
    value
}

/// A store of `width` bytes of `value` at `addr`.
pub fn store(addr: usize, width: usize, value: usize) {
    // SAFETY: as `load`: a device window or nothing; never RAM Rust owns.
    unsafe {
        match width {
            1 => {
                core::arch::asm!("sb {v}, 0({a})", a = in(reg) addr, v = in(reg) value, options(nostack))
            }
            2 => {
                core::arch::asm!("sh {v}, 0({a})", a = in(reg) addr, v = in(reg) value, options(nostack))
            }
            4 => {
                core::arch::asm!("sw {v}, 0({a})", a = in(reg) addr, v = in(reg) value, options(nostack))
            }
            _ => {
                core::arch::asm!("sd {v}, 0({a})", a = in(reg) addr, v = in(reg) value, options(nostack))
            }
        }
    }
}

/// A device window: its name, base and size (the kernel's
/// `GUEST_MMIO_WINDOWS`, the device tree Mica writes).
pub struct Window {
    pub name: &'static str,
    pub base: usize,
    pub size: usize,
}

/// The 16550's line control register (8N1 = 3) and its offset.
pub const UART_LCR: usize = 0x1000_0003;
pub const LCR_8N1: usize = 3;

pub const WINDOWS: [Window; 11] = [
    Window {
        name: "plic",
        base: 0x0c00_0000,
        size: 0x0400_0000,
    },
    Window {
        name: "uart",
        base: 0x1000_0000,
        size: 0x1000,
    },
    Window {
        name: "virtio0",
        base: 0x1000_1000,
        size: 0x1000,
    },
    Window {
        name: "virtio1",
        base: 0x1000_2000,
        size: 0x1000,
    },
    Window {
        name: "virtio2",
        base: 0x1000_3000,
        size: 0x1000,
    },
    Window {
        name: "virtio3",
        base: 0x1000_4000,
        size: 0x1000,
    },
    Window {
        name: "virtio4",
        base: 0x1000_5000,
        size: 0x1000,
    },
    Window {
        name: "virtio5",
        base: 0x1000_6000,
        size: 0x1000,
    },
    Window {
        name: "virtio6",
        base: 0x1000_7000,
        size: 0x1000,
    },
    Window {
        name: "virtio7",
        base: 0x1000_8000,
        size: 0x1000,
    },
    Window {
        name: "vmgenid",
        base: 0x1010_1000,
        size: 0x1000,
    },
];

/// Offsets into each window: registers, unaligned ones, past every
/// device's registers, and the last bytes (a wide access there crosses
/// the window's end).
pub const OFFSETS: [usize; 12] = [0, 1, 2, 3, 4, 5, 7, 0x50, 0x70, 0x100, 0x800, 0xff8];
/// Offsets from the window's end: the last byte, and a doubleword that
/// ends past it.
pub const TAIL_OFFSETS: [usize; 2] = [1, 4];

/// Guest-physical addresses with neither RAM nor a device: below RAM, the
/// gaps between device windows, past the end of a 16 MiB RAM (where the
/// next VM's frames may lie in host memory), above 4 GiB, the top of the
/// 41-bit guest-physical space and beyond it.
pub const NOWHERE: [usize; 10] = [
    0x0,
    0x0200_0000,
    0x1000_9000,
    0x1010_0ff8,
    0x2800_0000,
    0x7fff_fff8,
    0x8100_0000,
    0x1_0000_0000,
    0x1ff_ffff_fff8,
    0xffff_ffff_ffff_fff0,
];
