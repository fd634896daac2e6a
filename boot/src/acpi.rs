//! The x86 processors the firmware lists in ACPI: the RSDP (found in the
//! EBDA's first KiB or the BIOS area 0xE0000-0xFFFFF), its RSDT or XSDT,
//! and the MADT ("APIC") whose processor-local-APIC entries name every
//! enabled CPU by its local APIC id. Every byte is untrusted: reads go
//! through [`PhysMemory`], checksums are checked and every length is
//! bounded, so a malformed table gives an error, never a panic.

use core::fmt;

use crate::multiboot::PhysMemory;

/// Most CPUs listed (the kernel has a boot stack for each).
pub const MAX_CPUS: usize = 8;
/// The BIOS data area's word holding the EBDA's real-mode segment.
const EBDA_POINTER: u64 = 0x40e;
/// Bytes of the EBDA searched for the RSDP.
const EBDA_SEARCH: usize = 1024;
/// The BIOS read-only area searched for the RSDP.
const BIOS_AREA: (u64, u64) = (0xe_0000, 0x10_0000);
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Bytes of the ACPI 1.0 RSDP (the checksum covers them).
const RSDP_V1_BYTES: usize = 20;
/// Bytes of the ACPI 2.0 RSDP (the extended checksum covers them).
const RSDP_V2_BYTES: usize = 36;
/// Bytes of a system description table's header.
const HEADER_BYTES: usize = 36;
/// Largest RSDT, XSDT or MADT read.
const MAX_TABLE_BYTES: usize = 64 << 10;
/// MADT entry: a processor's local APIC.
const LOCAL_APIC: u8 = 0;
/// MADT entry: a processor's local x2APIC.
const LOCAL_X2APIC: u8 = 9;
/// The processor's enabled flag in either entry.
const ENABLED: u32 = 1;

/// Why no processor list came out of ACPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// No valid RSDP in the EBDA or the BIOS area: the firmware has no ACPI.
    NoRsdp,
    /// A table the RSDP leads to lies outside readable memory; names which.
    Unreadable(&'static str),
    /// A table's checksum or length is wrong; names which.
    BadTable(&'static str),
    /// The RSDT/XSDT lists no MADT ("APIC" table).
    NoMadt,
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiError::NoRsdp => write!(f, "no ACPI RSDP in the EBDA or at 0xe0000-0xfffff"),
            AcpiError::Unreadable(what) => write!(f, "the ACPI {what} is outside readable memory"),
            AcpiError::BadTable(what) => {
                write!(f, "the ACPI {what} has a bad checksum or length")
            }
            AcpiError::NoMadt => write!(f, "the ACPI tables have no MADT (\"APIC\")"),
        }
    }
}

/// The enabled processors of the MADT, by local APIC id, in table order
/// (the first [`MAX_CPUS`]; the rest are counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuList {
    ids: [u32; MAX_CPUS],
    len: usize,
    unlisted: usize,
}

impl CpuList {
    /// No processor.
    pub const fn new() -> Self {
        CpuList {
            ids: [0; MAX_CPUS],
            len: 0,
            unlisted: 0,
        }
    }

    /// Adds `id` unless it is listed already; past [`MAX_CPUS`] it is
    /// counted in [`CpuList::unlisted`].
    pub fn push(&mut self, id: u32) {
        if self.apic_ids().contains(&id) {
            return;
        }
        match self.ids.get_mut(self.len) {
            Some(slot) => {
                *slot = id;
                self.len += 1;
            }
            None => self.unlisted += 1,
        }
    }

    /// The listed local APIC ids.
    pub fn apic_ids(&self) -> &[u32] {
        &self.ids[..self.len]
    }

    /// Enabled processors left out (past [`MAX_CPUS`]).
    pub fn unlisted(&self) -> usize {
        self.unlisted
    }
}

impl Default for CpuList {
    fn default() -> Self {
        CpuList::new()
    }
}

/// What the MADT says about the processors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Madt {
    /// The local APIC's physical address as the MADT gives it.
    pub local_apic: u32,
    /// The enabled processors.
    pub cpus: CpuList,
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The RSDT or XSDT address of a valid RSDP at `addr`, and whether it is
/// an XSDT (8-byte entries).
fn rsdp_at(mem: &dyn PhysMemory, addr: u64) -> Option<(u64, bool)> {
    let v1 = mem.read(addr, RSDP_V1_BYTES)?;
    if &v1[..8] != RSDP_SIGNATURE || sum(v1) != 0 {
        return None;
    }
    if v1[15] >= 2
        && let Some(v2) = mem.read(addr, RSDP_V2_BYTES)
        && sum(v2) == 0
        && let Some(xsdt) = u64_at(v2, 24)
        && xsdt != 0
    {
        return Some((xsdt, true));
    }
    Some((u64::from(u32_at(v1, 16)?), false))
}

