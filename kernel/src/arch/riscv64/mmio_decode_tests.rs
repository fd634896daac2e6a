//! Tests of the trapped load/store decoder against hand-checked encodings
//! of every width, register and compressed form.

use super::*;
use DecodeError::*;

// --- Encoders (RISC-V unprivileged spec, base I-type/S-type and RVC CL/CS/CI/CSS) ---
fn i_type(imm: i32, rs1: u32, f3: u32, rd: u32, op: u32) -> u32 {
    ((imm as u32 & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op
}
fn s_type(imm: i32, rs2: u32, rs1: u32, f3: u32, op: u32) -> u32 {
    let imm = imm as u32 & 0xfff;
    ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op
}
fn bits(v: u32, hi: u32, lo: u32, at: u32) -> u32 {
    ((v >> lo) & ((1 << (hi - lo + 1)) - 1)) << at
}
/// C.LW (f3=2) / C.LD (3) / C.SW (6) / C.SD (7); `r` is rd' or rs2', x8-relative.
fn c_ls(f3: u32, r: u32, rs1p: u32, uimm: u32) -> u32 {
    let imm = if f3 & 1 == 0 {
        bits(uimm, 5, 3, 10) | bits(uimm, 2, 2, 6) | bits(uimm, 6, 6, 5)
    } else {
        bits(uimm, 5, 3, 10) | bits(uimm, 7, 6, 5)
    };
    (f3 << 13) | imm | (rs1p << 7) | (r << 2)
}
fn c_lwsp(rd: u32, u: u32) -> u32 {
    (0b010 << 13) | bits(u, 5, 5, 12) | (rd << 7) | bits(u, 4, 2, 4) | bits(u, 7, 6, 2) | 0b10
}
fn c_ldsp(rd: u32, u: u32) -> u32 {
    (0b011 << 13) | bits(u, 5, 5, 12) | (rd << 7) | bits(u, 4, 3, 5) | bits(u, 8, 6, 2) | 0b10
}
fn c_swsp(rs2: u32, u: u32) -> u32 {
    (0b110 << 13) | bits(u, 5, 2, 9) | bits(u, 7, 6, 7) | (rs2 << 2) | 0b10
}
fn c_sdsp(rs2: u32, u: u32) -> u32 {
    (0b111 << 13) | bits(u, 5, 3, 10) | bits(u, 8, 6, 7) | (rs2 << 2) | 0b10
}
/// The H-extension transformed form: offset immediate and rs1 cleared.
fn transform(insn: u32) -> u64 {
    let keep = if insn & 0x7f == OP_STORE {
        0x01f0_707f
    } else {
        0x0000_7fff
    };
    u64::from(insn & keep)
}
/// Transformed form of a compressed original: its 32-bit expansion, bit 1 cleared.
fn transform_c(expanded: u32) -> u64 {
    transform(expanded) & !0b10
}
fn ld(rd: Option<u8>, sign_extend: bool, width: Width, insn_len: u8) -> MmioAccess {
    MmioAccess::load(rd.map(Reg), sign_extend, width, insn_len)
}
fn st(rs2: u8, width: Width, insn_len: u8) -> MmioAccess {
    MmioAccess::store(Reg(rs2), width, insn_len)
}
fn dest(r: u32) -> Option<u8> {
    (r != 0).then_some(r as u8)
}

const LOADS: [(u32, Width, bool); 7] = [
    (0, Width::B1, true),
    (1, Width::B2, true),
    (2, Width::B4, true),
    (3, Width::B8, false),
    (4, Width::B1, false),
    (5, Width::B2, false),
    (6, Width::B4, false),
];
const STORES: [(u32, Width); 4] = [
    (0, Width::B1),
    (1, Width::B2),
    (2, Width::B4),
    (3, Width::B8),
];
const REGS: [u32; 7] = [0, 1, 2, 8, 10, 15, 31];
const IMMS: [i32; 5] = [-2048, -1, 0, 8, 2047];

/// Reference encodings produced with GNU as 2.40 (-march=rv64gc) and
/// checked by hand against the spec; the tests do not need the assembler.
#[test]
fn encoders_match_assembler_reference() {
    let cases: [(u32, u32); 26] = [
        (i_type(0, 11, 2, 10, OP_LOAD), 0x0005_a503), // lw a0,0(a1)
        (s_type(0, 10, 11, 2, OP_STORE), 0x00a5_a023), // sw a0,0(a1)
        (i_type(8, 2, 3, 10, OP_LOAD), 0x0081_3503),  // ld a0,8(sp)
        (s_type(8, 1, 2, 3, OP_STORE), 0x0011_3423),  // sd ra,8(sp)
        (i_type(-1, 8, 0, 5, OP_LOAD), 0xfff4_0283),  // lb t0,-1(s0)
        (i_type(2047, 31, 1, 31, OP_LOAD), 0x7fff_9f83), // lh t6,2047(t6)
        (i_type(-2048, 2, 4, 1, OP_LOAD), 0x8001_4083), // lbu ra,-2048(sp)
        (i_type(6, 15, 5, 9, OP_LOAD), 0x0067_d483),  // lhu s1,6(a5)
        (i_type(12, 6, 6, 12, OP_LOAD), 0x00c3_6603), // lwu a2,12(t1)
        (s_type(0, 0, 10, 0, OP_STORE), 0x0005_0023), // sb zero,0(a0)
        (s_type(-2, 31, 27, 1, OP_STORE), 0xfffd_9f23), // sh t6,-2(s11)
        (s_type(100, 17, 3, 2, OP_STORE), 0x0711_a223), // sw a7,100(gp)
        (s_type(-8, 18, 4, 3, OP_STORE), 0xff22_3c23), // sd s2,-8(tp)
        (c_ls(0b010, 2, 3, 0), 0x4188),               // c.lw a0,0(a1)
        (c_ls(0b110, 2, 3, 0), 0xc188),               // c.sw a0,0(a1)
        (c_ls(0b011, 0, 7, 248), 0x7fe0),             // c.ld s0,248(a5)
        (c_ls(0b111, 7, 1, 8), 0xe49c),               // c.sd a5,8(s1)
        (c_ls(0b010, 5, 0, 124), 0x5c74),             // c.lw a3,124(s0)
        (c_ls(0b110, 1, 6, 64), 0xc324),              // c.sw s1,64(a4)
        (c_lwsp(1, 252), 0x50fe),                     // c.lwsp ra,252(sp)
        (c_lwsp(31, 4), 0x4f92),                      // c.lwsp t6,4(sp)
        (c_ldsp(1, 8), 0x60a2),                       // c.ldsp ra,8(sp)
        (c_ldsp(27, 504), 0x7dfe),                    // c.ldsp s11,504(sp)
        (c_swsp(0, 252), 0xdf82),                     // c.swsp zero,252(sp)
        (c_sdsp(1, 8), 0xe406),                       // c.sdsp ra,8(sp)
        (c_sdsp(31, 504), 0xfffe),                    // c.sdsp t6,504(sp)
    ];
    for (i, (got, want)) in cases.iter().enumerate() {
        assert_eq!(got, want, "case {i}: {got:#x} != {want:#x}");
    }
    assert_eq!(
        decode_raw(0x0005_a503),
        Ok(ld(Some(10), true, Width::B4, 4))
    );
    assert_eq!(decode_raw(0x00a5_a023), Ok(st(10, Width::B4, 4)));
    assert_eq!(decode_raw(0x4188), Ok(ld(Some(10), true, Width::B4, 2)));
    assert_eq!(decode_raw(0xc188), Ok(st(10, Width::B4, 2)));
    assert_eq!(decode_raw(0x7fe0), Ok(ld(Some(8), false, Width::B8, 2)));
    assert_eq!(decode_raw(0xe49c), Ok(st(15, Width::B8, 2)));
    assert_eq!(decode_raw(0x4f92), Ok(ld(Some(31), true, Width::B4, 2)));
    assert_eq!(decode_raw(0x7dfe), Ok(ld(Some(27), false, Width::B8, 2)));
    assert_eq!(decode_raw(0xdf82), Ok(st(0, Width::B4, 2)));
    assert_eq!(decode_raw(0xfffe), Ok(st(31, Width::B8, 2)));
    assert_eq!(decode_raw(0x0045_2003), Ok(ld(None, true, Width::B4, 4))); // lw zero,4(a0)
    assert_eq!(
        decode_htinst(0x0000_2503),
        Ok(ld(Some(10), true, Width::B4, 4))
    );
    assert_eq!(
        decode_htinst(0x0000_2501),
        Ok(ld(Some(10), true, Width::B4, 2))
    );
    assert_eq!(decode_htinst(0x00a0_2021), Ok(st(10, Width::B4, 2)));
}

#[test]
fn loads_32bit_raw_and_transformed() {
    for (f3, width, sign) in LOADS {
        for rd in REGS {
            for rs1 in REGS {
                for imm in IMMS {
                    let insn = i_type(imm, rs1, f3, rd, OP_LOAD);
                    let want = Ok(ld(dest(rd), sign, width, 4));
                    assert_eq!(decode_raw(insn), want, "{insn:#010x}");
                    assert_eq!(decode_htinst(transform(insn)), want);
                    // Nonzero "Addr. Offset" in bits 19:15 is ignored.
                    assert_eq!(decode_htinst(transform(insn) | (3 << 15)), want);
                }
            }
        }
    }
}

#[test]
fn stores_32bit_raw_and_transformed() {
    for (f3, width) in STORES {
        for rs2 in REGS {
            for rs1 in REGS {
                for imm in IMMS {
                    let insn = s_type(imm, rs2, rs1, f3, OP_STORE);
                    let want = Ok(st(rs2 as u8, width, 4));
                    assert_eq!(decode_raw(insn), want, "{insn:#010x}");
                    assert_eq!(decode_htinst(transform(insn)), want);
                    assert_eq!(decode_htinst(transform(insn) | (5 << 15)), want);
                }
            }
        }
    }
}

#[test]
fn compressed_register_forms() {
    for r in 0..8 {
        for rs1p in 0..8 {
            for uimm in [0, 8, 64, 120, 248] {
                let x = 8 + r;
                let wlimm = uimm & 0x7c; // C.LW/C.SW offsets are 4-aligned, < 128
                let cases = [
                    (
                        c_ls(0b010, r, rs1p, wlimm),
                        ld(Some(x as u8), true, Width::B4, 2),
                        i_type(0, 8 + rs1p, 2, x, OP_LOAD),
                    ),
                    (
                        c_ls(0b011, r, rs1p, uimm),
                        ld(Some(x as u8), false, Width::B8, 2),
                        i_type(0, 8 + rs1p, 3, x, OP_LOAD),
                    ),
                    (
                        c_ls(0b110, r, rs1p, wlimm),
                        st(x as u8, Width::B4, 2),
                        s_type(0, x, 8 + rs1p, 2, OP_STORE),
                    ),
                    (
                        c_ls(0b111, r, rs1p, uimm),
                        st(x as u8, Width::B8, 2),
                        s_type(0, x, 8 + rs1p, 3, OP_STORE),
                    ),
                ];
                for (c, want, expanded) in cases {
                    assert_eq!(decode_raw(c), Ok(want), "{c:#06x}");
                    // Only the low half counts for a compressed instruction.
                    assert_eq!(decode_raw(c | 0xdead_0000), Ok(want));
                    assert_eq!(decode_htinst(transform_c(expanded)), Ok(want));
                }
            }
        }
    }
}

#[test]
fn compressed_sp_forms() {
    for r in 0..32 {
        for u in [0, 8, 64, 248, 504] {
            let wu = u & 0xfc;
            if r == 0 {
                // C.LWSP/C.LDSP with rd = x0 are reserved encodings.
                assert!(matches!(
                    decode_raw(c_lwsp(0, wu)),
                    Err(UnsupportedInstruction { .. })
                ));
                assert!(matches!(
                    decode_raw(c_ldsp(0, u)),
                    Err(UnsupportedInstruction { .. })
                ));
            } else {
                let want = ld(Some(r as u8), true, Width::B4, 2);
                assert_eq!(decode_raw(c_lwsp(r, wu)), Ok(want));
                assert_eq!(
                    decode_htinst(transform_c(i_type(0, 2, 2, r, OP_LOAD))),
                    Ok(want)
                );
                let want = ld(Some(r as u8), false, Width::B8, 2);
                assert_eq!(decode_raw(c_ldsp(r, u)), Ok(want));
                assert_eq!(
                    decode_htinst(transform_c(i_type(0, 2, 3, r, OP_LOAD))),
                    Ok(want)
                );
            }
            let want = st(r as u8, Width::B4, 2);
            assert_eq!(decode_raw(c_swsp(r, wu)), Ok(want));
            assert_eq!(
                decode_htinst(transform_c(s_type(0, r, 2, 2, OP_STORE))),
                Ok(want)
            );
            let want = st(r as u8, Width::B8, 2);
            assert_eq!(decode_raw(c_sdsp(r, u)), Ok(want));
            assert_eq!(
                decode_htinst(transform_c(s_type(0, r, 2, 3, OP_STORE))),
                Ok(want)
            );
        }
    }
}

#[test]
fn load_extension_and_store_masking() {
    assert_eq!(load_value(Width::B1, true, 0x80), 0xffff_ffff_ffff_ff80);
    assert_eq!(load_value(Width::B1, true, 0x7f), 0x7f);
    assert_eq!(load_value(Width::B1, false, 0xff), 0xff);
    assert_eq!(
        load_value(Width::B1, true, 0x1234_5681),
        0xffff_ffff_ffff_ff81
    );
    assert_eq!(load_value(Width::B2, true, 0x8001), 0xffff_ffff_ffff_8001);
    assert_eq!(load_value(Width::B2, false, 0xdead_8001), 0x8001);
    assert_eq!(
        load_value(Width::B4, true, 0x8000_0000),
        0xffff_ffff_8000_0000
    ); // LW
    assert_eq!(
        load_value(Width::B4, false, 0xffff_ffff_8000_0000),
        0x8000_0000
    ); // LWU
    assert_eq!(load_value(Width::B4, true, 0x7fff_ffff), 0x7fff_ffff);
    assert_eq!(load_value(Width::B8, false, u64::MAX), u64::MAX);
    assert_eq!(
        load_value(Width::B8, true, 0x8000_0000_0000_0000),
        0x8000_0000_0000_0000
    );
    assert_eq!(store_value(Width::B1, 0x1234_5678_9abc_def0), 0xf0);
    assert_eq!(store_value(Width::B2, 0x1234_5678_9abc_def0), 0xdef0);
    assert_eq!(store_value(Width::B4, 0x1234_5678_9abc_def0), 0x9abc_def0);
    assert_eq!(
        store_value(Width::B8, 0x1234_5678_9abc_def0),
        0x1234_5678_9abc_def0
    );
    assert_eq!(
        [Width::B1, Width::B2, Width::B4, Width::B8].map(Width::bytes),
        [1, 2, 4, 8]
    );
}

#[test]
fn unsupported_classes_are_typed_errors() {
    let float = [0x0005_a507, 0x00a5_b427, 0x2588, 0xa42a]; // flw, fsd, c.fld, c.fsdsp
    for insn in float {
        assert_eq!(
            decode_raw(insn),
            Err(FloatAccess {
                insn: u64::from(insn)
            })
        );
    }
    assert!(matches!(
        decode_htinst(transform(0x0005_a507)),
        Err(FloatAccess { .. })
    ));
    assert!(matches!(
        decode_htinst(0x0000_3425),
        Err(FloatAccess { .. })
    )); // from c.fsd
    // amoadd.w, lr.d, vle32.v, vse8.v, Zcb c.lbu, LDU (funct3 7), SQ (funct3 4).
    for insn in [
        0x00b6_252f,
        0x1005_b52f,
        0x0205_6087,
        0x0205_8127,
        0x81c8,
        0x0000_7003,
        0x0000_4023,
    ] {
        assert_eq!(
            decode_raw(insn),
            Err(UnsupportedInstruction {
                insn: u64::from(insn)
            })
        );
    }
    assert!(matches!(
        decode_htinst(0x00b0_252f),
        Err(UnsupportedInstruction { .. })
    ));
    // add a0,a0,a1; c.nop; c.addi4spn; the all-zero illegal insn; all ones; jalr.
    for insn in [0x00b5_0533, 0x0001, 0x0808, 0, u32::MAX, 0x0000_8067] {
        assert_eq!(
            decode_raw(insn),
            Err(NotAMemoryAccess {
                insn: u64::from(insn)
            })
        );
    }
    assert_eq!(decode_htinst(0), Err(NoTransformedInstruction));
    for p in [0x2000, 0x2020, 0x3000, 0x3020] {
        assert_eq!(decode_htinst(p), Err(ImplicitPageTableAccess { insn: p }));
    }
    for h in [0x2002, 0x1000, 0x1_0000_2503, u64::MAX] {
        assert_eq!(decode_htinst(h), Err(NotAMemoryAccess { insn: h }));
    }
}

#[test]
fn gpa_and_length_helpers() {
    assert_eq!(
        fault_gpa(0x1000_0004 >> 2, 0xffff_ffc0_0000_0005),
        0x1000_0005
    );
    assert_eq!(fault_gpa(0x1ff_ffff_fffc >> 2, 0x3), 0x1ff_ffff_ffff); // 41-bit Sv39x4 GPA
    assert_eq!(fault_gpa(0x2000_0000, 0), 0x8000_0000);
    assert_eq!(insn_len(0x4188), Some(2));
    assert_eq!(insn_len(0xa503), Some(4));
    assert_eq!(insn_len(0x001f), None);
}

#[test]
fn every_16bit_value_decodes_without_panic() {
    let mut compressed_ok = 0;
    for v in 0..=u16::MAX {
        let r = decode_raw(u32::from(v));
        let _ = decode_htinst(u64::from(v));
        if v & 0b11 != 0b11 {
            match r {
                Ok(a) => {
                    assert_eq!(a.insn_len, 2);
                    compressed_ok += 1;
                }
                Err(e) => assert!(!matches!(
                    e,
                    NoTransformedInstruction | ImplicitPageTableAccess { .. }
                )),
            }
        }
    }
    // Each (quadrant, funct3) pair leaves 11 free bits: C.LW/C.LD/C.SW/C.SD
    // and C.SWSP/C.SDSP take all 2^11; C.LWSP/C.LDSP lose rd = x0 (2^6).
    assert_eq!(compressed_ok, 4 * 2048 + 2 * 2048 + 2 * (2048 - 64));
}

#[test]
fn many_32bit_values_decode_without_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..2_000_000u32 {
        // xorshift64; alternate pure random with random fields on each major opcode.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let insn = if i % 2 == 0 {
            x as u32
        } else {
            (x as u32 & !0x7f) | (i >> 1 & 0x7f)
        };
        let raw = decode_raw(insn);
        let _ = decode_htinst(x);
        let _ = decode_htinst(u64::from(insn));
        if insn & 0b11 == 0b11
            && let Ok(a) = raw
        {
            assert!(matches!(insn & 0x7f, OP_LOAD | OP_STORE));
            assert_eq!(a.insn_len, 4);
            assert_eq!(decode_htinst(transform(insn)), raw);
        }
    }
}
