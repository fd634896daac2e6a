//! The requests each command sends, how answers are checked, and reading
//! the VM list page by page against the real vm-manager.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::vm::{
    CreateOptions, MAX_WIRE_CMDLINE, Request, Response, VmInfo, VmKind, VmState, WireCmdline,
};
use ipc::{VmId, wire_name};
use mica_mgmt::command::{Reply, ReplyError};
use mica_mgmt::{Command, ListPager, VmCommand, parse_line};

fn vm_command(line: &str) -> VmCommand {
    match parse_line(line).unwrap().unwrap() {
        Command::Vm(command) => command,
        other => panic!("{other:?}"),
    }
}

fn w(text: &str) -> ipc::WireName {
    wire_name(text).unwrap()
}

fn info(name: &str) -> VmInfo {
    VmInfo {
        name: w(name),
        id: VmId(1),
        kind: VmKind::Dynamic,
        state: VmState::Created,
        vcpus: 1,
        mem_mib: 128,
        disk: None,
        generation_id: [1; 16],
        generation_id_random: true,
        last_exit: None,
        last_exit_uptime_ms: None,
    }
}

#[test]
fn each_command_sends_its_request() {
    let cases = [
        ("vm list", Request::List { from: 0 }),
        ("vm info a", Request::Info { name: w("a") }),
        ("vm start a", Request::Start { name: w("a") }),
        ("vm pause a", Request::Pause { name: w("a") }),
        ("vm resume a", Request::Resume { name: w("a") }),
        ("vm shutdown a", Request::Shutdown { name: w("a") }),
        ("vm destroy a", Request::Destroy { name: w("a") }),
        (
            "vm reset a --new-genid",
            Request::Reset {
                name: w("a"),
                new_generation_id: true,
            },
        ),
        (
            "vm clone a b",
            Request::Clone {
                source: w("a"),
                name: w("b"),
            },
        ),
        (
            "vm create web --from rtvm --image zephyr --mem 64 --vcpus 3",
            Request::Create {
                name: w("web"),
                options: CreateOptions {
                    template: Some(w("rtvm")),
                    image: Some(w("zephyr")),
                    mem_mib: Some(64),
                    vcpus: Some(3),
                    kernel: None,
                    initrd: None,
                    cmdline: None,
                    disk: None,
                },
            },
        ),
        (
            "vm create lx --kernel linux --initrd linux-initrd --cmdline \"console=ttyS0 quiet\"",
            Request::Create {
                name: w("lx"),
                options: CreateOptions {
                    kernel: Some(w("linux")),
                    initrd: Some(w("linux-initrd")),
                    cmdline: Some(WireCmdline::try_from("console=ttyS0 quiet").unwrap()),
                    ..CreateOptions::default()
                },
            },
        ),
    ];
    for (line, request) in cases {
        assert_eq!(vm_command(line).request(), request, "{line}");
    }
}

#[test]
fn the_vm_manager_takes_a_kernel_create_and_a_full_command_line() {
    let mut manager = mica_mgmt::testing::manager();
    let longest = "x".repeat(MAX_WIRE_CMDLINE);
    for line in [
        "vm create lx --kernel linux --initrd linux-initrd --cmdline \"console=ttyS0 quiet\""
            .to_string(),
        format!(
            "vm create long-name-of-31-bytes-for-a-vm --kernel kernel-image-name-of-31-bytes \
             --initrd initrd-image-name-of-31-bytes --cmdline \"{longest}\""
        ),
    ] {
        let request = vm_command(&line).request();
        // It fits one IPC message, as the shell and the mgmt task send it.
        let mut buf = [0u8; ipc::MAX_MESSAGE_SIZE];
        assert!(ipc::encode(&request, &mut buf).is_ok(), "{line}");
        let response = manager.handle(request);
        assert!(
            matches!(response, Response::Info(_)),
            "{line}: {response:?}"
        );
    }
}

#[test]
fn answers_must_fit_the_request() {
    let start = vm_command("vm start a");
    let create = vm_command("vm create a");
    assert_eq!(start.check_reply(Response::Ok), Ok(Reply::Done));
    assert_eq!(
        start.check_reply(Response::Err(ipc::Error::UnknownVm)),
        Err(ReplyError::Refused(ipc::Error::UnknownVm))
    );
    assert_eq!(
        start.check_reply(Response::Info(info("a"))),
        Err(ReplyError::Unexpected)
    );
    assert_eq!(
        create.check_reply(Response::Info(info("a"))),
        Ok(Reply::Info(info("a")))
    );
    assert_eq!(
        create.check_reply(Response::Ok),
        Err(ReplyError::Unexpected)
    );
    assert_eq!(
        VmCommand::List.check_reply(Response::Ok),
        Err(ReplyError::Unexpected)
    );
}

#[test]
fn the_pager_reads_every_vm_of_a_real_vm_manager() {
    let mut manager = mica_mgmt::testing::manager();
    for index in 0..9 {
        let response = manager.handle(vm_command(&format!("vm create d{index}")).request());
        assert!(matches!(response, Response::Info(_)), "{response:?}");
    }
    let mut pager = ListPager::new();
    let mut names = Vec::new();
    let mut pages = 0;
    while let Some(request) = pager.next_request() {
        pages += 1;
        let page = pager.accept(manager.handle(request)).unwrap();
        names.extend(page.iter().map(|vm| vm.name.to_string()));
    }
    assert_eq!(pages, 3, "11 VMs in pages of 4");
    let expected: Vec<String> = ["sos", "rtvm"]
        .into_iter()
        .map(String::from)
        .chain((0..9).map(|i| format!("d{i}")))
        .collect();
    assert_eq!(names, expected);
}

#[test]
fn a_pager_refuses_answers_that_do_not_move_forward() {
    let page = |next| Response::List {
        vms: heapless::Vec::new(),
        next,
    };
    let mut pager = ListPager::new();
    assert!(pager.accept(page(Some(6))).is_ok());
    assert_eq!(pager.next_request(), Some(Request::List { from: 6 }));
    assert_eq!(pager.accept(page(Some(6))), Err(ReplyError::Unexpected));
    assert_eq!(pager.next_request(), None);

    let mut pager = ListPager::new();
    assert_eq!(pager.accept(Response::Ok), Err(ReplyError::Unexpected));
    let mut pager = ListPager::new();
    assert_eq!(
        pager.accept(Response::Err(ipc::Error::ServerDied)),
        Err(ReplyError::Refused(ipc::Error::ServerDied))
    );
    let mut pager = ListPager::new();
    assert!(pager.accept(page(None)).is_ok());
    assert_eq!(pager.next_request(), None);
    assert_eq!(pager.accept(page(None)), Err(ReplyError::Unexpected));
}
