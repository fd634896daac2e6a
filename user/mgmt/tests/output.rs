//! What the user sees: the list table, the info block, confirmation lines,
//! every refusal as one line, and the JSON for scripts.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::vm::{VmInfo, VmKind, VmState};
use ipc::{VmId, wire_name};
use mica_mgmt::command::{CreateArgs, ReplyError, VmCommand};
use mica_mgmt::errors::ErrorMessage;
use mica_mgmt::json;
use mica_mgmt::table::{DoneLine, GenerationIdText, InfoBlock, MemoryLine, VmTable};
use vm_manager::{ImageName, VmName};

fn vm(name: &str, slot: u16, kind: VmKind, state: VmState, genid: u128) -> VmInfo {
    VmInfo {
        name: wire_name(name).unwrap(),
        id: VmId(slot),
        kind,
        state,
        vcpus: 2,
        mem_mib: 512,
        disk: None,
        generation_id: genid.to_le_bytes(),
        generation_id_random: true,
        last_exit: None,
        last_exit_uptime_ms: None,
    }
}

fn name(text: &str) -> VmName {
    VmName::parse(text).unwrap()
}

fn message(command: &VmCommand, error: ipc::Error) -> String {
    ErrorMessage {
        command,
        error: ReplyError::Refused(error),
    }
    .to_string()
}

#[test]
fn generation_ids_read_as_uuids_of_the_128_bit_number() {
    assert_eq!(
        GenerationIdText(1u128.to_le_bytes()).to_string(),
        "00000000-0000-0000-0000-000000000001"
    );
    assert_eq!(
        GenerationIdText(0x0011_2233_4455_6677_8899_aabb_ccdd_eeffu128.to_le_bytes()).to_string(),
        "00112233-4455-6677-8899-aabbccddeeff"
    );
}

#[test]
fn the_list_table_lines_up() {
    let vms = [
        vm("sos", 0, VmKind::Static, VmState::Started, 1),
        vm(
            "a-much-longer-name",
            3,
            VmKind::Dynamic,
            VmState::PoweredOff,
            0,
        ),
    ];
    assert_eq!(
        VmTable(&vms).to_string(),
        "\
NAME                SLOT  KIND     STATE        VCPUS  MEM(MiB)  GENERATION ID
sos                    0  static   started          2       512  00000000-0000-0000-0000-000000000001
a-much-longer-name     3  dynamic  powered-off      2       512  00000000-0000-0000-0000-000000000000
"
    );
    assert_eq!(
        VmTable(&[]).to_string(),
        "NAME  SLOT  KIND     STATE        VCPUS  MEM(MiB)  GENERATION ID\n"
    );
}

#[test]
fn control_characters_from_the_peer_do_not_reach_the_terminal() {
    let vms = [vm("a\u{1b}[2Jb", 1, VmKind::Dynamic, VmState::Paused, 2)];
    let table = VmTable(&vms).to_string();
    assert!(
        table.contains("\na?[2Jb     1  dynamic  paused "),
        "{table}"
    );
    assert!(
        InfoBlock(&vms[0])
            .to_string()
            .starts_with("name:          a?[2Jb\n")
    );
}

#[test]
fn the_info_block_has_one_line_per_field() {
    let info = vm("rtvm", 1, VmKind::Static, VmState::Paused, 0xabc);
    assert_eq!(
        InfoBlock(&info).to_string(),
        "\
name:          rtvm
slot:          1
kind:          static
state:         paused
vcpus:         2
memory:        512 MiB
disk:          none
generation id: 00000000-0000-0000-0000-000000000abc
"
    );
}

#[test]
fn a_vm_with_a_disk_shows_it_in_info_and_its_json() {
    let mut info = vm("d1", 2, VmKind::Dynamic, VmState::Started, 1);
    info.disk = Some(0);
    assert!(
        InfoBlock(&info)
            .to_string()
            .contains("memory:        512 MiB\ndisk:          0 (virtio-blk)\n"),
        "{}",
        InfoBlock(&info)
    );
    let mut out = String::new();
    json::write_vm_info(&mut out, &info, None).unwrap();
    assert!(out.ends_with(",\"disk\":0,\"stats\":null}"), "{out}");
    info.disk = None;
    let mut out = String::new();
    json::write_vm_info(&mut out, &info, None).unwrap();
    assert!(out.ends_with(",\"disk\":null,\"stats\":null}"), "{out}");
}

