//! Tests of the G-stage (Sv39x4) tables: guest RAM mappings, the wide
//! root, per-mapping permissions, refused requests and hgatp, on tables in
//! a map.

use super::*;
use std::collections::BTreeMap;

/// Tables in a map; the root's four pages are pre-created.
struct FakeMemory {
    tables: BTreeMap<u64, Box<[u64; 512]>>,
    next: u64,
    budget: usize,
}

const ROOT: u64 = 0x10_0000;

impl FakeMemory {
    fn new(budget: usize) -> Self {
        let mut tables = BTreeMap::new();
        for i in 0..4 {
            tables.insert(ROOT + i * PAGE_SIZE, Box::new([0u64; 512]));
        }
        Self {
            tables,
            next: 0x20_0000,
            budget,
        }
    }
}

impl TableMemory for FakeMemory {
    fn alloc_table(&mut self) -> Option<u64> {
        self.budget = self.budget.checked_sub(1)?;
        let pa = self.next;
        self.next += PAGE_SIZE;
        self.tables.insert(pa, Box::new([0; 512]));
        Some(pa)
    }

    fn entries(&mut self, table: u64) -> &mut [u64; 512] {
        self.tables
            .get_mut(&table)
            .expect("a table the builder made")
    }
}

#[test]
fn guest_ram_maps_with_u_set_and_holes_stay_unmapped() {
    let mut mem = FakeMemory::new(8);
    map_range(
        &mut mem,
        ROOT,
        0x8000_0000,
        0x8800_0000,
        2 << 20,
        GuestPerms::RAM,
    )
    .unwrap();
    let (hpa, flags) = translate(&mut mem, ROOT, 0x8000_1234).unwrap();
    assert_eq!(hpa, 0x8800_1234);
    assert!(flags.contains(PteFlags::U.union(PteFlags::R).union(PteFlags::W)));
    assert!(flags.contains(PteFlags::X));
    // The UART hole and anything past RAM fault.
    assert_eq!(translate(&mut mem, ROOT, 0x1000_0000), None);
    assert_eq!(translate(&mut mem, ROOT, 0x8020_0000), None);
    assert_eq!(translate(&mut mem, ROOT, 0x4000_0000), None);
}

#[test]
fn gpas_above_4_gib_use_the_wide_root() {
    // VPN[2] = 0x600 lands in the root's fourth page (Sv39 could not).
    let mut mem = FakeMemory::new(8);
    let gpa = 0x600 << 30;
    map_range(&mut mem, ROOT, gpa, 0x9000_0000, 4096, GuestPerms::RAM).unwrap();
    assert_eq!(
        translate(&mut mem, ROOT, gpa + 8),
        Some((0x9000_0008, translate(&mut mem, ROOT, gpa).unwrap().1))
    );
    assert_ne!(mem.entries(ROOT + 3 * PAGE_SIZE)[0], 0);
    assert_eq!(translate(&mut mem, ROOT, gpa - 4096), None);
}

#[test]
fn permissions_are_per_mapping() {
    let mut mem = FakeMemory::new(8);
    let ro = GuestPerms {
        read: true,
        write: false,
        execute: false,
    };
    map_range(&mut mem, ROOT, 0x8000_0000, 0x8800_0000, 4096, ro).unwrap();
    let (_, flags) = translate(&mut mem, ROOT, 0x8000_0000).unwrap();
    assert!(flags.contains(PteFlags::R.union(PteFlags::U)));
    assert!(!flags.contains(PteFlags::W));
    assert!(!flags.contains(PteFlags::X));
}

#[test]
fn bad_requests_are_refused() {
    let mut mem = FakeMemory::new(8);
    let none = GuestPerms {
        read: false,
        write: false,
        execute: false,
    };
    assert_eq!(
        map_range(&mut mem, ROOT, 0x8000_0000, 0x8800_0000, 4096, none),
        Err(MapError::NoPermissions)
    );
    // Refused before anything is mapped: a misaligned address or root, a
    // range past the guest-physical limit.
    for (root, gpa, len, want) in [
        (ROOT, 0x8000_0100, 4096, MapError::Misaligned),
        (ROOT + 4096, 0x8000_0000, 4096, MapError::Misaligned),
        (ROOT, GPA_LIMIT - 4096, 8192, MapError::NotCanonical),
    ] {
        let got = map_range(&mut mem, root, gpa, 0x8800_0000, len, GuestPerms::RAM);
        assert_eq!(got, Err(want), "root {root:#x}, {len:#x} at {gpa:#x}");
    }
    let map_page_at =
        |mem: &mut FakeMemory, hpa| map_range(mem, ROOT, 0x8000_0000, hpa, 4096, GuestPerms::RAM);
    map_page_at(&mut mem, 0x8800_0000).unwrap();
    assert_eq!(
        map_page_at(&mut mem, 0x8900_0000),
        Err(MapError::AlreadyMapped(0x8000_0000))
    );
    assert_eq!(
        map_page_at(&mut FakeMemory::new(1), 0x8800_0000),
        Err(MapError::OutOfFrames)
    );
}

#[test]
fn hgatp_selects_sv39x4_with_the_vmid() {
    let v = hgatp_value(0x8040_0000, 5);
    assert_eq!(v >> 60, 8);
    assert_eq!((v >> 44) & 0x3fff, 5);
    assert_eq!(v & ((1 << 44) - 1), 0x8040_0000 >> 12);
}
