//! The stages of one UART round trip, part of `cargo xtask bench`, from
//! QEMU's own log of the run: `-d in_asm` logs every translation block
//! (TB) once, with its instructions and their bytes; during a short window
//! the monitor adds `exec,nochain`, which logs every TB executed
//! (`Trace 0: <host ptr> [<cs_base>/<pc>/<flags>/<cflags>]`). Switching
//! `nochain` on changes the TB flags QEMU looks TBs up with, so every TB
//! run in the window is translated (and logged) again right before its
//! first `Trace` line: no TB goes unlogged, and none runs chained past the
//! log.
//!
//! Each executed TB is charged its instructions and a place: the guest
//! (VS-mode; on x86, SVM guest mode), the kernel (HS; ring 0), firmware
//! (M) or a U-mode (ring-3) task, told apart (the tasks share link
//! addresses) by matching the TB's instruction bytes against each task's
//! ELF. [`Arch`] says how the TB flags and the `in_asm` lines read. A round trip is a stretch of non-guest TBs
//! between two guest TBs; it is split into stages by the transitions
//! between places (see [`stages`]), so the split holds whatever shape the
//! kernel path takes. A trap that cuts a TB short is charged whole: totals
//! are within a few instructions of `instret`'s.

use std::collections::HashMap;
use std::io::BufRead;

/// A task's executable bytes, from its ELF's executable `PT_LOAD` segments.
#[derive(Debug, Clone)]
pub struct TaskText {
    pub name: String,
    segments: Vec<(u64, Vec<u8>)>,
}

impl TaskText {
    /// Reads the executable segments of the ELF64 (little-endian) `bytes`.
    pub fn from_elf(name: &str, bytes: &[u8]) -> Result<TaskText, String> {
        let bad = || format!("{name}: not a little-endian ELF64 file");
        if bytes.get(..4) != Some(b"\x7fELF".as_slice()) || bytes.get(4..6) != Some(&[2, 1]) {
            return Err(bad());
        }
        let u16_at = |at: usize| -> Option<u64> {
            Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?).into())
        };
        let u32_at = |at: usize| -> Option<u64> {
            Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?).into())
        };
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        let usize_of = |v: u64| usize::try_from(v).ok();
        let phoff = u64_at(0x20).and_then(usize_of).ok_or_else(bad)?;
        let phentsize = u16_at(0x36).and_then(usize_of).ok_or_else(bad)?;
        let phnum = u16_at(0x38).and_then(usize_of).ok_or_else(bad)?;
        let mut segments = Vec::new();
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            let (Some(kind), Some(flags)) = (u32_at(ph), u32_at(ph + 4)) else {
                return Err(bad());
            };
            const PT_LOAD: u64 = 1;
            const PF_X: u64 = 1;
            if kind != PT_LOAD || flags & PF_X == 0 {
                continue;
            }
            let (Some(offset), Some(vaddr), Some(filesz)) = (
                u64_at(ph + 8).and_then(usize_of),
                u64_at(ph + 16),
                u64_at(ph + 32).and_then(usize_of),
            ) else {
                return Err(bad());
            };
            let data = bytes
                .get(offset..offset.checked_add(filesz).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            segments.push((vaddr, data.to_vec()));
        }
        Ok(TaskText {
            name: name.to_string(),
            segments,
        })
    }

    /// Whether the task's text holds `bytes` at address `pc`.
    fn holds(&self, pc: u64, bytes: &[u8]) -> bool {
        self.segments.iter().any(|(base, data)| {
            pc.checked_sub(*base)
                .and_then(|off| usize::try_from(off).ok())
                .and_then(|off| data.get(off..off.checked_add(bytes.len())?))
                == Some(bytes)
        })
    }
}

/// The machine the log is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Riscv64,
    X86_64,
}

/// Where a TB ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Guest,
    Kernel,
    Firmware,
    /// A U-mode task: the index into the task list.
    Task(usize),
    /// U-mode code that matches no task, or more than one.
    User,
    /// A TB whose translation was not in the log.
    Unknown,
}

/// One executed TB: where it ran, its instructions, and (U-mode) the set of
/// tasks whose text it matches, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exec {
    place: Place,
    instructions: u64,
    tasks: u64,
}

