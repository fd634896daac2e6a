//! VM TLB tags through the real dispatcher: a machine with only a few tags
//! (as `mica.vm_ids=N` makes one) creates and destroys many more VMs than
//! it has tags; no two live VMs ever hold the same tag, a recycled tag is
//! handed to the machine flagged for a flush, and a create with every tag
//! held is refused with nothing made.

use std::collections::BTreeMap;
use std::vec::Vec;

use super::*;
use crate::obj::sched::Priority;
use crate::syscall;
use ipc::syscall::status_of;

/// A machine with tags `1..=tags`; it checks, as hardware would need, that
/// no tag it is given belongs to a live VM.
#[derive(Default)]
struct Host {
    results: BTreeMap<usize, (usize, [usize; 3])>,
    tags: u16,
    /// The live VMs' tags.
    live: BTreeMap<usize, TlbTag>,
    /// Every tag handed over, in order.
    given: Vec<TlbTag>,
    /// The next `vm_create` fails (out of frames).
    fail_next: bool,
}

impl crate::syscall_console::ConsoleHost for Host {}

impl crate::syscall_stats::StatsHost for Host {}

impl crate::syscall_entropy::EntropyHost for Host {}

crate::test_machine::test_machine!(Host);

impl VmHost for Host {
    fn tlb_tags(&mut self) -> u16 {
        self.tags
    }
    fn vm_create(&mut self, vm: usize, _: u64, _: usize, tag: TlbTag) -> Result<(), Error> {
        self.given.push(tag);
        if std::mem::take(&mut self.fail_next) {
            return Err(Error::OutOfMemory);
        }
        if tag.id != 0 {
            assert!(
                self.live.values().all(|t| t.id != tag.id),
                "tag {tag:?} given to vm {vm} is held by a live VM: {:?}",
                self.live
            );
        }
        self.live.insert(vm, tag);
        Ok(())
    }
    fn vm_destroy(&mut self, vm: usize, _: Option<TaskId>) {
        self.live.remove(&vm);
    }
}

struct World {
    o: KernelObjects,
    host: Host,
    manager: TaskId,
}

fn world(tags: u16) -> World {
    let mut o = KernelObjects::new();
    let manager = o.spawn("vm-manager", Priority::new(5).unwrap()).unwrap();
    o.tasks
        .get_mut(manager)
        .unwrap()
        .set_kernel_rights(KernelRights::VM_CONTROL);
    o.sched.schedule();
    World {
        o,
        host: Host {
            tags,
            ..Host::default()
        },
        manager,
    }
}

impl World {
    fn call(&mut self, call: Sysno, args: [usize; 3]) -> usize {
        let mut a = [0; 6];
        a[..3].copy_from_slice(&args);
        let manager = self.manager;
        syscall::dispatch(&mut self.o, &mut self.host, manager, call as usize, a);
        self.host.results[&manager.slot()].0
    }

    fn create(&mut self, vm: usize) -> usize {
        self.call(Sysno::VmCreate, [vm, 4, 1])
    }

    fn destroy(&mut self, vm: usize) -> usize {
        self.call(Sysno::VmDestroy, [vm, 0, 0])
    }
}

const REFUSED: usize = status_of(Error::KernelRefused);

#[test]
fn more_vms_than_tags_come_and_go_without_ever_sharing_one() {
    // Three tags: two VMs live throughout, the third tag serves 40 VMs
    // made and destroyed one after the other (43 creations in all).
    let mut w = world(3);
    assert_eq!(w.create(0), OK);
    assert_eq!(w.create(1), OK);
    for n in 0..40 {
        let vm = 2 + n % 5;
        assert_eq!(w.create(vm), OK, "cycle {n}");
        let tag = w.host.live[&vm];
        assert_eq!(tag.id, 3, "cycle {n}: the one free tag");
        assert_eq!(tag.reused, n > 0, "cycle {n}: flushed exactly on reuse");
        assert_eq!(w.o.vms.get(vm).unwrap().tag, 3);
        // All three are held: the next VM is refused, nothing is made.
        let other = 2 + (n + 1) % 5;
        let given = w.host.given.len();
        assert_eq!(w.create(other), REFUSED, "cycle {n}");
        assert_eq!(w.host.given.len(), given, "the machine was not asked");
        assert_eq!(w.o.vms.get(other), Err(Error::UnknownVm));
        assert_eq!(w.o.vms.tags().held_count(), 3);
        assert_eq!(w.destroy(vm), OK);
        assert!(!w.o.vms.tags().is_held(3), "cycle {n}: destroy frees it");
    }
    assert_eq!(
        w.host.live[&0],
        TlbTag {
            id: 1,
            reused: false
        }
    );
    assert_eq!(
        w.host.live[&1],
        TlbTag {
            id: 2,
            reused: false
        }
    );
    assert_eq!(w.host.given.len(), 42);
}

#[test]
fn a_destroyed_vms_tag_is_the_next_ones_and_is_flushed() {
    let mut w = world(8);
    for vm in 0..4 {
        assert_eq!(w.create(vm), OK);
    }
    assert_eq!(w.destroy(1), OK);
    assert_eq!(w.destroy(2), OK);
    assert_eq!(w.create(9), OK);
    assert_eq!(
        w.host.live[&9],
        TlbTag {
            id: 2,
            reused: true
        }
    );
    assert_eq!(w.create(10), OK);
    assert_eq!(
        w.host.live[&10],
        TlbTag {
            id: 3,
            reused: true
        }
    );
    assert_eq!(w.create(11), OK);
    assert_eq!(
        w.host.live[&11],
        TlbTag {
            id: 5,
            reused: false
        }
    );
}

#[test]
fn a_failed_create_gives_its_tag_back() {
    let mut w = world(2);
    assert_eq!(w.create(0), OK);
    w.host.fail_next = true;
    assert_eq!(w.create(1), status_of(Error::OutOfMemory));
    assert_eq!(w.o.vms.tags().held_count(), 1);
    assert_eq!(w.create(1), OK, "the tag came back");
    assert_eq!(w.host.live[&1].id, 2);
    assert!(w.host.live[&1].reused, "handed out before: flushed");
}

#[test]
fn without_tags_every_vm_is_untagged_and_none_is_refused() {
    let mut w = world(0);
    for vm in 0..MAX_VMS {
        assert_eq!(w.create(vm), OK);
        assert_eq!(w.host.live[&vm], TlbTag::UNTAGGED);
    }
    for vm in 0..MAX_VMS {
        assert_eq!(w.destroy(vm), OK);
    }
    assert_eq!(w.create(3), OK);
    assert_eq!(w.o.vms.tags().held_count(), 0);
}

#[test]
fn the_boot_limit_makes_a_machine_run_out_sooner() {
    let mut w = world(4095);
    w.o.vms.limit_tags(1);
    assert_eq!(w.create(0), OK);
    assert_eq!(w.create(1), REFUSED);
    assert_eq!(w.destroy(0), OK);
    assert_eq!(w.create(1), OK);
    assert_eq!(
        w.host.live[&1],
        TlbTag {
            id: 1,
            reused: true
        }
    );
}
