//! `Stats`: the vm-manager resolves the name, refuses a VM that holds no
//! resources (so has no kernel VM to count), and answers with what the
//! platform counted for that VM.

mod common;

use common::*;
use ipc::vm::{Response, VmState, VmStats};

fn figures(device_exits: u64) -> VmStats {
    VmStats {
        device_exits,
        hypercall_exits: 310,
        wait_exits: 12,
        interrupt_exits: 40,
        other_exits: 3,
        ioreq_round_trips: device_exits,
        service_ns: 1_200_000_000,
        posted_writes: 0,
        net: None,
        vcpus: ipc::vm::VcpuList::new(),
    }
}

#[test]
fn each_vm_gets_its_own_figures() {
    let mut m = manager();
    expect_info(&mut m, create("web"));
    expect_ok(&mut m, start("web"));
    expect_info(&mut m, create("db"));
    let web = info(&mut m, "web").expect("web exists").id;
    let db = info(&mut m, "db").expect("db exists").id;
    m.platform_mut().stats.insert(web.0, figures(23_702));
    m.platform_mut().stats.insert(db.0, figures(5));
    assert_eq!(m.handle(stats("web")), Response::Stats(figures(23_702)));
    assert_eq!(m.handle(stats("db")), Response::Stats(figures(5)));
    // A paused VM keeps its figures.
    expect_ok(&mut m, pause("web"));
    assert_eq!(m.handle(stats("web")), Response::Stats(figures(23_702)));
}

#[test]
fn a_vm_without_a_kernel_vm_is_refused_by_name_and_state() {
    let mut m = manager();
    expect_err(&mut m, stats("ghost"), ipc::Error::UnknownVm);
    expect_err(&mut m, stats("a b"), ipc::Error::InvalidName);
    let powered_off = ipc::Error::IllegalTransition {
        state: VmState::PoweredOff,
    };
    expect_err(&mut m, stats("rtvm"), powered_off);
    expect_info(&mut m, create("rtvm"));
    assert_eq!(m.handle(stats("rtvm")), Response::Stats(VmStats::default()));
    expect_ok(&mut m, shutdown("rtvm"));
    expect_err(&mut m, stats("rtvm"), powered_off);
}