/// A translated TB from the `in_asm` log: its instructions' (pc, bytes).
type Block = Vec<(u64, Vec<u8>)>;

/// x86 TB flags (QEMU's `hflags`): the CPL in bits 0-1, and bit 21
/// (`HF_GUEST_MASK`) while SVM's guest mode is on.
const X86_CPL: u64 = 3;
const X86_GUEST: u64 = 1 << 21;

/// The privilege a TB ran at, from its flags. QEMU's RISC-V TB flags carry
/// the MMU index in bits 0-2 (0 U, 1 S, 2 S with SUM, 3 M; bit 2 set: the
/// two-stage (guest) translation); x86's, the guest-mode bit and the CPL.
fn place_of(arch: Arch, flags: u64) -> Place {
    match arch {
        Arch::Riscv64 => match flags & 7 {
            0 => Place::User,
            1 | 2 => Place::Kernel,
            3 => Place::Firmware,
            _ => Place::Guest,
        },
        Arch::X86_64 if flags & X86_GUEST != 0 => Place::Guest,
        Arch::X86_64 if flags & X86_CPL == 3 => Place::User,
        Arch::X86_64 => Place::Kernel,
    }
}

/// An `in_asm` instruction line: pc and the instruction's bytes in memory
/// order. RISC-V: `0x<pc>:  <hex>  ...`, the instruction as one number;
/// x86: `0x<pc>:  <b0> <b1> ...  <mnemonic>`, a byte per word.
fn instruction_line(arch: Arch, line: &str) -> Option<(u64, Vec<u8>)> {
    match arch {
        Arch::Riscv64 => riscv_instruction_line(line),
        Arch::X86_64 => x86_instruction_line(line),
    }
}

/// The x86 form of [`instruction_line`]: the bytes are the two-digit hex
/// words before the mnemonic.
fn x86_instruction_line(line: &str) -> Option<(u64, Vec<u8>)> {
    let rest = line.strip_prefix("0x")?;
    let (pc, rest) = rest.split_once(':')?;
    let pc = u64::from_str_radix(pc, 16).ok()?;
    let bytes: Vec<u8> = rest
        .split_whitespace()
        .take_while(|w| w.len() == 2)
        .map_while(|w| u8::from_str_radix(w, 16).ok())
        .collect();
    if bytes.is_empty() {
        return None;
    }
    Some((pc, bytes))
}

/// `0x<pc>:  <hex>  ...` (a RISC-V `in_asm` instruction line): pc and the
/// instruction's bytes in memory order.
fn riscv_instruction_line(line: &str) -> Option<(u64, Vec<u8>)> {
    let rest = line.strip_prefix("0x")?;
    let (pc, rest) = rest.split_once(':')?;
    let pc = u64::from_str_radix(pc, 16).ok()?;
    let mut bytes = hex_bytes(rest.split_whitespace().next()?)?;
    // The log shows the instruction as a number: little-endian in memory.
    bytes.reverse();
    Some((pc, bytes))
}

/// The bytes a non-empty string of hex digit pairs spells, in its order.
fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// QEMU's `CF_NO_GOTO_TB` compile flag: set on every TB translated while
/// `nochain` is on (they end without a direct jump to the next TB).
const CF_NO_GOTO_TB: u64 = 0x200;

/// `Trace N: <ptr> [<cs_base>/<pc>/<flags>/<cflags>] ...`: ptr, pc, flags,
/// cflags.
fn trace_line(line: &str) -> Option<(&str, u64, u64, u64)> {
    let mut words = line.strip_prefix("Trace ")?.split_whitespace();
    let _cpu = words.next()?;
    let ptr = words.next()?;
    let fields = words.next()?.strip_prefix('[')?.strip_suffix(']')?;
    let mut fields = fields.split('/');
    let _cs_base = fields.next()?;
    let pc = u64::from_str_radix(fields.next()?, 16).ok()?;
    let flags = u64::from_str_radix(fields.next()?, 16).ok()?;
    let cflags = u64::from_str_radix(fields.next()?, 16).ok()?;
    Some((ptr, pc, flags, cflags))
}

