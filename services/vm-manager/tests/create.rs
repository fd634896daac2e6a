//! `Create`: static launch by name, dynamic slots, templates and overrides,
//! and every refusal.

mod common;

use common::*;
use ipc::Error;
use ipc::vm::{CreateOptions, Request, Response, VmKind, VmState};

fn options(
    template: Option<&str>,
    image: Option<&str>,
    mem: Option<u32>,
    vcpus: Option<u8>,
) -> CreateOptions {
    CreateOptions {
        template: template.map(w),
        image: image.map(w),
        mem_mib: mem,
        vcpus,
        kernel: None,
        initrd: None,
        cmdline: None,
        disk: None,
    }
}

#[test]
fn a_static_name_launches_that_static_vm_in_its_slot() {
    let mut m = manager();
    let info = expect_info(&mut m, create("rtvm"));
    assert_eq!(info.id.0, 1);
    assert_eq!(info.kind, VmKind::Static);
    assert_eq!(info.state, VmState::Created);
    assert_eq!((info.mem_mib, info.vcpus), (64, 1));
    assert_eq!(
        m.platform().images.get(&1).map(String::as_str),
        Some("zephyr")
    );
    assert_eq!(
        m.platform().device_names.get(&1).map(String::as_str),
        Some("rtvm")
    );
}

#[test]
fn creating_a_static_vm_that_exists_is_a_duplicate() {
    let mut m = manager();
    expect_info(&mut m, create("rtvm"));
    expect_err(&mut m, create("rtvm"), Error::DuplicateName);
    expect_ok(&mut m, start("rtvm"));
    expect_err(&mut m, create("rtvm"), Error::DuplicateName);
    assert_eq!(
        state(&mut m, "rtvm"),
        VmState::Started,
        "the running VM is untouched"
    );
}

#[test]
fn a_static_vm_refuses_run_time_settings() {
    let mut m = manager();
    expect_err(
        &mut m,
        create_with("rtvm", options(None, None, Some(128), None)),
        Error::StaticSettings,
    );
    assert_eq!(state(&mut m, "rtvm"), VmState::PoweredOff);
    assert!(m.platform().calls.is_empty());
}

/// A destroyed static VM keeps its name (it is listed powered off, and its
/// name alone boots it again): a copy of another VM under that name is
/// refused for what it is, a static VM's fixed settings, not as an
/// argument out of range.
#[test]
fn a_destroyed_static_name_is_not_free_for_a_copy() {
    let mut m = manager();
    expect_info(&mut m, create("rtvm"));
    expect_ok(&mut m, destroy("rtvm"));
    let calls = m.platform().calls.len();
    expect_err(
        &mut m,
        create_with("rtvm", options(Some("sos"), None, None, None)),
        Error::StaticSettings,
    );
    assert_eq!(m.platform().calls.len(), calls, "nothing was done");
    let off = info(&mut m, "rtvm").unwrap();
    assert_eq!((off.kind, off.state), (VmKind::Static, VmState::PoweredOff));
    assert_eq!(expect_info(&mut m, create("rtvm")).state, VmState::Created);
}

#[test]
fn any_other_name_takes_the_first_free_dynamic_slot_with_defaults() {
    let mut m = manager();
    let info = expect_info(&mut m, create("web"));
    assert_eq!(info.id.0, 2, "slots 0 and 1 belong to the static VMs");
    assert_eq!(info.kind, VmKind::Dynamic);
    assert_eq!(info.state, VmState::Created);
    assert_eq!((info.mem_mib, info.vcpus), (128, 1));
    assert_eq!(
        m.platform().images.get(&2).map(String::as_str),
        Some("guest")
    );
    let second = expect_info(&mut m, create("db"));
    assert_eq!(second.id.0, 3);
}

#[test]
fn configured_defaults_apply_to_dynamic_vms() {
    let mut m = manager().with_defaults(vm_manager::DynamicDefaults {
        image: Some("busybox"),
        mem_mib: 32,
        vcpus: 4,
    });
    let info = expect_info(&mut m, create("web"));
    assert_eq!((info.mem_mib, info.vcpus), (32, 4));
    assert_eq!(
        m.platform().images.get(&2).map(String::as_str),
        Some("busybox")
    );
}

