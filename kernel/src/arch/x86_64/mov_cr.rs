//! A MOV to a control register, decoded from the guest's own code: what
//! SVM needs after a CR4 write intercept, since its EXITINFO1 names the
//! source register only with decode assists, which QEMU's SVM does not
//! have (EXITINFO1 is 0 there), and no next RIP comes without nRIP save.
//! The bytes at the guest's RIP are fetched through its own 4-level page
//! tables ([`translate`]) and decoded ([`decode`]). Pure and host-tested.

/// Longest x86 instruction.
pub const MAX_LEN: usize = 15;

/// A decoded `mov crN, reg` (`0F 22 /r`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovToCr {
    /// The control register (0-15).
    pub cr: u8,
    /// The source register in x86 numbering (0 RAX, 1 RCX, 2 RDX, 3 RBX,
    /// 4 RSP, 5 RBP, 6 RSI, 7 RDI, 8-15 R8-R15).
    pub gpr: u8,
    /// Bytes of the instruction.
    pub len: u64,
}

/// Decodes a MOV to a control register from `bytes` (as many as could be
/// fetched at RIP). `long`: 64-bit code, where REX (right before the
/// opcode) extends both registers. Segment, operand- and address-size
/// prefixes change nothing for this instruction; LOCK (AMD's alternative
/// encoding) adds 8 to the control register. Anything else is `None`.
pub fn decode(bytes: &[u8], long: bool) -> Option<MovToCr> {
    let mut at = 0;
    let mut lock = false;
    while let Some(&b) = bytes.get(at) {
        match b {
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 => {}
            0xf0 => lock = true,
            _ => break,
        }
        at += 1;
    }
    let rex = match bytes.get(at) {
        Some(&b) if long && b & 0xf0 == 0x40 => {
            at += 1;
            b
        }
        _ => 0,
    };
    let [0x0f, 0x22, modrm] = *bytes.get(at..at + 3)? else {
        return None;
    };
    let len = at + 3;
    if len > MAX_LEN {
        return None;
    }
    // The mod field is ignored: the operand is always a register.
    let reg = (modrm >> 3) & 7 | (rex & 0x4) << 1 | if lock { 8 } else { 0 };
    let rm = modrm & 7 | (rex & 0x1) << 3;
    Some(MovToCr {
        cr: reg,
        gpr: rm,
        len: len as u64,
    })
}

/// Bits 51:12 of a paging entry or CR3: the next table or the page.
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;
const PRESENT: u64 = 1;
/// PS: a 1 GiB (PDPT) or 2 MiB (PD) page.
const LARGE: u64 = 1 << 7;

/// The guest-physical address of guest-linear `linear` under 4-level
/// paging from `cr3`, reading each entry with `read` (a guest-physical
/// quadword, `None` outside RAM); `None` if an entry is not present or
/// unreadable, or `linear` is not canonical.
pub fn translate(cr3: u64, linear: u64, read: impl Fn(u64) -> Option<u64>) -> Option<u64> {
    let canonical = ((linear as i64) << 16 >> 16) as u64 == linear;
    if !canonical {
        return None;
    }
    let mut table = cr3 & ADDRESS;
    for level in (0..4u32).rev() {
        let shift = 12 + 9 * level;
        let index = (linear >> shift) & 0x1ff;
        let entry = read(table + index * 8)?;
        if entry & PRESENT == 0 {
            return None;
        }
        let page_mask = (1u64 << shift) - 1;
        if level == 0 || (matches!(level, 1 | 2) && entry & LARGE != 0) {
            return Some((entry & ADDRESS & !page_mask) | (linear & page_mask));
        }
        table = entry & ADDRESS;
    }
    None
}

/// Fetches up to [`MAX_LEN`] bytes at guest-linear `linear` into `out`,
/// each through `to_physical` and `read_byte`; returns how many were
/// fetched before the first one that could not be (an instruction may
/// cross into a page that is not mapped).
pub fn fetch(
    linear: u64,
    out: &mut [u8; MAX_LEN],
    to_physical: impl Fn(u64) -> Option<u64>,
    read_byte: impl Fn(u64) -> Option<u8>,
) -> usize {
    for (i, slot) in out.iter_mut().enumerate() {
        let Some(byte) = to_physical(linear.wrapping_add(i as u64)).and_then(&read_byte) else {
            return i;
        };
        *slot = byte;
    }
    MAX_LEN
}

/// What locates the guest's code: enough to turn RIP into a
/// guest-physical address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeView {
    /// CR0.PG.
    pub paging: bool,
    /// EFER.LMA (4-level paging when `paging`).
    pub long_mode: bool,
    /// CS.L: 64-bit code (CS base ignored).
    pub cs_long: bool,
    /// CS base (outside 64-bit code).
    pub cs_base: u64,
    /// RIP.
    pub rip: u64,
    /// CR3.
    pub cr3: u64,
}