/// The TBs executed in the log's `exec` window, in order, and how many of
/// them were translated with chaining (without [`CF_NO_GOTO_TB`]): such a
/// TB may jump straight to the next without a `Trace` line for it.
fn executions(
    arch: Arch,
    log: impl BufRead,
    tasks: &[TaskText],
) -> Result<(Vec<Exec>, usize), String> {
    // What each host pointer runs; translations logged but not run yet, by
    // pc; the pc of the latest translation and whether its lines go on.
    let mut known: HashMap<String, Exec> = HashMap::new();
    let mut pending: HashMap<u64, Block> = HashMap::new();
    let mut latest: Option<u64> = None;
    let mut block: Option<Block> = None;
    let mut out = Vec::new();
    let mut chained = 0;
    for line in log.split(b'\n') {
        let line = line.map_err(|e| format!("reading the QEMU log: {e}"))?;
        let line = String::from_utf8_lossy(&line);
        if line.starts_with("IN:") {
            block = Some(Vec::new());
            continue;
        }
        if let Some(open) = block.as_mut() {
            if let Some(insn) = instruction_line(arch, &line) {
                open.push(insn);
                continue;
            }
            if let Some(first) = open.first().map(|i| i.0) {
                latest = Some(first);
                pending.insert(first, std::mem::take(open));
            }
            block = None;
        }
        let Some((ptr, pc, flags, cflags)) = trace_line(&line) else {
            continue;
        };
        if cflags & CF_NO_GOTO_TB == 0 {
            chained += 1;
        }
        // A TB's first run follows its translation: take that translation
        // for a pointer never seen, or (a pointer reused after QEMU flushed
        // its cache) for the translation logged last.
        if (!known.contains_key(ptr) || latest == Some(pc))
            && let Some(insns) = pending.remove(&pc)
        {
            let place = place_of(arch, flags);
            let tasks = match place {
                Place::User => task_bits(&insns, tasks),
                _ => 0,
            };
            let exec = Exec {
                place,
                instructions: insns.len() as u64,
                tasks,
            };
            known.insert(ptr.to_string(), exec);
        }
        if latest == Some(pc) {
            latest = None;
        }
        out.push(known.get(ptr).copied().unwrap_or(Exec {
            place: Place::Unknown,
            instructions: 0,
            tasks: 0,
        }));
    }
    Ok((out, chained))
}

/// The tasks (bit i for `tasks[i]`) whose text holds every instruction of
/// `block`.
fn task_bits(block: &Block, tasks: &[TaskText]) -> u64 {
    tasks
        .iter()
        .enumerate()
        .take(64)
        .filter(|(_, t)| block.iter().all(|(pc, bytes)| t.holds(*pc, bytes)))
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

/// Consecutive TBs of one place: (place, instructions).
type Segment = (Place, u64);

/// Splits the executions into round trips (the non-guest stretches between
/// two guest TBs), each as segments; a U-mode stretch between kernel TBs
/// is one task's, the task every TB of it matches.
fn round_trips(execs: &[Exec]) -> Vec<Vec<Segment>> {
    let mut trips = Vec::new();
    let mut current: Option<Vec<Exec>> = None;
    for exec in execs {
        if exec.place == Place::Guest {
            if let Some(trip) = current.take().filter(|t| !t.is_empty()) {
                trips.push(segments(&trip));
            }
            current = Some(Vec::new());
        } else if let Some(trip) = current.as_mut() {
            trip.push(*exec);
        }
    }
    trips
}

fn segments(trip: &[Exec]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut i = 0;
    while i < trip.len() {
        let place = trip[i].place;
        let mut j = i;
        let mut instructions = 0;
        let mut tasks = u64::MAX;
        while j < trip.len() && trip[j].place == place {
            instructions += trip[j].instructions;
            tasks &= trip[j].tasks;
            j += 1;
        }
        let place = match place {
            Place::User if tasks.count_ones() == 1 => Place::Task(tasks.trailing_zeros() as usize),
            other => other,
        };
        match out.last_mut() {
            Some(last) if last.0 == place => last.1 += instructions,
            _ => out.push((place, instructions)),
        }
        i = j;
    }
    out
}

/// The stages of one round trip through the ioreq and devices tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stages {
    /// Kernel, from the guest's exit to the ioreq task's first instruction.
    pub kernel_exit: u64,
    /// The ioreq task, all of its runs.
    pub ioreq: u64,
    /// Kernel between the tasks' runs (ioreq -> devices, and back when the
    /// ioreq task completes the slot itself).
    pub kernel_ipc: u64,
    /// The devices task.
    pub devices: u64,
    /// Kernel from the completion to the guest: from the devices task's
    /// answer, which the kernel carries into the slot (`ioreq_forward`),
    /// or from the ioreq task's run after it.
    pub ret: u64,
}