#[test]
fn a_dynamic_name_that_exists_is_a_duplicate() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    expect_err(&mut m, create("web"), Error::DuplicateName);
    let web: Vec<_> = list_all(&mut m)
        .into_iter()
        .filter(|vm| vm.name.as_str() == "web")
        .collect();
    assert_eq!(web.len(), 1);
}

#[test]
fn a_template_copies_a_static_configuration_and_options_override_it() {
    let mut m = manager();
    let copy = expect_info(
        &mut m,
        create_with("sos2", options(Some("sos"), None, None, None)),
    );
    assert_eq!(copy.kind, VmKind::Dynamic);
    assert_eq!((copy.mem_mib, copy.vcpus), (512, 2));
    assert_eq!(
        m.platform().images.get(&copy.id.0).map(String::as_str),
        Some("linux")
    );
    assert_eq!(
        state(&mut m, "sos"),
        VmState::PoweredOff,
        "the template is not launched"
    );

    let tuned = expect_info(
        &mut m,
        create_with(
            "sos3",
            options(Some("sos"), Some("linux-rt"), Some(256), Some(4)),
        ),
    );
    assert_eq!((tuned.mem_mib, tuned.vcpus), (256, 4));
    assert_eq!(
        m.platform().images.get(&tuned.id.0).map(String::as_str),
        Some("linux-rt")
    );
}

#[test]
fn a_template_must_be_a_static_configuration() {
    let mut m = manager();
    expect_err(
        &mut m,
        create_with("a", options(Some("nosuch"), None, None, None)),
        Error::UnknownImage,
    );
    expect_info(&mut m, create("web"));
    expect_err(
        &mut m,
        create_with("b", options(Some("web"), None, None, None)),
        Error::UnknownImage,
    );
    expect_err(
        &mut m,
        create_with("c", options(Some("bad name"), None, None, None)),
        Error::InvalidName,
    );
    assert_eq!(list_all(&mut m).len(), 3, "no VM was added by the refusals");
}

/// The kernel runs 1 to `ipc::syscall::MAX_VCPUS` (8) vCPUs per VM.
#[test]
fn vcpu_count_must_be_1_to_8() {
    let mut m = manager();
    for refused in [0, 9, 17, 255] {
        expect_err(
            &mut m,
            create_with("a", options(None, None, None, Some(refused))),
            Error::InvalidArgument,
        );
    }
    assert_eq!(
        expect_info(&mut m, create_with("a", options(None, None, None, Some(8)))).vcpus,
        8
    );
    assert_eq!(
        expect_info(&mut m, create_with("b", options(None, None, None, Some(1)))).vcpus,
        1
    );
}

#[test]
fn zero_memory_is_out_of_memory() {
    let mut m = manager();
    expect_err(
        &mut m,
        create_with("a", options(None, None, Some(0), None)),
        Error::OutOfMemory,
    );
    expect_err(
        &mut m,
        create_with("a", options(Some("sos"), None, Some(0), None)),
        Error::OutOfMemory,
    );
    assert!(
        m.platform().calls.is_empty(),
        "nothing reached the platform"
    );
}

#[test]
fn platform_refusals_reach_the_caller() {
    let mut m = manager();
    m.platform_mut().ram_mib = Some(600);
    m.platform_mut().known_images = Some(vec!["guest".into(), "linux".into(), "zephyr".into()]);
    expect_err(
        &mut m,
        create_with("big", options(None, None, Some(601), None)),
        Error::OutOfMemory,
    );
    expect_err(
        &mut m,
        create_with("odd", options(None, Some("nosuch"), None, None)),
        Error::UnknownImage,
    );
    expect_err(
        &mut m,
        create_with("odd", options(None, Some("bad/image"), None, None)),
        Error::UnknownImage,
    );
    expect_info(&mut m, create("sos"));
    expect_err(
        &mut m,
        create_with("more", options(None, None, Some(128), None)),
        Error::OutOfMemory,
    );
    expect_info(
        &mut m,
        create_with("fits", options(None, None, Some(88), None)),
    );
}

