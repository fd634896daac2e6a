//! `Stats` through the task's platform: the three `vm_stats` groups of the
//! kernel are read and put together field by field, then each vCPU's
//! group until the kernel has no more; a kernel that refuses the call, or
//! answers a vCPU state this side does not know, is reported, not papered
//! over with zeros.

mod common;

use std::vec::Vec;

use common::OkLinks;
use ipc::syscall::vm_stats::{VCPU, VCPU_IO, VCPU_RUNNING, VCPU_STOPPED, VCPU_WAITING};
use ipc::vm::{CreateOptions, Request, Response, VcpuInfo, VcpuList, VcpuState, VmStats};
use ipc::{Error, VmId, wire_name};
use vm_manager::{EntropySource, KernelPlatform, StaticVmConfig, VmFlags, VmKernel, VmManager};

/// A kernel whose VM calls all succeed; `vm_stats` answers group `g` (of
/// the three) of VM `vm` with `[100 * vm + 10 * g + 1, .. + 2, .. + 3]`,
/// group `VCPU + n` with `vcpus[n]` (`InvalidArgument` past them), or
/// refuses.
#[derive(Default)]
struct Kernel {
    counts: bool,
    vcpus: Vec<[u64; 3]>,
    asked: Vec<(u16, usize)>,
}

impl VmKernel for Kernel {
    fn vm_create(&mut self, _: VmId, _: u32, _: u8) -> Result<(), Error> {
        Ok(())
    }
    fn vm_load(&mut self, _: VmId, _: usize, _: u64) -> Result<u64, Error> {
        Ok(4096)
    }
    fn image_name(&mut self, index: usize) -> Result<(ipc::WireName, u64), Error> {
        common::only_hello(index)
    }
    fn vm_grant_ram(&mut self, _: VmId, _: u64) -> Result<(), Error> {
        Ok(())
    }
    fn vm_set_dtb(&mut self, _: VmId, _: &[u8]) -> Result<(), Error> {
        Ok(())
    }
    fn vm_start(&mut self, _: VmId, _: u64, _: u64) -> Result<(), Error> {
        Ok(())
    }
    fn vm_pause(&mut self, _: VmId) -> Result<(), Error> {
        Ok(())
    }
    fn vm_resume(&mut self, _: VmId) -> Result<(), Error> {
        Ok(())
    }
    fn vm_reset(&mut self, _: VmId) -> Result<(), Error> {
        Ok(())
    }
    fn vm_destroy(&mut self, _: VmId) -> Result<(), Error> {
        Ok(())
    }
    fn vm_stats(&mut self, vm: VmId, group: usize) -> Result<[u64; 3], Error> {
        self.asked.push((vm.0, group));
        if !self.counts {
            return Err(Error::KernelRefused);
        }
        if let Some(n) = group.checked_sub(VCPU) {
            return self.vcpus.get(n).copied().ok_or(Error::InvalidArgument);
        }
        let base = 100 * u64::from(vm.0) + 10 * group as u64;
        Ok([base + 1, base + 2, base + 3])
    }
}

struct Zero;

impl EntropySource for Zero {
    fn fill(&mut self, out: &mut [u8; 16]) {
        *out = [1; 16];
    }
}

const SCENARIO: &[StaticVmConfig] = &[StaticVmConfig {
    name: "vm0",
    image: "hello",
    mem_mib: 64,
    vcpus: 1,
    flags: VmFlags::STATIC,
    linux: None,
    disk: None,
}];

type Manager = VmManager<KernelPlatform<Kernel, OkLinks>, Zero>;

fn manager(counts: bool, vcpus: &[[u64; 3]]) -> Manager {
    let kernel = Kernel {
        counts,
        vcpus: vcpus.to_vec(),
        ..Kernel::default()
    };
    let mut m = Manager::new(SCENARIO, KernelPlatform::new(kernel, OkLinks), Zero)
        .expect("a valid scenario");
    // vm0 is static; web is dynamic and names its image.
    for (name, image) in [("vm0", None), ("web", Some("hello"))] {
        let created = m.handle(Request::Create {
            name: wire_name(name).expect("a valid test name"),
            options: CreateOptions {
                image: image.map(|i| wire_name(i).expect("a valid image name")),
                ..CreateOptions::default()
            },
        });
        assert!(matches!(created, Response::Info(_)), "{created:?}");
    }
    m
}

fn stats(name: &str) -> Request {
    Request::Stats {
        name: wire_name(name).expect("a valid test name"),
    }
}

#[test]
fn the_groups_become_one_answer() {
    let mut m = manager(
        true,
        &[
            [VCPU_WAITING, 5_000, 17],
            [VCPU_IO, 300, 299],
            [VCPU_STOPPED, 0, 0],
        ],
    );
    // `web` took slot 1: its groups are 101.., 111.., 121...
    assert_eq!(
        m.handle(stats("web")),
        Response::Stats(VmStats {
            device_exits: 101,
            hypercall_exits: 102,
            wait_exits: 103,
            interrupt_exits: 111,
            other_exits: 112,
            ioreq_round_trips: 113,
            service_ns: 121,
            posted_writes: 122,
            // OkLinks' device service answers `Ok`, not figures.
            net: None,
            vcpus: VcpuList::from_slice(&[
                VcpuInfo {
                    state: VcpuState::Waiting,
                    exits: 5_000,
                    round_trips: 17,
                    cpu: None,
                },
                VcpuInfo {
                    state: VcpuState::Io,
                    exits: 300,
                    round_trips: 299,
                    cpu: None,
                },
                VcpuInfo {
                    state: VcpuState::Stopped,
                    exits: 0,
                    round_trips: 0,
                    cpu: None,
                },
            ])
            .unwrap(),
        })
    );
    // The vCPU groups are asked until the kernel says there are no more.
    assert_eq!(
        m.platform().kernel().asked,
        [
            (1, 0),
            (1, 1),
            (1, 2),
            (1, VCPU),
            (1, VCPU + 1),
            (1, VCPU + 2),
            (1, VCPU + 3)
        ]
    );
}

#[test]
fn a_vcpu_state_this_side_does_not_know_is_reported() {
    // vCPU 1 answers state 9, which no `VCPU_*` code means.
    let mut m = manager(true, &[[VCPU_RUNNING, 10, 1], [9, 10, 1]]);
    assert_eq!(m.handle(stats("web")), Response::Err(Error::Malformed));
}

#[test]
fn a_kernel_that_does_not_count_is_reported() {
    let mut m = manager(false, &[]);
    assert_eq!(m.handle(stats("vm0")), Response::Err(Error::KernelRefused));
}
