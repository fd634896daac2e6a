//! x86 4-level page tables (PML4 -> PDPT -> PD -> PT), the format both the
//! kernel's own tables and SVM nested page tables use: the entry bits and a
//! builder that maps ranges with 2 MiB pages where alignment allows and
//! 4 KiB pages elsewhere. Pure logic: the tables live in whatever
//! [`TableMemory`] provides, so host tests use boxed tables.

use crate::arch::page_table::ENTRIES;
pub use crate::arch::page_table::{PAGE_SIZE, TableMemory};

/// Bytes in a large page (a PD leaf).
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;
/// Physical-address bits of an entry (bits 12..51).
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Entry bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u64);

impl Flags {
    /// Present.
    pub const PRESENT: Self = Self(1 << 0);
    /// Writable.
    pub const WRITABLE: Self = Self(1 << 1);
    /// Reachable from ring 3; nested page tables need it on every entry.
    pub const USER: Self = Self(1 << 2);
    /// Write-through.
    pub const WRITE_THROUGH: Self = Self(1 << 3);
    /// Caching disabled.
    pub const NO_CACHE: Self = Self(1 << 4);
    /// A PD entry that maps a 2 MiB page.
    pub const LARGE: Self = Self(1 << 7);
    /// Global (kept across CR3 loads).
    pub const GLOBAL: Self = Self(1 << 8);
    /// Software bit (ignored by the CPU): the frame belongs to this address
    /// space and is freed with it ([`release_user`]); a page without it is
    /// shared (an ioreq page, a device window, DMA).
    pub const OWNED: Self = Self(1 << 9);
    /// No instruction fetch (needs EFER.NXE).
    pub const NO_EXECUTE: Self = Self(1 << 63);

    /// Kernel code: read + execute.
    pub const KERNEL_RX: Self = Self(Self::PRESENT.0 | Self::GLOBAL.0);
    /// Kernel constants: read-only, no execute.
    pub const KERNEL_R: Self = Self(Self::PRESENT.0 | Self::GLOBAL.0 | Self::NO_EXECUTE.0);
    /// Kernel data and RAM: read + write, no execute.
    pub const KERNEL_RW: Self = Self(Self::KERNEL_R.0 | Self::WRITABLE.0);
    /// Device registers: read + write, uncached, no execute.
    pub const KERNEL_MMIO: Self =
        Self(Self::KERNEL_RW.0 | Self::NO_CACHE.0 | Self::WRITE_THROUGH.0);
    /// Guest RAM in a nested page table: read, write, execute, U set.
    pub const GUEST_RWX: Self = Self(Self::PRESENT.0 | Self::WRITABLE.0 | Self::USER.0);

    /// Guest RAM in an EPT: read, write, execute (bits 0-2, which table
    /// entries get too), memory type write-back (6 in bits 3-5).
    pub const EPT_RWX_WB: Self = Self(0b111 | 6 << 3);

    /// A ring-3 task's code: read + execute.
    pub const USER_RX: Self = Self(Self::PRESENT.0 | Self::USER.0);
    /// A ring-3 task's constants: read-only, no execute.
    pub const USER_R: Self = Self(Self::USER_RX.0 | Self::NO_EXECUTE.0);
    /// A ring-3 task's data, stack and shared pages: read + write, no
    /// execute.
    pub const USER_RW: Self = Self(Self::USER_R.0 | Self::WRITABLE.0);

    /// Both sets of bits.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits of a table (non-leaf) entry above a leaf with these flags:
    /// present and writable (the leaf decides), U when the leaf has it.
    const fn table(self) -> Self {
        Self(Self::PRESENT.0 | Self::WRITABLE.0 | (self.0 & Self::USER.0))
    }
}

/// Why a range could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame was left for a table.
    OutOfFrames,
    /// An address or length is not 4 KiB-aligned, or the range wraps.
    Misaligned,
    /// This virtual address is mapped already.
    AlreadyMapped(u64),
    /// The address is beyond 48 bits (canonical lower half only).
    OutOfRange(u64),
}

