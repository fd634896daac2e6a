//! The device service with a PLIC attached: the generation ID device's
//! change notification reaches the VM's external interrupt through the
//! PLIC, the way a guest (or Linux) programs it, and goes away when the
//! guest acknowledges and completes.

use std::vec::Vec;

use ipc::devices::{DeviceKind, IrqEvent, Request, Response};
use ipc::{Space, VmId, wire_name};

use super::*;
use crate::testing::CountingEntropy;

#[derive(Default)]
struct NoLines;

impl ConsoleSink for NoLines {
    fn write_line(&mut self, _line: &[u8]) {}
}

/// Records the external interrupt reports: VM, PLIC context, level.
#[derive(Default)]
struct External(Vec<(VmId, usize, bool)>);

impl IrqSink for External {
    fn irq_event(&mut self, _event: IrqEvent) {}

    fn external_irq(&mut self, vm: VmId, context: usize, raised: bool) {
        self.0.push((vm, context, raised));
    }
}

struct NoRam;

impl GuestMemoryProvider for NoRam {
    fn memory(&mut self, _vm: VmId) -> Option<&mut dyn GuestMemory> {
        None
    }
}

type Service = DeviceService<NoLines, External, NoRam, CountingEntropy>;

const VM: VmId = VmId(3);
const PLIC: u64 = 0x0c00_0000;
const GENID: u64 = 0x1010_1000;
const GENID_IRQ: u32 = 12;
const CLAIM: u64 = PLIC + 0x20_0004;

fn ok(s: &mut Service, request: Request) {
    assert_eq!(s.handle(request.clone()), Response::Ok, "{request:?}");
}

fn write(s: &mut Service, addr: u64, size: u8, value: u64) {
    let (vm, space) = (VM, Space::Mmio);
    ok(
        s,
        Request::Write {
            vm,
            space,
            addr,
            size,
            value,
        },
    );
}

fn read(s: &mut Service, addr: u64, size: u8) -> u64 {
    let (vm, space) = (VM, Space::Mmio);
    match s.handle(Request::Read {
        vm,
        space,
        addr,
        size,
    }) {
        Response::Value(v) => v,
        other => panic!("read {addr:#x}: {other:?}"),
    }
}

/// PLIC context `context`'s enable word 0 (sources 0-31).
fn enable(context: u64) -> u64 {
    PLIC + 0x2000 + 0x80 * context
}

/// PLIC context `context`'s claim/complete register.
fn claim(context: u64) -> u64 {
    CLAIM + 0x1000 * context
}

/// A VM with a PLIC and a generation ID device on line 12, which context 0
/// has enabled at priority 1 (what the test guest and Linux do).
fn guest_with_plic() -> Service {
    guest_enabling(&[0])
}

/// A VM with a PLIC and a generation ID device on line 12 at priority 1,
/// enabled in each context of `contexts` (threshold 0).
fn guest_enabling(contexts: &[u64]) -> Service {
    let mut s = DeviceService::new(
        NoLines,
        External::default(),
        NoRam,
        CountingEntropy::default(),
    );
    let name = wire_name("g").unwrap();
    ok(&mut s, Request::AddVm { vm: VM, name });
    for (device, base, irq) in [
        (DeviceKind::Plic, PLIC, 0),
        (DeviceKind::VmGenId, GENID, GENID_IRQ),
    ] {
        let (vm, space) = (VM, Space::Mmio);
        ok(
            &mut s,
            Request::Attach {
                vm,
                device,
                space,
                base,
                irq,
            },
        );
    }
    // The vm-manager gives the boot ID before the guest runs: no change.
    ok(
        &mut s,
        Request::SetGenerationId {
            vm: VM,
            id: [0x5a; 16],
        },
    );
    write(&mut s, PLIC + 4 * u64::from(GENID_IRQ), 4, 1);
    for &context in contexts {
        write(&mut s, enable(context), 4, 1 << GENID_IRQ);
        write(&mut s, PLIC + 0x20_0000 + 0x1000 * context, 4, 0);
    }
    s
}

