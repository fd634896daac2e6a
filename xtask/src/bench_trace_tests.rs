use super::{
    Arch, Breakdown, Place, Stages, TaskText, bochs_breakdown, bochs_line, breakdown,
    instruction_line, trace_line,
};

/// A minimal ELF64 with one executable `PT_LOAD` segment of `text` at
/// `vaddr` (and a non-executable one that must be ignored).
fn elf(vaddr: u64, text: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 64 + 2 * 56];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // ELF64
    out[5] = 1; // little-endian
    out[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    out[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
    let data_at = out.len() as u64;
    for (i, (flags, vaddr)) in [(4u32, 0x9_0000u64), (5, vaddr)].into_iter().enumerate() {
        let ph = 64 + i * 56;
        out[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        out[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
        out[ph + 8..ph + 16].copy_from_slice(&data_at.to_le_bytes());
        out[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&(text.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(text);
    out
}

/// Instruction words as little-endian bytes.
fn words(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// ioreq's and devices' text at the same link address 0x1_0000: word i of
/// ioreq is 0x100 + i, of devices 0x200 + i, except word 8, `ecall`
/// (0x73) in both.
fn tasks() -> Vec<TaskText> {
    let text = |base: u32| {
        let mut w: Vec<u32> = (0..16).map(|i| base + i).collect();
        w[8] = 0x73;
        words(&w)
    };
    vec![
        TaskText::from_elf("init", &elf(0x4_0000, &words(&[0x999]))).unwrap(),
        TaskText::from_elf("ioreq", &elf(0x1_0000, &text(0x100))).unwrap(),
        TaskText::from_elf("devices", &elf(0x1_0000, &text(0x200))).unwrap(),
    ]
}

/// Builds a QEMU log: `in_asm` translations and `Trace` lines.
#[derive(Default)]
struct Log {
    text: String,
    next_ptr: u64,
}

impl Log {
    /// Logs the translation of a TB of `insns` (pc, word) and its first run
    /// with MMU index `mode`; returns its host pointer for [`Log::run`].
    fn translate(&mut self, mode: u64, insns: &[(u64, u32)]) -> u64 {
        self.next_ptr += 0x100;
        let ptr = 0x7f00_0000_0000 + self.next_ptr;
        self.text.push_str("----------------\nIN: some_symbol\n");
        for (pc, word) in insns {
            self.text
                .push_str(&format!("0x{pc:08x}:  {word:08x}          addi a0,a0,1\n"));
        }
        self.text.push('\n');
        self.run(ptr, insns[0].0, mode);
        ptr
    }

    fn run(&mut self, ptr: u64, pc: u64, mode: u64) {
        let flags = 0x8242_4000 | mode;
        self.text.push_str(&format!(
            "Trace 0: 0x{ptr:x} [00000000/{pc:016x}/{flags:08x}/ff022200] \n"
        ));
    }
}

const GUEST: u64 = 5;
const KERNEL: u64 = 1;
const USER: u64 = 0;
const FIRMWARE: u64 = 3;

/// `n` kernel instructions at `pc`.
fn kernel(pc: u64, n: u64) -> Vec<(u64, u32)> {
    (0..n).map(|i| (pc + 4 * i, 0x13)).collect()
}

/// Instructions `from..to` of a task whose word i is `base + i`.
fn task(base: u32, from: u32, to: u32) -> Vec<(u64, u32)> {
    (from..to)
        .map(|i| {
            let word = if i == 8 { 0x73 } else { base + i };
            (0x1_0000 + 4 * u64::from(i), word)
        })
        .collect()
}

fn ioreq(from: u32, to: u32) -> Vec<(u64, u32)> {
    task(0x100, from, to)
}

fn devices(from: u32, to: u32) -> Vec<(u64, u32)> {
    task(0x200, from, to)
}

/// One round trip: exit 3, ioreq 2 (ending in its ecall), IPC 4, devices
/// 5, IPC 1, ioreq 2, return 6; pointers of a first run, reused after.
fn round_trip(log: &mut Log, ptrs: &mut Vec<(u64, u64, u64)>) {
    run_trip(
        log,
        ptrs,
        [
            (GUEST, vec![(0x8020_0000, 0x13)]),
            (KERNEL, kernel(0x8020_1000, 3)),
            (USER, ioreq(7, 9)),
            (KERNEL, kernel(0x8020_2000, 4)),
            (USER, devices(0, 5)),
            (KERNEL, kernel(0x8020_3000, 1)),
            (USER, ioreq(10, 12)),
            (KERNEL, kernel(0x8020_4000, 6)),
        ],
    );
}

/// Runs the TBs `tbs` once, in order: translated (their pointers kept in
/// `ptrs`) on the first call, run again from `ptrs` after.
fn run_trip<const N: usize>(
    log: &mut Log,
    ptrs: &mut Vec<(u64, u64, u64)>,
    tbs: [(u64, Vec<(u64, u32)>); N],
) {
    if ptrs.is_empty() {
        for (mode, insns) in tbs {
            let ptr = log.translate(mode, &insns);
            ptrs.push((ptr, insns[0].0, mode));
        }
    } else {
        for &(ptr, pc, mode) in ptrs.iter() {
            log.run(ptr, pc, mode);
        }
    }
}

const ONE_TRIP: Stages = Stages {
    kernel_exit: 3,
    ioreq: 4,
    kernel_ipc: 5,
    devices: 5,
    ret: 6,
};

fn analyse(log: &Log) -> Result<Breakdown, String> {
    breakdown(Arch::Riscv64, log.text.as_bytes(), &tasks())
}

#[test]
fn splits_round_trips_into_stages_by_transitions() {
    let mut log = Log::default();
    // In-asm noise from before the window: translations never traced.
    log.text
        .push_str("IN: early\n0x80000000:  00000013          nop\n\n");
    let mut ptrs = Vec::new();
    for _ in 0..3 {
        round_trip(&mut log, &mut ptrs);
    }
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    let found = analyse(&log).unwrap();
    assert_eq!(found.stages, ONE_TRIP);
    assert_eq!(found.stages.total(), 23);
    assert_eq!((found.clean, found.typical, found.exits), (3, 3, 3));
    assert_eq!((found.unmapped, found.chained), (0, 0));
}

/// A forwarded round trip: the devices task's answer goes to the guest
/// through the kernel, with no ioreq run after it: exit 3, ioreq 2 (its
/// hand-over), IPC 4, devices 5, return 6.
#[test]
fn a_round_trip_the_devices_task_completes_returns_from_its_answer() {
    let mut log = Log::default();
    let mut ptrs = Vec::new();
    for _ in 0..3 {
        run_trip(
            &mut log,
            &mut ptrs,
            [
                (GUEST, vec![(0x8020_0000, 0x13)]),
                (KERNEL, kernel(0x8020_1000, 3)),
                (USER, ioreq(7, 9)),
                (KERNEL, kernel(0x8020_2000, 4)),
                (USER, devices(0, 5)),
                (KERNEL, kernel(0x8020_4000, 6)),
            ],
        );
    }
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    let found = analyse(&log).unwrap();
    let forwarded = Stages {
        kernel_exit: 3,
        ioreq: 2,
        kernel_ipc: 4,
        devices: 5,
        ret: 6,
    };
    assert_eq!(found.stages, forwarded);
    assert_eq!((found.clean, found.typical), (3, 3));
}

#[test]
fn the_ecall_shared_by_both_tasks_goes_with_the_rest_of_its_run() {
    // ioreq's run 7..9 ends in word 8, an ecall both tasks hold: still ioreq.
    let mut log = Log::default();
    let mut ptrs = Vec::new();
    round_trip(&mut log, &mut ptrs);
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    assert_eq!(analyse(&log).unwrap().stages.ioreq, 4);
}

#[test]
fn trips_through_firmware_or_other_tasks_are_left_out() {
    let mut log = Log::default();
    let mut ptrs = Vec::new();
    round_trip(&mut log, &mut ptrs);
    // A second exit that also runs firmware (e.g. a console write).
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    log.translate(FIRMWARE, &kernel(0x8000_0000, 50));
    for &(ptr, pc, mode) in &ptrs[1..] {
        log.run(ptr, pc, mode);
    }
    // A third that runs init's code.
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    log.translate(KERNEL, &kernel(0x8020_5000, 2));
    log.translate(USER, &[(0x4_0000, 0x999)]);
    // A fourth, clean.
    round_trip(&mut log, &mut ptrs);
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    let found = analyse(&log).unwrap();
    assert_eq!(found.stages, ONE_TRIP);
    assert_eq!((found.clean, found.typical, found.exits), (2, 2, 4));
}

#[test]
fn the_most_common_total_is_reported() {
    let mut log = Log::default();
    let mut ptrs = Vec::new();
    round_trip(&mut log, &mut ptrs);
    // A timer interrupt in the exit path of one trip: 100 more instructions.
    round_trip(&mut log, &mut ptrs);
    log.translate(KERNEL, &kernel(0x8020_6000, 100));
    for &(ptr, pc, mode) in &ptrs[1..] {
        log.run(ptr, pc, mode);
    }
    round_trip(&mut log, &mut ptrs);
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    let found = analyse(&log).unwrap();
    assert_eq!(found.stages, ONE_TRIP);
    assert_eq!((found.clean, found.typical), (3, 2));
}

/// Reads that carry posted writes (the bytes of a line the guest prints)
/// are more common in the window than plain ones: the plain reads, whose
/// devices stage is the least, are the typical trip all the same.
#[test]
fn reads_that_carry_posted_writes_are_not_the_typical_trip() {
    let mut log = Log::default();
    let mut ptrs = Vec::new();
    for _ in 0..2 {
        round_trip(&mut log, &mut ptrs);
    }
    let mut busy = Vec::new();
    for _ in 0..3 {
        run_trip(
            &mut log,
            &mut busy,
            [
                (GUEST, vec![(0x8020_0000, 0x13)]),
                (KERNEL, kernel(0x8020_1000, 3)),
                (USER, ioreq(0, 9)),
                (KERNEL, kernel(0x8020_2000, 4)),
                (USER, devices(0, 9)),
                (KERNEL, kernel(0x8020_3000, 1)),
                (USER, ioreq(10, 12)),
                (KERNEL, kernel(0x8020_4000, 6)),
            ],
        );
    }
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    let found = analyse(&log).unwrap();
    assert_eq!(found.stages, ONE_TRIP);
    assert_eq!((found.clean, found.typical, found.exits), (5, 2, 5));
}

#[test]
fn a_reused_host_pointer_takes_its_new_translation() {
    let mut log = Log::default();
    let mut ptrs = Vec::new();
    round_trip(&mut log, &mut ptrs);
    // QEMU flushed its cache: the exit path's pointer now runs 7 kernel
    // instructions elsewhere, logged again before its first run there.
    let (exit_ptr, _, _) = ptrs[1];
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    log.text.push_str("IN: \n");
    for i in 0..7u64 {
        log.text.push_str(&format!(
            "0x{:08x}:  00000013          nop\n",
            0x8020_7000 + 4 * i
        ));
    }
    log.text.push('\n');
    for trip in 0..2 {
        if trip > 0 {
            log.run(ptrs[0].0, ptrs[0].1, GUEST);
        }
        log.run(exit_ptr, 0x8020_7000, KERNEL);
        for &(ptr, pc, mode) in &ptrs[2..] {
            log.run(ptr, pc, mode);
        }
    }
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    let found = analyse(&log).unwrap();
    assert_eq!((found.clean, found.typical), (3, 2));
    assert_eq!(
        found.stages,
        Stages {
            kernel_exit: 7,
            ..ONE_TRIP
        }
    );
}

#[test]
fn a_tb_run_without_its_translation_is_counted_and_spoils_its_trip() {
    let mut log = Log::default();
    let mut ptrs = Vec::new();
    round_trip(&mut log, &mut ptrs);
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    log.run(0x1234, 0x8020_9000, KERNEL);
    for &(ptr, pc, mode) in &ptrs[1..] {
        log.run(ptr, pc, mode);
    }
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    let found = analyse(&log).unwrap();
    assert_eq!((found.clean, found.exits, found.unmapped), (1, 2, 1));
}

#[test]
fn tbs_translated_with_chaining_are_counted() {
    let mut log = Log::default();
    let mut ptrs = Vec::new();
    round_trip(&mut log, &mut ptrs);
    log.text = log.text.replacen("/ff022200]", "/ff020000]", 2);
    log.run(ptrs[0].0, ptrs[0].1, GUEST);
    assert_eq!(analyse(&log).unwrap().chained, 2);
}

#[test]
fn a_window_without_a_round_trip_is_an_error_that_says_so() {
    let mut log = Log::default();
    log.translate(KERNEL, &kernel(0x8020_1000, 3));
    let error = analyse(&log).unwrap_err();
    assert!(error.contains("switched on in time"), "{error}");
    let mut only_guest = Log::default();
    only_guest.translate(GUEST, &[(0x8020_0000, 0x13)]);
    assert!(analyse(&only_guest).is_err());
}

#[test]
fn reads_qemu_log_lines() {
    assert_eq!(
        instruction_line(
            Arch::Riscv64,
            "0x80200384:  02057513          andi                    a0,a0,32"
        ),
        Some((0x8020_0384, vec![0x13, 0x75, 0x05, 0x02]))
    );
    assert_eq!(
        instruction_line(
            Arch::Riscv64,
            "0x000131d4:  842e              mv                      s0,a1"
        ),
        Some((0x131d4, vec![0x2e, 0x84]))
    );
    assert_eq!(instruction_line(Arch::Riscv64, "IN: foo"), None);
    assert_eq!(instruction_line(Arch::Riscv64, "0x1000:  zz  nop"), None);
    assert_eq!(
        trace_line("Trace 0: 0x7f0b104fca40 [00000000/00000000000131d4/82024000/ff022200] "),
        Some(("0x7f0b104fca40", 0x131d4, 0x8202_4000, 0xff02_2200))
    );
    assert_eq!(trace_line("Trace 0: 0x7f [bad]"), None);
}

#[test]
fn reads_only_executable_segments_of_an_elf() {
    let text = TaskText::from_elf("t", &elf(0x1_0000, &[1, 2, 3, 4])).unwrap();
    assert!(text.holds(0x1_0000, &[1, 2]));
    assert!(text.holds(0x1_0002, &[3, 4]));
    assert!(!text.holds(0x1_0003, &[4, 0]));
    assert!(!text.holds(0x9_0000, &[1]));
    let error = TaskText::from_elf("t", b"#!/bin/sh\n").unwrap_err();
    assert!(error.contains("not a little-endian ELF64"), "{error}");
    let mut truncated = elf(0x1_0000, &[1, 2, 3, 4]);
    truncated.truncate(64 + 56 + 8);
    assert!(TaskText::from_elf("t", &truncated).is_err());
}

#[test]
fn places_follow_the_mmu_index() {
    use super::place_of;
    assert_eq!(place_of(Arch::Riscv64, 0x8202_4000), Place::User);
    assert_eq!(place_of(Arch::Riscv64, 0x8242_4001), Place::Kernel);
    assert_eq!(place_of(Arch::Riscv64, 0x0262_4005), Place::Guest);
    assert_eq!(place_of(Arch::Riscv64, 0x02c2_4003), Place::Firmware);
}

#[test]
fn x86_lines_and_flags_read_as_the_x86_log_writes_them() {
    use super::place_of;
    assert_eq!(
        instruction_line(
            Arch::X86_64,
            "0x000fe05b:  2e 66 83 3e c8 61 00     cmpl     $0, %cs:0x61c8"
        ),
        Some((0xfe05b, vec![0x2e, 0x66, 0x83, 0x3e, 0xc8, 0x61, 0x00]))
    );
    assert_eq!(
        instruction_line(
            Arch::X86_64,
            "0x00101000:  0f 01 d9                 vmmcall  "
        ),
        Some((0x101000, vec![0x0f, 0x01, 0xd9]))
    );
    assert_eq!(instruction_line(Arch::X86_64, "0x1000:  zz  nop"), None);
    assert_eq!(instruction_line(Arch::X86_64, "Trace 0: x"), None);
    // Ring 0 in long mode; ring 3; SVM guest mode (CPL 0 inside it).
    assert_eq!(place_of(Arch::X86_64, 0x0040_cab0), Place::Kernel);
    assert_eq!(place_of(Arch::X86_64, 0x0040_cab3), Place::User);
    assert_eq!(place_of(Arch::X86_64, 0x0060_cab0), Place::Guest);
}

/// One Bochs trace line for an instruction at `rip` (selector `sel`,
/// physical address `phys`) whose bytes are the word `w`.
fn bochs(sel: u16, rip: u64, phys: u64, w: u32) -> String {
    let hex: String = w.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("(0).[1234] [0x{phys:012x}] {sel:04x}:{rip:016x} (unk. ctxt): insn        ; {hex}\n")
}

/// A Bochs trace of `trips` round trips: guest, kernel, ioreq, kernel,
/// devices, kernel, ioreq, kernel, guest again; with the debugger's own
/// lines around.
fn bochs_trace(trips: usize) -> String {
    let kernel = |n: u32| -> String {
        (0..n)
            .map(|i| {
                let at = 0x10_0000 + 4 * u64::from(i);
                bochs(0x08, at, at, 0x500 + i)
            })
            .collect()
    };
    let task = |base: u32, from: u32, to: u32| -> String {
        (from..to)
            .map(|i| {
                let w = if i == 8 { 0x73 } else { base + i };
                bochs(0x2b, 0x1_0000 + 4 * u64::from(i), 0x77_0000, w)
            })
            .collect()
    };
    // The guest's code is at the kernel's addresses, but not at the same
    // physical ones (EPT), and holds other bytes.
    let guest = bochs(0x08, 0x10_0000, 0xb0_0000, 0x500);
    let mut out = String::from(
        "Next at t=100\n(0) [0x000000b00000] 0008:0000000000100000 (unk. ctxt): x ; 00\ntrace on\n",
    );
    for _ in 0..trips {
        out += &guest;
        out += &kernel(5);
        out += &task(0x100, 0, 4);
        out += &kernel(3);
        out += &task(0x200, 0, 6);
        out += &kernel(2);
        out += &task(0x100, 4, 9);
        out += &kernel(7);
    }
    out += &guest;
    out + "(0) Magic breakpoint\ntrace off\n"
}

#[test]
fn a_bochs_trace_is_placed_by_ring_identity_mapping_and_bytes() {
    let kernel = TaskText::from_elf(
        "kernel",
        &elf(0x10_0000, &words(&(0x500..0x520).collect::<Vec<u32>>())),
    )
    .unwrap();
    let b = bochs_breakdown(bochs_trace(3).as_bytes(), &kernel, &tasks()).unwrap();
    let stages = Stages {
        kernel_exit: 5,
        ioreq: 4 + 5,
        kernel_ipc: 3 + 2,
        devices: 6,
        ret: 7,
    };
    assert_eq!(b.stages, stages);
    assert_eq!((b.clean, b.typical, b.exits, b.unmapped), (3, 3, 3, 0));
    // Without the kernel's text everything in ring 0 is the guest's: no
    // round trip.
    let none = TaskText::from_elf("kernel", &elf(0x20_0000, &[0; 4])).unwrap();
    assert!(bochs_breakdown(bochs_trace(3).as_bytes(), &none, &tasks()).is_err());
}

#[test]
fn reads_bochs_trace_lines() {
    let line = "(0).[189149913] [0x000000101389] 0008:0000000000101389 (unk. ctxt): mov rdi, qword ptr ss:[rsp+8] ; 488b7c2408";
    assert_eq!(
        bochs_line(line),
        Some((
            0x08,
            0x10_1389,
            0x10_1389,
            vec![0x48, 0x8b, 0x7c, 0x24, 0x08]
        ))
    );
    // The debugger's own lines, and the instruction it shows before `c`.
    for other in [
        "Next at t=189149910",
        "(0) Magic breakpoint",
        "(0) [0x000000b005d1] 0008:00000000001005d1 (unk. ctxt): mov dx, 0x03fd            ; 66bafd03",
        "Tracing enabled for CPU0",
    ] {
        assert_eq!(bochs_line(other), None, "{other}");
    }
}
