//! The figures `info` shows after a VM's settings: the request and how its
//! answer is checked, the two text lines, times as people read them, and
//! the pinned JSON.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::vm::{Request, Response, VcpuInfo, VcpuList, VcpuState, VmInfo, VmKind, VmState, VmStats};
use ipc::{VmId, wire_name};
use mica_mgmt::command::{ReplyError, check_stats, stats_request};
use mica_mgmt::json;
use mica_mgmt::table::{Nanoseconds, StatsBlock};
use vm_manager::VmName;

/// The stand-in vm-manager's figures (`mica_mgmt::testing`).
fn figures() -> VmStats {
    mica_mgmt::testing::EXAMPLE_STATS
}

#[test]
fn info_asks_for_the_figures_by_name_and_a_powered_off_vm_has_none() {
    let name = VmName::parse("web").unwrap();
    assert_eq!(
        stats_request(&name),
        Request::Stats {
            name: wire_name("web").unwrap()
        }
    );
    assert_eq!(check_stats(Response::Stats(figures())), Ok(Some(figures())));
    let powered_off = ipc::Error::IllegalTransition {
        state: VmState::PoweredOff,
    };
    assert_eq!(check_stats(Response::Err(powered_off)), Ok(None));
    let refused = ipc::Error::KernelRefused;
    assert_eq!(
        check_stats(Response::Err(refused)),
        Err(ReplyError::Refused(refused))
    );
    assert_eq!(check_stats(Response::Ok), Err(ReplyError::Unexpected));
}

#[test]
fn the_figures_are_lines_under_the_info_block() {
    assert_eq!(
        StatsBlock(&figures()).to_string(),
        "\
exits:         23711 device, 310 hypercall, 12 wait, 40 interrupt, 3 other
ioreq:         23702 round trips, 1.2 s in services (52.0 us each); 9 writes posted
network:       12 frames sent, 10 received, 2 dropped (0 malformed sent, 2 with no room)
vcpu 0:        waiting, 24076 exits, 23702 I/O round trips
"
    );
    // Before the first I/O request there is no time to share out; a VM
    // without a network card has no network line.
    assert_eq!(
        StatsBlock(&VmStats::default()).to_string(),
        "\
exits:         0 device, 0 hypercall, 0 wait, 0 interrupt, 0 other
ioreq:         0 round trips
"
    );
}

/// Four vCPUs, one in each state a running VM's vCPU may be in.
fn four_vcpus() -> VmStats {
    let vcpu = |state, exits, round_trips| VcpuInfo {
        state,
        exits,
        round_trips,
        cpu: None,
    };
    let on_cpu_2 = VcpuInfo {
        cpu: Some(2),
        ..vcpu(VcpuState::Running, 12_345, 17)
    };
    VmStats {
        vcpus: VcpuList::from_slice(&[
            on_cpu_2,
            vcpu(VcpuState::Io, 800, 790),
            vcpu(VcpuState::Waiting, 3, 0),
            vcpu(VcpuState::Stopped, 0, 0),
        ])
        .unwrap(),
        ..VmStats::default()
    }
}

#[test]
fn each_vcpu_gets_a_line_in_order() {
    let shown = StatsBlock(&four_vcpus()).to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines[2..],
        [
            "vcpu 0:        running on cpu 2, 12345 exits, 17 I/O round trips",
            "vcpu 1:        waiting for I/O, 800 exits, 790 I/O round trips",
            "vcpu 2:        waiting, 3 exits, 0 I/O round trips",
            "vcpu 3:        stopped, 0 exits, 0 I/O round trips",
        ],
        "{shown}"
    );
    // A paused VM's vCPUs are held.
    let mut paused = four_vcpus();
    for vcpu in &mut paused.vcpus {
        vcpu.state = VcpuState::Held;
    }
    let shown = StatsBlock(&paused).to_string();
    assert!(
        shown.ends_with("vcpu 3:        held, 0 exits, 0 I/O round trips\n"),
        "{shown}"
    );
}

#[test]
fn the_vcpus_are_a_json_array_of_their_figures() {
    let mut out = String::new();
    json::write_stats(&mut out, &four_vcpus()).unwrap();
    let vcpus = out.split_once(",\"vcpus\":").unwrap().1;
    assert_eq!(
        vcpus,
        "[{\"vcpu\":0,\"state\":\"running\",\"cpu\":2,\"exits\":12345,\"round_trips\":17},\
         {\"vcpu\":1,\"state\":\"io\",\"cpu\":null,\"exits\":800,\"round_trips\":790},\
         {\"vcpu\":2,\"state\":\"waiting\",\"cpu\":null,\"exits\":3,\"round_trips\":0},\
         {\"vcpu\":3,\"state\":\"stopped\",\"cpu\":null,\"exits\":0,\"round_trips\":0}]}"
    );
    // No vCPU figures (a kernel without them): an empty array.
    let mut out = String::new();
    json::write_stats(&mut out, &VmStats::default()).unwrap();
    assert!(out.ends_with(",\"net\":null,\"vcpus\":[]}"), "{out}");
}

#[test]
fn times_read_to_a_tenth_of_the_largest_unit_that_fits() {
    for (ns, text) in [
        (0, "0 ns"),
        (999, "999 ns"),
        (1_000, "1.0 us"),
        (50_649, "50.6 us"),
        (999_999, "999.9 us"),
        (3_000_000, "3.0 ms"),
        (1_234_567_890, "1.2 s"),
        (3_600_000_000_000, "3600.0 s"),
        (u64::MAX, "18446744073.7 s"),
    ] {
        assert_eq!(Nanoseconds(ns).to_string(), text, "{ns}");
    }
}

#[test]
fn info_json_adds_the_figures_and_keeps_every_other_key() {
    let vm = VmInfo {
        name: wire_name("web").unwrap(),
        id: VmId(2),
        kind: VmKind::Dynamic,
        state: VmState::Started,
        vcpus: 1,
        mem_mib: 64,
        disk: None,
        generation_id: 1u128.to_le_bytes(),
        generation_id_random: true,
        last_exit: None,
        last_exit_uptime_ms: None,
    };
    let mut plain = String::new();
    json::write_vm(&mut plain, &vm).unwrap();
    let mut with = String::new();
    json::write_vm_info(&mut with, &vm, Some(&figures())).unwrap();
    assert_eq!(
        with,
        format!(
            "{},\"disk\":null,\"stats\":{{\"exits\":{{\"device\":23711,\"hypercall\":310,\"wait\":12,\
             \"interrupt\":40,\"other\":3}},\"ioreq_round_trips\":23702,\
             \"service_ns\":1234567890,\"posted_writes\":9,\"net\":{{\"sent\":12,\
             \"received\":10,\"tx_dropped\":0,\"rx_dropped\":2}},\"vcpus\":[{{\"vcpu\":0,\
             \"state\":\"waiting\",\"cpu\":null,\"exits\":24076,\"round_trips\":23702}}]}}}}",
            plain.strip_suffix('}').unwrap()
        )
    );
    let mut without = String::new();
    json::write_vm_info(&mut without, &vm, None).unwrap();
    assert_eq!(
        without,
        format!(
            "{},\"disk\":null,\"stats\":null}}",
            plain.strip_suffix('}').unwrap()
        )
    );
}
