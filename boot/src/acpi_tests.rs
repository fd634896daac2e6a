//! ACPI tables laid out as QEMU's SeaBIOS builds them (RSDP in the BIOS
//! area, RSDT, MADT with processor entries), and malformed variants: each
//! must be an error or a shorter list, never a panic.
#![allow(clippy::cast_possible_truncation)] // test tables are a few hundred bytes

extern crate std;

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// Test memory: byte blocks at physical addresses.
struct Mem {
    blocks: Vec<(u64, Vec<u8>)>,
}

impl PhysMemory for Mem {
    fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        self.blocks.iter().find_map(|(base, bytes)| {
            let start = usize::try_from(addr.checked_sub(*base)?).ok()?;
            bytes.get(start..start.checked_add(len)?)
        })
    }
}

const RSDP: u64 = 0xf_5a40;
const RSDT: u64 = 0x7fe_1000;
const MADT: u64 = 0x7fe_2000;
const FACP: u64 = 0x7fe_3000;

fn fix_checksum(bytes: &mut [u8], at: usize, len: usize) {
    bytes[at] = 0;
    bytes[at] = 0u8.wrapping_sub(sum(&bytes[..len]));
}

fn sdt(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; HEADER_BYTES];
    t[..4].copy_from_slice(signature);
    t.extend_from_slice(body);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t[8] = 1;
    let n = t.len();
    fix_checksum(&mut t, 9, n);
    t
}

fn rsdp_v1(rsdt: u32) -> Vec<u8> {
    let mut r = vec![0u8; RSDP_V1_BYTES];
    r[..8].copy_from_slice(RSDP_SIGNATURE);
    r[9..15].copy_from_slice(b"BOCHS ");
    r[16..20].copy_from_slice(&rsdt.to_le_bytes());
    fix_checksum(&mut r, 8, RSDP_V1_BYTES);
    r
}

