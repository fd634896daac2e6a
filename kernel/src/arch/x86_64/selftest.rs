//! The SVM boot self-test: before any task runs on x86, two tiny inline
//! guests prove the world switch. vm0 (flat 32-bit protected mode) writes
//! `hello from vm0` to the 16550 at port 0x3f8 byte by byte, reads the line
//! status register at 0x3fd (expects 0x60), then VMMCALLs; vm1 stores
//! outside its RAM and is stopped by the nested page fault.
//!
//! The exits are decoded into the generic `GuestExit`/`PioExit`, and each
//! port access into the `IoRequest` an ioreq slot carries. What serves the
//! request here, [`StandInUart`], is a stand-in for the self-test only: once
//! the ioreq and devices tasks run on x86, the request goes into the VM's
//! ioreq slot instead and the vCPU blocks until it is complete.

use ioreq::slot::{Direction, IoRequest};
use log::info;

use super::paging::IdentityTables;
use super::pt4::{self, Flags, PAGE_SIZE};
use super::svm::{self, IOPM_BYTES, MSRPM_BYTES, Vcpu};
use super::svm_exit::{self, fixed_instruction_len, io_instruction_len};
use super::virt::{self, Backend};
use crate::frame::FrameAllocator;
use crate::klog;
use crate::kmain::{FRAME_WORDS, FRAMES};
use crate::vm::console::ConsoleLine;
use crate::vm::exit::GuestExit;
use crate::vm::{GUEST_RAM_BASE, StopReason, Vm, VmName, VmState};

/// Guest RAM per self-test VM.
const GUEST_RAM: u64 = 64 << 10;
/// Exits after which a self-test guest counts as runaway.
const MAX_EXITS: usize = 10_000;
/// Where vm0's message starts in its RAM.
const MESSAGE_OFFSET: u64 = 0x100;

/// vm0: `mov esi, msg; mov dx, 0x3f8; 1: lodsb; test al, al; jz 2f;
/// out dx, al; jmp 1b; 2: mov dx, 0x3fd; in al, dx; cmp al, 0x60;
/// jne 3f; vmmcall; 3: hlt`.
const HELLO: [u8; 30] = [
    0xbe, 0x00, 0x01, 0x00, 0x80, // mov esi, 0x8000_0100
    0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
    0xac, // lodsb
    0x84, 0xc0, // test al, al
    0x74, 0x03, // jz +3
    0xee, // out dx, al
    0xeb, 0xf8, // jmp -8
    0x66, 0xba, 0xfd, 0x03, // mov dx, 0x3fd
    0xec, // in al, dx
    0x3c, 0x60, // cmp al, 0x60
    0x75, 0x03, // jne +3
    0x0f, 0x01, 0xd9, // vmmcall
    0xf4, // hlt
];
const MESSAGE: &[u8] = b"hello from vm0\n\0";

/// vm1: `mov eax, 0x4000_0000; mov dword [eax], 1; hlt`.
const WILD_STORE: [u8; 12] = [
    0xb8, 0x00, 0x00, 0x00, 0x40, // mov eax, 0x4000_0000
    0xc7, 0x00, 0x01, 0x00, 0x00, 0x00, // mov dword [eax], 1
    0xf4, // hlt
];

/// Self-test stand-in for the device side (the 16550's THR and LSR): a
/// console line buffer printed as `vm0 | ...`, until the ioreq/devices
/// path runs on x86.
struct StandInUart {
    line: ConsoleLine,
}

impl StandInUart {
    /// Serves `request`; returns the value a read sees.
    fn serve(&mut self, name: &VmName, request: &IoRequest) -> u64 {
        match (request.addr, request.direction) {
            (0x3f8, Direction::Write) => {
                self.line.push(name, request.value as u8, &mut |l| {
                    klog::print(format_args!("{l}\n"))
                });
                0
            }
            (0x3fd, Direction::Read) => 0x60, // THR empty, transmitter idle
            (_, Direction::Read) => u64::MAX,
            (_, Direction::Write) => 0,
        }
    }
}

/// Memory shared by every self-test vCPU.
struct Shared {
    iopm: u64,
    msrpm: u64,
}

fn zeroed(frames: &mut FrameAllocator<FRAME_WORDS>, count: usize, fill: u8) -> Option<u64> {
    let start = frames.alloc_contiguous(count, 1).ok()?;
    // SAFETY: the frames were just taken from the allocator (nothing else
    // refers to them) and are identity-mapped RW RAM.
    unsafe { core::ptr::write_bytes(start as *mut u8, fill, count * PAGE_SIZE as usize) };
    Some(start)
}

/// A self-test VM: its vCPU, RAM (host address) and kernel object.
struct TestVm {
    vm: Vm,
    vcpu: Vcpu,
    ram: u64,
}

fn build(shared: &Shared, name: &str, asid: u32, code: &[u8]) -> Result<TestVm, &'static str> {
    let mut frames = FRAMES.lock();
    let ram = zeroed(&mut frames, (GUEST_RAM / PAGE_SIZE) as usize, 0).ok_or("no guest RAM")?;
    let vmcb = zeroed(&mut frames, 1, 0).ok_or("no VMCB")?;
    let mut tables = IdentityTables {
        frames: &mut frames,
    };
    let npt = pt4::TableMemory::alloc_table(&mut tables).ok_or("no nested page table")?;
    pt4::map_range(
        &mut tables,
        npt,
        GUEST_RAM_BASE,
        ram,
        GUEST_RAM,
        Flags::GUEST_RWX,
    )
    .map_err(|_| "cannot map guest RAM")?;
    let guest = TestVm {
        vm: Vm::new(VmName::new(name).ok_or("bad VM name")?, GUEST_RAM),
        vcpu: Vcpu::new(vmcb, shared.iopm, shared.msrpm, npt, asid),
        ram,
    };
    guest.write(0, code);
    guest
        .vcpu
        .set_protected_mode(GUEST_RAM_BASE, GUEST_RAM_BASE + GUEST_RAM);
    Ok(guest)
}

