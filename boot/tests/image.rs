//! The boot image format: what the writer makes the parser reads back, and
//! every malformed image is refused with its reason, never a panic.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use mica_boot::image::{
    BootImage, ENTRY_LEN, EntryKind, EntrySpec, HEADER_LEN, ImageError, KernelRights, MAX_ENTRIES,
    image_len, write,
};
use proptest::prelude::*;

fn spec<'a>(name: &'a str, kind: EntryKind, serves: Option<u8>, data: &'a [u8]) -> EntrySpec<'a> {
    let rights = match kind {
        EntryKind::Service => KernelRights::CONSOLE,
        EntryKind::Guest => KernelRights::default(),
    };
    EntrySpec {
        name,
        kind,
        priority: 3,
        serves,
        may_call: 0b110,
        rights,
        device_classes: 0,
        data,
    }
}

fn build(entries: &[EntrySpec<'_>]) -> Vec<u8> {
    let mut out = vec![0u8; image_len(entries)];
    write(entries, &mut out).unwrap();
    out
}

fn sample() -> Vec<u8> {
    build(&[
        spec("vm-manager", EntryKind::Service, Some(1), b"\x7fELF-vm"),
        spec("ioreq", EntryKind::Service, Some(2), b"\x7fELF-ioreq!"),
        spec("hello", EntryKind::Guest, None, &[0x13; 21]),
    ])
}

/// Byte offset of field `at` in entry `index`.
fn field(index: usize, at: usize) -> usize {
    HEADER_LEN + ENTRY_LEN * index + at
}

#[test]
fn the_writer_and_the_parser_agree() {
    let bytes = sample();
    let image = BootImage::parse(&bytes).unwrap();
    assert_eq!(image.len(), 3);
    let vm = image.find("vm-manager").unwrap();
    assert_eq!(
        (vm.spec.kind, vm.spec.priority, vm.spec.serves),
        (EntryKind::Service, 3, Some(1))
    );
    assert!(vm.spec.rights.contains(KernelRights::CONSOLE));
    assert!(!vm.spec.rights.contains(KernelRights::VM_CONTROL));
    assert_eq!(vm.spec.data, b"\x7fELF-vm");
    assert!(vm.may_call(1) && vm.may_call(2) && !vm.may_call(0) && !vm.may_call(64));
    let guest = image.find("hello").unwrap();
    assert_eq!(
        (guest.spec.kind, guest.spec.serves, guest.spec.data.len()),
        (EntryKind::Guest, None, 21)
    );
    assert!(image.entries().all(|e| e.offset % 8 == 0));
    assert_eq!(image.find("nope"), None);
}

#[test]
fn an_empty_image_is_valid() {
    let bytes = build(&[]);
    assert!(BootImage::parse(&bytes).unwrap().is_empty());
}

#[test]
fn header_errors() {
    let good = sample();
    assert_eq!(
        BootImage::parse(&good[..10]).unwrap_err(),
        ImageError::Truncated
    );
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(BootImage::parse(&bad).unwrap_err(), ImageError::BadMagic);
    let mut bad = good.clone();
    bad[8] = 9;
    assert_eq!(
        BootImage::parse(&bad).unwrap_err(),
        ImageError::UnsupportedVersion(9)
    );
    let mut bad = good.clone();
    bad[12] = u8::try_from(MAX_ENTRIES + 1).unwrap();
    assert_eq!(
        BootImage::parse(&bad).unwrap_err(),
        ImageError::TooManyEntries(u32::try_from(MAX_ENTRIES).unwrap() + 1)
    );
    // The stated length is longer than the bytes handed over.
    assert_eq!(
        BootImage::parse(&good[..good.len() - 1]).unwrap_err(),
        ImageError::Truncated
    );
    // Trailing bytes beyond the stated length are ignored.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0xee; 16]);
    assert_eq!(BootImage::parse(&longer).unwrap().len(), 3);
}

#[test]
fn entry_errors_name_the_entry() {
    let good = sample();
    let with = |at: usize, value: u8| {
        let mut bytes = good.clone();
        bytes[at] = value;
        BootImage::parse(&bytes).unwrap_err()
    };
    assert_eq!(with(field(1, 0), 0), ImageError::BadName { index: 1 });
    assert_eq!(with(field(1, 0), b' '), ImageError::BadName { index: 1 });
    assert_eq!(
        with(field(1, 31), b'x'),
        ImageError::BadName { index: 1 },
        "junk after the NUL"
    );
    assert_eq!(with(field(2, 32), 7), ImageError::BadKind { index: 2 });
    assert_eq!(
        with(field(2, 34), 5),
        ImageError::BadEndpoint { index: 2 },
        "a guest serves"
    );
    assert_eq!(
        with(field(1, 34), 1),
        ImageError::BadEndpoint { index: 1 },
        "taken endpoint"
    );
    assert_eq!(with(field(0, 34), 64), ImageError::BadEndpoint { index: 0 });
    // Every bit of a service's rights byte is a right now (0x80 ENTROPY);
    // a guest holds none.
    let mut entropy = good.clone();
    entropy[field(0, 35)] = 0x80;
    let parsed = BootImage::parse(&entropy).unwrap();
    let first = parsed.entries().next().unwrap();
    assert_eq!(first.spec.rights, KernelRights::ENTROPY);
    assert_eq!(with(field(2, 35), 1), ImageError::BadRights { index: 2 });
    // Device classes (bytes 36..40) only with the DEVICES right.
    assert_eq!(
        with(field(0, 38), 1),
        ImageError::BadDeviceClasses { index: 0 }
    );
    let mut driver = good.clone();
    driver[field(0, 35)] = KernelRights::DEVICES.0;
    driver[field(0, 36)] = 1 << 3;
    let parsed = BootImage::parse(&driver).unwrap();
    assert_eq!(parsed.entries().next().unwrap().spec.device_classes, 1 << 3);
    assert_eq!(
        with(field(2, 36), 1),
        ImageError::BadDeviceClasses { index: 2 },
        "a guest drives no device"
    );
    assert_eq!(
        with(field(0, 55), 0x80),
        ImageError::BadBlob { index: 0 },
        "offset past the end"
    );
    assert_eq!(
        with(field(0, 48), 1),
        ImageError::BadBlob { index: 0 },
        "misaligned"
    );
    assert_eq!(
        with(field(0, 63), 0xff),
        ImageError::BadBlob { index: 0 },
        "size wraps"
    );
}

#[test]
fn blobs_inside_the_table_or_overlapping_are_refused() {
    let good = sample();
    let mut bytes = good.clone();
    bytes[field(0, 48)..field(0, 56)].copy_from_slice(&(HEADER_LEN as u64).to_le_bytes());
    assert_eq!(
        BootImage::parse(&bytes).unwrap_err(),
        ImageError::BadBlob { index: 0 }
    );
    let mut bytes = good.clone();
    let first = u64::from_le_bytes(good[field(0, 48)..field(0, 56)].try_into().unwrap());
    bytes[field(1, 48)..field(1, 56)].copy_from_slice(&first.to_le_bytes());
    assert_eq!(
        BootImage::parse(&bytes).unwrap_err(),
        ImageError::BadBlob { index: 1 }
    );
}

#[test]
fn duplicate_names_are_refused_by_writer_and_parser() {
    let entries = [
        spec("a", EntryKind::Service, None, b"1"),
        spec("a", EntryKind::Guest, None, b"2"),
    ];
    let mut out = vec![0u8; image_len(&entries)];
    assert_eq!(
        write(&entries, &mut out).unwrap_err(),
        ImageError::DuplicateName { index: 1 }
    );
    let long = "n".repeat(33);
    let entries = [spec(&long, EntryKind::Guest, None, b"")];
    let mut out = vec![0u8; image_len(&entries)];
    assert_eq!(
        write(&entries, &mut out).unwrap_err(),
        ImageError::BadName { index: 0 }
    );
}

#[test]
fn errors_read_as_sentences() {
    assert_eq!(
        ImageError::BadMagic.to_string(),
        "not a Mica boot image (bad magic)"
    );
    assert_eq!(
        ImageError::BadBlob { index: 2 }.to_string(),
        "boot image entry 2 points outside the image or overlaps"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(image) = BootImage::parse(&bytes) {
            for entry in image.entries() {
                prop_assert!(entry.offset + entry.spec.data.len() <= bytes.len());
            }
        }
    }

    #[test]
    fn mutated_images_never_panic_and_stay_in_bounds(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = sample();
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        let bytes = &bytes[..cut % (bytes.len() + 1)];
        if let Ok(image) = BootImage::parse(bytes) {
            prop_assert!(image.len() <= MAX_ENTRIES);
            for entry in image.entries() {
                prop_assert!(entry.offset + entry.spec.data.len() <= bytes.len());
            }
        }
    }
}
