//! The task's platform over fakes of the kernel and the other services:
//! each lifecycle step issues the right calls and messages in order, a
//! failing step returns its error, and the library's rollback then issues
//! the matching releases, so nothing acquired is left behind.

mod platform_fakes;

use platform_fakes::*;

#[test]
fn the_devices_client_is_the_device_service_endpoint() {
    assert_eq!(DEVICES_CLIENT, ClientId(3));
    assert_eq!(UART.base, 0x1000_0000);
    assert_eq!(UART.irq, 10);
}

#[test]
fn pre_launch_creates_registers_describes_and_starts_in_order() {
    let (mut manager, world) = manager();
    let outcomes = manager.launch_pre_launched();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].name.as_str(), "vm0");
    assert_eq!(outcomes[0].result, Ok(()));

    let log = take_log(&world);
    let dtb = dtb_in(&log);
    let mut expected = creation_events(0, "vm0", 1, 1, &dtb);
    expected.push(Event::Start(0));
    assert_eq!(log, expected);

    // The device tree is a real FDT naming the VM; a raw image has no
    // command line, so the bootargs are empty.
    assert_eq!(dtb[..4], [0xd0, 0x0d, 0xfe, 0xed]);
    assert!(contains(&dtb, b"vm0\0"));
    assert!(!contains(&dtb, b"console=ttyS0"));
    assert_eq!(state_of(&mut manager, "vm0"), VmState::Started);
    assert_eq!(manager.platform().release_failures(), 0);
}

#[test]
fn destroy_releases_devices_then_ioreq_then_the_kernel_vm() {
    let (mut manager, world) = manager();
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    take_log(&world);
    let answer = manager.handle(named(|name| Request::Destroy { name }, "vm1"));
    assert_eq!(answer, Response::Ok);
    assert_eq!(
        take_log(&world),
        vec![
            Event::Devices(devices::Request::RemoveVm { vm: VmId(1) }),
            Event::Ioreq(ioreq::Request::DetachVm { vm: VmId(1) }),
            Event::Destroy(1),
        ]
    );
    // The number is free again: a second creation makes the VM anew.
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    assert!(matches!(take_log(&world)[0], Event::Create { vm: 1, .. }));
}

#[test]
fn pause_resume_and_shutdown_use_the_vm_calls() {
    let (mut manager, world) = manager();
    manager.launch_pre_launched();
    take_log(&world);
    assert_eq!(
        manager.handle(named(|name| Request::Pause { name }, "vm0")),
        Response::Ok
    );
    assert_eq!(
        manager.handle(named(|name| Request::Resume { name }, "vm0")),
        Response::Ok
    );
    assert_eq!(take_log(&world), vec![Event::Pause(0), Event::Resume(0)]);
    assert_eq!(
        manager.handle(named(|name| Request::Shutdown { name }, "vm0")),
        Response::Ok
    );
    assert_eq!(
        take_log(&world),
        vec![
            Event::Pause(0),
            Event::Devices(devices::Request::RemoveVm { vm: VmId(0) }),
            Event::Ioreq(ioreq::Request::DetachVm { vm: VmId(0) }),
            Event::Destroy(0),
        ]
    );
}

#[test]
fn reset_reloads_fresh_devices_with_the_same_id_and_restarts() {
    let (mut manager, world) = manager();
    manager.launch_pre_launched();
    let first_dtb = dtb_in(&take_log(&world));
    let answer = manager.handle(Request::Reset {
        name: wire_name("vm0").unwrap(),
        new_generation_id: false,
    });
    assert_eq!(answer, Response::Ok);
    let log = take_log(&world);
    let id = VmId(0);
    let expected = vec![
        Event::Reset(0),
        Event::Devices(devices::Request::RemoveVm { vm: id }),
        Event::Devices(devices::Request::AddVm {
            vm: id,
            name: wire_name("vm0").unwrap(),
        }),
        plic_attach(id),
        Event::Devices(devices::Request::Attach {
            vm: id,
            device: devices::DeviceKind::Uart16550,
            space: Space::Mmio,
            base: UART.base,
            irq: UART.irq,
        }),
        Event::Devices(devices::Request::Attach {
            vm: id,
            device: devices::DeviceKind::VmGenId,
            space: Space::Mmio,
            base: VMGENID.base,
            irq: VMGENID.irq,
        }),
        rng_attach(id),
        console_attach(id),
        nic_attach(id),
        // The ID drawn at creation, not a new one.
        Event::Devices(devices::Request::SetGenerationId {
            vm: id,
            id: [1; 16],
        }),
        Event::Load {
            vm: 0,
            image: "hello".into(),
        },
        Event::SetDtb {
            vm: 0,
            dtb: first_dtb,
        },
        // The reset zeroed RAM: the same ID goes back into it.
        Event::WriteGenid { vm: 0, id: [1; 16] },
        Event::Start(0),
    ];
    assert_eq!(log, expected); // The devices service got the VM's RAM at creation, and again after
    // the reset (which ended that grant).
    let devices = 1 << ipc::syscall::endpoints::DEVICES;
    assert_eq!(world.borrow().grants, [(0, devices), (0, devices)]);
}