impl TestVm {
    fn write(&self, offset: u64, bytes: &[u8]) {
        if offset + bytes.len() as u64 <= GUEST_RAM {
            // SAFETY: inside this VM's RAM frames (checked), identity-mapped,
            // owned by the self-test; the guest is not running.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    (self.ram + offset) as *mut u8,
                    bytes.len(),
                );
            }
        }
    }

    /// Up to 2 instruction bytes at guest-physical `gpa`, if in RAM.
    fn code_at(&self, gpa: u64) -> Option<[u8; 2]> {
        if !self.vm.in_ram(gpa, 2) {
            return None;
        }
        let host = self.ram + (gpa - GUEST_RAM_BASE);
        // SAFETY: inside this VM's RAM (checked by `in_ram`), identity-mapped.
        Some(unsafe { core::ptr::read_volatile(host as *const [u8; 2]) })
    }

    /// Runs the guest until it leaves `Running` or exits too often.
    fn run(&mut self, uart: &mut StandInUart) {
        for _ in 0..MAX_EXITS {
            let raw = self.vcpu.run();
            let rip = self.vcpu.rip();
            let exit = svm_exit::decode(raw.code, raw.info1, raw.info2, self.vcpu.rax());
            let next = match exit {
                GuestExit::Pio(pio) => {
                    let Some(len) = self.code_at(rip).and_then(|b| io_instruction_len(&b)) else {
                        self.stop(StopReason::UndecodableMmio { gpa: rip, insn: 0 });
                        return;
                    };
                    let request = pio.request(0);
                    let value = uart.serve(&self.vm.name, &request);
                    if pio.write.is_none() {
                        let mask = (1u64 << (u32::from(pio.size) * 8)) - 1;
                        self.vcpu
                            .set_rax((self.vcpu.rax() & !mask) | (value & mask));
                    }
                    rip + len
                }
                GuestExit::Hypercall => {
                    self.vm.leave(VmState::PoweredOff);
                    rip + fixed_instruction_len(raw.code).unwrap_or(0)
                }
                GuestExit::Cpuid => rip + fixed_instruction_len(raw.code).unwrap_or(0),
                GuestExit::HostInterrupt => {
                    // SAFETY: opens the interrupt window for the host
                    // interrupt that ended the guest's slice (GIF is set
                    // again), then closes it.
                    unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
                    rip
                }
                GuestExit::GuestPageFault { access, gpa } => {
                    self.stop(StopReason::GuestPageFault { access, gpa });
                    return;
                }
                GuestExit::Halt | GuestExit::Shutdown | GuestExit::Unhandled { .. } => {
                    self.stop(StopReason::UnhandledException {
                        code: raw.code,
                        value: raw.info1,
                    });
                    return;
                }
            };
            self.vcpu.set_rip(next);
            if self.vm.state() != VmState::Running {
                return;
            }
        }
        self.stop(StopReason::UnhandledException {
            code: 0,
            value: MAX_EXITS as u64,
        });
    }

    fn stop(&mut self, reason: StopReason) {
        self.vm.leave(VmState::Stopped(reason));
    }
}

/// Runs the self-test guests on SVM and reports each VM's end; an outcome
/// other than "vm0 printed its line and powered off, vm1 was stopped by a
/// nested page fault" is an error.
pub fn guest_self_test() -> Result<(), &'static str> {
    if virt::probe() != Some(Backend::Svm) {
        info!("guest self-test: only on SVM so far");
        return Ok(());
    }
    let (host_save, shared) = {
        let mut frames = FRAMES.lock();
        let host_save = zeroed(&mut frames, 1, 0).ok_or("no host save area")?;
        let iopm = zeroed(&mut frames, (IOPM_BYTES / PAGE_SIZE) as usize, 0xff);
        let msrpm = zeroed(&mut frames, (MSRPM_BYTES / PAGE_SIZE) as usize, 0xff);
        let (Some(iopm), Some(msrpm)) = (iopm, msrpm) else {
            return Err("no room for the I/O and MSR permission maps");
        };
        (host_save, Shared { iopm, msrpm })
    };
    svm::enable(host_save);
    let mut uart = StandInUart {
        line: ConsoleLine::new(),
    };
    let mut vm0 = build(&shared, "vm0", 1, &HELLO)?;
    vm0.write(MESSAGE_OFFSET, MESSAGE);
    let mut vm1 = build(&shared, "vm1", 2, &WILD_STORE)?;
    for guest in [&mut vm0, &mut vm1] {
        guest.run(&mut uart);
        info!("{}", guest.vm.report());
    }
    let hello_ok = vm0.vm.state() == VmState::PoweredOff;
    let npf_ok = matches!(
        vm1.vm.state(),
        VmState::Stopped(StopReason::GuestPageFault { .. })
    );
    if hello_ok && npf_ok {
        info!("guest self-test: SVM world switch ok");
        Ok(())
    } else {
        Err("SVM guest self-test failed")
    }
}
