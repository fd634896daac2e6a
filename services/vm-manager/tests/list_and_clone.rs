//! `List` paging over a full table, `Info`, and `Clone`.

mod common;

use common::*;
use ipc::Error;
use ipc::vm::{LIST_PAGE, Request, Response, VmKind, VmState};

fn page(m: &mut Manager, from: u16) -> (Vec<u16>, Option<u16>) {
    match m.handle(Request::List { from }) {
        Response::List { vms, next } => (vms.iter().map(|vm| vm.id.0).collect(), next),
        other => panic!("List answered {other:?}"),
    }
}

#[test]
fn sixteen_vms_are_listed_in_pages_in_slot_order() {
    let mut m = manager();
    for i in 0..14 {
        expect_info(&mut m, create(&format!("vm{i:02}")));
    }
    assert_eq!(LIST_PAGE, 4);
    assert_eq!(page(&mut m, 0), ((0..4).collect(), Some(4)));
    assert_eq!(page(&mut m, 4), ((4..8).collect(), Some(8)));
    assert_eq!(page(&mut m, 8), ((8..12).collect(), Some(12)));
    assert_eq!(page(&mut m, 12), ((12..16).collect(), None));
    let all = list_all(&mut m);
    assert_eq!(all.len(), 16);
    assert_eq!(all[0].name.as_str(), "sos");
    assert_eq!(
        all[0].state,
        VmState::PoweredOff,
        "static VMs are listed even when off"
    );
    assert_eq!(all[15].name.as_str(), "vm13");
    assert!(all[2..].iter().all(is_dynamic));
}

#[test]
fn a_page_skips_free_slots_and_next_points_at_the_next_vm() {
    let mut m = manager();
    for i in 0..10 {
        expect_info(&mut m, create(&format!("vm{i}")));
    }
    for gone in ["vm0", "vm2", "vm3"] {
        expect_ok(&mut m, destroy(gone));
    }
    // Occupied: 0, 1, 3, 6..=11.
    assert_eq!(page(&mut m, 0), (vec![0, 1, 3, 6], Some(7)));
    assert_eq!(page(&mut m, 7), (vec![7, 8, 9, 10], Some(11)));
    assert_eq!(page(&mut m, 11), (vec![11], None));
    assert_eq!(page(&mut m, 2), (vec![3, 6, 7, 8], Some(9)));
}

#[test]
fn an_exactly_full_page_has_no_next() {
    let mut m = manager();
    for i in 0..2 {
        expect_info(&mut m, create(&format!("vm{i}")));
    }
    assert_eq!(page(&mut m, 0), ((0..4).collect(), None));
}

#[test]
fn listing_past_the_end_is_empty() {
    let mut m = manager();
    assert_eq!(page(&mut m, 16), (vec![], None));
    assert_eq!(page(&mut m, u16::MAX), (vec![], None));
}

#[test]
fn info_reports_what_the_vm_is() {
    let mut m = manager();
    expect_info(&mut m, create("sos"));
    let info = info(&mut m, "sos").unwrap();
    assert_eq!(info.name.as_str(), "sos");
    assert_eq!(info.id.0, 0);
    assert_eq!(info.kind, VmKind::Static);
    assert_eq!(info.state, VmState::Created);
    assert_eq!((info.vcpus, info.mem_mib), (2, 512));
}

#[test]
fn clone_copies_a_paused_vm_into_a_new_dynamic_one() {
    let mut m = manager();
    expect_info(&mut m, create("sos"));
    expect_ok(&mut m, start("sos"));
    expect_ok(&mut m, pause("sos"));
    let copy = expect_info(&mut m, clone_vm("sos", "sos-copy"));
    assert_eq!(
        copy.kind,
        VmKind::Dynamic,
        "a copy of a static VM is dynamic"
    );
    assert_eq!(copy.state, VmState::Created);
    assert_eq!((copy.vcpus, copy.mem_mib), (2, 512));
    assert_eq!(copy.id.0, 2);
    let calls = m.platform().calls_for(2);
    assert_eq!(
        &calls[..CLONE_STEPS.len()],
        &CLONE_STEPS,
        "memory is copied, not loaded"
    );
    assert_eq!(
        m.platform().images.get(&2).map(String::as_str),
        Some("linux")
    );
    assert_eq!(
        m.platform().device_names.get(&2).map(String::as_str),
        Some("sos-copy")
    );
    expect_ok(&mut m, start("sos-copy"));
    // The copy goes away on shutdown like any dynamic VM; the source stays.
    expect_ok(&mut m, shutdown("sos-copy"));
    assert_eq!(info(&mut m, "sos-copy"), None);
    assert_eq!(state(&mut m, "sos"), VmState::Paused);
}

#[test]
fn clone_refuses_a_taken_name_and_a_full_table() {
    let mut m = Manager::<3>::new(
        SCENARIO,
        FakePlatform::default(),
        CountingEntropy::default(),
    )
    .unwrap();
    expect_info(&mut m, create("rtvm"));
    expect_ok(&mut m, start("rtvm"));
    expect_ok(&mut m, pause("rtvm"));
    expect_err(&mut m, clone_vm("rtvm", "rtvm"), Error::DuplicateName);
    expect_err(&mut m, clone_vm("rtvm", "sos"), Error::DuplicateName);
    expect_info(&mut m, clone_vm("rtvm", "c1"));
    expect_err(&mut m, clone_vm("rtvm", "c2"), Error::NoFreeSlot { max: 3 });
}

#[test]
fn clone_needs_a_paused_source() {
    let mut m = manager();
    expect_err(
        &mut m,
        clone_vm("rtvm", "c"),
        Error::IllegalTransition {
            state: VmState::PoweredOff,
        },
    );
    expect_info(&mut m, create("rtvm"));
    expect_err(
        &mut m,
        clone_vm("rtvm", "c"),
        Error::IllegalTransition {
            state: VmState::Created,
        },
    );
    expect_ok(&mut m, start("rtvm"));
    expect_err(
        &mut m,
        clone_vm("rtvm", "c"),
        Error::IllegalTransition {
            state: VmState::Started,
        },
    );
    assert_eq!(info(&mut m, "c"), None);
}
