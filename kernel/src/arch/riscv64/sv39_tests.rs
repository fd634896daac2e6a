//! Tests of the Sv39 tables: large and small pages, permissions, satp and
//! running out of table frames, on tables in a map.

use super::*;
use std::collections::BTreeMap;

/// Tables in a map keyed by fake physical address.
struct FakeMemory {
    tables: BTreeMap<u64, Box<[u64; ENTRIES]>>,
    next: u64,
    limit: usize,
}

impl FakeMemory {
    fn new(limit: usize) -> (Self, u64) {
        let mut m = FakeMemory {
            tables: BTreeMap::new(),
            next: 0x9000_0000,
            limit: limit + 1,
        };
        let root = m.alloc_table().unwrap();
        (m, root)
    }
}

impl TableMemory for FakeMemory {
    fn alloc_table(&mut self) -> Option<u64> {
        if self.tables.len() >= self.limit {
            return None;
        }
        let pa = self.next;
        self.next += PAGE_SIZE;
        self.tables.insert(pa, Box::new([0; ENTRIES]));
        Some(pa)
    }
    fn entries(&mut self, table: u64) -> &mut [u64; ENTRIES] {
        self.tables
            .get_mut(&table)
            .expect("walk reached a table that was never allocated")
    }
}

/// Maps `len` bytes at `start` to themselves with `flags`.
fn map_identity(m: &mut FakeMemory, root: u64, start: u64, len: u64, flags: PteFlags) {
    map_range(m, root, start, start, len, flags).unwrap();
}

#[test]
fn identity_map_of_ram_uses_large_pages_and_translates_back() {
    let (mut m, root) = FakeMemory::new(16);
    // 0x8020_0000 .. 0x9000_0000: 2 MiB pages (not 1 GiB aligned).
    map_identity(&mut m, root, 0x8020_0000, 0x0fe0_0000, PteFlags::KERNEL_RW);
    assert_eq!(
        m.tables.len(),
        2,
        "root + one level-1 table, no 4 KiB tables"
    );
    let (pa, flags) = translate(&mut m, root, 0x8abc_d123).unwrap();
    assert_eq!(pa, 0x8abc_d123);
    assert!(flags.contains(PteFlags::KERNEL_RW.union(PteFlags::A).union(PteFlags::D)));
    assert!(!flags.contains(PteFlags::X));
    assert_eq!(translate(&mut m, root, 0x8000_0000), None);
    assert_eq!(translate(&mut m, root, 0x9000_0000), None);
}

#[test]
fn small_ranges_get_4k_pages_with_their_own_permissions() {
    let (mut m, root) = FakeMemory::new(16);
    map_identity(&mut m, root, 0x8020_0000, 0x3000, PteFlags::KERNEL_RX);
    map_identity(&mut m, root, 0x8020_3000, 0x1000, PteFlags::KERNEL_R);
    assert!(
        translate(&mut m, root, 0x8020_2fff)
            .unwrap()
            .1
            .contains(PteFlags::X)
    );
    let (_, ro) = translate(&mut m, root, 0x8020_3000).unwrap();
    assert!(!ro.contains(PteFlags::W) && !ro.contains(PteFlags::X));
    assert_eq!(translate(&mut m, root, 0x8020_4000), None);
}

#[test]
fn releasing_a_user_half_frees_its_own_frames_and_tables_only() {
    let (mut m, root) = FakeMemory::new(16);
    let kernel = PteFlags::KERNEL_RW;
    map_identity(&mut m, root, 0x8000_0000, 1 << 30, kernel);
    let owned = PteFlags::R
        .union(PteFlags::W)
        .union(PteFlags::U)
        .union(PteFlags::OWNED);
    let shared = PteFlags::R.union(PteFlags::W).union(PteFlags::U);
    map_range(&mut m, root, 0x1_0000, 0x8100_0000, 0x2000, owned).unwrap();
    map_range(&mut m, root, 0x3fff_f000, 0x8200_0000, 0x1000, owned).unwrap();
    map_range(&mut m, root, 0x2000_0000, 0x8300_0000, 0x1000, shared).unwrap();
    let tables_before = m.tables.len();
    let mut freed = Vec::new();
    release_user(&mut m, root, 0..1, &mut |frame| freed.push(frame));
    // The fake memory hands out table pages from 0x9000_0000 on.
    let (frames, tables): (Vec<u64>, Vec<u64>) = freed.iter().partition(|&&f| f < 0x9000_0000);
    assert_eq!(
        frames,
        [0x8100_0000, 0x8100_1000, 0x8200_0000],
        "owned pages only"
    );
    // Every table but the root: one level-1 table and a level-0 table
    // for each of the three 2 MiB regions used.
    assert_eq!(tables.len(), 4, "{tables:x?}");
    assert_eq!(tables.len(), tables_before - 1);
    assert_eq!(translate(&mut m, root, 0x1_0000), None);
    assert_eq!(translate(&mut m, root, 0x2000_0000), None);
    assert_eq!(
        translate(&mut m, root, 0x8000_1000).map(|(pa, _)| pa),
        Some(0x8000_1000),
        "the kernel's entries are untouched"
    );
}

#[test]
fn user_mapping_at_a_different_physical_address() {
    let (mut m, root) = FakeMemory::new(16);
    let flags = PteFlags::R.union(PteFlags::W).union(PteFlags::U);
    map_range(&mut m, root, 0x1_0000, 0x8765_4000, 0x2000, flags).unwrap();
    let (pa, f) = translate(&mut m, root, 0x1_1008).unwrap();
    assert_eq!(pa, 0x8765_5008);
    assert!(f.contains(PteFlags::U));
}

#[test]
fn overlapping_or_bad_requests_are_refused() {
    let (mut m, root) = FakeMemory::new(16);
    map_range(
        &mut m,
        root,
        0x4000_0000,
        0x8000_0000,
        1 << 30,
        PteFlags::KERNEL_RW,
    )
    .unwrap();
    assert_eq!(
        map_range(
            &mut m,
            root,
            0x4000_1000,
            0x1000,
            0x1000,
            PteFlags::KERNEL_RW
        ),
        Err(MapError::AlreadyMapped(0x4000_1000))
    );
    assert_eq!(
        map_range(&mut m, root, 0x10, 0, 0x1000, PteFlags::KERNEL_RW),
        Err(MapError::Misaligned)
    );
    assert_eq!(
        map_range(&mut m, root, 1 << 40, 0, 0x1000, PteFlags::KERNEL_RW),
        Err(MapError::NotCanonical)
    );
    assert_eq!(
        map_range(&mut m, root, 0x1000, 0, 0x1000, PteFlags::G),
        Err(MapError::NoPermissions)
    );
}

#[test]
fn running_out_of_table_frames_is_an_error() {
    let (mut m, root) = FakeMemory::new(1);
    assert_eq!(
        map_range(&mut m, root, 0x1000, 0x1000, 0x1000, PteFlags::KERNEL_RW),
        Err(MapError::OutOfFrames)
    );
}

#[test]
fn satp_selects_sv39_mode_and_root_ppn() {
    assert_eq!(satp_value(0x8040_0000, 0), (8 << 60) | 0x80400);
    assert_eq!(satp_value(0x8040_0000, 3) >> 44 & 0xffff, 3);
}
