//! Reading the instruction a guest trapped on, as `hlvx.hu` would: through
//! the guest's own VS-stage page tables (`vsatp`: Bare, Sv39, Sv48 or Sv57)
//! with the execute permission of the privilege it ran at, then through
//! the G-stage. Used to decode an MMIO access when the hart gives no
//! transformed instruction (`htinst` = 0).
//!
//! The walk is done in software over [`GuestMemoryRead`] (guest-physical
//! reads through the G-stage), so a page the guest has not mapped is a
//! `None`, never a fault in the kernel. Pure logic, tested on the host.

use super::guest_sbi::GuestMemoryRead;

const PAGE_SHIFT: u32 = 12;
const PTE_V: u64 = 1 << 0;
const PTE_R: u64 = 1 << 1;
const PTE_W: u64 = 1 << 2;
const PTE_X: u64 = 1 << 3;
const PTE_U: u64 = 1 << 4;
const PTE_A: u64 = 1 << 6;
/// PPN bits of a PTE (bits 10..54).
const PTE_PPN_MASK: u64 = (1 << 44) - 1;

/// The privilege the guest fetched at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMode {
    /// VS-mode (the guest kernel): may not execute user pages.
    Supervisor,
    /// VU-mode (the guest's programs): only user pages.
    User,
}

/// The number of page-table levels of `vsatp`'s mode; 0 for Bare, `None`
/// for a mode the H extension does not define for VS-stage.
fn levels(vsatp: u64) -> Option<u32> {
    match vsatp >> 60 {
        0 => Some(0),
        8 => Some(3),
        9 => Some(4),
        10 => Some(5),
        _ => None,
    }
}

/// The guest-physical address guest virtual `gva` translates to for an
/// instruction fetch at `mode`, or `None` where the guest's own hart would
/// raise an instruction page fault (or a G-stage read fails).
pub fn translate(mem: &dyn GuestMemoryRead, vsatp: u64, gva: u64, mode: GuestMode) -> Option<u64> {
    let levels = levels(vsatp)?;
    if levels == 0 {
        return Some(gva);
    }
    // The virtual address must be the sign extension of its top bit.
    let va_bits = PAGE_SHIFT + 9 * levels;
    let top = (gva as i64) >> (va_bits - 1);
    if top != 0 && top != -1 {
        return None;
    }
    let mut table = (vsatp & PTE_PPN_MASK) << PAGE_SHIFT;
    for level in (0..levels).rev() {
        let index = (gva >> (PAGE_SHIFT + 9 * level)) & 0x1ff;
        let mut bytes = [0u8; 8];
        if !mem.read(table + index * 8, &mut bytes) {
            return None;
        }
        let pte = u64::from_le_bytes(bytes);
        if pte & PTE_V == 0 || (pte & PTE_W != 0 && pte & PTE_R == 0) {
            return None;
        }
        let ppn = (pte >> 10) & PTE_PPN_MASK;
        if pte & (PTE_R | PTE_X) == 0 {
            // A pointer to the next level.
            table = ppn << PAGE_SHIFT;
            continue;
        }
        let user_page = pte & PTE_U != 0;
        let allowed =
            pte & PTE_X != 0 && pte & PTE_A != 0 && user_page == (mode == GuestMode::User);
        // A superpage's low PPN bits must be zero.
        let low_ppn = (1u64 << (9 * level)) - 1;
        if !allowed || ppn & low_ppn != 0 {
            return None;
        }
        let offset_mask = (1u64 << (PAGE_SHIFT + 9 * level)) - 1;
        return Some((ppn << PAGE_SHIFT) | (gva & offset_mask));
    }
    None
}

