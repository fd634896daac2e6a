//! The guest's DTB walk on Mica's generated trees, QEMU's tree and corrupted bytes.

extern crate std;

use super::*;
use std::vec::Vec;
use vm_manager::VmName;
use vm_manager::guest_dt::{GuestPlatform, generate, virtio_mmio_slot};

const QEMU_VIRT: &[u8] = include_bytes!("../../../../../boot/tests/fixtures/virt.dtb");

fn mica_tree(name: &str) -> Vec<u8> {
    let name = VmName::parse(name).unwrap();
    let slots = [virtio_mmio_slot(0)];
    let platform = GuestPlatform::standard(&name, 2, 64 << 20, "console=ttyS0", &slots);
    let mut buf = [0u8; 4096];
    let len = generate(&platform, &mut buf).unwrap();
    buf[..len].to_vec()
}

#[test]
fn reads_the_vm_name_and_timebase_from_micas_tree() {
    let blob = mica_tree("web-1.prod");
    let dtb = Dtb::parse(&blob).unwrap();
    let name = dtb.property(&["chosen"], "mica,vm-name").and_then(vm_name);
    assert_eq!(name, Some("web-1.prod"));
    let timebase = dtb
        .property(&["cpus"], "timebase-frequency")
        .and_then(number);
    assert_eq!(timebase, Some(10_000_000));
    assert_eq!(
        dtb.property(&[], "model").and_then(string),
        Some("mica,web-1.prod")
    );
    let isa = dtb
        .property(&["cpus", "cpu@1"], "riscv,isa")
        .and_then(string);
    assert_eq!(isa, Some("rv64imafdc_zicntr_zicsr_zifencei"));
}

#[test]
fn a_property_of_another_node_is_not_found() {
    let blob = mica_tree("vm");
    let dtb = Dtb::parse(&blob).unwrap();
    // `bootargs` lives in /chosen, not in the root or in /cpus.
    assert_eq!(dtb.property(&[], "bootargs"), None);
    assert_eq!(dtb.property(&["cpus"], "bootargs"), None);
    assert_eq!(dtb.property(&["cpus"], "riscv,isa"), None);
    assert_eq!(dtb.property(&["nosuch"], "bootargs"), None);
}

#[test]
fn qemus_tree_has_no_vm_name_but_a_timebase() {
    let dtb = Dtb::parse(QEMU_VIRT).unwrap();
    assert_eq!(dtb.property(&["chosen"], "mica,vm-name"), None);
    let timebase = dtb
        .property(&["cpus"], "timebase-frequency")
        .and_then(number);
    assert_eq!(timebase, Some(10_000_000));
    assert_eq!(timebase_hz(Some(dtb)), 10_000_000);
    assert_eq!(
        timebase_hz(None),
        DEFAULT_TIMEBASE_HZ,
        "no tree: the default"
    );
}

#[test]
fn truncated_trees_are_refused() {
    let blob = mica_tree("vm");
    for len in 0..blob.len() {
        assert!(Dtb::parse(&blob[..len]).is_none(), "{len} bytes");
    }
}

#[test]
fn corrupted_trees_never_panic_or_invent_an_invalid_name() {
    let blob = mica_tree("vm");
    for at in 0..blob.len() {
        for flip in [0xff, 0x01, 0x80] {
            let mut bad = blob.clone();
            bad[at] ^= flip;
            let name = Dtb::parse(&bad)
                .and_then(|d| d.property(&["chosen"], "mica,vm-name"))
                .and_then(vm_name);
            // A flipped byte can break the tree or rename the VM, but any
            // name that comes out still passes the VM-name check.
            assert!(
                name.is_none_or(|n| VmName::parse(n).is_ok()),
                "byte {at}: {name:?}"
            );
        }
    }
}

#[test]
fn only_valid_vm_names_are_accepted() {
    assert_eq!(vm_name(b"ok_1.x-y\0"), Some("ok_1.x-y"));
    assert_eq!(vm_name(b"\0"), None);
    assert_eq!(vm_name(b"no-nul"), None);
    assert_eq!(vm_name(b"a b\0"), None);
    assert_eq!(vm_name(b"a\0b\0"), None);
    assert_eq!(vm_name(b"\xff\0"), None);
    let long: Vec<u8> = [b'a'; 32].iter().chain(&[0]).copied().collect();
    assert_eq!(vm_name(&long), None);
    assert_eq!(number(&[0, 0, 0, 7]), Some(7));
    assert_eq!(number(&[0, 0, 0, 1, 0, 0, 0, 0]), Some(1 << 32));
    assert_eq!(number(&[1, 2, 3]), None);
}

#[test]
fn implausible_addresses_are_refused_before_any_read() {
    // SAFETY: each address fails the alignment or range check, so nothing is read.
    unsafe {
        assert!(blob_at(0).is_none());
        assert!(blob_at(0x1000).is_none());
        assert!(blob_at(crate::RAM_BASE + 4).is_none());
        assert!(blob_at(usize::MAX & !7).is_none());
    }
}
