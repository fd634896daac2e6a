//! Multiboot information as QEMU and GRUB lay it out, and malformed variants:
//! each must be an error naming what is wrong, never a panic.
#![allow(clippy::cast_possible_truncation)] // test memory is a few KiB

extern crate std;

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// Test RAM: `bytes` at physical address `base`.
struct Ram {
    base: u64,
    bytes: Vec<u8>,
}

impl PhysMemory for Ram {
    fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        self.bytes.get(start..start.checked_add(len)?)
    }
}

const BASE: u64 = 0x9000;
const INFO: u64 = BASE;
const MMAP: u64 = BASE + 0x100;
const MODS: u64 = BASE + 0x200;
const CMDLINE: u64 = BASE + 0x300;
const MOD_NAME: u64 = BASE + 0x380;

impl Ram {
    fn new() -> Ram {
        Ram {
            base: BASE,
            bytes: vec![0; 0x1000],
        }
    }

    fn put(&mut self, addr: u64, data: &[u8]) {
        let at = (addr - self.base) as usize;
        self.bytes[at..at + data.len()].copy_from_slice(data);
    }

    fn put_u32(&mut self, addr: u64, value: u32) {
        self.put(addr, &value.to_le_bytes());
    }
}

fn mmap_entry(base: u64, len: u64, kind: u32) -> Vec<u8> {
    let mut e = 20u32.to_le_bytes().to_vec();
    e.extend_from_slice(&base.to_le_bytes());
    e.extend_from_slice(&len.to_le_bytes());
    e.extend_from_slice(&kind.to_le_bytes());
    e
}

/// What QEMU's `-kernel` loader gives a 256 MiB machine with `-append` and
/// one `-initrd` module.
fn qemu_like() -> Ram {
    let mut ram = Ram::new();
    ram.put_u32(INFO, HAS_MEM | HAS_CMDLINE | HAS_MODS | HAS_MMAP);
    ram.put_u32(INFO + 4, 639);
    ram.put_u32(INFO + 8, 261_120);
    ram.put_u32(INFO + 16, CMDLINE as u32);
    ram.put_u32(INFO + 20, 1);
    ram.put_u32(INFO + 24, MODS as u32);
    let mut map = mmap_entry(0, 0x9_fc00, 1);
    map.extend(mmap_entry(0x9_fc00, 0x400, 2));
    map.extend(mmap_entry(0xf_0000, 0x1_0000, 2));
    map.extend(mmap_entry(0x10_0000, 0xfee_0000, 1));
    map.extend(mmap_entry(0xfffc_0000, 0x4_0000, 2));
    ram.put_u32(INFO + 44, map.len() as u32);
    ram.put_u32(INFO + 48, MMAP as u32);
    ram.put(MMAP, &map);
    ram.put_u32(MODS, 0x20_0000);
    ram.put_u32(MODS + 4, 0x23_0000);
    ram.put_u32(MODS + 8, MOD_NAME as u32);
    ram.put(CMDLINE, b"mica console=com1\0");
    ram.put(MOD_NAME, b"boot.img\0");
    ram
}

fn parse(ram: &Ram) -> Result<MultibootInfo<'_>, MultibootError> {
    MultibootInfo::parse(ram, BOOTLOADER_MAGIC, INFO)
}

#[test]
fn qemu_layout_gives_available_ram_cmdline_and_boot_image() {
    let ram = qemu_like();
    let info = parse(&ram).unwrap();
    assert_eq!(
        info.memory.as_slice(),
        &[
            MemRange::new(0, 0x9_fc00),
            MemRange::new(0x10_0000, 0xfee_0000)
        ]
    );
    assert_eq!(info.cmdline, "mica console=com1");
    assert_eq!(info.cmdline_range, MemRange::new(CMDLINE, 18));
    assert_eq!(
        info.modules(),
        &[Module {
            range: MemRange::new(0x20_0000, 0x3_0000),
            name: "boot.img"
        }]
    );
    let machine = info.machine();
    assert_eq!(machine.boot_image, Some(MemRange::new(0x20_0000, 0x3_0000)));
    assert_eq!(
        machine.reserved.as_slice(),
        &[MemRange::new(0x20_0000, 0x3_0000)]
    );
    assert_eq!(machine.cpu_count, None);
    assert_eq!(machine.memory_bytes() >> 20, 255);
}

