//! Sv39 page tables: the PTE format and a builder that maps ranges with the
//! largest pages alignment allows (1 GiB, 2 MiB, 4 KiB). Pure logic: the
//! tables live in whatever [`TableMemory`] provides, so host tests use a map.

use crate::arch::page_table::ENTRIES;
pub use crate::arch::page_table::{PAGE_SIZE, TableMemory};

const LEVELS: usize = 3;

/// PTE permission and status bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PteFlags(u64);

impl PteFlags {
    /// Valid.
    pub const V: Self = Self(1 << 0);
    /// Readable.
    pub const R: Self = Self(1 << 1);
    /// Writable.
    pub const W: Self = Self(1 << 2);
    /// Executable.
    pub const X: Self = Self(1 << 3);
    /// Accessible from U-mode.
    pub const U: Self = Self(1 << 4);
    /// Global (in every address space).
    pub const G: Self = Self(1 << 5);
    /// Accessed.
    pub const A: Self = Self(1 << 6);
    /// Dirty.
    pub const D: Self = Self(1 << 7);
    /// Software bit (RSW, ignored by the hardware): the frame belongs to
    /// this address space and is freed with it ([`release_user`]); a page
    /// without it is shared (an ioreq page, a device window, DMA).
    pub const OWNED: Self = Self(1 << 8);
    /// Kernel code.
    pub const KERNEL_RX: Self = Self(Self::R.0 | Self::X.0 | Self::G.0);
    /// Kernel read-only data.
    pub const KERNEL_R: Self = Self(Self::R.0 | Self::G.0);
    /// Kernel data.
    pub const KERNEL_RW: Self = Self(Self::R.0 | Self::W.0 | Self::G.0);

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Both sets of bits.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    const fn is_leaf(self) -> bool {
        self.0 & (Self::R.0 | Self::W.0 | Self::X.0) != 0
    }
}

/// Why a mapping was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame for an intermediate table.
    OutOfFrames,
    /// An address or size is not 4 KiB-aligned.
    Misaligned,
    /// The virtual range leaves Sv39's 39-bit sign-extended space.
    NotCanonical,
    /// The virtual address already has a mapping.
    AlreadyMapped(u64),
    /// Flags without any of R, W, X would be read as a table pointer.
    NoPermissions,
}

/// Bytes one entry at `level` maps (4 KiB at level 0).
pub(super) fn level_size(level: usize) -> u64 {
    PAGE_SIZE << (9 * level)
}

fn vpn(va: u64, level: usize) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

/// The physical address a PTE points at.
pub(super) fn pte_address(pte: u64) -> u64 {
    ((pte >> 10) & ((1 << 44) - 1)) << 12
}

/// A PTE pointing at `pa` with `flags`.
pub(super) fn make_pte(pa: u64, flags: u64) -> u64 {
    ((pa >> 12) << 10) | flags
}

/// Whether `va` is a valid Sv39 address (bits 63..39 copy bit 38).
pub fn is_canonical(va: u64) -> bool {
    let top = (va as i64) >> 38;
    top == 0 || top == -1
}

/// The `satp` value selecting Sv39 with this root table and ASID.
pub fn satp_value(root: u64, asid: u16) -> u64 {
    (8 << 60) | (u64::from(asid) << 44) | (root >> 12)
}

/// Maps `size` bytes at `va` to `pa` with `flags` (A and D are set too, so
/// the hardware never has to), using the largest pages that fit.
pub fn map_range<M: TableMemory>(
    mem: &mut M,
    root: u64,
    va: u64,
    pa: u64,
    size: u64,
    flags: PteFlags,
) -> Result<(), MapError> {
    if !(va | pa | size).is_multiple_of(PAGE_SIZE) {
        return Err(MapError::Misaligned);
    }
    if !flags.is_leaf() {
        return Err(MapError::NoPermissions);
    }
    let last = va
        .checked_add(size.saturating_sub(1))
        .ok_or(MapError::NotCanonical)?;
    if !is_canonical(va)
        || !is_canonical(last)
        || (size > 0 && (va as i64 >> 38) != (last as i64 >> 38))
    {
        return Err(MapError::NotCanonical);
    }
    let leaf = flags
        .union(PteFlags::V)
        .union(PteFlags::A)
        .union(PteFlags::D)
        .bits();
    map_leaves(mem, root, va, pa, size, leaf, |table, va, level| {
        (table, vpn(va, level))
    })
}

