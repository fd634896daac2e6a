//! The platform with disks: a VM with one gets its virtio-blk device and
//! grants its RAM to the block service, a disk is one VM's at a time, and
//! a restarted vm-manager still knows each VM's disk.

mod platform_fakes;

use platform_fakes::*;

/// Two static VMs with disks 0 and 1 beside one without.
const DISKS: &[StaticVmConfig] = &[
    StaticVmConfig {
        name: "a",
        image: "hello",
        mem_mib: 64,
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: Some(0),
    },
    StaticVmConfig {
        name: "b",
        image: "hello",
        mem_mib: 64,
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: None,
    },
    StaticVmConfig {
        name: "c",
        image: "hello",
        mem_mib: 64,
        vcpus: 1,
        flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
        linux: None,
        disk: Some(1),
    },
];

#[test]
fn a_vm_with_a_disk_gets_a_virtio_blk_device_and_grants_its_ram_to_the_block_service() {
    let world = Shared::default();
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let mut manager = Manager::new(DISKS, platform, Counting(0)).expect("valid scenario");
    manager.launch_pre_launched();
    let log = take_log(&world);
    let blk_attaches: Vec<(u16, u8, u64, u32)> = log
        .iter()
        .filter_map(|e| match e {
            Event::Devices(devices::Request::Attach {
                vm,
                device: devices::DeviceKind::VirtioBlk { disk },
                base,
                irq,
                ..
            }) => Some((vm.0, *disk, *base, *irq)),
            _ => None,
        })
        .collect();
    assert_eq!(
        blk_attaches,
        [(0, 0, 0x1000_2000, 2), (2, 1, 0x1000_2000, 2)]
    );
    let devices = 1u64 << ipc::syscall::endpoints::DEVICES;
    let blk = 1u64 << ipc::syscall::endpoints::BLK;
    assert_eq!(
        world.borrow().grants,
        [(0, devices | blk), (1, devices), (2, devices | blk)]
    );
    // Each disk VM's device tree has the disk's node; the other's has not.
    let trees: Vec<Vec<u8>> = log
        .iter()
        .filter_map(|e| match e {
            Event::SetDtb { dtb, .. } => Some(dtb.clone()),
            _ => None,
        })
        .collect();
    let has_disk = |dtb: &[u8]| contains(dtb, b"virtio_mmio@10002000");
    assert_eq!(
        trees.iter().map(|t| has_disk(t)).collect::<Vec<_>>(),
        [true, false, true]
    );
    // Every tree has the entropy device, the console and the network
    // card, disk or not.
    for tree in &trees {
        assert!(contains(tree, b"virtio_mmio@10001000"));
        assert!(contains(tree, b"virtio_mmio@10003000"));
        assert!(contains(tree, b"virtio_mmio@10004000"));
    }
}

fn create_with_disk(manager: &mut Manager, name: &str, disk: u8) -> Response {
    manager.handle(Request::Create {
        name: wire_name(name).expect("a valid test name"),
        options: CreateOptions {
            image: Some(wire_name("hello").expect("a valid image name")),
            disk: Some(disk),
            ..CreateOptions::default()
        },
    })
}

#[test]
fn a_dynamic_vm_gets_a_free_disk_and_is_refused_one_another_vm_has() {
    let world = Shared::default();
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let mut manager = Manager::new(DISKS, platform, Counting(0)).expect("valid scenario");
    manager.launch_pre_launched();
    take_log(&world);
    // Static `a` holds disk 0: refused, and nothing is left of `d`.
    assert_eq!(
        create_with_disk(&mut manager, "d", 0),
        Response::Err(Error::DiskInUse)
    );
    let refused = take_log(&world);
    assert!(
        refused.is_empty(),
        "refused before any RAM is taken: {refused:?}"
    );
    // Disk 2 is free: attached in slot 1, RAM granted to the block service.
    let Response::Info(info) = create_with_disk(&mut manager, "d", 2) else {
        panic!("a free disk is refused")
    };
    assert_eq!(info.disk, Some(2));
    let blk = |e: &Event| match e {
        Event::Devices(devices::Request::Attach {
            vm,
            device: devices::DeviceKind::VirtioBlk { disk },
            base,
            ..
        }) => Some((vm.0, *disk, *base)),
        _ => None,
    };
    let log = take_log(&world);
    assert_eq!(
        log.iter().filter_map(blk).collect::<Vec<_>>(),
        [(info.id.0, 2, 0x1000_2000)]
    );
    let blk_endpoint = 1u64 << ipc::syscall::endpoints::BLK;
    assert!(
        world
            .borrow()
            .grants
            .iter()
            .any(|&(vm, endpoints)| vm == info.id.0 && endpoints & blk_endpoint != 0)
    );
    // Once `a` is gone its disk is free for another VM.
    let destroyed = manager.handle(named(|name| Request::Destroy { name }, "a"));
    assert_eq!(destroyed, Response::Ok);
    let Response::Info(info) = create_with_disk(&mut manager, "e", 0) else {
        panic!("a freed disk is refused")
    };
    assert_eq!(info.disk, Some(0));
}

#[test]
fn a_restarted_vm_manager_keeps_each_vms_disk_for_a_restarted_device_service() {
    let world = Shared::default();
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let mut first = Manager::new(DISKS, platform, Counting(0)).expect("valid scenario");
    first.launch_pre_launched();
    let Response::Info(dynamic) = create_with_disk(&mut first, "d", 2) else {
        panic!("a free disk is refused")
    };
    drop(first);
    // A fresh copy over the same kernel and services.
    let platform = KernelPlatform::new(FakeKernel(world.clone()), FakeLinks(world.clone()));
    let mut second = Manager::new(DISKS, platform, Counting(9)).expect("valid scenario");
    let (found, _) = second.recover();
    assert!(found.iter().all(|r| r.result.is_ok()), "{found:?}");
    let info = |manager: &mut Manager, name: &str| match manager
        .handle(named(|name| Request::Info { name }, name))
    {
        Response::Info(info) => info.disk,
        other => panic!("{other:?}"),
    };
    assert_eq!(info(&mut second, "d"), Some(2), "from the VM's note");
    assert_eq!(
        create_with_disk(&mut second, "e", 2),
        Response::Err(Error::DiskInUse)
    );
    // A restarted device service gets every disk again, the static VMs'
    // and the dynamic one's.
    take_log(&world);
    let restarted = second.handle_from(
        vm_manager::Caller::Supervisor,
        Request::ServiceRestarted {
            endpoint: u8::try_from(ipc::syscall::endpoints::DEVICES).expect("an endpoint number"),
        },
    );
    assert_eq!(restarted, Response::Ok);
    let disks: Vec<(u16, u8)> = take_log(&world)
        .iter()
        .filter_map(|e| match e {
            Event::Devices(devices::Request::Attach {
                vm,
                device: devices::DeviceKind::VirtioBlk { disk },
                ..
            }) => Some((vm.0, *disk)),
            _ => None,
        })
        .collect();
    assert_eq!(disks, [(0, 0), (2, 1), (dynamic.id.0, 2)]);
}