/// A new generation ID: the device's line goes up.
fn change_id(s: &mut Service, byte: u8) {
    ok(
        s,
        Request::SetGenerationId {
            vm: VM,
            id: [byte; 16],
        },
    );
}

#[test]
fn the_boot_id_raises_nothing_even_once_the_guest_enables_the_source() {
    let mut s = guest_with_plic();
    assert!(s.irq_sink().0.is_empty());
    assert_eq!(read(&mut s, CLAIM, 4), 0);
    assert_eq!(read(&mut s, GENID, 8), u64::from_le_bytes([0x5a; 8]));
    assert_eq!(read(&mut s, GENID + 0x10, 1), 0, "STATUS: no change");
}

#[test]
fn a_new_generation_id_raises_the_external_interrupt_until_handled() {
    let mut s = guest_with_plic();
    assert!(s.irq_sink().0.is_empty(), "nothing pending at boot");
    let id = [0xab; 16];
    ok(&mut s, Request::SetGenerationId { vm: VM, id });
    assert_eq!(s.irq_sink().0, [(VM, 0, true)]);
    // The guest's handler: claim, read the ID, acknowledge, complete.
    assert_eq!(read(&mut s, CLAIM, 4), u64::from(GENID_IRQ));
    assert_eq!(s.irq_sink().0.last(), Some(&(VM, 0, false)), "claimed");
    assert_eq!(read(&mut s, GENID, 8), u64::from_le_bytes([0xab; 8]));
    write(&mut s, GENID + 0x10, 1, 1);
    write(&mut s, CLAIM, 4, u64::from(GENID_IRQ));
    assert_eq!(s.irq_sink().0, [(VM, 0, true), (VM, 0, false)]);
}

/// Linux's vmgenid driver reads the new ID and never writes STATUS: one
/// change is one interrupt, not a storm.
#[test]
fn a_change_interrupts_once_even_if_never_acknowledged() {
    let mut s = guest_with_plic();
    ok(
        &mut s,
        Request::SetGenerationId {
            vm: VM,
            id: [1; 16],
        },
    );
    assert_eq!(read(&mut s, CLAIM, 4), u64::from(GENID_IRQ));
    write(&mut s, CLAIM, 4, u64::from(GENID_IRQ));
    assert_eq!(s.irq_sink().0, [(VM, 0, true), (VM, 0, false)]);
    assert_eq!(
        read(&mut s, CLAIM, 4),
        0,
        "nothing pending after completion"
    );
    assert_eq!(read(&mut s, GENID + 0x10, 1), 1, "STATUS still shows it");
}

#[test]
fn a_disabled_source_or_no_change_does_not_interrupt() {
    let mut s = guest_with_plic();
    let id = [7; 16];
    ok(&mut s, Request::SetGenerationId { vm: VM, id });
    assert_eq!(read(&mut s, CLAIM, 4), u64::from(GENID_IRQ));
    write(&mut s, GENID + 0x10, 1, 1);
    write(&mut s, CLAIM, 4, u64::from(GENID_IRQ));
    let before = s.irq_sink().0.len();
    // The same ID again: no change, no interrupt.
    ok(&mut s, Request::SetGenerationId { vm: VM, id });
    assert_eq!(s.irq_sink().0.len(), before);
    // Disabled at the PLIC: a change stays pending but is not delivered.
    write(&mut s, PLIC + 0x2000, 4, 0);
    ok(
        &mut s,
        Request::SetGenerationId {
            vm: VM,
            id: [8; 16],
        },
    );
    assert_eq!(s.irq_sink().0.len(), before);
    assert_eq!(read(&mut s, PLIC + 0x1000, 4), 1 << GENID_IRQ, "pending");
}

#[test]
fn removing_the_vm_lowers_a_raised_external_interrupt() {
    let mut s = guest_with_plic();
    ok(
        &mut s,
        Request::SetGenerationId {
            vm: VM,
            id: [2; 16],
        },
    );
    ok(&mut s, Request::RemoveVm { vm: VM });
    assert_eq!(s.irq_sink().0, [(VM, 0, true), (VM, 0, false)]);
}

