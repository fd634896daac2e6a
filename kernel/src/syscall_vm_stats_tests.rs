//! `vm_stats`: only a VM controller may read a VM's accounting, for a VM
//! that exists, group by group as `ipc::syscall::vm_stats` lays it out.

use std::collections::BTreeMap;

use super::*;
use crate::obj::sched::Priority;
use crate::syscall;
use crate::vm::stats::{ExitKind, VcpuStats, VmStats};
use ipc::syscall::status_of;

/// A machine whose VMs have the counters in `stats`, read with a 10 MHz
/// clock; `None` in `stats` for a machine without guests.
#[derive(Default)]
struct Host {
    results: BTreeMap<usize, (usize, [usize; 3])>,
    stats: Option<BTreeMap<usize, (VmStats, Vec<VcpuStats>)>>,
}

impl crate::syscall_console::ConsoleHost for Host {}

impl crate::syscall_stats::StatsHost for Host {}

impl crate::syscall_entropy::EntropyHost for Host {}

crate::test_machine::test_machine!(Host);

impl VmHost for Host {
    fn vm_create(&mut self, vm: usize, _: u64, vcpus: usize, _: TlbTag) -> Result<(), Error> {
        if let Some(stats) = self.stats.as_mut() {
            stats.insert(vm, (VmStats::new(), vec![VcpuStats::new(); vcpus]));
        }
        Ok(())
    }
    fn vm_stats(&mut self, vm: usize) -> Result<VmFigures, Error> {
        let stats = self.stats.as_ref().ok_or(Error::KernelRefused)?;
        let (vm, vcpus) = stats.get(&vm).ok_or(Error::UnknownVm)?;
        Ok(vm.figures(10_000_000, vcpus))
    }
    fn vcpu_stats(&mut self, vm: usize, vcpu: usize) -> Result<VcpuStats, Error> {
        let stats = self.stats.as_ref().ok_or(Error::KernelRefused)?;
        let (_, vcpus) = stats.get(&vm).ok_or(Error::UnknownVm)?;
        vcpus.get(vcpu).copied().ok_or(Error::InvalidArgument)
    }
}

struct World {
    o: KernelObjects,
    host: Host,
    manager: TaskId,
    shell: TaskId,
}

fn world(with_guests: bool) -> World {
    let mut o = KernelObjects::new();
    let p = Priority::new(5).unwrap();
    let manager = o.spawn("vm-manager", p).unwrap();
    let shell = o.spawn("shell", p).unwrap();
    let rights = KernelRights::VM_CONTROL;
    o.tasks.get_mut(manager).unwrap().set_kernel_rights(rights);
    let everything_else = KernelRights::IOREQ
        .union(KernelRights::CONSOLE)
        .union(KernelRights::GUEST_IRQ);
    o.tasks
        .get_mut(shell)
        .unwrap()
        .set_kernel_rights(everything_else);
    o.sched.schedule();
    let host = Host {
        stats: with_guests.then(BTreeMap::new),
        ..Host::default()
    };
    let mut w = World {
        o,
        host,
        manager,
        shell,
    };
    let (status, _) = w.call(manager, Sysno::VmCreate, [1, 16, 1]);
    assert_eq!(status, OK);
    w
}

impl World {
    fn call(&mut self, task: TaskId, call: Sysno, args: [usize; 3]) -> (usize, [usize; 3]) {
        let mut a = [0; 6];
        a[..3].copy_from_slice(&args);
        syscall::dispatch(&mut self.o, &mut self.host, task, call as usize, a);
        self.host.results[&task.slot()]
    }

    fn stats(&mut self, task: TaskId, vm: usize, group: usize) -> (usize, [usize; 3]) {
        self.call(task, Sysno::VmStats, [vm, group, 0])
    }

    /// VM 1's counters and its vCPUs', as its arch layer keeps them.
    fn counters(&mut self) -> &mut (VmStats, Vec<VcpuStats>) {
        self.host.stats.as_mut().unwrap().get_mut(&1).unwrap()
    }
}

#[test]
fn vm_stats_needs_vm_control() {
    let mut w = world(true);
    let shell = w.shell;
    for group in 0..3 {
        let denied = status_of(Error::PermissionDenied);
        assert_eq!(w.stats(shell, 1, group), (denied, [0; 3]));
    }
}

