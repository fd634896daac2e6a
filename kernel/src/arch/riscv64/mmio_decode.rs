//! Decoding a trapping guest load/store (RISC-V guest-page fault) into an MMIO access.
//!
//! Pure logic, no CSR access: the trap handler passes in `htinst`, or the raw
//! instruction bits it fetched at `sepc` when `htinst` is 0, and gets back the
//! direction, width, register and instruction length of the access.
//!
//! * [`decode_htinst`] reads the H-extension *transformed instruction*. For a
//!   guest-page fault on an explicit load/store it is the trapping instruction
//!   (expanded to 32 bits if it was compressed) with the address offset
//!   immediate zeroed and bits 19:15 (the `rs1` field) holding the "Addr.
//!   Offset" (nonzero only for a misaligned access that straddles a page; QEMU
//!   always writes 0). Bit 1 is 1 for a 32-bit original and 0 for a compressed
//!   (2-byte) one. Values with bits 1:0 = 0b00 are pseudoinstructions for an
//!   implicit VS-stage page-table access, which is never MMIO.
//! * [`decode_raw`] decodes the instruction as it sits in guest memory: the
//!   32-bit integer loads/stores and the RV64C loads/stores.
//! * [`fault_gpa`] rebuilds the faulting guest-physical address.
//!
//! Guest bits are untrusted: every input gives `Ok` or a [`DecodeError`],
//! never a panic.

/// An integer register number, 0..=31 (`x0` reads as zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg(u8);

impl Reg {
    /// Register number, 0..=31.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Destination register, or `None` for `x0` (whose writes are discarded).
    const fn dest(bits: u32) -> Option<Reg> {
        let n = (bits & 0x1f) as u8;
        if n == 0 { None } else { Some(Reg(n)) }
    }

    const fn src(bits: u32) -> Reg {
        Reg((bits & 0x1f) as u8)
    }

    /// A compressed 3-bit register field (rd'/rs1'/rs2') names x8..=x15.
    const fn compressed(bits: u32) -> Reg {
        Reg(8 + (bits & 0x7) as u8)
    }
}

/// Size of the access in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 1 byte (LB, LBU, SB).
    B1 = 1,
    /// 2 bytes (LH, LHU, SH).
    B2 = 2,
    /// 4 bytes (LW, LWU, SW).
    B4 = 4,
    /// 8 bytes (LD, SD).
    B8 = 8,
}

impl Width {
    /// The width in bytes: 1, 2, 4 or 8.
    pub const fn bytes(self) -> u8 {
        self as u8
    }

    const fn mask(self) -> u64 {
        match self {
            Width::B1 => 0xff,
            Width::B2 => 0xffff,
            Width::B4 => 0xffff_ffff,
            Width::B8 => u64::MAX,
        }
    }
}

/// Direction of the access and the register it involves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// A load into `rd`. `rd` is `None` when the destination is `x0`: the
    /// device read must still happen (side effects) but its value is dropped.
    /// `sign_extend` is true for LB/LH/LW (and C.LW/C.LWSP), false for
    /// LBU/LHU/LWU and for the full-width LD; pass it to [`load_value`].
    Load { rd: Option<Reg>, sign_extend: bool },
    /// A store of the low [`Width`] bytes of `rs2` (`x0` stores zero).
    Store { rs2: Reg },
}

/// A decoded MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// Load or store, and the register involved.
    pub kind: AccessKind,
    /// Bytes accessed at the faulting address ([`fault_gpa`]).
    pub width: Width,
    /// Length of the trapping instruction, 2 or 4: add it to `sepc` to resume.
    pub insn_len: u8,
}

impl MmioAccess {
    const fn load(rd: Option<Reg>, sign_extend: bool, width: Width, insn_len: u8) -> Self {
        let kind = AccessKind::Load { rd, sign_extend };
        MmioAccess {
            kind,
            width,
            insn_len,
        }
    }

    const fn store(rs2: Reg, width: Width, insn_len: u8) -> Self {
        let kind = AccessKind::Store { rs2 };
        MmioAccess {
            kind,
            width,
            insn_len,
        }
    }
}

