//! VM generation IDs: fresh on create and clone, kept across pause, resume
//! and plain reset, renewed on request, reported little-endian, and pushed
//! to the platform whenever they change.

mod common;

use common::*;
use ipc::vm::VmState;

fn id(n: u128) -> [u8; 16] {
    n.to_le_bytes()
}

#[test]
fn create_draws_a_fresh_id_and_tells_the_platform() {
    let mut m = manager();
    let a = expect_info(&mut m, create("a"));
    let b = expect_info(&mut m, create("b"));
    assert_eq!(a.generation_id, id(1));
    assert_eq!(b.generation_id, id(2));
    assert_eq!(m.platform().generation_ids.get(&a.id.0), Some(&1));
    assert_eq!(m.platform().generation_ids.get(&b.id.0), Some(&2));
}

#[test]
fn the_reported_bytes_are_the_drawn_bytes_little_endian() {
    let mut m = manager();
    m.handle(create("a"));
    let bytes = info(&mut m, "a").unwrap().generation_id;
    assert_eq!(bytes[0], 1, "least significant byte first");
    assert!(bytes[1..].iter().all(|b| *b == 0));
}

#[test]
fn pause_resume_and_plain_reset_keep_the_id() {
    let mut m = manager();
    let first = expect_info(&mut m, create("a")).generation_id;
    expect_ok(&mut m, start("a"));
    expect_ok(&mut m, pause("a"));
    assert_eq!(info(&mut m, "a").unwrap().generation_id, first);
    expect_ok(&mut m, resume("a"));
    assert_eq!(info(&mut m, "a").unwrap().generation_id, first);
    expect_ok(&mut m, reset("a", false));
    assert_eq!(info(&mut m, "a").unwrap().generation_id, first);
    assert_eq!(
        m.platform().count(CallKind::SetGenerationId),
        1,
        "only at creation"
    );
}

#[test]
fn reset_with_a_new_id_draws_one_and_notifies_the_live_vm() {
    let mut m = manager();
    let first = expect_info(&mut m, create("a"));
    expect_ok(&mut m, start("a"));
    expect_ok(&mut m, reset("a", true));
    let now = info(&mut m, "a").unwrap();
    assert_ne!(now.generation_id, first.generation_id);
    assert_eq!(now.generation_id, id(2));
    assert_eq!(now.state, VmState::Started);
    assert_eq!(m.platform().generation_ids.get(&first.id.0), Some(&2));
    assert_eq!(m.platform().count(CallKind::SetGenerationId), 2);
}

#[test]
fn clone_gets_a_fresh_id_and_the_source_keeps_its_own() {
    let mut m = manager();
    let source = expect_info(&mut m, create("a"));
    expect_ok(&mut m, start("a"));
    expect_ok(&mut m, pause("a"));
    let copy = expect_info(&mut m, clone_vm("a", "b"));
    assert_ne!(copy.generation_id, source.generation_id);
    assert_eq!(
        info(&mut m, "a").unwrap().generation_id,
        source.generation_id
    );
    assert_eq!(m.platform().generation_ids.get(&copy.id.0), Some(&2));
}

#[test]
fn creating_a_static_vm_again_gives_it_a_fresh_id() {
    let mut m = manager();
    let first = expect_info(&mut m, create("rtvm")).generation_id;
    expect_ok(&mut m, shutdown("rtvm"));
    assert_eq!(
        info(&mut m, "rtvm").unwrap().generation_id,
        [0; 16],
        "no ID while off"
    );
    let second = expect_info(&mut m, create("rtvm")).generation_id;
    assert_ne!(first, second);
}

#[test]
fn ids_are_reported_by_list_too() {
    let mut m = manager();
    let a = expect_info(&mut m, create("a"));
    let listed = list_all(&mut m);
    let entry = listed.iter().find(|vm| vm.name.as_str() == "a").unwrap();
    assert_eq!(entry.generation_id, a.generation_id);
}
