//! BootInfo from real QEMU virt device trees and from hand-built ones.
#![allow(clippy::cast_possible_truncation)] // test blobs are a few KiB: lengths fit in u32

mod builder;

use builder::DtbBuilder;
use mica_boot::fdt::DtbError;
use mica_boot::{BootInfo, BootInfoError, MemRange};

const VIRT: &[u8] = include_bytes!("fixtures/virt.dtb");
const VIRT_NO_H: &[u8] = include_bytes!("fixtures/virt-noh.dtb");
const VIRT_INITRD: &[u8] = include_bytes!("fixtures/virt-initrd.dtb");

#[test]
fn qemu_virt_256m_two_harts_with_h() {
    let info = BootInfo::from_dtb(VIRT).unwrap();
    assert_eq!(
        info.memory.as_slice(),
        &[MemRange::new(0x8000_0000, 256 << 20)]
    );
    assert_eq!(info.hart_count, 2);
    assert!(info.has_h());
    assert!(info.isa.as_str().starts_with("rv64imafdch"));
    assert!(info.isa.has_extension("sstc"));
    assert_eq!(info.timebase_hz, Some(10_000_000));
    assert_eq!(info.initrd, None);
    assert_eq!(info.test_finisher, Some(0x10_0000));
}

#[test]
fn qemu_virt_virtio_mmio_windows_in_address_order() {
    let info = BootInfo::from_dtb(VIRT).unwrap();
    // QEMU lists the eight transports from the highest address down.
    let expected: Vec<MemRange> = (1..=8)
        .map(|i| MemRange::new(0x1000_0000 + i * 0x1000, 0x1000))
        .collect();
    assert_eq!(info.virtio_mmio.as_slice(), expected.as_slice());
    assert_eq!(
        info.machine().device_windows.as_slice(),
        expected.as_slice()
    );
}

#[test]
fn qemu_virt_without_h_reports_no_h() {
    let info = BootInfo::from_dtb(VIRT_NO_H).unwrap();
    assert_eq!(info.hart_count, 1);
    assert!(!info.has_h());
}

#[test]
fn qemu_virt_initrd_from_chosen() {
    let info = BootInfo::from_dtb(VIRT_INITRD).unwrap();
    assert_eq!(info.hart_count, 4);
    assert_eq!(info.memory.total_size(), 512 << 20);
    assert_eq!(info.initrd, Some(MemRange::new(0x9020_0000, 0x1000)));
}