/// Why an instruction cannot be emulated as an MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// `htinst` was 0: fetch the instruction at `sepc` and use [`decode_raw`].
    NoTransformedInstruction,
    /// `htinst` holds a pseudoinstruction: the fault came from an implicit
    /// VS-stage page-table access, and `htval` is a PTE address, not MMIO.
    ImplicitPageTableAccess { insn: u64 },
    /// Not a load or store at all (ALU op, branch, garbage, the all-zero
    /// illegal instruction, a reserved or longer-than-32-bit encoding).
    NotAMemoryAccess { insn: u64 },
    /// A floating-point load/store (FLH/FLW/FLD/FLQ/FSx and compressed forms).
    FloatAccess { insn: u64 },
    /// A memory access Mica does not emulate on MMIO: AMO, LR/SC, vector,
    /// Zcb compressed, RV128 LDU/SQ, reserved compressed forms.
    UnsupportedInstruction { insn: u64 },
}

const OP_LOAD: u32 = 0x03;
const OP_LOAD_FP: u32 = 0x07;
const OP_STORE: u32 = 0x23;
const OP_STORE_FP: u32 = 0x27;
const OP_AMO: u32 = 0x2f;

/// The faulting guest-physical address of a guest-page fault.
///
/// Privileged spec (H extension, `htval`): on a guest-page fault `htval` holds
/// the guest-physical address shifted right by 2 (so a GPA wider than XLEN
/// fits), and `stval` holds the guest-virtual address, whose low 2 bits equal
/// the GPA's for an explicit access. Hence `gpa = (htval << 2) | (stval & 3)`.
/// For an implicit page-table access ([`DecodeError::ImplicitPageTableAccess`])
/// the result is not meaningful as an MMIO address.
pub const fn fault_gpa(htval: u64, stval: u64) -> u64 {
    (htval << 2) | (stval & 0b11)
}

/// Length in bytes (2 or 4) of the instruction whose low 16 bits are `low`,
/// for a fetcher at `sepc`; `None` for 48-bit and longer encodings.
pub const fn insn_len(low: u16) -> Option<u8> {
    if low & 0b11 != 0b11 {
        Some(2)
    } else if low & 0b1_1100 != 0b1_1100 {
        Some(4)
    } else {
        None
    }
}

/// Decode the transformed instruction the hardware wrote to `htinst` on a
/// load/store guest-page fault. The address offset and the "Addr. Offset"
/// field (bits 19:15) are ignored: the address comes from [`fault_gpa`].
pub fn decode_htinst(htinst: u64) -> Result<MmioAccess, DecodeError> {
    if htinst == 0 {
        return Err(DecodeError::NoTransformedInstruction);
    }
    let Ok(insn) = u32::try_from(htinst) else {
        return Err(DecodeError::NotAMemoryAccess { insn: htinst });
    };
    match insn & 0b11 {
        0b11 => decode_32(insn, 4, htinst),
        // Compressed original: the transformed 32-bit form with bit 1 cleared.
        0b01 => decode_32(insn | 0b10, 2, htinst),
        // Pseudoinstructions: 32/64-bit read/write for VS-stage translation.
        0b00 if matches!(insn, 0x2000 | 0x2020 | 0x3000 | 0x3020) => {
            Err(DecodeError::ImplicitPageTableAccess { insn: htinst })
        }
        _ => Err(DecodeError::NotAMemoryAccess { insn: htinst }),
    }
}

/// Decode the instruction bits fetched at `sepc` (used when `htinst` is 0).
/// If bits 1:0 are not 0b11 the instruction is compressed and only the low 16
/// bits are read; the upper half may then hold anything.
pub fn decode_raw(insn: u32) -> Result<MmioAccess, DecodeError> {
    if insn & 0b11 == 0b11 {
        decode_32(insn, 4, u64::from(insn))
    } else {
        decode_16((insn & 0xffff) as u16)
    }
}