#[test]
fn a_reset_with_a_new_id_tells_the_device_first_and_keeps_it_after() {
    let (mut manager, world) = manager();
    manager.launch_pre_launched();
    take_log(&world);
    let answer = manager.handle(Request::Reset {
        name: wire_name("vm0").unwrap(),
        new_generation_id: true,
    });
    assert_eq!(answer, Response::Ok);
    let log = take_log(&world);
    let ids: Vec<[u8; 16]> = log
        .iter()
        .filter_map(|event| match event {
            Event::Devices(devices::Request::SetGenerationId { id, .. }) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![[2; 16], [2; 16]]);
    let in_ram: Vec<[u8; 16]> = log
        .iter()
        .filter_map(|event| match event {
            Event::WriteGenid { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(in_ram, vec![[2; 16], [2; 16]], "before and after the reset");
}

/// Every acquire that succeeded has exactly one matching release after it;
/// the event at `failed` (if any) was refused and acquired nothing.
fn assert_balanced(log: &[Event], vm: u16, failed: Option<usize>) {
    let id = VmId(vm);
    let log: Vec<Event> = log
        .iter()
        .enumerate()
        .filter(|(index, _)| Some(*index) != failed)
        .map(|(_, event)| event.clone())
        .collect();
    let count = |want: &Event| log.iter().filter(|event| *event == want).count();
    let created = log
        .iter()
        .filter(|event| matches!(event, Event::Create { .. }))
        .count();
    assert_eq!(created, count(&Event::Destroy(vm)), "vm_create/vm_destroy");
    let attaches = log
        .iter()
        .filter(|event| matches!(event, Event::Ioreq(ioreq::Request::AttachVm { .. })))
        .count();
    assert_eq!(
        attaches,
        count(&Event::Ioreq(ioreq::Request::DetachVm { vm: id })),
        "AttachVm/DetachVm"
    );
    let adds = log
        .iter()
        .filter(|event| matches!(event, Event::Devices(devices::Request::AddVm { .. })))
        .count();
    assert_eq!(
        adds,
        count(&Event::Devices(devices::Request::RemoveVm { vm: id })),
        "AddVm/RemoveVm"
    );
}

#[test]
fn a_failing_creation_step_returns_its_error_and_leaves_nothing_behind() {
    let cases: [(&'static str, Error, &[&str]); 15] = [
        ("vm_create", Error::OutOfMemory, &[]),
        ("vm_load", Error::UnknownImage, &["vm_destroy"]),
        ("AttachVm", Error::NoFreeSlot { max: 8 }, &["vm_destroy"]),
        (
            "RegisterRange UART",
            Error::RangeOverlap,
            &["DetachVm", "vm_destroy"],
        ),
        (
            "SetDefaultClient",
            Error::UnknownVm,
            &["DetachVm", "vm_destroy"],
        ),
        ("AddVm", Error::ServerDied, &["DetachVm", "vm_destroy"]),
        ("AddVm", Error::TimedOut, &["DetachVm", "vm_destroy"]),
        (
            "RegisterRange UART",
            Error::TimedOut,
            &["DetachVm", "vm_destroy"],
        ),
        (
            "Attach Plic",
            Error::TableFull,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "Attach Uart16550",
            Error::DeviceExists,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "Attach VmGenId",
            Error::DeviceExists,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "Attach Uart16550",
            Error::UnknownVm,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "vm_set_dtb",
            Error::InvalidArgument,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "vm_write_genid",
            Error::KernelRefused,
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
        (
            "SetGenerationId",
            Error::NoDevice,
            // The ID already in RAM is put back (there was none: NONE is
            // not written), then the releases.
            &["RemoveVm", "DetachVm", "vm_destroy"],
        ),
    ];
    for (label, error, releases) in cases {
        let (mut manager, world) = manager();
        world.borrow_mut().fail = Some((label, error));
        // A device service that died during its call is named as down,
        // and so is an ioreq service that forgot the VM it had just
        // attached (it restarted in between); one that did not answer by
        // the call's deadline is named as hung.
        let expected = match (label, error) {
            (_, Error::ServerDied) => Error::ServiceDown { endpoint: 3 },
            ("AddVm", Error::TimedOut) => Error::ServiceHung { endpoint: 3 },
            (_, Error::TimedOut) => Error::ServiceHung { endpoint: 2 },
            ("SetDefaultClient", Error::UnknownVm) => Error::ServiceDown { endpoint: 2 },
            ("Attach Uart16550", Error::UnknownVm) => Error::ServiceDown { endpoint: 3 },
            (_, other) => other,
        };
        assert_eq!(
            create(&mut manager, "vm1"),
            Response::Err(expected),
            "{label}"
        );
        let log = take_log(&world);
        let failed_at = log
            .iter()
            .position(|event| event.label() == label)
            .expect("the failing step ran");
        let after: Vec<&str> = log[failed_at + 1..].iter().map(Event::label).collect();
        assert_eq!(after, releases, "releases after a failing {label}");
        assert_balanced(&log, 1, Some(failed_at));
        assert_eq!(state_of(&mut manager, "vm1"), VmState::PoweredOff);

        // Nothing is held: the same VM can then be created cleanly.
        world.borrow_mut().fail = None;
        assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
        assert_eq!(manager.platform().release_failures(), 0);
    }
}

/// The kernel takes images by number: the vm-manager finds the name's
/// number (`hello` is guest 1) and a name the boot image lacks is unknown
/// before anything is loaded.
#[test]
fn images_are_loaded_by_their_number_and_an_unknown_name_loads_nothing() {
    let (mut manager, world) = manager();
    let create_with = |manager: &mut Manager, name: &str, image: &str| {
        manager.handle(Request::Create {
            name: wire_name(name).expect("a valid test name"),
            options: CreateOptions {
                image: Some(wire_name(image).expect("a valid test name")),
                ..CreateOptions::default()
            },
        })
    };
    assert!(matches!(
        create_with(&mut manager, "a", "other"),
        Response::Info(_)
    ));
    let loads = |log: Vec<Event>| -> Vec<Event> {
        log.into_iter()
            .filter(|e| matches!(e, Event::Load { .. }))
            .collect()
    };
    let image = "other".into();
    assert_eq!(loads(take_log(&world)), [Event::Load { vm: 2, image }]);
    assert_eq!(
        create_with(&mut manager, "b", "nosuch"),
        Response::Err(Error::UnknownImage)
    );
    let log = take_log(&world);
    assert!(loads(log.clone()).is_empty(), "{log:?}");
    assert_balanced(&log, 3, None);
    assert_eq!(manager.platform().release_failures(), 0);
}

#[test]
fn a_failing_start_at_boot_tears_the_vm_down_again() {
    let (mut manager, world) = manager();
    world.borrow_mut().fail = Some(("vm_start", Error::KernelRefused));
    let outcomes = manager.launch_pre_launched();
    assert_eq!(outcomes[0].result, Err(Error::KernelRefused));
    let log = take_log(&world);
    let failed_at = log.iter().position(|event| *event == Event::Start(0));
    assert_balanced(&log, 0, failed_at);
    assert_eq!(log.last(), Some(&Event::Destroy(0)));
    assert_eq!(state_of(&mut manager, "vm0"), VmState::PoweredOff);
}

fn paused_vm0() -> (Manager, Shared) {
    let (mut manager, world) = manager();
    manager.launch_pre_launched();
    assert_eq!(
        manager.handle(named(|name| Request::Pause { name }, "vm0")),
        Response::Ok
    );
    take_log(&world);
    (manager, world)
}

fn clone_vm0(manager: &mut Manager) -> Response {
    manager.handle(Request::Clone {
        source: wire_name("vm0").expect("a valid test name"),
        name: wire_name("copy").expect("a valid test name"),
    })
}

#[test]
fn a_clone_copies_the_sources_ram_instead_of_loading_and_gets_a_fresh_id() {
    let (mut manager, world) = paused_vm0();
    let Response::Info(info) = clone_vm0(&mut manager) else {
        panic!("the clone was refused")
    };
    let log = take_log(&world);
    let copy = info.id.0;
    assert_ne!(copy, 0);
    let Event::Create { vm, ram_mib, .. } = log[0] else {
        panic!("first the kernel VM: {log:?}")
    };
    assert_eq!((vm, ram_mib), (copy, 64), "as large as the source");
    assert_eq!(
        log[1],
        Event::CloneRam {
            source: 0,
            target: copy
        }
    );
    assert!(
        !log.iter().any(|e| matches!(e, Event::Load { .. })),
        "{log:?}"
    );
    // The copied RAM holds vm0's ID; the clone's own goes over it.
    let fresh = [2; 16];
    assert!(log.contains(&Event::WriteGenid {
        vm: copy,
        id: fresh
    }));
    assert_eq!(info.generation_id, fresh);
    assert_eq!(state_of(&mut manager, "vm0"), VmState::Paused);
    // A reset of the clone reloads the source's image.
    let reset = manager.handle(Request::Reset {
        name: wire_name("copy").unwrap(),
        new_generation_id: false,
    });
    assert_eq!(reset, Response::Ok);
    let image = "hello".into();
    assert!(take_log(&world).contains(&Event::Load { vm: copy, image }));
}

#[test]
fn a_clone_the_kernel_refuses_leaves_nothing_behind() {
    let (mut manager, world) = paused_vm0();
    world.borrow_mut().fail = Some(("vm_clone_ram", Error::KernelRefused));
    assert_eq!(clone_vm0(&mut manager), Response::Err(Error::KernelRefused));
    let log = take_log(&world);
    let labels: Vec<&str> = log.iter().map(Event::label).collect();
    assert_eq!(labels, ["vm_create", "vm_clone_ram", "vm_destroy"]);
    // The refused clone's number is free for the next VM.
    world.borrow_mut().fail = None;
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
}

#[test]
fn a_refused_release_is_counted_and_the_teardown_goes_on() {
    let (mut manager, world) = manager();
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    world.borrow_mut().fail = Some(("DetachVm", Error::ServerDied));
    take_log(&world);
    assert_eq!(
        manager.handle(named(|name| Request::Destroy { name }, "vm1")),
        Response::Ok
    );
    assert_eq!(take_log(&world).last(), Some(&Event::Destroy(1)));
    assert_eq!(manager.platform().release_failures(), 1);
}

/// On the x86 board, a VM gets COM1 in port space (registered with ioreq
/// and attached as a 16550 at 0x3f8) and a boot-info block naming it
/// instead of a device tree.
#[test]
fn x86_guests_get_com1_in_port_space_and_a_boot_info_block() {
    let world = Shared::default();
    let platform = KernelPlatform::with_board(
        FakeKernel(world.clone()),
        FakeLinks(world.clone()),
        GuestBoard::X86Pc,
    );
    let mut manager = Manager::new(SCENARIO, platform, Counting(0)).expect("valid scenario");
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    let log = take_log(&world);
    let id = VmId(1);
    let com1_range = Event::Ioreq(ioreq::Request::RegisterRange {
        vm: id,
        client: DEVICES_CLIENT,
        space: Space::Pio,
        start: 0x3f8,
        len: 8,
    });
    let com1 = Event::Devices(devices::Request::Attach {
        vm: id,
        device: devices::DeviceKind::Uart16550,
        space: Space::Pio,
        base: 0x3f8,
        irq: 4,
    });
    assert!(log.contains(&com1_range), "{log:?}");
    assert!(log.contains(&com1), "{log:?}");
    let mmio = |e: &Event| {
        matches!(
            e,
            Event::Ioreq(ioreq::Request::RegisterRange {
                space: Space::Mmio,
                ..
            }) | Event::Devices(devices::Request::Attach {
                space: Space::Mmio,
                ..
            })
        )
    };
    assert!(!log.iter().any(mmio), "no MMIO device on x86: {log:?}");
    let Some(Event::SetDtb { dtb, .. }) = log.iter().find(|e| matches!(e, Event::SetDtb { .. }))
    else {
        panic!("no boot info written: {log:?}")
    };
    let mut expected = b"MICA".to_vec();
    expected.extend_from_slice(&3u32.to_le_bytes());
    expected.extend_from_slice(&(64u64 << 20).to_le_bytes());
    expected.extend_from_slice(&2u32.to_le_bytes());
    expected.extend_from_slice(b"vm1");
    assert_eq!(dtb, &expected);
}

#[test]
fn the_riscv_board_keeps_its_device_tree() {
    let (mut manager, world) = manager();
    assert!(matches!(create(&mut manager, "vm1"), Response::Info(_)));
    let log = take_log(&world);
    let Some(Event::SetDtb { dtb, .. }) = log.iter().find(|e| matches!(e, Event::SetDtb { .. }))
    else {
        panic!("no device tree written: {log:?}")
    };
    assert_eq!(dtb[..4], [0xd0, 0x0d, 0xfe, 0xed], "an FDT header");
    assert_eq!(GuestBoard::RiscvVirt.ram_base(), 0x8000_0000);
    assert_eq!(GuestBoard::X86Pc.ram_base(), 0);
}