#[test]
fn vm_stats_of_a_vm_that_does_not_exist_is_refused() {
    let mut w = world(true);
    let manager = w.manager;
    let unknown = status_of(Error::UnknownVm);
    assert_eq!(w.stats(manager, 2, 0), (unknown, [0; 3]));
    assert_eq!(w.stats(manager, usize::MAX, 0), (unknown, [0; 3]));
    assert_eq!(w.call(manager, Sysno::VmDestroy, [1, 0, 0]).0, OK);
    assert_eq!(w.stats(manager, 1, 0), (unknown, [0; 3]));
}

#[test]
fn vm_stats_reports_each_group_and_refuses_another() {
    let mut w = world(true);
    let manager = w.manager;
    assert_eq!(w.stats(manager, 1, 0), (OK, [0; 3]), "a fresh VM");
    let (c, vcpus) = w.counters();
    let v = &mut vcpus[0];
    for _ in 0..5 {
        v.exit(ExitKind::Device);
        v.io_exit(1_000);
        c.round_trip(v.io_resumed(1_250));
    }
    v.exit(ExitKind::Hypercall);
    v.exit(ExitKind::Hypercall);
    v.exit(ExitKind::Wait);
    v.exit(ExitKind::Interrupt);
    v.exit(ExitKind::Other);
    v.io_exit(2_000);
    // Five round trips of 250 ticks at 10 MHz: 125 microseconds; the one
    // in flight is not counted yet.
    assert_eq!(w.stats(manager, 1, 0), (OK, [5, 2, 1]));
    assert_eq!(w.stats(manager, 1, 1), (OK, [1, 1, 5]));
    assert_eq!(w.stats(manager, 1, 2), (OK, [125_000, 0, 0]));
    let (c, vcpus) = w.counters();
    c.round_trip(vcpus[0].io_resumed(12_000));
    assert_eq!(w.stats(manager, 1, 1), (OK, [1, 1, 6]));
    assert_eq!(w.stats(manager, 1, 2), (OK, [1_125_000, 0, 0]));
    let invalid = status_of(Error::InvalidArgument);
    assert_eq!(w.stats(manager, 1, 3), (invalid, [0; 3]));
    assert_eq!(w.stats(manager, 1, usize::MAX), (invalid, [0; 3]));
}

#[test]
fn each_vcpu_reports_its_state_exits_and_round_trips() {
    use ipc::syscall::vm_stats::{VCPU, VCPU_HELD, VCPU_IO, VCPU_RUNNING, VCPU_STOPPED};
    let mut w = world(true);
    let manager = w.manager;
    assert_eq!(w.call(manager, Sysno::VmCreate, [2, 16, 3]).0, OK);
    let group = |n: usize| VCPU + n;
    let held = VCPU_HELD as usize;
    assert_eq!(
        w.stats(manager, 2, group(2)),
        (OK, [held, 0, 0]),
        "not started"
    );
    control::start(&mut w.o, 2).unwrap();
    control::wake(&mut w.o, 2, 0b10);
    control::io_exit(&mut w.o, 2, 1);
    let (_, vcpus) = w.host.stats.as_mut().unwrap().get_mut(&2).unwrap();
    for _ in 0..7 {
        vcpus[1].exit(ExitKind::Wait);
    }
    vcpus[1].io_exit(10);
    let _ = vcpus[1].io_resumed(20);
    let states = [VCPU_RUNNING, VCPU_IO, VCPU_STOPPED].map(|s| s as usize);
    assert_eq!(w.stats(manager, 2, group(0)), (OK, [states[0], 0, 0]));
    assert_eq!(w.stats(manager, 2, group(1)), (OK, [states[1], 7, 1]));
    assert_eq!(w.stats(manager, 2, group(2)), (OK, [states[2], 0, 0]));
    let invalid = status_of(Error::InvalidArgument);
    assert_eq!(
        w.stats(manager, 2, group(3)),
        (invalid, [0; 3]),
        "no vCPU 3"
    );
    assert_eq!(
        w.stats(manager, 2, 4),
        (invalid, [0; 3]),
        "between the groups"
    );
}

#[test]
fn a_machine_without_guests_refuses_vm_stats() {
    let mut w = world(false);
    let manager = w.manager;
    let refused = status_of(Error::KernelRefused);
    assert_eq!(w.stats(manager, 1, 0), (refused, [0; 3]));
}
