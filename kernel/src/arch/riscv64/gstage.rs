//! G-stage (guest-physical to host-physical) tables in Sv39x4: a 16 KiB,
//! 16 KiB-aligned root indexed by GPA bits 40:30, then ordinary Sv39 levels.
//! Every leaf carries U=1 (the hardware checks G-stage accesses as U-mode).
//! Pure logic over [`TableMemory`], tested on the host like `sv39`.

use super::sv39::{self, MapError, PAGE_SIZE, PteFlags, TableMemory, level_size, pte_address};

/// Bytes in the Sv39x4 root table (four 4 KiB pages).
pub const ROOT_BYTES: u64 = 16 * 1024;
/// The root's size and alignment in 4 KiB frames.
pub const ROOT_FRAMES: usize = 4;
/// Guest-physical addresses are 41 bits wide in Sv39x4.
pub const GPA_LIMIT: u64 = 1 << 41;
/// Bits of `hgatp.VMID` on RV64 (the hart may implement fewer).
pub const VMID_BITS_MAX: u32 = 14;

const LEVELS: usize = 3;
const LEAF_BITS: u64 = PteFlags::R.bits() | PteFlags::W.bits() | PteFlags::X.bits();

/// Guest permissions of one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestPerms {
    /// Loads allowed.
    pub read: bool,
    /// Stores allowed.
    pub write: bool,
    /// Instruction fetches allowed.
    pub execute: bool,
}

impl GuestPerms {
    /// Ordinary guest RAM: read, write, execute.
    pub const RAM: Self = Self {
        read: true,
        write: true,
        execute: true,
    };

    fn flags(self) -> PteFlags {
        let mut flags = PteFlags::V
            .union(PteFlags::U)
            .union(PteFlags::A)
            .union(PteFlags::D);
        for (on, bit) in [
            (self.read, PteFlags::R),
            (self.write, PteFlags::W),
            (self.execute, PteFlags::X),
        ] {
            if on {
                flags = flags.union(bit);
            }
        }
        flags
    }
}

/// The `hgatp` value selecting Sv39x4 with this root and VMID.
pub fn hgatp_value(root: u64, vmid: u16) -> u64 {
    (8 << 60) | ((u64::from(vmid) & ((1 << VMID_BITS_MAX) - 1)) << 44) | (root >> 12)
}

/// The table page and entry index that resolve `gpa` at `level`, given the
/// table reached at that level (`root` for the top level).
fn slot(table: u64, gpa: u64, level: usize) -> (u64, usize) {
    let vpn = gpa >> (12 + 9 * level);
    if level == LEVELS - 1 {
        // The 2048-entry root spans four pages: VPN[2] bits 10:9 pick one.
        (
            table + ((vpn >> 9) & 0x3) * PAGE_SIZE,
            (vpn & 0x1ff) as usize,
        )
    } else {
        (table, (vpn & 0x1ff) as usize)
    }
}

/// Maps `size` bytes of guest-physical space at `gpa` to host-physical
/// `hpa` with `perms`, using the largest pages alignment allows.
pub fn map_range<M: TableMemory>(
    mem: &mut M,
    root: u64,
    gpa: u64,
    hpa: u64,
    size: u64,
    perms: GuestPerms,
) -> Result<(), MapError> {
    if !(gpa | hpa | size).is_multiple_of(PAGE_SIZE) || !root.is_multiple_of(ROOT_BYTES) {
        return Err(MapError::Misaligned);
    }
    let leaf = perms.flags();
    if leaf.bits() & LEAF_BITS == 0 {
        return Err(MapError::NoPermissions);
    }
    match gpa.checked_add(size) {
        Some(end) if end <= GPA_LIMIT => {}
        _ => return Err(MapError::NotCanonical),
    }
    sv39::map_leaves(mem, root, gpa, hpa, size, leaf.bits(), slot)
}

/// The host-physical address and leaf flags `gpa` maps to, or `None` when it
/// is unmapped (a guest access there takes a guest-page fault).
pub fn translate<M: TableMemory>(mem: &mut M, root: u64, gpa: u64) -> Option<(u64, PteFlags)> {
    if gpa >= GPA_LIMIT {
        return None;
    }
    let mut table = root;
    for level in (0..LEVELS).rev() {
        let (page, i) = slot(table, gpa, level);
        let pte = mem.entries(page)[i];
        if pte & PteFlags::V.bits() == 0 {
            return None;
        }
        if pte & LEAF_BITS != 0 {
            let offset = gpa & (level_size(level) - 1);
            return Some((pte_address(pte) + offset, flags_of(pte)));
        }
        table = pte_address(pte);
    }
    None
}

fn flags_of(pte: u64) -> PteFlags {
    [
        PteFlags::V,
        PteFlags::R,
        PteFlags::W,
        PteFlags::X,
        PteFlags::U,
        PteFlags::A,
        PteFlags::D,
    ]
    .into_iter()
    .filter(|f| pte & f.bits() != 0)
    .fold(PteFlags::V, PteFlags::union)
}

#[cfg(test)]
#[path = "gstage_tests.rs"]
mod tests;