impl Stages {
    pub fn total(&self) -> u64 {
        self.kernel_exit + self.ioreq + self.kernel_ipc + self.devices + self.ret
    }
}

/// The stages of a round trip, or `None` if it is not a clean trip
/// through both tasks (it ran firmware, another task or unknown code, or
/// missed one of the two). Kernel segments before the first task run are
/// the exit path; those after the completion are the return: after the
/// ioreq run that follows the devices task's last run, or after that last
/// run itself when none follows (the devices task's answer completes the
/// slot); the others are IPC between the tasks.
fn stages(trip: &[Segment], ioreq: usize, devices: usize) -> Option<Stages> {
    let is = |p: Place, t: usize| p == Place::Task(t);
    if trip
        .iter()
        .any(|s| !(s.0 == Place::Kernel || is(s.0, ioreq) || is(s.0, devices)))
    {
        return None;
    }
    let first_task = trip.iter().position(|s| s.0 != Place::Kernel)?;
    let last_devices = trip.iter().rposition(|s| is(s.0, devices))?;
    // Through the ioreq task first, then the devices task.
    if !is(trip[first_task].0, ioreq) {
        return None;
    }
    let completion = last_devices
        + trip[last_devices + 1..]
            .iter()
            .position(|s| is(s.0, ioreq))
            .map_or(0, |after| after + 1);
    let mut out = Stages::default();
    for (i, &(place, n)) in trip.iter().enumerate() {
        let stage = match place {
            Place::Task(t) if t == ioreq => &mut out.ioreq,
            Place::Task(_) => &mut out.devices,
            _ if i < first_task => &mut out.kernel_exit,
            _ if i > completion => &mut out.ret,
            _ => &mut out.kernel_ipc,
        };
        *stage += n;
    }
    Some(out)
}

/// What the trace says about the UART round trips in its window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakdown {
    /// One round trip of the most common total among the clean ones
    /// with the least devices stage (plain reads, no posted writes).
    pub stages: Stages,
    /// Clean round trips (through both tasks, nothing else) in the window.
    pub clean: usize,
    /// Of those, how many had exactly `stages.total()` instructions (and
    /// its devices stage).
    pub typical: usize,
    /// All guest exits seen in the window.
    pub exits: usize,
    /// TBs run in the window whose translation was not in the log (0
    /// unless QEMU ran a TB the `in_asm` log missed).
    pub unmapped: usize,
    /// TBs run in the window that were translated with chaining (0 when
    /// `nochain` took effect: every TB run is in the log).
    pub chained: usize,
}

/// Reads the QEMU log `log` of an `arch` machine and breaks the window's
/// round trips down; `tasks` are every U-mode task's text; `ioreq` and
/// `devices` name two.
pub fn breakdown(arch: Arch, log: impl BufRead, tasks: &[TaskText]) -> Result<Breakdown, String> {
    let (execs, chained) = executions(arch, log, tasks)?;
    breakdown_of(&execs, chained, tasks)
}

/// Reads the instruction trace Bochs' debugger wrote (`trace on`) and
/// breaks its round trips down as [`breakdown`] does; `kernel` is the
/// kernel's text, `tasks` every ring-3 task's ([`bochs_executions`]).
pub fn bochs_breakdown(
    log: impl BufRead,
    kernel: &TaskText,
    tasks: &[TaskText],
) -> Result<Breakdown, String> {
    let execs = bochs_executions(log, kernel, tasks)?;
    breakdown_of(&execs, 0, tasks)
}