/// Maps `size` bytes at `va` to `pa` with the leaf PTE bits `leaf`,
/// using the largest pages alignment allows, in a three-level table from
/// `root` whose entry for `va` at a level `slot(table, va, level)` names
/// (table page, index): Sv39 and, with its four-page root, Sv39x4
/// (`gstage`) differ only there. The caller checked the range and flags.
pub(super) fn map_leaves<M: TableMemory>(
    mem: &mut M,
    root: u64,
    va: u64,
    pa: u64,
    size: u64,
    leaf: u64,
    slot: impl Fn(u64, u64, usize) -> (u64, usize),
) -> Result<(), MapError> {
    let mut offset = 0;
    while offset < size {
        let (v, p, left) = (va + offset, pa + offset, size - offset);
        let level = (0..LEVELS)
            .rev()
            .find(|&l| v % level_size(l) == 0 && p % level_size(l) == 0 && left >= level_size(l))
            .unwrap_or(0);
        map_one(mem, root, v, p, level, leaf, &slot)?;
        offset += level_size(level);
    }
    Ok(())
}

fn map_one<M: TableMemory>(
    mem: &mut M,
    root: u64,
    va: u64,
    pa: u64,
    level: usize,
    leaf: u64,
    slot: &impl Fn(u64, u64, usize) -> (u64, usize),
) -> Result<(), MapError> {
    let mut table = root;
    for l in (level + 1..LEVELS).rev() {
        let (page, i) = slot(table, va, l);
        let pte = mem.entries(page)[i];
        table = if pte & PteFlags::V.bits() == 0 {
            let next = mem.alloc_table().ok_or(MapError::OutOfFrames)?;
            mem.entries(page)[i] = make_pte(next, PteFlags::V.bits());
            next
        } else if PteFlags(pte).is_leaf() {
            return Err(MapError::AlreadyMapped(va));
        } else {
            pte_address(pte)
        };
    }
    let (page, i) = slot(table, va, level);
    let entry = &mut mem.entries(page)[i];
    if *entry & PteFlags::V.bits() != 0 {
        return Err(MapError::AlreadyMapped(va));
    }
    *entry = make_pte(pa, leaf);
    Ok(())
}

/// The leaf that maps `va`: the table holding it, its level and the PTE.
fn find_leaf<M: TableMemory>(mem: &mut M, root: u64, va: u64) -> Option<(u64, usize, u64)> {
    if !is_canonical(va) {
        return None;
    }
    let mut table = root;
    for level in (0..LEVELS).rev() {
        let pte = mem.entries(table)[vpn(va, level)];
        if pte & PteFlags::V.bits() == 0 {
            return None;
        }
        if PteFlags(pte).is_leaf() {
            return Some((table, level, pte));
        }
        table = pte_address(pte);
    }
    None
}

/// Removes the 4 KiB leaf mapping `va`; false if there is none.
pub fn unmap_page<M: TableMemory>(mem: &mut M, root: u64, va: u64) -> bool {
    let Some((table, 0, _)) = find_leaf(mem, root, va) else {
        return false;
    };
    mem.entries(table)[vpn(va, 0)] = 0;
    true
}

/// What `va` maps to: the physical address and the leaf's flags.
pub fn translate<M: TableMemory>(mem: &mut M, root: u64, va: u64) -> Option<(u64, PteFlags)> {
    let (_, level, pte) = find_leaf(mem, root, va)?;
    let offset = va & (level_size(level) - 1);
    Some((pte_address(pte) + offset, PteFlags(pte & 0xff)))
}

/// Takes apart what root entries `user` of the tables at `root` hold (a
/// task's own half of its space): each 4 KiB leaf marked
/// [`PteFlags::OWNED`] and every table page below the root go to `free`,
/// and those root entries are cleared. Shared leaves are left to their
/// owners; the root page itself is the caller's.
pub fn release_user<M: TableMemory>(
    mem: &mut M,
    root: u64,
    user: core::ops::Range<usize>,
    free: &mut impl FnMut(u64),
) {
    for index in user {
        let Some(entry) = mem.entries(root).get_mut(index) else {
            break;
        };
        let pte = core::mem::replace(entry, 0);
        release_entry(mem, pte, LEVELS - 1, free);
    }
}

/// Frees what the entry `pte`, found in a table of `level`, leads to.
fn release_entry<M: TableMemory>(mem: &mut M, pte: u64, level: usize, free: &mut impl FnMut(u64)) {
    let flags = PteFlags(pte);
    if !flags.contains(PteFlags::V) {
        return;
    }
    if flags.is_leaf() {
        // Only 4 KiB pages are ever owned.
        if level == 0 && flags.contains(PteFlags::OWNED) {
            free(pte_address(pte));
        }
        return;
    }
    let table = pte_address(pte);
    if let Some(below) = level.checked_sub(1) {
        for index in 0..ENTRIES {
            let child = mem.entries(table)[index];
            release_entry(mem, child, below, free);
        }
    }
    free(table);
}

#[cfg(test)]
#[path = "sv39_tests.rs"]
mod tests;