/// The instruction at guest virtual `pc`: 16 bits for a compressed one, 32
/// otherwise (its second half translated on its own: it may lie on the
/// next page).
pub fn fetch(mem: &dyn GuestMemoryRead, vsatp: u64, pc: u64, mode: GuestMode) -> Option<u32> {
    let mut low = [0u8; 2];
    let at = translate(mem, vsatp, pc, mode)?;
    mem.read(at, &mut low).then_some(())?;
    let low = u16::from_le_bytes(low);
    if low & 0b11 != 0b11 {
        return Some(u32::from(low));
    }
    let mut high = [0u8; 2];
    let at = translate(mem, vsatp, pc.checked_add(2)?, mode)?;
    mem.read(at, &mut high).then_some(())?;
    Some(u32::from(low) | u32::from(u16::from_le_bytes(high)) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// Guest RAM as sparse 8-byte words.
    #[derive(Default)]
    struct Ram(BTreeMap<u64, u8>);

    impl Ram {
        fn put(&mut self, gpa: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                self.0.insert(gpa + i as u64, *b);
            }
        }
        fn pte(&mut self, table: u64, index: u64, pte: u64) {
            self.put(table + index * 8, &pte.to_le_bytes());
        }
    }

    impl GuestMemoryRead for Ram {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
            let bytes: Option<Vec<u8>> = (0..buf.len() as u64)
                .map(|i| self.0.get(&(gpa + i)).copied())
                .collect();
            match bytes {
                Some(b) => {
                    buf.copy_from_slice(&b);
                    true
                }
                None => false,
            }
        }
    }

    const ROOT: u64 = 0x8010_0000;
    const LEAF: u64 = PTE_V | PTE_R | PTE_X | PTE_A;

    fn pointer(table: u64) -> u64 {
        ((table >> 12) << 10) | PTE_V
    }

    fn leaf(gpa: u64, flags: u64) -> u64 {
        ((gpa >> 12) << 10) | flags
    }

    fn vsatp(mode: u64) -> u64 {
        (mode << 60) | (ROOT >> 12)
    }

    /// Sv39: a 4 KiB page at 0xffff_ffc0_0000_1000 and a 2 MiB one at
    /// 0x20_0000 (user), built from the root down.
    fn sv39() -> Ram {
        let mut ram = Ram::default();
        let (l1, l0) = (0x8011_0000, 0x8012_0000);
        // 0xffff_ffc0_0000_1000: VPN2 = 0x100, VPN1 = 0, VPN0 = 1.
        ram.pte(ROOT, 0x100, pointer(l1));
        ram.pte(l1, 0, pointer(l0));
        ram.pte(l0, 1, leaf(0x8040_0000, LEAF));
        ram.pte(l0, 2, leaf(0x8040_1000, LEAF));
        // 0x20_0000: VPN2 = 0, VPN1 = 1: a user megapage.
        let l1u = 0x8013_0000;
        ram.pte(ROOT, 0, pointer(l1u));
        ram.pte(l1u, 1, leaf(0x8060_0000, LEAF | PTE_U));
        ram
    }

    #[test]
    fn bare_mode_is_the_identity() {
        let ram = Ram::default();
        assert_eq!(
            translate(&ram, 0, 0x8020_0000, GuestMode::Supervisor),
            Some(0x8020_0000)
        );
        assert_eq!(
            translate(&ram, 7 << 60, 0x8020_0000, GuestMode::Supervisor),
            None
        );
    }

    #[test]
    fn sv39_pages_and_megapages_translate_with_their_offsets() {
        let ram = sv39();
        let s = GuestMode::Supervisor;
        assert_eq!(
            translate(&ram, vsatp(8), 0xffff_ffc0_0000_1abc, s),
            Some(0x8040_0abc)
        );
        assert_eq!(
            translate(&ram, vsatp(8), 0x2f_f00e, GuestMode::User),
            Some(0x806f_f00e)
        );
        // Not canonical, not mapped, or the wrong privilege: no fetch.
        assert_eq!(translate(&ram, vsatp(8), 0x0000_0040_0000_1000, s), None);
        assert_eq!(translate(&ram, vsatp(8), 0xffff_ffc0_0000_3000, s), None);
        assert_eq!(
            translate(&ram, vsatp(8), 0x20_0000, s),
            None,
            "S cannot run U pages"
        );
        assert_eq!(
            translate(&ram, vsatp(8), 0xffff_ffc0_0000_1000, GuestMode::User),
            None,
            "U cannot run S pages"
        );
    }

    #[test]
    fn a_page_without_x_or_a_or_a_misaligned_superpage_does_not_fetch() {
        let mut ram = sv39();
        let (l1, l0) = (0x8011_0000, 0x8012_0000);
        let s = GuestMode::Supervisor;
        ram.pte(l0, 1, leaf(0x8040_0000, PTE_V | PTE_R | PTE_A));
        assert_eq!(
            translate(&ram, vsatp(8), 0xffff_ffc0_0000_1000, s),
            None,
            "no X"
        );
        ram.pte(l0, 1, leaf(0x8040_0000, PTE_V | PTE_R | PTE_X));
        assert_eq!(
            translate(&ram, vsatp(8), 0xffff_ffc0_0000_1000, s),
            None,
            "no A"
        );
        ram.pte(l1, 0, leaf(0x8040_1000, LEAF));
        assert_eq!(
            translate(&ram, vsatp(8), 0xffff_ffc0_0000_1000, s),
            None,
            "misaligned"
        );
        ram.pte(l1, 0, PTE_V | PTE_W);
        assert_eq!(
            translate(&ram, vsatp(8), 0xffff_ffc0_0000_1000, s),
            None,
            "W without R"
        );
    }

    #[test]
    fn sv57_walks_five_levels() {
        let mut ram = Ram::default();
        let tables = [0x8011_0000u64, 0x8012_0000, 0x8013_0000, 0x8014_0000];
        // 0xff00_0000_0000_5000: VPN4 = 0x100, the rest 0 but VPN0 = 5.
        ram.pte(ROOT, 0x100, pointer(tables[0]));
        ram.pte(tables[0], 0, pointer(tables[1]));
        ram.pte(tables[1], 0, pointer(tables[2]));
        ram.pte(tables[2], 0, pointer(tables[3]));
        ram.pte(tables[3], 5, leaf(0x8070_0000, LEAF));
        let gva = 0xff00_0000_0000_5010;
        assert_eq!(
            translate(&ram, vsatp(10), gva, GuestMode::Supervisor),
            Some(0x8070_0010)
        );
        assert_eq!(
            translate(&ram, vsatp(9), gva, GuestMode::Supervisor),
            None,
            "not Sv48"
        );
    }

    #[test]
    fn instructions_are_read_whole_even_across_a_page_boundary() {
        let mut ram = sv39();
        // A 32-bit load (lw a0, 0(a1)) straddling the two 4 KiB pages.
        ram.put(0x8040_0ffe, &0x0005_a503u32.to_le_bytes()[..2]);
        ram.put(0x8040_1000, &0x0005_a503u32.to_le_bytes()[2..]);
        ram.put(0x8040_0100, &0x4188u16.to_le_bytes());
        let s = GuestMode::Supervisor;
        assert_eq!(
            fetch(&ram, vsatp(8), 0xffff_ffc0_0000_1ffe, s),
            Some(0x0005_a503)
        );
        assert_eq!(
            fetch(&ram, vsatp(8), 0xffff_ffc0_0000_1100, s),
            Some(0x4188),
            "compressed"
        );
        assert_eq!(fetch(&ram, vsatp(8), 0xffff_ffc0_0000_3000, s), None);
    }
}