/// The MOV to a control register at the guest's RIP, fetched through its
/// page tables (`read`: a guest-physical quadword; `read_byte`: a byte)
/// and decoded; `None` if it cannot be fetched or is no such MOV. Paging
/// off and 4-level paging are walked; legacy 32-bit and PAE paging (a
/// guest that left long mode) are not (`None`).
pub fn fetch_at_rip(
    code: &CodeView,
    read: impl Fn(u64) -> Option<u64>,
    read_byte: impl Fn(u64) -> Option<u8>,
) -> Option<MovToCr> {
    let linear = if code.cs_long {
        code.rip
    } else {
        code.cs_base.wrapping_add(code.rip) & 0xffff_ffff
    };
    let mut bytes = [0u8; MAX_LEN];
    let n = match (code.paging, code.long_mode) {
        (false, _) => fetch(linear, &mut bytes, Some, read_byte),
        (true, true) => fetch(
            linear,
            &mut bytes,
            |l| translate(code.cr3, l, &read),
            read_byte,
        ),
        (true, false) => return None,
    };
    decode(&bytes[..n], code.cs_long)
}

/// Where the backend keeps register `gpr` (x86 numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GprSlot {
    /// RAX (the VMCB's, or VMX's saved one).
    Rax,
    /// RSP (the VMCB's, or the VMCS guest-state field).
    Rsp,
    /// Index into `GuestGprs::regs` (RBX, RCX, RDX, RSI, RDI, RBP, R8-R15).
    Saved(usize),
}

