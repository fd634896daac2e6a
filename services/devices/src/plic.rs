//! A guest's platform-level interrupt controller, with the SiFive PLIC
//! register layout Linux's `irq-sifive-plic` driver programs (QEMU virt's
//! `riscv,plic0`): per-source priorities, pending bits, per-context enable
//! bits, a threshold and the claim/complete register per context.
//!
//! | offset | register |
//! |---|---|
//! | `4 * s` | priority of source `s` (1..[`PLIC_SOURCES`]; 0 = never) |
//! | `0x1000 + 4 * w` | pending bits of sources `32w..32w+32` (read-only) |
//! | `0x2000 + 0x80 * c + 4 * w` | context `c`'s enable bits |
//! | `0x20_0000 + 0x1000 * c` | context `c`'s priority threshold |
//! | `0x20_0000 + 0x1000 * c + 4` | claim (read) / complete (write) |
//!
//! Every register is 32 bits wide and takes only aligned 32-bit accesses.
//! Context `c` is hart (vCPU) `c`'s S-mode context (the guest device tree
//! lists only S-mode external interrupts), for each of the
//! [`PLIC_CONTEXTS`] vCPUs a VM may have; a guest may program a context
//! its device tree does not list, which then interrupts no vCPU. Source lines are level-triggered, as
//! QEMU models them: a raised line makes its source pending unless it is
//! claimed and not yet completed; a lowered line withdraws a pending
//! request; completing a source whose line is still raised makes it
//! pending again. A context's external interrupt is raised while some
//! pending, enabled source has a priority above its threshold: a source
//! several contexts enable raises all of them, the first claim takes it
//! and the others' interrupts drop (as on hardware).

use crate::bus::{AccessSize, BusDevice, DeviceEnv, DeviceError};
use crate::persist::{Persist, Reader, Writer};

/// Interrupt sources, including the non-existent source 0 (QEMU virt's
/// `riscv,ndev` is 0x5f: sources 1..=95).
pub const PLIC_SOURCES: usize = 96;
/// Contexts: one S-mode context per vCPU a VM may have.
pub const PLIC_CONTEXTS: usize = ipc::syscall::MAX_VCPUS;
// `Plic::external_levels` has one bit per context.
const _: () = assert!(PLIC_CONTEXTS <= 32);
/// Bytes of the register window (QEMU virt's).
pub const PLIC_SIZE: u64 = 0x60_0000;
/// Highest priority; priority registers keep 3 bits.
pub const MAX_PRIORITY: u32 = 7;

const WORDS: usize = PLIC_SOURCES / 32;
const PENDING_BASE: u64 = 0x1000;
const ENABLE_BASE: u64 = 0x2000;
const ENABLE_STRIDE: u64 = 0x80;
const CONTEXT_BASE: u64 = 0x20_0000;
const CONTEXT_STRIDE: u64 = 0x1000;

/// A set of sources, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sources([u32; WORDS]);

impl Sources {
    fn get(&self, source: usize) -> bool {
        self.0
            .get(source / 32)
            .is_some_and(|w| w & (1 << (source % 32)) != 0)
    }

    fn set(&mut self, source: usize, on: bool) {
        if let Some(word) = self.0.get_mut(source / 32) {
            let bit = 1 << (source % 32);
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }
}

/// One context's registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Context {
    enable: Sources,
    threshold: u32,
}

/// The PLIC of one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plic {
    priority: [u32; PLIC_SOURCES],
    pending: Sources,
    /// Claimed and not yet completed: the gateway forwards no new request.
    claimed: Sources,
    /// The input lines' levels.
    lines: Sources,
    contexts: [Context; PLIC_CONTEXTS],
}

impl Default for Plic {
    fn default() -> Self {
        Self::new()
    }
}

/// What a register offset names.
enum Register {
    Priority(usize),
    Pending(usize),
    Enable { context: usize, word: usize },
    Threshold(usize),
    Claim(usize),
    Reserved,
}

fn decode(offset: u64) -> Register {
    let index = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    if offset < PENDING_BASE {
        let source = index(offset / 4);
        return if source < PLIC_SOURCES {
            Register::Priority(source)
        } else {
            Register::Reserved
        };
    }
    if offset < ENABLE_BASE {
        let word = index((offset - PENDING_BASE) / 4);
        return if word < WORDS {
            Register::Pending(word)
        } else {
            Register::Reserved
        };
    }
    if offset < CONTEXT_BASE {
        let rel = offset - ENABLE_BASE;
        let (context, word) = (index(rel / ENABLE_STRIDE), index(rel % ENABLE_STRIDE / 4));
        return if context < PLIC_CONTEXTS && word < WORDS {
            Register::Enable { context, word }
        } else {
            Register::Reserved
        };
    }
    let rel = offset - CONTEXT_BASE;
    let context = index(rel / CONTEXT_STRIDE);
    if context >= PLIC_CONTEXTS {
        return Register::Reserved;
    }
    match rel % CONTEXT_STRIDE {
        0 => Register::Threshold(context),
        4 => Register::Claim(context),
        _ => Register::Reserved,
    }
}