/// The round trips of `execs` broken down into stages.
fn breakdown_of(execs: &[Exec], chained: usize, tasks: &[TaskText]) -> Result<Breakdown, String> {
    let index = |name: &str| {
        tasks
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| format!("no task named {name} to match the trace against"))
    };
    let (ioreq, devices) = (index("ioreq")?, index("devices")?);
    let trips = round_trips(execs);
    let clean: Vec<Stages> = trips
        .iter()
        .filter_map(|t| stages(t, ioreq, devices))
        .collect();
    // A read that carries the guest's posted writes (the bytes of a line
    // printed in the window) costs the devices task their emulation too:
    // the typical trip is picked among those whose devices stage is the
    // least seen, the plain reads.
    let plain = clean.iter().map(|s| s.devices).min().unwrap_or(0);
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for s in clean.iter().filter(|s| s.devices == plain) {
        *counts.entry(s.total()).or_default() += 1;
    }
    // The most common total (the smaller on a tie, for a stable answer).
    let (total, typical) = counts
        .iter()
        .max_by_key(|(total, n)| (**n, std::cmp::Reverse(**total)))
        .map(|(t, n)| (*t, *n))
        .ok_or_else(|| {
            format!(
                "no round trip through ioreq and devices in the traced window ({} TBs, {} guest exits): \
                 was the trace switched on in time?",
                execs.len(),
                trips.len()
            )
        })?;
    let stages = clean
        .iter()
        .find(|s| s.devices == plain && s.total() == total)
        .copied()
        .unwrap_or_default();
    Ok(Breakdown {
        stages,
        clean: clean.len(),
        typical,
        exits: trips.len(),
        unmapped: execs.iter().filter(|e| e.place == Place::Unknown).count(),
        chained,
    })
}

/// One instruction of a Bochs trace: `(<cpu>).[<tick>] [0x<physical>]
/// <selector>:<rip> (<context>): <mnemonic> ; <bytes>`, the bytes as one
/// hex string in memory order. Returns the selector, rip, physical
/// address and bytes.
fn bochs_line(line: &str) -> Option<(u16, u64, u64, Vec<u8>)> {
    let rest = line.strip_prefix('(')?;
    let (_, rest) = rest.split_once(").[")?;
    let (_tick, rest) = rest.split_once("] [0x")?;
    let (physical, rest) = rest.split_once("] ")?;
    let physical = u64::from_str_radix(physical, 16).ok()?;
    let (selector, rest) = rest.split_once(':')?;
    let selector = u16::from_str_radix(selector, 16).ok()?;
    let rip = u64::from_str_radix(rest.split_whitespace().next()?, 16).ok()?;
    let bytes = hex_bytes(line.rsplit_once("; ")?.1.trim())?;
    Some((selector, rip, physical, bytes))
}

/// Each instruction of a Bochs trace as an execution of one instruction,
/// placed without VMX's mode, which the trace does not show: ring 3 (the
/// selector's RPL) is a task, told apart by its bytes; ring 0 is the
/// kernel where the kernel's text holds the bytes at an address that is
/// its own physical address (the kernel runs identity-mapped; the guest
/// reaches its RAM through EPT, so its addresses are not the host's),
/// else the guest. Lines that are not instructions (the debugger's own)
/// are skipped.
fn bochs_executions(
    log: impl BufRead,
    kernel: &TaskText,
    tasks: &[TaskText],
) -> Result<Vec<Exec>, String> {
    let mut out = Vec::new();
    for line in log.split(b'\n') {
        let line = line.map_err(|e| format!("reading the Bochs trace: {e}"))?;
        let Some((selector, rip, physical, bytes)) = bochs_line(&String::from_utf8_lossy(&line))
        else {
            continue;
        };
        let block = vec![(rip, bytes)];
        let exec = if selector & 3 == 3 {
            Exec {
                place: Place::User,
                instructions: 1,
                tasks: task_bits(&block, tasks),
            }
        } else {
            let own = physical == rip && kernel.holds(rip, &block[0].1);
            Exec {
                place: if own { Place::Kernel } else { Place::Guest },
                instructions: 1,
                tasks: 0,
            }
        };
        out.push(exec);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "bench_trace_tests.rs"]
mod tests;
