//! The Multiboot (version 1) information structure an x86 loader (QEMU's
//! `-kernel`, GRUB) leaves for the kernel: memory map, modules, command line.
//! Every pointer in it is untrusted: reads go through [`PhysMemory`], which
//! refuses what it cannot back, and every count and length is bounded.

use core::fmt;

use crate::info::{MAX_MEMORY_RANGES, MAX_RESERVED_RANGES};
use crate::machine::MachineInfo;
use crate::ranges::{ListFull, MemRange, RangeList};

/// What a Multiboot loader leaves in EAX.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// Most modules Mica keeps.
pub const MAX_MODULES: usize = 8;
/// Longest command line or module string read, NUL included.
pub const MAX_STRING: usize = 4096;
/// Bytes of the information structure Mica reads (up to the boot loader
/// name).
const INFO_BYTES: usize = 68;
/// Bytes of one module entry.
const MODULE_BYTES: usize = 16;
/// Largest memory map read (a few hundred entries).
const MAX_MMAP_BYTES: usize = 8192;

// Flags of the information structure: which fields are valid.
const HAS_MEM: u32 = 1 << 0;
const HAS_CMDLINE: u32 = 1 << 2;
const HAS_MODS: u32 = 1 << 3;
const HAS_MMAP: u32 = 1 << 6;

/// Memory-map type of RAM the OS may use.
const MMAP_AVAILABLE: u32 = 1;

/// Physical memory the parser may read: the kernel's identity map on bare
/// metal, a byte buffer in tests.
pub trait PhysMemory {
    /// `len` bytes at physical address `addr`, or `None` when any of them is
    /// outside the memory this reader backs.
    fn read(&self, addr: u64, len: usize) -> Option<&[u8]>;
}

/// Why the Multiboot information cannot boot Mica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultibootError {
    /// EAX did not hold [`BOOTLOADER_MAGIC`]: not started by a Multiboot
    /// loader.
    BadMagic(u32),
    /// A structure the loader points at lies outside readable memory; names
    /// which one.
    Unreadable(&'static str),
    /// Neither a memory map nor the lower/upper memory sizes.
    NoMemory,
    /// A memory-map entry has an impossible size.
    BadMemoryMap,
    /// A module ends before it starts.
    BadModule,
    /// A string is not NUL-terminated within [`MAX_STRING`] bytes or not
    /// UTF-8; names which one.
    BadString(&'static str),
    /// More memory ranges or modules than Mica keeps.
    TooMany(&'static str),
}

impl fmt::Display for MultibootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultibootError::BadMagic(m) => write!(
                f,
                "not started by a Multiboot loader (magic {m:#x}, expected {BOOTLOADER_MAGIC:#x})"
            ),
            MultibootError::Unreadable(what) => {
                write!(f, "Multiboot {what} lies outside readable memory")
            }
            MultibootError::NoMemory => f.write_str("Multiboot info has no memory map"),
            MultibootError::BadMemoryMap => f.write_str("Multiboot memory map is malformed"),
            MultibootError::BadModule => f.write_str("Multiboot module ends before it starts"),
            MultibootError::BadString(what) => write!(
                f,
                "Multiboot {what} is not a NUL-terminated UTF-8 string of at most {MAX_STRING} bytes"
            ),
            MultibootError::TooMany(what) => write!(f, "Multiboot info names too many {what}"),
        }
    }
}

/// A module the loader placed in RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module<'a> {
    /// Where its bytes are.
    pub range: MemRange,
    /// Its string (GRUB: the path and arguments; QEMU: the `-initrd` name).
    pub name: &'a str,
}

/// What Mica reads from the Multiboot information structure.
#[derive(Debug, Clone, Copy)]
pub struct MultibootInfo<'a> {
    /// RAM of type "available".
    pub memory: RangeList<MAX_MEMORY_RANGES>,
    /// The modules, in the loader's order.
    modules: [Module<'a>; MAX_MODULES],
    module_count: usize,
    /// The command line (empty when the loader gave none).
    pub cmdline: &'a str,
    /// Where the command line's bytes are (empty when none), so the kernel
    /// can keep the frame allocator off it.
    pub cmdline_range: MemRange,
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(offset..offset + 4) {
        word.copy_from_slice(src);
    }
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from(u32_at(bytes, offset)) | (u64::from(u32_at(bytes, offset + 4)) << 32)
}

/// Reads the NUL-terminated string at `addr` (at most [`MAX_STRING`] bytes)
/// and the range it occupies.
fn c_string<'a>(
    mem: &'a impl PhysMemory,
    addr: u32,
    what: &'static str,
) -> Result<(&'a str, MemRange), MultibootError> {
    let addr = u64::from(addr);
    let mut len = 0;
    loop {
        if len == MAX_STRING {
            return Err(MultibootError::BadString(what));
        }
        let byte = mem
            .read(addr + len as u64, 1)
            .ok_or(MultibootError::Unreadable(what))?;
        if byte.first() == Some(&0) {
            break;
        }
        len += 1;
    }
    let bytes = mem
        .read(addr, len)
        .ok_or(MultibootError::Unreadable(what))?;
    let text = core::str::from_utf8(bytes).map_err(|_| MultibootError::BadString(what))?;
    Ok((text, MemRange::new(addr, len as u64 + 1)))
}