#[test]
fn without_a_plic_no_external_interrupt_is_reported() {
    let mut s = guest_with_plic();
    let (vm, space) = (VM, Space::Mmio);
    ok(
        &mut s,
        Request::Detach {
            vm,
            space,
            base: PLIC,
        },
    );
    ok(
        &mut s,
        Request::SetGenerationId {
            vm: VM,
            id: [3; 16],
        },
    );
    assert!(s.irq_sink().0.is_empty());
}

#[test]
fn detaching_a_device_with_its_line_up_lowers_the_external_interrupt() {
    let mut s = guest_with_plic();
    ok(
        &mut s,
        Request::SetGenerationId {
            vm: VM,
            id: [7; 16],
        },
    );
    assert_eq!(s.irq_sink().0, [(VM, 0, true)]);
    let (vm, space) = (VM, Space::Mmio);
    ok(
        &mut s,
        Request::Detach {
            vm,
            space,
            base: GENID,
        },
    );
    assert_eq!(
        s.irq_sink().0,
        [(VM, 0, true), (VM, 0, false)],
        "the line left with the device"
    );
}

#[test]
fn an_access_that_changes_no_line_leaves_the_external_interrupt_alone() {
    let mut s = guest_with_plic();
    ok(
        &mut s,
        Request::SetGenerationId {
            vm: VM,
            id: [9; 16],
        },
    );
    // Reads of the ID change no line: still raised, nothing reported again.
    for _ in 0..3 {
        read(&mut s, GENID, 8);
    }
    assert_eq!(s.irq_sink().0, [(VM, 0, true)]);
}

#[test]
fn a_source_enabled_only_in_context_2_interrupts_vcpu_2_alone() {
    let mut s = guest_enabling(&[2]);
    change_id(&mut s, 0x21);
    assert_eq!(s.irq_sink().0, [(VM, 2, true)], "vCPU 2's, not vCPU 0's");
    assert_eq!(read(&mut s, claim(0), 4), 0, "context 0 has nothing");
    write(&mut s, claim(0), 4, u64::from(GENID_IRQ));
    assert_eq!(s.irq_sink().0, [(VM, 2, true)], "nor can it complete it");
    assert_eq!(read(&mut s, claim(2), 4), u64::from(GENID_IRQ));
    assert_eq!(s.irq_sink().0, [(VM, 2, true), (VM, 2, false)], "claimed");
    write(&mut s, GENID + 0x10, 1, 1);
    write(&mut s, claim(2), 4, u64::from(GENID_IRQ));
    assert_eq!(read(&mut s, claim(2), 4), 0, "completed: nothing pending");
    assert_eq!(s.irq_sink().0.len(), 2);
    // The next change interrupts context 2 again.
    change_id(&mut s, 0x22);
    assert_eq!(s.irq_sink().0.last(), Some(&(VM, 2, true)));
}

/// As on a real PLIC: every context that enables a pending source is
/// interrupted, the first to claim takes the source, and the others'
/// interrupts drop with it.
#[test]
fn a_source_two_contexts_enable_interrupts_both_until_one_claims_it() {
    let mut s = guest_enabling(&[0, 2]);
    change_id(&mut s, 0x31);
    assert_eq!(s.irq_sink().0, [(VM, 0, true), (VM, 2, true)]);
    assert_eq!(read(&mut s, claim(2), 4), u64::from(GENID_IRQ));
    assert_eq!(
        s.irq_sink().0[2..],
        [(VM, 0, false), (VM, 2, false)],
        "both drop once vCPU 2 claimed it"
    );
    assert_eq!(read(&mut s, claim(0), 4), 0, "vCPU 0 finds nothing");
    write(&mut s, claim(2), 4, u64::from(GENID_IRQ));
    assert_eq!(s.irq_sink().0.len(), 4, "one change, one interrupt each");
}

#[test]
fn removing_the_vm_lowers_every_raised_context() {
    let mut s = guest_enabling(&[1, 7]);
    change_id(&mut s, 0x41);
    ok(&mut s, Request::RemoveVm { vm: VM });
    assert_eq!(
        s.irq_sink().0,
        [(VM, 1, true), (VM, 7, true), (VM, 1, false), (VM, 7, false)]
    );
}
