//! `ConsoleInput`, `ConsoleOutput` and `ConsoleFocus`: the vm-manager
//! resolves the name, refuses a VM that has no console, and forwards to the
//! platform.

mod common;

use common::*;
use ipc::devices::ConsoleChunk;
use ipc::vm::{Response, VmState};

fn chunk(next: u64, bytes: &[u8]) -> Response {
    Response::ConsoleOutput(ConsoleChunk {
        next,
        lost: 0,
        bytes: heapless::Vec::from_slice(bytes).expect("test output fits"),
    })
}

#[test]
fn typed_bytes_reach_the_named_vms_console_and_its_output_comes_back() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    expect_info(&mut m, create("db"));
    expect_ok(&mut m, console_input("web", b"ls\r"));
    // The fake console echoes what was typed.
    assert_eq!(m.handle(console_output("web", 0)), chunk(3, b"ls\r"));
    assert_eq!(m.handle(console_output("web", 2)), chunk(3, b"\r"));
    // Each VM has its own console; a created VM has one before it starts.
    assert_eq!(m.handle(console_output("db", 0)), chunk(0, b""));
    let web = info(&mut m, "web").expect("web exists").id;
    assert_eq!(m.platform().console.get(&web.0).map(Vec::len), Some(3));
}

#[test]
fn a_vm_without_a_console_is_refused_by_name_and_state() {
    let mut m = manager();
    expect_err(&mut m, console_input("ghost", b"x"), ipc::Error::UnknownVm);
    expect_err(&mut m, console_output("ghost", 0), ipc::Error::UnknownVm);
    expect_err(&mut m, console_output("a b", 0), ipc::Error::InvalidName);
    // `rtvm` is configured but powered off: nothing to attach to.
    let powered_off = ipc::Error::IllegalTransition {
        state: VmState::PoweredOff,
    };
    expect_err(&mut m, console_input("rtvm", b"x"), powered_off);
    expect_err(&mut m, console_output("rtvm", 0), powered_off);
    assert!(m.platform().console.is_empty());
    // After a shutdown the console is gone again.
    expect_info(&mut m, create("rtvm"));
    expect_ok(&mut m, console_input("rtvm", b"x"));
    expect_ok(&mut m, shutdown("rtvm"));
    expect_err(&mut m, console_output("rtvm", 0), powered_off);
}

#[test]
fn the_console_focus_goes_to_a_vm_with_a_console_or_to_every_vm() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    let web = info(&mut m, "web").expect("web exists").id;
    expect_ok(&mut m, console_focus(Some("web")));
    expect_ok(&mut m, console_focus(None));
    expect_err(&mut m, console_focus(Some("ghost")), ipc::Error::UnknownVm);
    let powered_off = ipc::Error::IllegalTransition {
        state: VmState::PoweredOff,
    };
    expect_err(&mut m, console_focus(Some("rtvm")), powered_off);
    assert_eq!(m.platform().focus, [Some(web.0), None]);
}