impl Plic {
    /// Every priority, threshold and enable bit 0, no line raised.
    pub const fn new() -> Self {
        Self {
            priority: [0; PLIC_SOURCES],
            pending: Sources([0; WORDS]),
            claimed: Sources([0; WORDS]),
            lines: Sources([0; WORDS]),
            contexts: [Context {
                enable: Sources([0; WORDS]),
                threshold: 0,
            }; PLIC_CONTEXTS],
        }
    }

    /// Drives source `source`'s input line (sources outside 1..[`PLIC_SOURCES`]
    /// are not wired and change nothing). A raised line makes the source
    /// pending unless it is claimed; lowering it leaves a pending request
    /// in place: as the PLIC specification says, only a claim clears the
    /// pending bit (so a pulse is not lost, and a request its device
    /// withdrew is claimed by a handler that finds nothing to do, as on
    /// hardware).
    pub fn set_line(&mut self, source: u32, raised: bool) {
        let Some(source) = usize::try_from(source)
            .ok()
            .filter(|s| (1..PLIC_SOURCES).contains(s))
        else {
            return;
        };
        self.lines.set(source, raised);
        if raised && !self.claimed.get(source) {
            self.pending.set(source, true);
        }
    }

    /// Whether source `source` waits to be claimed.
    /// A device left source `source`: its line is down and a request it
    /// made but nobody claimed is withdrawn.
    pub fn disconnect(&mut self, source: u32) {
        self.set_line(source, false);
        if let Ok(source) = usize::try_from(source) {
            self.pending.set(source, false);
        }
    }

    pub fn is_pending(&self, source: u32) -> bool {
        usize::try_from(source).is_ok_and(|s| self.pending.get(s))
    }

    /// The best pending source `context` may take: enabled, with a priority
    /// above its threshold, the highest priority and then the lowest number.
    fn best(&self, context: usize) -> Option<usize> {
        let ctx = self.contexts.get(context)?;
        // Most of the time no enabled source is pending: a word-wise look
        // spares the scan of every source for each context.
        if self
            .pending
            .0
            .iter()
            .zip(&ctx.enable.0)
            .all(|(p, e)| p & e == 0)
        {
            return None;
        }
        let mut best: Option<(usize, u32)> = None;
        for source in 1..PLIC_SOURCES {
            let priority = self.priority[source];
            if self.pending.get(source)
                && ctx.enable.get(source)
                && priority > ctx.threshold
                && best.is_none_or(|(_, p)| priority > p)
            {
                best = Some((source, priority));
            }
        }
        best.map(|(source, _)| source)
    }

    /// Whether context `context`'s external interrupt is raised.
    pub fn external_level(&self, context: usize) -> bool {
        self.best(context).is_some()
    }

    /// Every context's external interrupt: bit `c` set while context `c`'s
    /// is raised ([`Plic::external_level`]).
    pub fn external_levels(&self) -> u32 {
        (0..PLIC_CONTEXTS)
            .filter(|&c| self.external_level(c))
            .fold(0, |levels, c| levels | 1 << c)
    }

    /// A read of the claim register: the best source (now claimed, no longer
    /// pending), or 0 when there is none.
    pub fn claim(&mut self, context: usize) -> u32 {
        let Some(source) = self.best(context) else {
            return 0;
        };
        self.pending.set(source, false);
        self.claimed.set(source, true);
        u32::try_from(source).unwrap_or(0)
    }

    /// A write of `source` to the claim register: the gateway takes new
    /// requests again (and one at once if the line is still raised). A
    /// source not enabled for `context`, or not claimed, is ignored.
    pub fn complete(&mut self, context: usize, source: u32) {
        let Some(ctx) = self.contexts.get(context) else {
            return;
        };
        let Ok(source) = usize::try_from(source) else {
            return;
        };
        if !(1..PLIC_SOURCES).contains(&source)
            || !ctx.enable.get(source)
            || !self.claimed.get(source)
        {
            return;
        }
        self.claimed.set(source, false);
        if self.lines.get(source) {
            self.pending.set(source, true);
        }
    }