/// A local-APIC entry: processor `uid`, APIC `id`, `flags`.
fn lapic(uid: u8, id: u8, flags: u32) -> Vec<u8> {
    let mut e = vec![LOCAL_APIC, 8, uid, id];
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

fn madt(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = 0xfee0_0000u32.to_le_bytes().to_vec();
    body.extend_from_slice(&1u32.to_le_bytes()); // PCAT_COMPAT
    for e in entries {
        body.extend_from_slice(e);
    }
    // An I/O APIC entry, which lists no processor.
    body.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
    sdt(b"APIC", &body)
}

/// Memory as QEMU's `-smp n` leaves it: the RSDP in the BIOS area, an
/// RSDT listing a FACP and then the MADT.
fn machine(entries: &[Vec<u8>]) -> Mem {
    let mut bios = vec![0u8; (BIOS_AREA.1 - BIOS_AREA.0) as usize];
    let at = (RSDP - BIOS_AREA.0) as usize;
    bios[at..at + RSDP_V1_BYTES].copy_from_slice(&rsdp_v1(RSDT as u32));
    let mut rsdt_body = (FACP as u32).to_le_bytes().to_vec();
    rsdt_body.extend_from_slice(&(MADT as u32).to_le_bytes());
    Mem {
        blocks: vec![
            (0x400, vec![0u8; 0x100]), // BIOS data area: no EBDA pointer
            (BIOS_AREA.0, bios),
            (RSDT, sdt(b"RSDT", &rsdt_body)),
            (FACP, sdt(b"FACP", &[0u8; 80])),
            (MADT, madt(entries)),
        ],
    }
}

/// The MADT QEMU 10's pc machine with `-smp 4` (SeaBIOS) builds, dumped
/// from a boot with the monitor's `pmemsave`: four local APICs (ids 0-3,
/// enabled), an I/O APIC, five interrupt overrides and a local NMI entry.
const QEMU_SMP4_MADT: [u8; 144] = [
    0x41, 0x50, 0x49, 0x43, 0x90, 0x00, 0x00, 0x00, 0x03, 0x49, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20,
    0x42, 0x58, 0x50, 0x43, 0x20, 0x20, 0x20, 0x20, 0x01, 0x00, 0x00, 0x00, 0x42, 0x58, 0x50, 0x43,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0xfe, 0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0x02, 0x02,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0x03, 0x03, 0x01, 0x00, 0x00, 0x00, 0x01, 0x0c, 0x00, 0x00,
    0x00, 0x00, 0xc0, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x02, 0x0a, 0x00, 0x05, 0x05, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x02, 0x0a, 0x00, 0x09,
    0x09, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x02, 0x0a, 0x00, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x00,
    0x02, 0x0a, 0x00, 0x0b, 0x0b, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x04, 0x06, 0xff, 0x00, 0x00, 0x01,
];

fn four() -> Vec<Vec<u8>> {
    (0..4).map(|i| lapic(i, i, 1)).collect()
}

#[test]
fn qemu_smp_4_lists_four_processors() {
    let madt = read_madt(&machine(&four())).unwrap();
    assert_eq!(madt.local_apic, 0xfee0_0000);
    assert_eq!(madt.cpus.apic_ids(), &[0, 1, 2, 3]);
    assert_eq!(madt.cpus.unlisted(), 0);
}

#[test]
fn the_madt_qemu_builds_lists_its_four_cpus() {
    assert_eq!(sum(&QEMU_SMP4_MADT), 0);
    let madt = parse_madt(&QEMU_SMP4_MADT).unwrap();
    assert_eq!(madt.local_apic, 0xfee0_0000);
    assert_eq!(madt.cpus.apic_ids(), &[0, 1, 2, 3]);
    // Found through the RSDT too, at the address QEMU put it.
    let mut mem = machine(&four());
    mem.blocks[4].1 = QEMU_SMP4_MADT.to_vec();
    assert_eq!(read_madt(&mem).unwrap(), madt);
}

#[test]
fn disabled_processors_are_left_out() {
    let entries = vec![lapic(0, 0, 1), lapic(1, 4, 0), lapic(2, 6, 3)];
    let madt = read_madt(&machine(&entries)).unwrap();
    assert_eq!(madt.cpus.apic_ids(), &[0, 6]);
}

#[test]
fn x2apic_entries_count_and_duplicates_do_not() {
    let mut x2 = vec![LOCAL_X2APIC, 16, 0, 0];
    x2.extend_from_slice(&300u32.to_le_bytes());
    x2.extend_from_slice(&1u32.to_le_bytes());
    x2.extend_from_slice(&7u32.to_le_bytes());
    let entries = vec![lapic(0, 0, 1), lapic(1, 0, 1), x2];
    let madt = read_madt(&machine(&entries)).unwrap();
    assert_eq!(madt.cpus.apic_ids(), &[0, 300]);
}

#[test]
fn processors_past_max_cpus_are_counted() {
    let entries: Vec<_> = (0..12).map(|i| lapic(i, i * 2, 1)).collect();
    let madt = read_madt(&machine(&entries)).unwrap();
    assert_eq!(madt.cpus.apic_ids().len(), MAX_CPUS);
    assert_eq!(madt.cpus.apic_ids()[7], 14);
    assert_eq!(madt.cpus.unlisted(), 4);
}

#[test]
fn the_rsdp_in_the_ebda_is_found_first() {
    let mut mem = machine(&four());
    // The EBDA at 0x9fc00 holds an RSDP whose RSDT lists only a FACP.
    mem.blocks[0].1[0x0e..0x10].copy_from_slice(&0x9fc0u16.to_le_bytes());
    let mut ebda = vec![0u8; 1024];
    ebda[0x30..0x30 + RSDP_V1_BYTES].copy_from_slice(&rsdp_v1(0x7fe_4000));
    mem.blocks.push((0x9_fc00, ebda));
    mem.blocks
        .push((0x7fe_4000, sdt(b"RSDT", &(FACP as u32).to_le_bytes())));
    assert_eq!(read_madt(&mem), Err(AcpiError::NoMadt));
}

#[test]
fn an_xsdt_is_preferred_over_the_rsdt() {
    let mut mem = machine(&four());
    let mut v2 = vec![0u8; RSDP_V2_BYTES];
    v2[..RSDP_V1_BYTES].copy_from_slice(&rsdp_v1(0x7fe_4000)); // an RSDT without a MADT
    v2[15] = 2;
    fix_checksum(&mut v2, 8, RSDP_V1_BYTES);
    v2[20..24].copy_from_slice(&(RSDP_V2_BYTES as u32).to_le_bytes());
    v2[24..32].copy_from_slice(&0x7fe_5000u64.to_le_bytes());
    fix_checksum(&mut v2, 32, RSDP_V2_BYTES);
    let at = (RSDP - BIOS_AREA.0) as usize;
    mem.blocks[1].1[at..at + RSDP_V2_BYTES].copy_from_slice(&v2);
    mem.blocks
        .push((0x7fe_5000, sdt(b"XSDT", &MADT.to_le_bytes())));
    assert_eq!(read_madt(&mem).unwrap().cpus.apic_ids(), &[0, 1, 2, 3]);
}

#[test]
fn no_rsdp_no_madt_and_bad_checksums_are_errors() {
    let mut mem = machine(&four());
    mem.blocks[1].1.fill(0);
    assert_eq!(read_madt(&mem), Err(AcpiError::NoRsdp));

    let mut mem = machine(&four());
    mem.blocks[4].1[40] ^= 1;
    assert_eq!(read_madt(&mem), Err(AcpiError::BadTable("MADT")));

    let mut mem = machine(&four());
    mem.blocks.remove(2);
    assert_eq!(read_madt(&mem), Err(AcpiError::Unreadable("RSDT")));

    let mut mem = machine(&four());
    // The RSDT lists the FACP alone.
    mem.blocks[2].1 = sdt(b"RSDT", &(FACP as u32).to_le_bytes());
    assert_eq!(read_madt(&mem), Err(AcpiError::NoMadt));
}

#[test]
fn a_truncated_entry_is_an_error() {
    let mut table = madt(&four());
    // The last (I/O APIC) entry claims more bytes than the table has.
    let n = table.len();
    table[n - 11] = 40;
    assert_eq!(parse_madt(&table), Err(AcpiError::BadTable("MADT")));
    assert_eq!(parse_madt(&[0u8; 10]), Err(AcpiError::BadTable("MADT")));
}

proptest! {
    #[test]
    fn any_madt_body_parses_or_fails_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let table = sdt(b"APIC", &body);
        if let Ok(madt) = parse_madt(&table) {
            prop_assert!(madt.cpus.apic_ids().len() <= MAX_CPUS);
        }
    }
}