#[test]
fn without_a_memory_map_the_lower_and_upper_sizes_are_used() {
    let mut ram = qemu_like();
    ram.put_u32(INFO, HAS_MEM);
    let info = parse(&ram).unwrap();
    assert_eq!(
        info.memory.as_slice(),
        &[
            MemRange::new(0, 639 << 10),
            MemRange::new(1 << 20, 261_120 << 10)
        ]
    );
    assert_eq!(info.cmdline, "");
    assert!(info.modules().is_empty());
    assert_eq!(info.machine().boot_image, None);
}

#[test]
fn a_wrong_magic_says_the_loader_is_not_multiboot() {
    let ram = qemu_like();
    let err = MultibootInfo::parse(&ram, 0x36d7_6289, INFO).unwrap_err();
    assert_eq!(err, MultibootError::BadMagic(0x36d7_6289));
    assert!(
        err.to_string()
            .contains("not started by a Multiboot loader")
    );
}

#[test]
fn pointers_outside_memory_are_refused_by_name() {
    let ram = qemu_like();
    assert_eq!(
        MultibootInfo::parse(&ram, BOOTLOADER_MAGIC, 0x10).unwrap_err(),
        MultibootError::Unreadable("information structure")
    );
    let mut ram = qemu_like();
    ram.put_u32(INFO + 48, 0xdead_0000);
    assert_eq!(
        parse(&ram).unwrap_err(),
        MultibootError::Unreadable("memory map")
    );
    let mut ram = qemu_like();
    ram.put_u32(INFO + 24, 0xdead_0000);
    assert_eq!(
        parse(&ram).unwrap_err(),
        MultibootError::Unreadable("module list")
    );
}

#[test]
fn malformed_memory_maps_are_errors() {
    let mut ram = qemu_like();
    ram.put_u32(MMAP + 24, 12); // second entry too short
    assert_eq!(parse(&ram).unwrap_err(), MultibootError::BadMemoryMap);
    let mut ram = qemu_like();
    ram.put_u32(INFO + 44, 24 + 10); // the map ends inside its second entry
    assert_eq!(parse(&ram).unwrap_err(), MultibootError::BadMemoryMap);
    let mut ram = qemu_like();
    ram.put_u32(INFO + 44, u32::MAX);
    assert_eq!(
        parse(&ram).unwrap_err(),
        MultibootError::TooMany("memory map bytes")
    );
}

#[test]
fn no_usable_memory_is_an_error() {
    let mut ram = qemu_like();
    ram.put_u32(INFO, HAS_CMDLINE);
    assert_eq!(parse(&ram).unwrap_err(), MultibootError::NoMemory);
}

#[test]
fn too_many_available_ranges_are_refused_not_dropped() {
    let mut ram = qemu_like();
    let map: Vec<u8> = (0..MAX_MEMORY_RANGES as u64 + 1)
        .flat_map(|i| mmap_entry(i << 20, 0x1000, 1))
        .collect();
    ram.put_u32(INFO + 44, map.len() as u32);
    ram.put(MMAP, &map);
    assert_eq!(
        parse(&ram).unwrap_err(),
        MultibootError::TooMany("memory ranges")
    );
}

#[test]
fn bad_strings_are_errors() {
    let mut ram = qemu_like();
    ram.put(CMDLINE, b"\xff\xfe\0");
    assert_eq!(
        parse(&ram).unwrap_err(),
        MultibootError::BadString("command line")
    );
    let mut ram = qemu_like();
    let at = (MOD_NAME - BASE) as usize;
    ram.bytes[at..].fill(b'a'); // runs off the end of memory
    assert_eq!(
        parse(&ram).unwrap_err(),
        MultibootError::Unreadable("module string")
    );
    let mut ram = Ram {
        base: BASE,
        bytes: vec![b'x'; 0x4000],
    };
    ram.bytes[..0x400].copy_from_slice(&qemu_like().bytes[..0x400]);
    ram.put_u32(INFO + 16, (BASE + 0x1000) as u32); // 12 KiB of 'x', no NUL
    assert_eq!(
        parse(&ram).unwrap_err(),
        MultibootError::BadString("command line")
    );
}

#[test]
fn malformed_module_lists_are_errors() {
    let mut ram = qemu_like();
    ram.put_u32(MODS + 4, 0x10_0000); // ends before it starts
    assert_eq!(parse(&ram).unwrap_err(), MultibootError::BadModule);
    let mut ram = qemu_like();
    ram.put_u32(INFO + 20, u32::MAX);
    assert_eq!(parse(&ram).unwrap_err(), MultibootError::TooMany("modules"));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..0x400)) {
        let mut ram = qemu_like();
        ram.put(INFO, &bytes);
        let _ = parse(&ram);
    }
}
