//! The `virtio` phase: the guest drives its virtio-rng (virtio-mmio
//! version 2, slot 0) as a driver would, but hands the device a buffer
//! outside its RAM. The device must refuse it by going to
//! DEVICE_NEEDS_RESET (the device service reaches guest RAM only through
//! the kernel, which refuses the range), never a fault or a hang; after a
//! reset the same device fills a buffer in RAM with random bytes. With
//! VIRTIO_F_INDIRECT_DESC negotiated it then hands the device indirect
//! tables that loop, nest, or lie outside RAM (each NEEDS_RESET), and
//! finally a good one that gets random bytes.

use crate::access;

/// The virtio-rng's window (slot 0 of the board).
const BASE: usize = 0x1000_1000;

// virtio-mmio v2 registers.
const MAGIC: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DEVICE_FEATURES: usize = 0x010;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const STATUS: usize = 0x070;
const QUEUE_DESC: usize = 0x080;
const QUEUE_AVAIL: usize = 0x090;
const QUEUE_USED: usize = 0x0a0;

const ACKNOWLEDGE: usize = 1;
const DRIVER: usize = 2;
const DRIVER_OK: usize = 4;
const FEATURES_OK: usize = 8;
const NEEDS_RESET: usize = 0x40;
/// Descriptor flag: the chain goes on at `next`.
const DESC_NEXT: u16 = 1;
/// Descriptor flag: the device writes the buffer.
const DESC_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of descriptors.
const DESC_INDIRECT: u16 = 4;
/// VIRTIO_F_INDIRECT_DESC, in the low word of the features.
const F_INDIRECT_DESC: usize = 1 << 28;
/// Far outside the guest's RAM (and of every other VM's).
const OUTSIDE: usize = 0x40_0000_0000;

/// Queue entries the phase uses.
const ENTRIES: usize = 4;

/// A split virtqueue and a buffer, page-aligned, in the guest's RAM (its
/// addresses are guest-physical: test guests run with paging off).
#[repr(C, align(4096))]
struct Ring {
    desc: [[u64; 2]; ENTRIES],
    avail: [u16; 3 + ENTRIES],
    _pad: [u8; 64],
    used: [u32; 2 + 2 * ENTRIES],
    buffer: [u8; 64],
    table: [[u64; 2]; 2],
}

static mut RING: Ring = Ring {
    desc: [[0; 2]; ENTRIES],
    avail: [0; 3 + ENTRIES],
    _pad: [0; 64],
    used: [0; 2 + 2 * ENTRIES],
    buffer: [0; 64],
    table: [[0; 2]; 2],
};

/// A descriptor as the table holds it.
fn desc(addr: usize, len: u32, flags: u16, next: u16) -> [u64; 2] {
    [
        addr as u64,
        u64::from(len) | u64::from(flags) << 32 | u64::from(next) << 48,
    ]
}

/// The guest-physical addresses of RING's buffer and indirect table.
fn addresses() -> (usize, usize) {
    let ring = &raw const RING;
    // SAFETY: only the fields' addresses are taken.
    unsafe {
        (
            (&raw const (*ring).buffer) as usize,
            (&raw const (*ring).table) as usize,
        )
    }
}

fn read(reg: usize) -> usize {
    access::load(BASE + reg, 4)
}

fn write(reg: usize, value: usize) {
    access::store(BASE + reg, 4, value);
}

/// Negotiates VERSION_1, sets queue 0 up on `RING` with one descriptor
/// for `len` bytes at guest-physical `buffer`, and notifies. Returns the
/// status register after the notification.
fn one_request(buffer: usize, len: u32) -> Result<usize, &'static str> {
    one_chain(desc(buffer, len, DESC_WRITE, 0), [[0; 2]; 2], 0)
}