#[test]
fn every_truncation_is_an_error() {
    for len in 0..VIRT.len() {
        let err = BootInfo::from_dtb(&VIRT[..len]).unwrap_err();
        assert_eq!(
            err,
            BootInfoError::Dtb(DtbError::Truncated),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn a_shrunken_totalsize_is_an_error_not_a_panic() {
    for size in (0..VIRT.len() as u32).step_by(3) {
        let mut blob = VIRT.to_vec();
        blob[4..8].copy_from_slice(&size.to_be_bytes());
        assert!(BootInfo::from_dtb(&blob).is_err(), "totalsize {size}");
    }
}

#[test]
fn bad_magic_is_named() {
    let mut blob = VIRT.to_vec();
    blob[0] = 0;
    assert_eq!(
        BootInfo::from_dtb(&blob).unwrap_err(),
        BootInfoError::Dtb(DtbError::BadMagic)
    );
}

#[test]
fn corrupting_any_single_byte_never_panics() {
    for pos in 0..VIRT.len() {
        for flip in [0xff_u8, 0x01, 0x80] {
            let mut blob = VIRT.to_vec();
            blob[pos] ^= flip;
            // Either outcome is fine; a panic fails the test.
            let _ = BootInfo::from_dtb(&blob);
        }
    }
}

#[test]
fn corrupting_a_structure_token_is_reported() {
    // The first structure token is FDT_BEGIN_NODE for the root node.
    let off_struct = u32::from_be_bytes(VIRT[8..12].try_into().unwrap()) as usize;
    let mut blob = VIRT.to_vec();
    blob[off_struct + 3] = 7;
    assert_eq!(
        BootInfo::from_dtb(&blob).unwrap_err(),
        BootInfoError::Dtb(DtbError::BadStructure)
    );
}

fn cell2(a: u64, b: u64) -> Vec<u8> {
    [a.to_be_bytes(), b.to_be_bytes()].concat()
}

fn minimal(b: &mut DtbBuilder, cpu_status: &str) {
    b.prop_u32("#address-cells", 2).prop_u32("#size-cells", 2);
    b.begin("memory@80000000")
        .prop_str("device_type", "memory")
        .prop("reg", &cell2(0x8000_0000, 64 << 20))
        .end();
    b.begin("cpus")
        .prop_u32("#address-cells", 1)
        .prop_u32("#size-cells", 0)
        .prop_u32("timebase-frequency", 1000);
    b.begin("cpu@0")
        .prop_str("device_type", "cpu")
        .prop_str("riscv,isa", "rv64imafdch")
        .end();
    b.begin("cpu@1")
        .prop_str("device_type", "cpu")
        .prop_str("status", cpu_status);
    b.prop_str("riscv,isa", "rv64imafdc").end();
    b.end();
}

#[test]
fn reservations_come_from_both_the_block_and_reserved_memory() {
    let mut b = DtbBuilder::new();
    b.begin("");
    minimal(&mut b, "disabled");
    b.begin("reserved-memory")
        .prop_u32("#address-cells", 2)
        .prop_u32("#size-cells", 2);
    b.begin("mmode_resv0@80000000")
        .prop("reg", &cell2(0x8000_0000, 0x4_0000))
        .end();
    b.end().end();
    let blob = b.finish(&[(0x8100_0000, 0x1000)]);
    let info = BootInfo::from_dtb(&blob).unwrap();
    assert_eq!(
        info.reserved.as_slice(),
        &[
            MemRange::new(0x8100_0000, 0x1000),
            MemRange::new(0x8000_0000, 0x4_0000)
        ]
    );
    assert_eq!(info.hart_count, 1, "the disabled cpu is not counted");
    assert!(info.has_h(), "only enabled harts decide the ISA");
    assert_eq!(info.timebase_hz, Some(1000));
    assert_eq!(info.test_finisher, None);
}

#[test]
fn a_hart_without_h_makes_the_machine_without_h() {
    let mut b = DtbBuilder::new();
    b.begin("");
    minimal(&mut b, "okay");
    b.end();
    let blob = b.finish(&[]);
    let info = BootInfo::from_dtb(&blob).unwrap();
    assert_eq!(info.hart_count, 2);
    assert!(!info.has_h());
}

#[test]
fn missing_memory_and_missing_isa_are_errors() {
    let mut b = DtbBuilder::new();
    b.begin("")
        .begin("cpus")
        .begin("cpu@0")
        .prop_str("device_type", "cpu");
    b.prop_str("riscv,isa", "rv64gch").end().end().end();
    assert_eq!(
        BootInfo::from_dtb(&b.finish(&[])).unwrap_err(),
        BootInfoError::NoMemory
    );

    let mut b = DtbBuilder::new();
    b.begin("")
        .prop_u32("#address-cells", 2)
        .prop_u32("#size-cells", 2);
    b.begin("memory@0").prop("reg", &cell2(0, 4096)).end();
    b.begin("cpus")
        .begin("cpu@0")
        .prop_str("device_type", "cpu")
        .end()
        .end()
        .end();
    assert_eq!(
        BootInfo::from_dtb(&b.finish(&[])).unwrap_err(),
        BootInfoError::NoIsa
    );
}

#[test]
fn a_reg_that_does_not_match_the_cells_is_named() {
    let mut b = DtbBuilder::new();
    b.begin("")
        .prop_u32("#address-cells", 2)
        .prop_u32("#size-cells", 2);
    b.begin("memory@0").prop("reg", &[0; 12]).end().end();
    assert_eq!(
        BootInfo::from_dtb(&b.finish(&[])).unwrap_err(),
        BootInfoError::BadProperty("reg")
    );
}

#[test]
fn unbalanced_nodes_are_rejected() {
    let mut b = DtbBuilder::new();
    b.begin("").begin("memory");
    assert_eq!(
        BootInfo::from_dtb(&b.finish(&[])).unwrap_err(),
        BootInfoError::Dtb(DtbError::BadStructure)
    );
}

#[test]
fn the_machine_view_carries_harts_initrd_and_bootargs() {
    let mut b = DtbBuilder::new();
    b.begin("");
    minimal(&mut b, "okay");
    b.begin("chosen")
        .prop_str("bootargs", "console=hvc0 quiet")
        .prop_u32("linux,initrd-start", 0x8800_0000)
        .prop_u32("linux,initrd-end", 0x8800_2000)
        .end();
    b.end();
    let blob = b.finish(&[]);
    let machine = BootInfo::from_dtb(&blob).unwrap().machine();
    assert_eq!(machine.cmdline, "console=hvc0 quiet");
    assert_eq!(machine.cpu_count, Some(2));
    assert_eq!(machine.boot_image, Some(MemRange::new(0x8800_0000, 0x2000)));
    let qemu = BootInfo::from_dtb(VIRT).unwrap().machine();
    assert_eq!(qemu.cmdline, "");
    assert_eq!(qemu.memory_bytes(), 256 << 20);
}

fn ids(info: &BootInfo<'_>) -> Vec<(u64, bool)> {
    info.harts
        .as_slice()
        .iter()
        .map(|h| (h.id, h.smode_mmu))
        .collect()
}

#[test]
fn qemu_virt_lists_every_hart_by_id_with_its_mmu() {
    let info = BootInfo::from_dtb(VIRT).unwrap();
    assert_eq!(ids(&info), [(0, true), (1, true)]);
    assert_eq!(info.harts.unlisted(), 0);
    let four = BootInfo::from_dtb(VIRT_INITRD).unwrap();
    assert_eq!(ids(&four), [(0, true), (1, true), (2, true), (3, true)]);
}

/// A `cpu@N` node under `/cpus` (one address cell) with `reg` N unless
/// `reg` is false, and the given `status` and `mmu-type` when present.
fn cpu(b: &mut DtbBuilder, id: u32, reg: bool, status: Option<&str>, mmu: Option<&str>) {
    b.begin(&format!("cpu@{id}"))
        .prop_str("device_type", "cpu")
        .prop_str("riscv,isa", "rv64imafdch");
    if reg {
        b.prop_u32("reg", id);
    }
    if let Some(status) = status {
        b.prop_str("status", status);
    }
    if let Some(mmu) = mmu {
        b.prop_str("mmu-type", mmu);
    }
    b.end();
}

#[test]
fn the_hart_list_skips_disabled_cpus_and_marks_harts_without_an_smode_mmu() {
    let mut b = DtbBuilder::new();
    b.begin("")
        .prop_u32("#address-cells", 2)
        .prop_u32("#size-cells", 2);
    b.begin("memory@80000000")
        .prop_str("device_type", "memory")
        .prop("reg", &cell2(0x8000_0000, 64 << 20))
        .end();
    b.begin("cpus")
        .prop_u32("#address-cells", 1)
        .prop_u32("#size-cells", 0);
    cpu(&mut b, 0, true, None, Some("riscv,sv39"));
    cpu(&mut b, 1, true, Some("disabled"), Some("riscv,sv39"));
    cpu(&mut b, 2, true, Some("okay"), Some("riscv,sv48"));
    cpu(&mut b, 3, true, None, Some("riscv,none"));
    cpu(&mut b, 4, true, None, None);
    cpu(&mut b, 5, false, None, Some("riscv,sv39"));
    cpu(&mut b, 9, true, None, Some("riscv,sv57"));
    b.end().end();
    let blob = b.finish(&[]);
    let info = BootInfo::from_dtb(&blob).unwrap();
    assert_eq!(info.hart_count, 6, "every enabled cpu is counted");
    assert_eq!(
        ids(&info),
        [(0, true), (2, true), (3, false), (4, false), (9, true)]
    );
    assert_eq!(info.harts.unlisted(), 1, "the cpu without a reg");
}

#[test]
fn more_harts_than_listed_are_counted() {
    let mut b = DtbBuilder::new();
    b.begin("")
        .prop_u32("#address-cells", 2)
        .prop_u32("#size-cells", 2);
    b.begin("memory@0").prop("reg", &cell2(0, 4096)).end();
    b.begin("cpus")
        .prop_u32("#address-cells", 1)
        .prop_u32("#size-cells", 0);
    let total = mica_boot::MAX_LISTED_HARTS as u32 + 2;
    for id in 0..total {
        cpu(&mut b, id, true, None, Some("riscv,sv39"));
    }
    b.end().end();
    let blob = b.finish(&[]);
    let info = BootInfo::from_dtb(&blob).unwrap();
    assert_eq!(info.hart_count, total as usize);
    assert_eq!(info.harts.as_slice().len(), mica_boot::MAX_LISTED_HARTS);
    assert_eq!(info.harts.unlisted(), 2);
}