impl<'a> MultibootInfo<'a> {
    /// Reads the information structure at `addr` that a loader passed with
    /// `magic`; every malformed or unreadable piece is an error, never a
    /// panic.
    pub fn parse(mem: &'a impl PhysMemory, magic: u32, addr: u64) -> Result<Self, MultibootError> {
        if magic != BOOTLOADER_MAGIC {
            return Err(MultibootError::BadMagic(magic));
        }
        let info = mem
            .read(addr, INFO_BYTES)
            .ok_or(MultibootError::Unreadable("information structure"))?;
        let flags = u32_at(info, 0);
        let mut parsed = MultibootInfo {
            memory: RangeList::new(),
            modules: [Module {
                range: MemRange::new(0, 0),
                name: "",
            }; MAX_MODULES],
            module_count: 0,
            cmdline: "",
            cmdline_range: MemRange::new(0, 0),
        };
        if flags & HAS_MMAP != 0 {
            parsed.read_mmap(mem, u32_at(info, 48), u32_at(info, 44))?;
        } else if flags & HAS_MEM != 0 {
            // Lower memory from 0 and upper memory from 1 MiB, in KiB.
            let lower = MemRange::new(0, u64::from(u32_at(info, 4)) << 10);
            let upper = MemRange::new(1 << 20, u64::from(u32_at(info, 8)) << 10);
            for range in [lower, upper] {
                parsed.push_memory(range)?;
            }
        }
        if parsed.memory.total_size() == 0 {
            return Err(MultibootError::NoMemory);
        }
        if flags & HAS_CMDLINE != 0 && u32_at(info, 16) != 0 {
            let (text, range) = c_string(mem, u32_at(info, 16), "command line")?;
            parsed.cmdline = text;
            parsed.cmdline_range = range;
        }
        if flags & HAS_MODS != 0 {
            parsed.read_modules(mem, u32_at(info, 24), u32_at(info, 20))?;
        }
        Ok(parsed)
    }

    fn push_memory(&mut self, range: MemRange) -> Result<(), MultibootError> {
        self.memory
            .push(range)
            .map_err(|ListFull| MultibootError::TooMany("memory ranges"))
    }

    fn read_mmap(
        &mut self,
        mem: &'a impl PhysMemory,
        addr: u32,
        length: u32,
    ) -> Result<(), MultibootError> {
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length > MAX_MMAP_BYTES {
            return Err(MultibootError::TooMany("memory map bytes"));
        }
        let map = mem
            .read(u64::from(addr), length)
            .ok_or(MultibootError::Unreadable("memory map"))?;
        let mut at = 0;
        while at < map.len() {
            // Each entry: size (of the rest), base, length, type.
            let size = usize::try_from(u32_at(map, at)).unwrap_or(usize::MAX);
            let body = at + 4;
            if size < 20 || map.len().saturating_sub(body) < size {
                return Err(MultibootError::BadMemoryMap);
            }
            let base = u64_at(map, body);
            let len = u64_at(map, body + 8);
            if u32_at(map, body + 16) == MMAP_AVAILABLE {
                self.push_memory(MemRange::new(base, len))?;
            }
            at = body + size;
        }
        Ok(())
    }

    fn read_modules(
        &mut self,
        mem: &'a impl PhysMemory,
        addr: u32,
        count: u32,
    ) -> Result<(), MultibootError> {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > MAX_MODULES {
            return Err(MultibootError::TooMany("modules"));
        }
        let table = mem
            .read(u64::from(addr), count * MODULE_BYTES)
            .ok_or(MultibootError::Unreadable("module list"))?;
        for (slot, entry) in self
            .modules
            .iter_mut()
            .zip(table.chunks_exact(MODULE_BYTES))
        {
            let (start, end) = (u32_at(entry, 0), u32_at(entry, 4));
            let size = end.checked_sub(start).ok_or(MultibootError::BadModule)?;
            let name = match u32_at(entry, 8) {
                0 => "",
                at => c_string(mem, at, "module string")?.0,
            };
            *slot = Module {
                range: MemRange::new(u64::from(start), u64::from(size)),
                name,
            };
        }
        self.module_count = count;
        Ok(())
    }

    /// The modules, in the loader's order.
    pub fn modules(&self) -> &[Module<'a>] {
        &self.modules[..self.module_count]
    }

    /// The firmware-neutral part the generic kernel boots from: the first
    /// module is Mica's boot image, and the modules are reserved.
    pub fn machine(&self) -> MachineInfo<'a> {
        let mut reserved = RangeList::<MAX_RESERVED_RANGES>::new();
        for module in self.modules() {
            // MAX_MODULES is below MAX_RESERVED_RANGES: this cannot fill up.
            let _ = reserved.push(module.range);
        }
        MachineInfo {
            memory: self.memory,
            reserved,
            cpu_count: None,
            boot_image: self.modules().first().map(|m| m.range),
            cmdline: self.cmdline,
            device_windows: RangeList::new(),
        }
    }
}

#[cfg(test)]
#[path = "multiboot_tests.rs"]
mod tests;