    fn read_register(&mut self, register: Register) -> u32 {
        match register {
            Register::Priority(source) => self.priority[source],
            Register::Pending(word) => self.pending.0[word],
            Register::Enable { context, word } => self.contexts[context].enable.0[word],
            Register::Threshold(context) => self.contexts[context].threshold,
            Register::Claim(context) => self.claim(context),
            Register::Reserved => 0,
        }
    }

    fn write_register(&mut self, register: Register, value: u32) {
        match register {
            // Source 0 does not exist: its priority stays 0.
            Register::Priority(0) | Register::Pending(_) | Register::Reserved => {}
            Register::Priority(source) => self.priority[source] = value & MAX_PRIORITY,
            Register::Enable { context, word } => {
                // Bit 0 (source 0) is hardwired to 0.
                let mask = if word == 0 { !1 } else { u32::MAX };
                self.contexts[context].enable.0[word] = value & mask;
            }
            Register::Threshold(context) => {
                self.contexts[context].threshold = value & MAX_PRIORITY;
            }
            Register::Claim(context) => self.complete(context, value),
        }
    }
}

fn check(offset: u64, size: AccessSize) -> Result<(), DeviceError> {
    if size != AccessSize::Word {
        return Err(DeviceError::BadWidth);
    }
    if !size.is_aligned(offset) {
        return Err(DeviceError::Unaligned);
    }
    if offset >= PLIC_SIZE {
        return Err(DeviceError::OutOfRange);
    }
    Ok(())
}

impl BusDevice for Plic {
    fn size(&self) -> u64 {
        PLIC_SIZE
    }

    fn read(
        &mut self,
        offset: u64,
        size: AccessSize,
        _env: &mut DeviceEnv<'_>,
    ) -> Result<u64, DeviceError> {
        check(offset, size)?;
        Ok(u64::from(self.read_register(decode(offset))))
    }

    fn write(
        &mut self,
        offset: u64,
        size: AccessSize,
        value: u64,
        _env: &mut DeviceEnv<'_>,
    ) -> Result<(), DeviceError> {
        check(offset, size)?;
        let value = u32::try_from(value & size.mask()).map_err(|_| DeviceError::BadWidth)?;
        self.write_register(decode(offset), value);
        Ok(())
    }

    /// The PLIC raises no source line of its own; its outputs are the
    /// contexts' external interrupts ([`Plic::external_level`]).
    fn irq_level(&self) -> bool {
        false
    }
}

/// Bytes [`Plic`]'s record keeps: a byte per priority, then each context's
/// enable words and threshold (224 for 96 sources and 8 contexts).
const SAVED_BYTES: usize = PLIC_SOURCES + PLIC_CONTEXTS * (4 * WORDS + 4);
// Every context's registers fit one device record.
const _: () = assert!(SAVED_BYTES <= crate::persist::MAX_PAYLOAD);

/// Kept: every priority, and each context's enable bits and threshold
/// (pending and claimed sources are not: the lines are driven again when
/// the devices come back, and a completion of a source the new PLIC never
/// handed out is ignored, as a claim/complete pair would be). A record of
/// another length (a PLIC with fewer contexts, a torn write) is refused,
/// so the PLIC starts from reset.
impl Persist for Plic {
    fn save(&self, out: &mut [u8]) -> usize {
        let mut w = Writer::new(out);
        for &priority in &self.priority {
            // Priorities keep 3 bits.
            w.u8(priority.to_le_bytes()[0]);
        }
        for context in &self.contexts {
            for &word in &context.enable.0 {
                w.u32(word);
            }
            w.u32(context.threshold);
        }
        w.written()
    }

    fn restore(&mut self, saved: &[u8]) -> bool {
        let mut r = Reader::new(saved);
        let mut restored = Self::new();
        for priority in &mut restored.priority {
            match r.u8() {
                Some(p) => *priority = u32::from(p).min(MAX_PRIORITY),
                None => return false,
            }
        }
        for context in &mut restored.contexts {
            for word in &mut context.enable.0 {
                match r.u32() {
                    Some(w) => *word = w,
                    None => return false,
                }
            }
            match r.u32() {
                Some(t) => context.threshold = t.min(MAX_PRIORITY),
                None => return false,
            }
        }
        if !r.is_done() {
            return false;
        }
        // Source 0 does not exist.
        restored.priority[0] = 0;
        for context in &mut restored.contexts {
            context.enable.set(0, false);
        }
        restored.lines = self.lines;
        *self = restored;
        true
    }

    fn write_persists(&self, offset: u64) -> bool {
        // Completions are the hot write; they change nothing kept.
        !matches!(decode(offset), Register::Claim(_))
    }
}

#[cfg(test)]
#[path = "plic_tests.rs"]
mod tests;