#[test]
fn a_disk_refused_says_why_and_what_to_do() {
    let with_disk = VmCommand::Create(CreateArgs {
        disk: Some(5),
        image: Some(ImageName::parse("hello").unwrap()),
        ..create_args_web()
    });
    assert_eq!(
        message(&with_disk, ipc::Error::DiskInUse),
        "disk 5 is attached to another VM: destroy that VM first or choose another --disk"
    );
    assert_eq!(
        message(&with_disk, ipc::Error::NoDevice),
        "no disk 5 on this machine: the disks are the host files the scenario's disk = \
         or --guest ...,disk= gave QEMU, numbered from 0"
    );
    // Without --disk, a missing device is not about a disk.
    assert!(!message(&create(Some("hello"), None), ipc::Error::NoDevice).contains("disk"));
}

fn create_args_web() -> CreateArgs {
    match create(None, None) {
        VmCommand::Create(args) => args,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_id_drawn_without_hardware_entropy_is_marked() {
    let mut info = vm("rtvm", 1, VmKind::Static, VmState::Paused, 0xabc);
    info.generation_id_random = false;
    assert!(
        InfoBlock(&info).to_string().ends_with(
            "generation id: 00000000-0000-0000-0000-000000000abc
               NOT random: drawn without a hardware entropy source
"
        ),
        "{}",
        InfoBlock(&info)
    );
}

#[test]
fn lifecycle_commands_confirm_in_one_line() {
    let n = || name("vm0");
    let lines = [
        (VmCommand::Start { name: n() }, "vm0 started"),
        (VmCommand::Pause { name: n() }, "vm0 paused"),
        (VmCommand::Resume { name: n() }, "vm0 resumed"),
        (
            VmCommand::Reset {
                name: n(),
                new_generation_id: false,
            },
            "vm0 reset",
        ),
        (
            VmCommand::Reset {
                name: n(),
                new_generation_id: true,
            },
            "vm0 reset with a new generation ID",
        ),
        (VmCommand::Shutdown { name: n() }, "vm0 shut down"),
        (VmCommand::Destroy { name: n() }, "vm0 destroyed"),
    ];
    for (command, line) in lines {
        assert_eq!(DoneLine(&command).to_string(), line);
    }
}

#[test]
fn the_memory_line_counts_frames_and_free_mib() {
    let line = |free_frames, total_frames| {
        MemoryLine {
            free_frames,
            total_frames,
        }
        .to_string()
    };
    assert_eq!(
        line(98_304, 131_072),
        "memory: 98304 free of 131072 frames (384 MiB free)"
    );
    // MiB round down: 255 frames are not yet a MiB.
    assert_eq!(
        line(255, 256),
        "memory: 255 free of 256 frames (0 MiB free)"
    );
    assert_eq!(line(0, 0), "memory: 0 free of 0 frames (0 MiB free)");
    assert_eq!(
        line(u64::MAX, u64::MAX),
        format!(
            "memory: {0} free of {0} frames (17592186044415 MiB free)",
            u64::MAX
        )
    );
}

fn create(image: Option<&str>, template: Option<&str>) -> VmCommand {
    VmCommand::Create(CreateArgs {
        name: name("web"),
        template: template.map(name),
        image: image.map(|i| ImageName::parse(i).unwrap()),
        mem_mib: None,
        vcpus: None,
        kernel: None,
        initrd: None,
        cmdline: None,
        disk: None,
    })
}

/// `create web` with a kernel, an initrd (and a command line with it)
/// and a template, as given.
fn linux(kernel: Option<&str>, initrd: Option<&str>, template: Option<&str>) -> VmCommand {
    VmCommand::Create(CreateArgs {
        name: name("web"),
        template: template.map(name),
        image: None,
        mem_mib: None,
        vcpus: None,
        kernel: kernel.map(|k| ImageName::parse(k).unwrap()),
        initrd: initrd.map(|i| ImageName::parse(i).unwrap()),
        cmdline: initrd.map(|_| ipc::vm::WireCmdline::try_from("quiet").unwrap()),
        disk: None,
    })
}

#[test]
fn every_refusal_is_one_line_that_says_what_to_do() {
    let start = VmCommand::Start { name: name("vm0") };
    let clone = VmCommand::Clone {
        source: name("src"),
        name: name("copy"),
    };
    let cases = [
        (
            &create(None, None),
            ipc::Error::DuplicateName,
            "a VM named web already exists: choose another name",
        ),
        (
            &clone,
            ipc::Error::DuplicateName,
            "a VM named copy already exists: choose another name",
        ),
        (
            &create(None, None),
            ipc::Error::NoFreeSlot { max: 16 },
            "no free VM slot (maximum is 16 VMs): destroy or shut down a dynamic VM first",
        ),
        (&start, ipc::Error::UnknownVm, "no VM named vm0"),
        (&clone, ipc::Error::UnknownVm, "no VM named src"),
        (
            &start,
            ipc::Error::IllegalTransition {
                state: VmState::Paused,
            },
            "vm0 is paused: cannot start it; resume it instead",
        ),
        (
            &start,
            ipc::Error::IllegalTransition {
                state: VmState::PoweredOff,
            },
            "vm0 is powered-off: cannot start it; create it first",
        ),
        (
            &start,
            ipc::Error::IllegalTransition {
                state: VmState::Started,
            },
            "vm0 is started: cannot start it",
        ),
        (
            &VmCommand::Resume { name: name("vm0") },
            ipc::Error::IllegalTransition {
                state: VmState::Created,
            },
            "vm0 is created: cannot resume it; start it instead",
        ),
        (
            &VmCommand::Shutdown { name: name("vm0") },
            ipc::Error::IllegalTransition {
                state: VmState::PoweredOff,
            },
            "vm0 is powered-off: cannot shut it down; create it first",
        ),
        (
            &clone,
            ipc::Error::IllegalTransition {
                state: VmState::Started,
            },
            "src is started: cannot clone it; pause it first",
        ),
        (
            &create(None, None),
            ipc::Error::IllegalTransition {
                state: VmState::Created,
            },
            "web is created: cannot create it; it already exists",
        ),
        (
            &create(None, None),
            ipc::Error::OutOfMemory,
            "not enough memory for web: ask for less with --mem or free memory first",
        ),
        (
            &clone,
            ipc::Error::OutOfMemory,
            "not enough memory for the copy: free memory first",
        ),
        (
            &create(None, None),
            ipc::Error::KernelRefused,
            "the hypervisor has no VM identifier or kernel room left for web: destroy a VM first",
        ),
        (
            &create(Some("img"), None),
            ipc::Error::UnknownImage,
            "no guest image named img: check --image",
        ),
        (
            &create(None, Some("tpl")),
            ipc::Error::UnknownImage,
            "no static VM tpl to copy: check --from",
        ),
        (
            &create(Some("img"), Some("tpl")),
            ipc::Error::UnknownImage,
            "no guest image img or no static VM tpl to copy: check --image and --from",
        ),
        (
            &create(None, None),
            ipc::Error::UnknownImage,
            "the guest image for web does not exist: name one with --image",
        ),
        (
            &create(None, None),
            ipc::Error::InvalidArgument,
            "argument out of range: use 1-8 vCPUs and at least 1 MiB of memory",
        ),
        (
            &create(None, Some("tpl")),
            ipc::Error::StaticSettings,
            "web is a static VM and the scenario fixes its settings: create it with no \
             options to boot it again, or choose another name for a new VM",
        ),
        (
            &linux(Some("lx"), None, None),
            ipc::Error::UnknownImage,
            "no guest image lx: check --kernel",
        ),
        (
            &linux(Some("lx"), Some("rd"), None),
            ipc::Error::UnknownImage,
            "no guest image lx or rd: check --kernel and --initrd",
        ),
        (
            &linux(Some("lx"), Some("rd"), Some("tpl")),
            ipc::Error::UnknownImage,
            "no guest image lx or rd or no static VM tpl to copy: check --kernel, --initrd and \
             --from",
        ),
        (
            &linux(None, Some("rd"), Some("tpl")),
            ipc::Error::UnknownImage,
            "no guest image rd or no static VM tpl to copy: check --initrd and --from",
        ),
        (
            &linux(None, Some("rd"), Some("tpl")),
            ipc::Error::InvalidArgument,
            "--initrd needs a Linux kernel and tpl boots none: add --kernel IMAGE",
        ),
        (
            &start,
            ipc::Error::ServerDied,
            "the vm-manager restarted while handling the request: list the VMs and retry",
        ),
        (
            &start,
            ipc::Error::ServiceDown { endpoint: 2 },
            "the ioreq service died during the request and is being restarted: retry",
        ),
        (
            &start,
            ipc::Error::ServiceHung { endpoint: 1 },
            "the vm-manager did not answer in time (hung or overloaded): retry",
        ),
        (
            &start,
            ipc::Error::Malformed,
            "the hypervisor could not decode the request: use a matching mica and hypervisor",
        ),
        (
            &start,
            ipc::Error::MessageTooLarge,
            "the request is too large for the hypervisor",
        ),
        (
            &start,
            ipc::Error::InvalidName,
            "invalid VM name: use 1-31 of [A-Za-z0-9._-]",
        ),
        (
            &start,
            ipc::Error::PermissionDenied,
            "permission denied (code 19)",
        ),
        (
            &VmCommand::List,
            ipc::Error::UnknownVm,
            "no such VM (code 7)",
        ),
    ];
    for (command, error, line) in cases {
        assert_eq!(message(command, error), line, "{command:?} {error:?}");
    }
    assert_eq!(
        ErrorMessage {
            command: &start,
            error: ReplyError::Unexpected
        }
        .to_string(),
        "the hypervisor's answer does not fit the request"
    );
}

#[test]
fn json_is_one_line_with_stable_keys() {
    let vms = [
        vm("sos", 0, VmKind::Static, VmState::Started, 1),
        vm("web", 2, VmKind::Dynamic, VmState::Created, 2),
    ];
    let mut out = String::new();
    json::write_list(&mut out, &vms).unwrap();
    assert_eq!(
        out,
        "{\"vms\":[{\"name\":\"sos\",\"slot\":0,\"kind\":\"static\",\"state\":\"started\",\
         \"vcpus\":2,\"mem_mib\":512,\"generation_id\":\"00000000-0000-0000-0000-000000000001\",\"generation_id_random\":true,\"last_exit\":null,\"last_exit_uptime_ms\":null},\
         {\"name\":\"web\",\"slot\":2,\"kind\":\"dynamic\",\"state\":\"created\",\"vcpus\":2,\
         \"mem_mib\":512,\"generation_id\":\"00000000-0000-0000-0000-000000000002\",\"generation_id_random\":true,\
         \"last_exit\":null,\"last_exit_uptime_ms\":null}]}"
    );
    let mut out = String::new();
    json::write_list(&mut out, &[]).unwrap();
    assert_eq!(out, "{\"vms\":[]}");
    let mut out = String::new();
    json::write_ok(&mut out).unwrap();
    assert_eq!(out, "{\"ok\":true}");
    let mut out = String::new();
    json::write_error(&mut out, 7, "no VM named \"x\"\n").unwrap();
    assert_eq!(
        out,
        "{\"error\":{\"code\":7,\"message\":\"no VM named \\\"x\\\"\\n\"}}"
    );
}

#[test]
fn json_strings_escape_what_json_requires() {
    let mut out = String::new();
    json::write_string(&mut out, "a\\b\"c\td\r\u{1}\u{e9}").unwrap();
    assert_eq!(out, "\"a\\\\b\\\"c\\td\\r\\u0001\u{e9}\"");
}

#[test]
fn json_strings_carry_no_raw_control_character_a_terminal_would_act_on() {
    // DEL and the C1 controls (U+009B is CSI) are legal raw in JSON, but a
    // terminal showing the line would act on them (found by the fuzzer in
    // a VM name from the wire).
    let mut out = String::new();
    json::write_string(&mut out, "\u{7f}m0\u{9b}31m\u{85}").unwrap();
    assert_eq!(out, "\"\\u007fm0\\u009b31m\\u0085\"");
}

fn fault() -> ipc::vm::LastExit {
    ipc::vm::LastExit::Stopped {
        cause: ipc::vm::StopCause::GuestPageFault {
            access: ipc::vm::GuestAccess::Store,
            gpa: 0x2800_0000,
        },
        pc: 0x8020_0040,
    }
}

#[test]
fn a_vm_that_ended_says_why_in_the_list_and_the_info_block() {
    let mut stopped = vm("vm1", 1, VmKind::Static, VmState::PoweredOff, 0);
    stopped.last_exit = Some(fault());
    stopped.last_exit_uptime_ms = Some(61_230);
    let mut off = vm("vm2", 2, VmKind::Static, VmState::PoweredOff, 0);
    off.last_exit = Some(ipc::vm::LastExit::PoweredOff { reason: 0 });
    // A reboot is a last exit too, but a running VM's state says enough.
    let mut rebooted = vm("vm3", 3, VmKind::Static, VmState::Started, 5);
    rebooted.last_exit = Some(ipc::vm::LastExit::Rebooted {
        warm: false,
        reason: 0,
    });
    let never = vm("vm4", 4, VmKind::Static, VmState::PoweredOff, 0);
    assert_eq!(
        VmTable(&[stopped.clone(), off.clone(), rebooted.clone(), never]).to_string(),
        "\
NAME  SLOT  KIND     STATE                               VCPUS  MEM(MiB)  GENERATION ID
vm1      1  static   powered-off (stopped: guest fault)      2       512  00000000-0000-0000-0000-000000000000
vm2      2  static   powered-off (guest powered off)         2       512  00000000-0000-0000-0000-000000000000
vm3      3  static   started                                 2       512  00000000-0000-0000-0000-000000000005
vm4      4  static   powered-off                             2       512  00000000-0000-0000-0000-000000000000
"
    );
    assert!(
        InfoBlock(&stopped).to_string().contains(
            "state:         powered-off\nlast exit:     stopped by Mica: store guest page fault \
             at 0x28000000, no RAM or device there (pc 0x80200040)\n               at 61.23 s \
             after Mica booted\nvcpus:"
        ),
        "{}",
        InfoBlock(&stopped)
    );
    assert!(
        InfoBlock(&off)
            .to_string()
            .contains("last exit:     powered off by the guest\n")
    );
    assert!(
        InfoBlock(&rebooted)
            .to_string()
            .contains("state:         started\nlast exit:     rebooted by the guest\n")
    );
}

#[test]
fn a_request_about_a_vm_that_ended_says_how_it_ended() {
    let command = VmCommand::Info { name: name("web") };
    let error = ReplyError::Ended(fault());
    assert_eq!(
        ErrorMessage {
            command: &command,
            error
        }
        .to_string(),
        "no VM named web (it ended: stopped by Mica: store guest page fault at 0x28000000, \
         no RAM or device there (pc 0x80200040))"
    );
    assert_eq!(error.code(), ipc::Error::UnknownVm.code());
    let start = VmCommand::Start { name: name("db") };
    assert_eq!(
        ErrorMessage {
            command: &start,
            error: ReplyError::Ended(ipc::vm::LastExit::ShutDown),
        }
        .to_string(),
        "no VM named db (it ended: shut down by the operator)"
    );
    assert_eq!(
        command.check_reply(ipc::vm::Response::Ended(fault())),
        Err(ReplyError::Ended(fault()))
    );
}

#[test]
fn json_says_how_a_vm_last_left_running() {
    let mut stopped = vm("vm1", 1, VmKind::Static, VmState::PoweredOff, 0);
    stopped.last_exit = Some(fault());
    stopped.last_exit_uptime_ms = Some(12_340);
    let mut text = String::new();
    json::write_vm(&mut text, &stopped).unwrap();
    assert!(
        text.ends_with(
            ",\"generation_id_random\":true,\"last_exit\":{\"kind\":\"stopped\",\
             \"detail\":\"stopped by Mica: store guest page fault at 0x28000000, no RAM or \
             device there (pc 0x80200040)\",\"cause\":\"guest_page_fault\",\"pc\":2149580864},\
             \"last_exit_uptime_ms\":12340}"
        ),
        "{text}"
    );
    let mut text = String::new();
    json::write_last_exit(&mut text, &ipc::vm::LastExit::PoweredOff { reason: 1 }).unwrap();
    assert_eq!(
        text,
        "{\"kind\":\"powered_off\",\"detail\":\"powered off by the guest (reason: system failure)\",\
         \"reason\":1}"
    );
    let mut text = String::new();
    json::write_error_with(
        &mut text,
        7,
        "no VM named web (it ended: destroyed by the operator)",
        Some(&ipc::vm::LastExit::Destroyed),
    )
    .unwrap();
    assert_eq!(
        text,
        "{\"error\":{\"code\":7,\"message\":\"no VM named web (it ended: destroyed by the \
         operator)\",\"last_exit\":{\"kind\":\"destroyed\",\"detail\":\"destroyed by the operator\"}}}"
    );
}