fn index(virt: u64, level: usize) -> usize {
    ((virt >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Maps `len` bytes at `virt` to `phys` with `flags` in the tables under
/// `root`, using 2 MiB pages where both addresses and the rest allow.
pub fn map_range(
    mem: &mut dyn TableMemory,
    root: u64,
    virt: u64,
    phys: u64,
    len: u64,
    flags: Flags,
) -> Result<(), MapError> {
    if (virt | phys | len) & (PAGE_SIZE - 1) != 0 {
        return Err(MapError::Misaligned);
    }
    let end = virt.checked_add(len).ok_or(MapError::Misaligned)?;
    if end > 1 << 47 {
        return Err(MapError::OutOfRange(end));
    }
    let mut offset = 0;
    while offset < len {
        let (v, p) = (virt + offset, phys + offset);
        let large = (v | p) & (LARGE_PAGE_SIZE - 1) == 0 && len - offset >= LARGE_PAGE_SIZE;
        let size = if large { LARGE_PAGE_SIZE } else { PAGE_SIZE };
        map_one(mem, root, v, p, if large { 1 } else { 0 }, flags)?;
        offset += size;
    }
    Ok(())
}

/// Maps one page at `level` (0: 4 KiB PT entry, 1: 2 MiB PD entry).
fn map_one(
    mem: &mut dyn TableMemory,
    root: u64,
    virt: u64,
    phys: u64,
    level: usize,
    flags: Flags,
) -> Result<(), MapError> {
    let mut table = root;
    for l in (level + 1..4).rev() {
        let i = index(virt, l);
        let entry = mem.entries(table)[i];
        if entry & Flags::PRESENT.0 == 0 {
            let next = mem.alloc_table().ok_or(MapError::OutOfFrames)?;
            mem.entries(table)[i] = next | flags.table().0;
            table = next;
        } else if entry & Flags::LARGE.0 != 0 {
            return Err(MapError::AlreadyMapped(virt));
        } else {
            mem.entries(table)[i] = entry | flags.table().0;
            table = entry & ADDR_MASK;
        }
    }
    let i = index(virt, level);
    let slot = &mut mem.entries(table)[i];
    if *slot & Flags::PRESENT.0 != 0 {
        return Err(MapError::AlreadyMapped(virt));
    }
    let large = if level == 1 { Flags::LARGE.0 } else { 0 };
    *slot = phys | flags.0 | large;
    Ok(())
}

/// Removes the 4 KiB page at `virt`, if mapped (tables stay); returns the
/// frame it mapped. A 2 MiB page is left alone (`None`).
pub fn unmap_page(mem: &mut dyn TableMemory, root: u64, virt: u64) -> Option<u64> {
    let mut table = root;
    for level in (1..4).rev() {
        let entry = mem.entries(table)[index(virt, level)];
        if entry & Flags::PRESENT.0 == 0 || entry & Flags::LARGE.0 != 0 {
            return None;
        }
        table = entry & ADDR_MASK;
    }
    let slot = &mut mem.entries(table)[index(virt, 0)];
    if *slot & Flags::PRESENT.0 == 0 {
        return None;
    }
    let frame = *slot & ADDR_MASK;
    *slot = 0;
    Some(frame)
}

/// The physical address and leaf flags `virt` maps to, if any.
pub fn translate(mem: &mut dyn TableMemory, root: u64, virt: u64) -> Option<(u64, Flags)> {
    let mut table = root;
    for level in (0..4).rev() {
        let entry = mem.entries(table)[index(virt, level)];
        if entry & Flags::PRESENT.0 == 0 {
            return None;
        }
        let leaf = level == 0 || (level == 1 && entry & Flags::LARGE.0 != 0);
        if leaf {
            let page = if level == 0 {
                PAGE_SIZE
            } else {
                LARGE_PAGE_SIZE
            };
            let base = entry & ADDR_MASK & !(page - 1);
            let flags = Flags(entry & !ADDR_MASK & !Flags::LARGE.0);
            return Some((base + (virt & (page - 1)), flags));
        }
        table = entry & ADDR_MASK;
    }
    None
}

/// Takes apart what top-level entries `user` of the tables at `root` hold
/// (a task's own part of its space): each 4 KiB leaf marked
/// [`Flags::OWNED`] and every table page below the root go to `free`, and
/// those entries are cleared. Shared leaves are left to their owners; the
/// root page itself is the caller's.
pub fn release_user(
    mem: &mut dyn TableMemory,
    root: u64,
    user: core::ops::Range<usize>,
    free: &mut dyn FnMut(u64),
) {
    for i in user {
        let Some(entry) = mem.entries(root).get_mut(i) else {
            break;
        };
        let entry = core::mem::replace(entry, 0);
        release_entry(mem, entry, 3, free);
    }
}

/// Frees what `entry`, found in a table of `level`, leads to.
fn release_entry(mem: &mut dyn TableMemory, entry: u64, level: usize, free: &mut dyn FnMut(u64)) {
    if entry & Flags::PRESENT.0 == 0 {
        return;
    }
    if level == 0 {
        // Only 4 KiB pages are ever owned.
        if entry & Flags::OWNED.0 != 0 {
            free(entry & ADDR_MASK);
        }
        return;
    }
    if entry & Flags::LARGE.0 != 0 {
        return;
    }
    let table = entry & ADDR_MASK;
    for i in 0..ENTRIES {
        let child = mem.entries(table)[i];
        release_entry(mem, child, level - 1, free);
    }
    free(table);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Tables at fake physical addresses from 0x1000_0000 up.
    #[derive(Default)]
    struct Boxed {
        tables: HashMap<u64, Box<[u64; ENTRIES]>>,
        limit: Option<usize>,
    }

    impl TableMemory for Boxed {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.limit.is_some_and(|l| self.tables.len() >= l) {
                return None;
            }
            let addr = 0x1000_0000 + self.tables.len() as u64 * PAGE_SIZE;
            self.tables.insert(addr, Box::new([0; ENTRIES]));
            Some(addr)
        }
        fn entries(&mut self, table: u64) -> &mut [u64; ENTRIES] {
            self.tables.get_mut(&table).unwrap()
        }
    }

    fn setup() -> (Boxed, u64) {
        let mut mem = Boxed::default();
        let root = mem.alloc_table().unwrap();
        (mem, root)
    }

    #[test]
    fn releasing_a_user_slot_frees_its_own_frames_and_tables_only() {
        let (mut mem, root) = setup();
        map_range(&mut mem, root, 0, 0, 4 << 20, Flags::KERNEL_RW).unwrap();
        let base = 1 << 39;
        let owned = Flags::USER_RW.union(Flags::OWNED);
        map_range(&mut mem, root, base, 0x8100_0000, 0x2000, owned).unwrap();
        map_range(&mut mem, root, base + (3 << 30), 0x8200_0000, 0x1000, owned).unwrap();
        map_range(
            &mut mem,
            root,
            base + 0x5000,
            0x8300_0000,
            0x1000,
            Flags::USER_RW,
        )
        .unwrap();
        let mut freed = Vec::new();
        release_user(&mut mem, root, 1..2, &mut |frame| freed.push(frame));
        // The fake tables live from 0x1000_0000 on.
        let (mut frames, tables): (Vec<u64>, Vec<u64>) =
            freed.iter().partition(|&&f| f >= 0x8000_0000);
        frames.sort_unstable();
        assert_eq!(frames, [0x8100_0000, 0x8100_1000, 0x8200_0000]);
        // PDPT, two PDs, two PTs: every user table, none of the kernel's.
        assert_eq!(tables.len(), 5, "{tables:x?}");
        assert_eq!(mem.entries(root)[1], 0);
        assert!(translate(&mut mem, root, base).is_none());
        assert_eq!(
            translate(&mut mem, root, 0x1000).map(|(pa, _)| pa),
            Some(0x1000),
            "the kernel's mappings stay"
        );
    }

    #[test]
    fn kernel_sections_keep_their_permissions() {
        let (mut mem, root) = setup();
        map_range(
            &mut mem,
            root,
            0x10_0000,
            0x10_0000,
            0x3000,
            Flags::KERNEL_RX,
        )
        .unwrap();
        map_range(
            &mut mem,
            root,
            0x10_3000,
            0x10_3000,
            0x1000,
            Flags::KERNEL_R,
        )
        .unwrap();
        map_range(
            &mut mem,
            root,
            0x10_4000,
            0x10_4000,
            0x1000,
            Flags::KERNEL_RW,
        )
        .unwrap();
        let (p, f) = translate(&mut mem, root, 0x10_1234).unwrap();
        assert_eq!(p, 0x10_1234);
        assert!(!f.contains(Flags::WRITABLE) && !f.contains(Flags::NO_EXECUTE));
        let (_, f) = translate(&mut mem, root, 0x10_3000).unwrap();
        assert!(!f.contains(Flags::WRITABLE) && f.contains(Flags::NO_EXECUTE));
        let (_, f) = translate(&mut mem, root, 0x10_4ff8).unwrap();
        assert!(f.contains(Flags::WRITABLE) && f.contains(Flags::NO_EXECUTE));
        assert_eq!(translate(&mut mem, root, 0x10_5000), None);
        assert_eq!(translate(&mut mem, root, 0), None);
    }

    #[test]
    fn aligned_runs_use_large_pages_and_the_rest_small_ones() {
        let (mut mem, root) = setup();
        // 4 KiB before a 2 MiB boundary, then 4 MiB: 1 small + 2 large pages.
        let start = LARGE_PAGE_SIZE - PAGE_SIZE;
        map_range(
            &mut mem,
            root,
            start,
            start,
            PAGE_SIZE + (4 << 20),
            Flags::KERNEL_RW,
        )
        .unwrap();
        // PML4, PDPT, PD, one PT: the large pages need no PT.
        assert_eq!(mem.tables.len(), 4);
        let (p, _) = translate(&mut mem, root, 0x30_0042).unwrap();
        assert_eq!(p, 0x30_0042);
        assert_eq!(
            translate(&mut mem, root, start + PAGE_SIZE + (4 << 20)),
            None
        );
    }

    #[test]
    fn nested_tables_carry_the_user_bit_at_every_level() {
        let (mut mem, root) = setup();
        map_range(
            &mut mem,
            root,
            0x8000_0000,
            0x20_0000,
            0x1000,
            Flags::GUEST_RWX,
        )
        .unwrap();
        let mut table = root;
        for level in (1..4).rev() {
            let entry = mem.entries(table)[index(0x8000_0000, level)];
            assert_ne!(entry & Flags::USER.bits(), 0, "level {level}");
            table = entry & ADDR_MASK;
        }
        let (p, f) = translate(&mut mem, root, 0x8000_0ff0).unwrap();
        assert_eq!(p, 0x20_0ff0);
        assert!(f.contains(Flags::USER) && !f.contains(Flags::NO_EXECUTE));
    }

    #[test]
    fn bad_requests_are_refused() {
        let (mut mem, root) = setup();
        let rw = Flags::KERNEL_RW;
        assert_eq!(
            map_range(&mut mem, root, 0x1001, 0x1000, 0x1000, rw),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            map_range(&mut mem, root, 1 << 47, 0, 0x1000, rw),
            Err(MapError::OutOfRange((1 << 47) + 0x1000))
        );
        map_range(&mut mem, root, 0x5000, 0x5000, 0x1000, rw).unwrap();
        assert_eq!(
            map_range(&mut mem, root, 0x5000, 0x9000, 0x1000, rw),
            Err(MapError::AlreadyMapped(0x5000))
        );
        mem.limit = Some(mem.tables.len());
        assert_eq!(
            map_range(&mut mem, root, 1 << 40, 0, 0x1000, rw),
            Err(MapError::OutOfFrames)
        );
    }

    #[test]
    fn user_pages_keep_w_xor_x_and_can_be_unmapped() {
        let (mut mem, root) = setup();
        let base = 0x80_0001_0000;
        map_range(&mut mem, root, base, 0x20_0000, PAGE_SIZE, Flags::USER_RX).unwrap();
        map_range(
            &mut mem,
            root,
            base + PAGE_SIZE,
            0x20_1000,
            PAGE_SIZE,
            Flags::USER_RW,
        )
        .unwrap();
        let (_, code) = translate(&mut mem, root, base).unwrap();
        assert!(code.contains(Flags::USER) && !code.contains(Flags::WRITABLE));
        assert!(!code.contains(Flags::NO_EXECUTE));
        let (pa, data) = translate(&mut mem, root, base + PAGE_SIZE + 8).unwrap();
        assert_eq!(pa, 0x20_1008);
        assert!(data.contains(Flags::USER_RW) && data.contains(Flags::NO_EXECUTE));
        assert_eq!(
            unmap_page(&mut mem, root, base + PAGE_SIZE),
            Some(0x20_1000)
        );
        assert_eq!(translate(&mut mem, root, base + PAGE_SIZE), None);
        assert_eq!(unmap_page(&mut mem, root, base + PAGE_SIZE), None);
        assert!(
            translate(&mut mem, root, base).is_some(),
            "its neighbour stays"
        );
        map_range(
            &mut mem,
            root,
            base + PAGE_SIZE,
            0x30_0000,
            PAGE_SIZE,
            Flags::USER_RW,
        )
        .unwrap();
        assert_eq!(
            translate(&mut mem, root, base + PAGE_SIZE).unwrap().0,
            0x30_0000
        );
    }

    #[test]
    fn ept_entries_carry_rwx_and_write_back() {
        let mut mem = Boxed::default();
        let root = mem.alloc_table().unwrap();
        map_range(&mut mem, root, 0, 0x4000_0000, 4 << 20, Flags::EPT_RWX_WB).unwrap();
        let pml4e = mem.entries(root)[0];
        assert_eq!(pml4e & 0xfff, 0b111, "tables: read, write, execute");
        let pdpt = pml4e & ADDR_MASK;
        let pd = mem.entries(pdpt)[0] & ADDR_MASK;
        // A 2 MiB leaf: RWX, memory type 6 (WB) in bits 3-5, bit 7 large.
        assert_eq!(mem.entries(pd)[1], 0x4020_0000 | 0b111 | 6 << 3 | 1 << 7);
    }
}