/// The slot of register `gpr` (0-15; higher numbers wrap into 0-15).
pub fn gpr_slot(gpr: u8) -> GprSlot {
    match gpr & 0xf {
        0 => GprSlot::Rax,
        1 => GprSlot::Saved(1),
        2 => GprSlot::Saved(2),
        3 => GprSlot::Saved(0),
        4 => GprSlot::Rsp,
        5 => GprSlot::Saved(5),
        6 => GprSlot::Saved(3),
        7 => GprSlot::Saved(4),
        n => GprSlot::Saved(usize::from(n - 2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mov_to_cr4_from_each_register() {
        // mov cr4, rax / rdx / rsi / r8 / r15.
        let cases: [(&[u8], u8, u64); 5] = [
            (&[0x0f, 0x22, 0xe0], 0, 3),
            (&[0x0f, 0x22, 0xe2], 2, 3),
            (&[0x0f, 0x22, 0xe6], 6, 3),
            (&[0x41, 0x0f, 0x22, 0xe0], 8, 4),
            (&[0x41, 0x0f, 0x22, 0xe7, 0x90], 15, 4),
        ];
        for (bytes, gpr, len) in cases {
            assert_eq!(
                decode(bytes, true),
                Some(MovToCr { cr: 4, gpr, len }),
                "{bytes:x?}"
            );
        }
        // mov cr4, rsp with a stray mod field and a segment prefix.
        assert_eq!(
            decode(&[0x2e, 0x0f, 0x22, 0x24], true),
            Some(MovToCr {
                cr: 4,
                gpr: 4,
                len: 4
            })
        );
    }

    #[test]
    fn rex_r_and_lock_name_other_control_registers() {
        // REX.R: CR12 (which the CPU refuses; never a CR4 write).
        assert_eq!(decode(&[0x44, 0x0f, 0x22, 0xe0], true).unwrap().cr, 12);
        // LOCK mov cr0: AMD's CR8.
        assert_eq!(decode(&[0xf0, 0x0f, 0x22, 0xc0], true).unwrap().cr, 8);
        // mov cr3, rax.
        assert_eq!(decode(&[0x0f, 0x22, 0xd8], true).unwrap().cr, 3);
        // Outside 64-bit code 0x41 is not a prefix.
        assert_eq!(decode(&[0x41, 0x0f, 0x22, 0xe0], false), None);
    }

    #[test]
    fn other_instructions_and_short_fetches_are_none() {
        assert_eq!(decode(&[], true), None);
        assert_eq!(decode(&[0x0f, 0x22], true), None);
        assert_eq!(decode(&[0x0f, 0x20, 0xe0], true), None); // mov rax, cr4
        assert_eq!(decode(&[0x90, 0x0f, 0x22, 0xe0], true), None);
        assert_eq!(decode(&[0x66; MAX_LEN], true), None);
        let mut long = [0x66u8; 16];
        long[13..16].copy_from_slice(&[0x0f, 0x22, 0xe0]);
        assert_eq!(decode(&long, true), None, "16 bytes");
        assert_eq!(decode(&long[1..], true).unwrap().len, 15);
    }

    /// Guest RAM of 64 KiB as quadwords, with tables mapping linear
    /// 0x40_0000 (a 4 KiB page) to 0x9000, 0x60_0000 (a 2 MiB page) to
    /// 0x20_0000, and 0x4000_0000 (1 GiB) to 0.
    fn ram() -> impl Fn(u64) -> Option<u64> {
        let mut q = [0u64; 8192];
        let mut set = |gpa: u64, v: u64| q[(gpa / 8) as usize] = v;
        set(0x1000, 0x2000 | 3); // PML4[0] -> PDPT
        set(0x2000, 0x3000 | 3); // PDPT[0] -> PD
        set(0x2008, 0x83); // PDPT[1]: 1 GiB page at 0
        set(0x3000 + 2 * 8, 0x4000 | 3); // PD[2] -> PT (0x40_0000)
        set(0x3000 + 3 * 8, 0x20_0000 | 0x83); // PD[3]: 2 MiB at 0x20_0000
        set(0x4000, 0x9000 | 3); // PT[0] -> 0x9000
        move |gpa| (gpa % 8 == 0).then(|| q.get((gpa / 8) as usize).copied())?
    }

    #[test]
    fn four_level_walks_with_large_pages() {
        let read = ram();
        assert_eq!(translate(0x1000, 0x40_0123, &read), Some(0x9123));
        assert_eq!(translate(0x1000, 0x60_1234, &read), Some(0x20_1234));
        assert_eq!(translate(0x1000, 0x4000_5678, &read), Some(0x5678));
        // Not present (PT[1]), a non-canonical address, a table outside
        // RAM (CR3 past it).
        assert_eq!(translate(0x1000, 0x40_1000, &read), None);
        assert_eq!(translate(0x1000, 0x0000_8000_0000_0000, &read), None);
        assert_eq!(translate(0x10_0000, 0x40_0000, &read), None);
    }

    #[test]
    fn a_fetch_stops_where_the_mapping_ends() {
        let read = ram();
        let mut out = [0u8; MAX_LEN];
        let to_physical = |linear| translate(0x1000, linear, &read);
        let n = fetch(0x40_0ff8, &mut out, to_physical, |gpa| {
            Some((gpa & 0xff) as u8)
        });
        assert_eq!(n, 8);
        assert_eq!(&out[..8], &[0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff]);
        let all = fetch(0x40_0000, &mut out, to_physical, |_| Some(0x90));
        assert_eq!(all, MAX_LEN);
    }

    #[test]
    fn the_mov_at_rip_is_fetched_through_the_guests_paging() {
        let read = ram();
        // `mov cr4, r9` (41 0F 22 E1) at guest-physical 0x9100, linear
        // 0x40_0100 under paging and 0x9100 without.
        let byte = |gpa: u64| {
            Some(match gpa {
                0x9100 => 0x41,
                0x9101 => 0x0f,
                0x9102 => 0x22,
                0x9103 => 0xe1,
                _ => 0x90,
            })
        };
        let long = CodeView {
            paging: true,
            long_mode: true,
            cs_long: true,
            cs_base: 0,
            rip: 0x40_0100,
            cr3: 0x1000,
        };
        let want = Some(MovToCr {
            cr: 4,
            gpr: 9,
            len: 4,
        });
        assert_eq!(fetch_at_rip(&long, &read, byte), want);
        let flat = CodeView {
            paging: false,
            long_mode: false,
            cs_long: false,
            cs_base: 0x9000,
            rip: 0x100,
            ..long
        };
        // 32-bit code: 0x41 is `inc ecx`, not REX.
        assert_eq!(fetch_at_rip(&flat, &read, byte), None);
        let past_it = CodeView { rip: 0x101, ..flat };
        assert_eq!(
            fetch_at_rip(&past_it, &read, byte),
            Some(MovToCr {
                cr: 4,
                gpr: 1,
                len: 3
            })
        );
        let pae = CodeView {
            long_mode: false,
            ..long
        };
        assert_eq!(fetch_at_rip(&pae, &read, byte), None);
        let unmapped = CodeView {
            rip: 0x40_1000,
            ..long
        };
        assert_eq!(fetch_at_rip(&unmapped, &read, byte), None);
    }

    #[test]
    fn registers_map_to_their_slots() {
        assert_eq!(gpr_slot(0), GprSlot::Rax);
        assert_eq!(gpr_slot(4), GprSlot::Rsp);
        let saved: [usize; 14] = core::array::from_fn(|i| {
            let gpr = [3, 1, 2, 6, 7, 5, 8, 9, 10, 11, 12, 13, 14, 15][i];
            match gpr_slot(gpr) {
                GprSlot::Saved(n) => n,
                other => panic!("{gpr}: {other:?}"),
            }
        });
        assert_eq!(saved, core::array::from_fn(|i| i));
    }
}