#[test]
fn dynamic_vms_stop_at_max_vm_num() {
    let mut m = manager();
    for i in 0..14 {
        expect_info(&mut m, create(&format!("d{i}")));
    }
    expect_err(&mut m, create("one-more"), Error::NoFreeSlot { max: 16 });
    // A static VM still launches: its slot is its own.
    expect_info(&mut m, create("rtvm"));
    // Freeing a slot lets the next one in.
    expect_ok(&mut m, shutdown("d3"));
    let info = expect_info(&mut m, create("one-more"));
    assert_eq!(info.id.0, 5, "the freed slot is reused");
}

#[test]
fn a_small_table_reports_its_own_maximum() {
    let mut m = Manager::<3>::new(
        SCENARIO,
        FakePlatform::default(),
        CountingEntropy::default(),
    )
    .unwrap()
    .with_defaults(vm_manager::DynamicDefaults {
        image: Some("guest"),
        ..vm_manager::DynamicDefaults::default()
    });
    expect_info(&mut m, create("only"));
    expect_err(&mut m, create("nope"), Error::NoFreeSlot { max: 3 });
}

#[test]
fn a_shut_down_dynamic_name_can_be_used_again() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    expect_ok(&mut m, shutdown("web"));
    assert_eq!(info(&mut m, "web"), None);
    let again = expect_info(
        &mut m,
        create_with("web", options(None, None, Some(32), None)),
    );
    assert_eq!(again.mem_mib, 32);
}

#[test]
fn a_shut_down_static_vm_is_listed_powered_off_and_can_be_created_again() {
    let mut m = manager();
    expect_info(&mut m, create("rtvm"));
    expect_ok(&mut m, shutdown("rtvm"));
    let off = info(&mut m, "rtvm").unwrap();
    assert_eq!(off.state, VmState::PoweredOff);
    assert_eq!(off.kind, VmKind::Static);
    assert_eq!(
        (off.mem_mib, off.vcpus),
        (64, 1),
        "its configuration is kept"
    );
    assert_eq!(expect_info(&mut m, create("rtvm")).state, VmState::Created);
}

#[test]
fn invalid_names_are_refused_by_every_request() {
    let mut m = manager();
    for bad in ["", "x y", "a/b", "\u{e9}t\u{e9}", &"n".repeat(32)] {
        let requests = [
            create(bad),
            start(bad),
            pause(bad),
            resume(bad),
            reset(bad, false),
            reset(bad, true),
            shutdown(bad),
            destroy(bad),
            info_req(bad),
            clone_vm(bad, "ok"),
            clone_vm("rtvm", bad),
        ];
        for request in requests {
            expect_err(&mut m, request, Error::InvalidName);
        }
    }
    assert!(m.platform().calls.is_empty());
}

#[test]
fn unknown_names_are_unknown_vms() {
    let mut m = manager();
    for request in [
        start("ghost"),
        pause("ghost"),
        resume("ghost"),
        reset("ghost", false),
        shutdown("ghost"),
        destroy("ghost"),
        info_req("ghost"),
        clone_vm("ghost", "copy"),
    ] {
        expect_err(&mut m, request, Error::UnknownVm);
    }
    assert!(m.platform().calls.is_empty());
}

#[test]
fn responses_survive_the_wire() {
    let mut m = manager();
    let response = m.handle(create("web"));
    let mut buf = [0u8; ipc::MAX_MESSAGE_SIZE];
    let bytes = ipc::encode(&response, &mut buf).unwrap();
    let back: Response = ipc::decode(bytes).unwrap();
    assert_eq!(back, response);
    let request: Request = ipc::decode(ipc::encode(&create("x"), &mut buf).unwrap()).unwrap();
    assert!(matches!(m.handle(request), Response::Info(_)));
}