/// Searches `[start, end)` on 16-byte boundaries for a valid RSDP.
fn search(mem: &dyn PhysMemory, start: u64, end: u64) -> Option<(u64, bool)> {
    (start..end)
        .step_by(16)
        .take_while(|a| a + RSDP_V1_BYTES as u64 <= end)
        .find_map(|addr| rsdp_at(mem, addr))
}

/// The RSDT/XSDT the RSDP names: the EBDA's first KiB first, then the
/// BIOS area.
fn find_root(mem: &dyn PhysMemory) -> Option<(u64, bool)> {
    let ebda = mem
        .read(EBDA_POINTER, 2)
        .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])) << 4)
        .filter(|&a| a != 0);
    ebda.and_then(|a| search(mem, a, a + EBDA_SEARCH as u64))
        .or_else(|| search(mem, BIOS_AREA.0, BIOS_AREA.1))
}

/// The whole table at `addr` (header length, bounded, checksum checked).
fn table<'m>(
    mem: &'m dyn PhysMemory,
    addr: u64,
    what: &'static str,
) -> Result<&'m [u8], AcpiError> {
    let header = mem
        .read(addr, HEADER_BYTES)
        .ok_or(AcpiError::Unreadable(what))?;
    let len = u32_at(header, 4).ok_or(AcpiError::BadTable(what))? as usize;
    if !(HEADER_BYTES..=MAX_TABLE_BYTES).contains(&len) {
        return Err(AcpiError::BadTable(what));
    }
    let bytes = mem.read(addr, len).ok_or(AcpiError::Unreadable(what))?;
    if sum(bytes) != 0 {
        return Err(AcpiError::BadTable(what));
    }
    Ok(bytes)
}

/// The processors of the MADT bytes `madt` (header included).
pub fn parse_madt(madt: &[u8]) -> Result<Madt, AcpiError> {
    let local_apic = u32_at(madt, HEADER_BYTES).ok_or(AcpiError::BadTable("MADT"))?;
    let mut cpus = CpuList::new();
    let mut at = HEADER_BYTES + 8;
    while at + 2 <= madt.len() {
        let (kind, len) = (madt[at], usize::from(madt[at + 1]));
        if len < 2 || at + len > madt.len() {
            return Err(AcpiError::BadTable("MADT"));
        }
        let entry = &madt[at..at + len];
        match kind {
            LOCAL_APIC if len >= 8 && u32_at(entry, 4).is_some_and(|f| f & ENABLED != 0) => {
                cpus.push(u32::from(entry[3]));
            }
            LOCAL_X2APIC if len >= 16 && u32_at(entry, 8).is_some_and(|f| f & ENABLED != 0) => {
                if let Some(id) = u32_at(entry, 4) {
                    cpus.push(id);
                }
            }
            _ => {}
        }
        at += len;
    }
    Ok(Madt { local_apic, cpus })
}

/// Finds the RSDP, walks its RSDT or XSDT to the MADT and lists the
/// enabled processors.
pub fn read_madt(mem: &dyn PhysMemory) -> Result<Madt, AcpiError> {
    let (root, xsdt) = find_root(mem).ok_or(AcpiError::NoRsdp)?;
    let what = if xsdt { "XSDT" } else { "RSDT" };
    let root = table(mem, root, what)?;
    let width = if xsdt { 8 } else { 4 };
    let entries = root[HEADER_BYTES..].chunks_exact(width).map(|e| {
        if xsdt {
            u64_at(e, 0)
        } else {
            u32_at(e, 0).map(u64::from)
        }
    });
    for addr in entries.flatten() {
        let Some(header) = mem.read(addr, HEADER_BYTES) else {
            continue;
        };
        if &header[..4] == b"APIC" {
            return parse_madt(table(mem, addr, "MADT")?);
        }
    }
    Err(AcpiError::NoMadt)
}

#[cfg(test)]
#[path = "acpi_tests.rs"]
mod tests;