/// Negotiates VERSION_1 and the low-word features `low`, sets queue 0 up
/// on `RING` with `first` as descriptor 0 and `table` in RING's indirect
/// table, and notifies. Returns the status register after the
/// notification.
fn one_chain(first: [u64; 2], table: [[u64; 2]; 2], low: usize) -> Result<usize, &'static str> {
    write(STATUS, 0);
    write(STATUS, ACKNOWLEDGE);
    write(STATUS, ACKNOWLEDGE | DRIVER);
    write(DEVICE_FEATURES_SEL, 1);
    if read(DEVICE_FEATURES) & 1 == 0 {
        return Err("no VERSION_1 offered");
    }
    write(DEVICE_FEATURES_SEL, 0);
    if read(DEVICE_FEATURES) & low != low {
        return Err("the features asked for are not offered");
    }
    write(DRIVER_FEATURES_SEL, 0);
    write(DRIVER_FEATURES, low);
    write(DRIVER_FEATURES_SEL, 1);
    write(DRIVER_FEATURES, 1);
    write(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    if read(STATUS) & FEATURES_OK == 0 {
        return Err("FEATURES_OK refused");
    }
    write(QUEUE_SEL, 0);
    if read(QUEUE_NUM_MAX) < ENTRIES {
        return Err("queue too small");
    }
    let ring = &raw mut RING;
    // SAFETY: the guest is single-hart and the device touches RING only
    // during the notification below, inside the store that traps.
    let r = unsafe { &mut *ring };
    *r = Ring {
        desc: [[0; 2]; ENTRIES],
        avail: [0; 3 + ENTRIES],
        _pad: [0; 64],
        used: [0; 2 + 2 * ENTRIES],
        buffer: [0; 64],
        table,
    };
    r.desc[0] = first;
    // avail: flags, idx = 1, ring[0] = descriptor 0.
    r.avail[1] = 1;
    let addr = |p: *const u8| p as usize;
    write(QUEUE_NUM, ENTRIES);
    for (reg, at) in [
        (QUEUE_DESC, addr(r.desc.as_ptr().cast())),
        (QUEUE_AVAIL, addr(r.avail.as_ptr().cast())),
        (QUEUE_USED, addr(r.used.as_ptr().cast())),
    ] {
        write(reg, at & 0xffff_ffff);
        write(reg + 4, at >> 32);
    }
    write(QUEUE_READY, 1);
    write(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    write(QUEUE_NOTIFY, 0);
    Ok(read(STATUS))
}

/// The phase: `Ok` with what it saw, or what went wrong.
pub fn run() -> Result<&'static str, &'static str> {
    if read(MAGIC) != 0x7472_6976 || read(VERSION) != 2 || read(DEVICE_ID) != 4 {
        return Err("no virtio-mmio v2 entropy device at slot 0");
    }
    // Far outside the guest's RAM (and of every other VM's).
    let status = one_request(0x40_0000_0000, 16)?;
    if status & NEEDS_RESET == 0 {
        return Err("a buffer outside RAM did not put the device in NEEDS_RESET");
    }
    let ring = &raw const RING;
    // SAFETY: read after the device finished (the notification returned).
    let used_idx = unsafe { (*ring).used[0] >> 16 };
    if used_idx != 0 {
        return Err("the refused request was completed");
    }
    // A reset, then a buffer in RAM.
    // SAFETY: the buffer's address, in RAM; nothing else refers to it.
    let buffer = unsafe { (&raw const (*ring).buffer) as usize };
    let status = one_request(buffer, 64)?;
    if status & NEEDS_RESET != 0 {
        return Err("the device stayed in NEEDS_RESET after a reset");
    }
    // SAFETY: as above.
    let r = unsafe { &*ring };
    if r.used[0] >> 16 != 1 || r.used[2] == 0 {
        return Err("no used entry with bytes after the reset");
    }
    if r.buffer.iter().all(|&b| b == 0) {
        return Err("the device wrote no random bytes");
    }
    indirect()?;
    Ok(
        "bad buffer, looping/nested/outside indirect tables: NEEDS_RESET, none used; after reset direct and indirect buffers got random bytes",
    )
}

/// Indirect tables: bad ones fail the device, a good one is served.
fn indirect() -> Result<(), &'static str> {
    let (buffer, table) = addresses();
    let entry = |next: u16| desc(buffer, 32, DESC_WRITE | DESC_NEXT, next);
    let bad = [
        // 0 -> 1 -> 0 -> ...
        (desc(table, 32, DESC_INDIRECT, 0), [entry(1), entry(0)]),
        // A table inside the table.
        (
            desc(table, 32, DESC_INDIRECT, 0),
            [desc(table, 32, DESC_INDIRECT, 0), [0; 2]],
        ),
        // The table outside RAM.
        (desc(OUTSIDE, 32, DESC_INDIRECT, 0), [[0; 2]; 2]),
        // A buffer outside RAM in a good table.
        (
            desc(table, 16, DESC_INDIRECT, 0),
            [desc(OUTSIDE, 32, DESC_WRITE, 0), [0; 2]],
        ),
    ];
    for (first, entries) in bad {
        let status = one_chain(first, entries, F_INDIRECT_DESC)?;
        if status & NEEDS_RESET == 0 {
            return Err("a bad indirect table did not put the device in NEEDS_RESET");
        }
        let ring = &raw const RING;
        // SAFETY: read after the device finished (the notification returned).
        if unsafe { (*ring).used[0] >> 16 } != 0 {
            return Err("a bad indirect table was completed");
        }
    }
    let good = [
        desc(buffer, 32, DESC_WRITE | DESC_NEXT, 1),
        desc(buffer + 32, 32, DESC_WRITE, 0),
    ];
    let status = one_chain(desc(table, 32, DESC_INDIRECT, 0), good, F_INDIRECT_DESC)?;
    if status & NEEDS_RESET != 0 {
        return Err("a good indirect table put the device in NEEDS_RESET");
    }
    let ring = &raw const RING;
    // SAFETY: read after the device finished (the notification returned).
    let r = unsafe { &*ring };
    if r.used[0] >> 16 != 1 || r.used[2] != 64 {
        return Err("a good indirect table was not used in full (64 bytes)");
    }
    if r.buffer[32..].iter().all(|&b| b == 0) {
        return Err("the device wrote no random bytes into the table's second buffer");
    }
    Ok(())
}