fn decode_32(insn: u32, insn_len: u8, reported: u64) -> Result<MmioAccess, DecodeError> {
    let (rd, rs2) = (Reg::dest(insn >> 7), Reg::src(insn >> 20));
    let load = |width, sign| Ok(MmioAccess::load(rd, sign, width, insn_len));
    let store = |width| Ok(MmioAccess::store(rs2, width, insn_len));
    match (insn & 0x7f, (insn >> 12) & 0x7) {
        (OP_LOAD, 0) => load(Width::B1, true),
        (OP_LOAD, 1) => load(Width::B2, true),
        (OP_LOAD, 2) => load(Width::B4, true),
        (OP_LOAD, 3) => load(Width::B8, false),
        (OP_LOAD, 4) => load(Width::B1, false),
        (OP_LOAD, 5) => load(Width::B2, false),
        (OP_LOAD, 6) => load(Width::B4, false),
        (OP_STORE, 0) => store(Width::B1),
        (OP_STORE, 1) => store(Width::B2),
        (OP_STORE, 2) => store(Width::B4),
        (OP_STORE, 3) => store(Width::B8),
        // LOAD-FP/STORE-FP: funct3 1..=4 scalar FP (H/W/D/Q), others vector.
        (OP_LOAD_FP | OP_STORE_FP, 1..=4) => Err(DecodeError::FloatAccess { insn: reported }),
        (OP_LOAD | OP_STORE | OP_LOAD_FP | OP_STORE_FP | OP_AMO, _) => {
            Err(DecodeError::UnsupportedInstruction { insn: reported })
        }
        _ => Err(DecodeError::NotAMemoryAccess { insn: reported }),
    }
}

fn decode_16(insn: u16) -> Result<MmioAccess, DecodeError> {
    let i = u32::from(insn);
    let e = u64::from(insn);
    let load = |rd, width| Ok(MmioAccess::load(Some(rd), width == Width::B4, width, 2));
    let store = |rs2, width| Ok(MmioAccess::store(rs2, width, 2));
    match (i & 0b11, i >> 13) {
        // Quadrant 0: CL/CS formats, rd'/rs2' in bits 4:2.
        (0b00, 0b010) => load(Reg::compressed(i >> 2), Width::B4), // C.LW
        (0b00, 0b011) => load(Reg::compressed(i >> 2), Width::B8), // C.LD (RV64)
        (0b00, 0b110) => store(Reg::compressed(i >> 2), Width::B4), // C.SW
        (0b00, 0b111) => store(Reg::compressed(i >> 2), Width::B8), // C.SD (RV64)
        (0b00, 0b001 | 0b101) => Err(DecodeError::FloatAccess { insn: e }), // C.FLD/C.FSD
        (0b00, 0b100) => Err(DecodeError::UnsupportedInstruction { insn: e }), // Zcb
        // Quadrant 2: stack-pointer forms, 5-bit rd in 11:7 / rs2 in 6:2.
        // C.LWSP / C.LDSP with rd = x0 are reserved.
        (0b10, 0b010 | 0b011) if i & 0xf80 == 0 => {
            Err(DecodeError::UnsupportedInstruction { insn: e })
        }
        (0b10, 0b010) => load(Reg::src(i >> 7), Width::B4), // C.LWSP
        (0b10, 0b011) => load(Reg::src(i >> 7), Width::B8), // C.LDSP
        (0b10, 0b110) => store(Reg::src(i >> 2), Width::B4), // C.SWSP
        (0b10, 0b111) => store(Reg::src(i >> 2), Width::B8), // C.SDSP
        (0b10, 0b001 | 0b101) => Err(DecodeError::FloatAccess { insn: e }), // C.FLDSP/C.FSDSP
        _ => Err(DecodeError::NotAMemoryAccess { insn: e }),
    }
}

/// The value a load of `width` bytes returning `raw` from the device leaves in
/// the destination register: sign-extended (LB/LH/LW, C.LW) or zero-extended
/// (LBU/LHU/LWU) to 64 bits; bits of `raw` above `width` are ignored.
pub const fn load_value(width: Width, sign_extend: bool, raw: u64) -> u64 {
    if !sign_extend {
        return raw & width.mask();
    }
    // Move the value's sign bit to bit 63, then shift back arithmetically.
    let shift = 64 - 8 * width.bytes() as u32;
    (((raw << shift) as i64) >> shift) as u64
}

/// The bytes a store of `width` sends to the device: `reg` masked to `width`.
pub const fn store_value(width: Width, reg: u64) -> u64 {
    reg & width.mask()
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "test encoders cast small register numbers and PRNG words"
)]
#[path = "mmio_decode_tests.rs"]
mod tests;
