//! [`BootInfo`]: what the kernel needs to know from the firmware's device
//! tree, gathered in one bounded walk.

use core::fmt;

use crate::fdt::{self, DtbError, Event, Fdt, MAX_DEPTH};
use crate::harts::{Hart, HartList, mmu_type_has_sv39};
use crate::isa::Isa;
use crate::machine::MachineInfo;
use crate::ranges::{ListFull, MemRange, RangeList};

/// Most RAM ranges Mica keeps from the device tree.
pub const MAX_MEMORY_RANGES: usize = 16;
/// Most reserved ranges (memreserve entries plus `/reserved-memory` children).
pub const MAX_RESERVED_RANGES: usize = 32;
/// Most virtio-mmio windows kept (QEMU virt has 8); further ones are
/// ignored rather than failing the boot.
pub const MAX_DEVICE_WINDOWS: usize = 8;

/// Why the device tree cannot boot Mica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// The blob itself is malformed.
    Dtb(DtbError),
    /// No `/memory` node with a usable `reg`.
    NoMemory,
    /// No enabled `/cpus/cpu` node.
    NoHarts,
    /// A cpu node has no readable `riscv,isa` string.
    NoIsa,
    /// A property Mica reads has the wrong length or cell count; names it.
    BadProperty(&'static str),
    /// More ranges than Mica keeps (see [`MAX_MEMORY_RANGES`]).
    TooManyRanges,
}

impl From<DtbError> for BootInfoError {
    fn from(e: DtbError) -> Self {
        BootInfoError::Dtb(e)
    }
}

impl From<ListFull> for BootInfoError {
    fn from(_: ListFull) -> Self {
        BootInfoError::TooManyRanges
    }
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootInfoError::Dtb(e) => write!(f, "{e}"),
            BootInfoError::NoMemory => f.write_str("device tree has no /memory node with a reg"),
            BootInfoError::NoHarts => f.write_str("device tree has no enabled cpu"),
            BootInfoError::NoIsa => f.write_str("device tree cpu has no riscv,isa string"),
            BootInfoError::BadProperty(p) => write!(f, "device tree property {p} is malformed"),
            BootInfoError::TooManyRanges => f.write_str("device tree names too many memory ranges"),
        }
    }
}

/// The firmware's description of the machine.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo<'a> {
    /// RAM ranges from every `/memory` node.
    pub memory: RangeList<MAX_MEMORY_RANGES>,
    /// Ranges the kernel must not allocate from: the DTB's memory
    /// reservation block and `/reserved-memory` children (OpenSBI's own).
    pub reserved: RangeList<MAX_RESERVED_RANGES>,
    /// Number of enabled harts.
    pub hart_count: usize,
    /// The enabled harts by id (`reg`), with whether each has an S-mode
    /// MMU; the kernel starts the others from this list.
    pub harts: HartList,
    /// The ISA string; when harts differ, one lacking H wins (Mica needs H on
    /// every hart it runs guests on).
    pub isa: Isa<'a>,
    /// `/cpus` `timebase-frequency` in Hz, when given.
    pub timebase_hz: Option<u64>,
    /// The initrd range from `/chosen`, when the loader placed one.
    pub initrd: Option<MemRange>,
    /// A `sifive,test0` "test finisher" (QEMU virt): the one way an S-mode
    /// kernel can make QEMU exit with a failure status, as OpenSBI's SRST
    /// shutdown always reports success there.
    pub test_finisher: Option<u64>,
    /// `/chosen` `bootargs`, empty when absent or not a UTF-8 string.
    pub cmdline: &'a str,
    /// The first reg entry of every `virtio,mmio` node, by ascending address.
    pub virtio_mmio: RangeList<MAX_DEVICE_WINDOWS>,
}

impl<'a> BootInfo<'a> {
    /// Whether the harts have the hypervisor extension.
    pub fn has_h(&self) -> bool {
        self.isa.has_h()
    }

    /// The firmware-neutral part the generic kernel boots from.
    pub fn machine(&self) -> MachineInfo<'a> {
        MachineInfo {
            memory: self.memory,
            reserved: self.reserved,
            cpu_count: Some(self.hart_count),
            boot_image: self.initrd,
            cmdline: self.cmdline,
            device_windows: self.virtio_mmio,
        }
    }
}

/// What kind of node a stack frame is, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Root,
    Memory,
    Cpus,
    Cpu,
    ReservedMemory,
    ReservedChild,
    Chosen,
    Other,
}

/// Per open node: its kind, the cells its children's `reg` uses, and the
/// properties read at its end (their order inside a node is free).
#[derive(Debug, Clone, Copy)]
struct Frame<'a> {
    kind: Kind,
    address_cells: u32,
    size_cells: u32,
    reg: Option<&'a [u8]>,
    device_type: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    isa: Option<&'a [u8]>,
    mmu_type: Option<&'a [u8]>,
    initrd_start: Option<&'a [u8]>,
    initrd_end: Option<&'a [u8]>,
    compatible: Option<&'a [u8]>,
    bootargs: Option<&'a [u8]>,
}

impl Frame<'_> {
    const fn new(kind: Kind) -> Self {
        Frame {
            kind,
            address_cells: 2,
            size_cells: 1,
            reg: None,
            device_type: None,
            status: None,
            isa: None,
            mmu_type: None,
            initrd_start: None,
            initrd_end: None,
            compatible: None,
            bootargs: None,
        }
    }
}

fn node_base(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

fn child_kind(parent: Kind, name: &str) -> Kind {
    match (parent, node_base(name)) {
        (Kind::Root, "memory") => Kind::Memory,
        (Kind::Root, "cpus") => Kind::Cpus,
        (Kind::Root, "reserved-memory") => Kind::ReservedMemory,
        (Kind::Root, "chosen") => Kind::Chosen,
        (Kind::Cpus, "cpu") => Kind::Cpu,
        (Kind::ReservedMemory, _) => Kind::ReservedChild,
        _ => Kind::Other,
    }
}

fn be_u32(value: &[u8], what: &'static str) -> Result<u32, BootInfoError> {
    match value {
        [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(BootInfoError::BadProperty(what)),
    }
}

/// A 1- or 2-cell number (`linux,initrd-*`, `timebase-frequency`).
fn be_number(value: &[u8], what: &'static str) -> Result<u64, BootInfoError> {
    let cells = match value.len() {
        4 => 1,
        8 => 2,
        _ => return Err(BootInfoError::BadProperty(what)),
    };
    fdt::read_cells(value, cells).ok_or(BootInfoError::BadProperty(what))
}

fn c_string(value: &[u8]) -> Option<&str> {
    let (last, body) = value.split_last()?;
    if *last != 0 {
        return None;
    }
    core::str::from_utf8(body).ok()
}

/// Pushes each (address, size) pair of `reg` decoded with the parent's cells.
fn push_reg<const N: usize>(
    list: &mut RangeList<N>,
    reg: &[u8],
    parent: &Frame<'_>,
) -> Result<(), BootInfoError> {
    let (ac, sc) = (parent.address_cells, parent.size_cells);
    if !(1..=2).contains(&ac) || sc > 2 {
        return Err(BootInfoError::BadProperty("#address-cells/#size-cells"));
    }
    let entry = 4 * (ac + sc) as usize;
    if !reg.len().is_multiple_of(entry) {
        return Err(BootInfoError::BadProperty("reg"));
    }
    for chunk in reg.chunks_exact(entry) {
        let (addr, size) = chunk.split_at(4 * ac as usize);
        let start = fdt::read_cells(addr, ac).ok_or(BootInfoError::BadProperty("reg"))?;
        let size = if sc == 0 {
            0
        } else {
            fdt::read_cells(size, sc).ok_or(BootInfoError::BadProperty("reg"))?
        };
        list.push(MemRange::new(start, size))?;
    }
    Ok(())
}

/// The state of the walk: the open nodes and what was found so far.
struct Walk<'a> {
    stack: [Frame<'a>; MAX_DEPTH],
    depth: usize,
    memory: RangeList<MAX_MEMORY_RANGES>,
    reserved: RangeList<MAX_RESERVED_RANGES>,
    harts: usize,
    hart_list: HartList,
    isa: Option<Isa<'a>>,
    timebase_hz: Option<u64>,
    initrd: Option<MemRange>,
    test_finisher: Option<u64>,
    cmdline: &'a str,
    virtio_mmio: RangeList<MAX_DEVICE_WINDOWS>,
}

fn has_compatible(node: &Frame<'_>, name: &[u8]) -> bool {
    node.compatible
        .is_some_and(|list| list.split(|&b| b == 0).any(|c| c == name))
}

/// The first (address, size) of `node`'s reg, decoded with `parent`'s
/// cells; `None` when it is missing or malformed (the node is skipped).
fn first_reg(node: &Frame<'_>, parent: &Frame<'_>) -> Option<MemRange> {
    let mut reg = RangeList::<1>::new();
    let bytes = node
        .reg?
        .get(..4 * (parent.address_cells + parent.size_cells) as usize)?;
    push_reg(&mut reg, bytes, parent).ok()?;
    reg.as_slice().first().copied()
}

fn is_test_finisher(node: &Frame<'_>) -> bool {
    node.compatible
        .is_some_and(|list| list.split(|&b| b == 0).any(|c| c == b"sifive,test0"))
}

impl<'a> Walk<'a> {
    fn begin(&mut self, name: &str) -> Result<(), BootInfoError> {
        let kind = match self.depth.checked_sub(1).and_then(|i| self.stack.get(i)) {
            None => Kind::Root,
            Some(parent) => child_kind(parent.kind, name),
        };
        let slot = self
            .stack
            .get_mut(self.depth)
            .ok_or(BootInfoError::Dtb(DtbError::TooDeep))?;
        *slot = Frame::new(kind);
        self.depth += 1;
        Ok(())
    }

    fn property(&mut self, name: &str, value: &'a [u8]) -> Result<(), BootInfoError> {
        let Some(top) = self
            .depth
            .checked_sub(1)
            .and_then(|i| self.stack.get_mut(i))
        else {
            return Err(BootInfoError::Dtb(DtbError::BadStructure));
        };
        match name {
            "#address-cells" => top.address_cells = be_u32(value, "#address-cells")?,
            "#size-cells" => top.size_cells = be_u32(value, "#size-cells")?,
            "reg" => top.reg = Some(value),
            "device_type" => top.device_type = Some(value),
            "status" => top.status = Some(value),
            "riscv,isa" => top.isa = Some(value),
            "mmu-type" => top.mmu_type = Some(value),
            "linux,initrd-start" => top.initrd_start = Some(value),
            "linux,initrd-end" => top.initrd_end = Some(value),
            "compatible" => top.compatible = Some(value),
            "bootargs" => top.bootargs = Some(value),
            "timebase-frequency" if matches!(top.kind, Kind::Cpus | Kind::Cpu) => {
                let hz = be_number(value, "timebase-frequency")?;
                self.timebase_hz.get_or_insert(hz);
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), BootInfoError> {
        let index = self
            .depth
            .checked_sub(1)
            .ok_or(BootInfoError::Dtb(DtbError::BadStructure))?;
        let node = self.stack[index];
        self.depth = index;
        let parent = index.checked_sub(1).map(|i| self.stack[i]);
        match (node.kind, parent) {
            (Kind::Memory, Some(parent)) => {
                let is_memory = node
                    .device_type
                    .and_then(c_string)
                    .is_none_or(|t| t == "memory");
                if let (true, Some(reg)) = (is_memory, node.reg) {
                    push_reg(&mut self.memory, reg, &parent)?;
                }
            }
            (Kind::ReservedChild, Some(parent)) => {
                if let Some(reg) = node.reg {
                    push_reg(&mut self.reserved, reg, &parent)?;
                }
            }
            (Kind::Cpu, parent) => self.end_cpu(&node, parent.as_ref())?,
            (Kind::Other, Some(parent)) if has_compatible(&node, b"virtio,mmio") => {
                if let Some(window) = first_reg(&node, &parent) {
                    // More windows than kept: the rest stay unused.
                    let _ = self.virtio_mmio.push(window);
                }
            }
            (Kind::Other, Some(parent))
                if self.test_finisher.is_none() && is_test_finisher(&node) =>
            {
                let mut reg = RangeList::<1>::new();
                // Only the first entry is needed; a malformed reg just means no finisher.
                if let Some(reg_bytes) = node.reg {
                    let first =
                        reg_bytes.get(..4 * (parent.address_cells + parent.size_cells) as usize);
                    if first.is_some_and(|b| push_reg(&mut reg, b, &parent).is_ok()) {
                        self.test_finisher = reg.as_slice().first().map(|r| r.start);
                    }
                }
            }
            (Kind::Chosen, _) => {
                if let Some(args) = node.bootargs.and_then(c_string) {
                    self.cmdline = args;
                }
                if let (Some(start), Some(end)) = (node.initrd_start, node.initrd_end) {
                    let start = be_number(start, "linux,initrd-start")?;
                    let end = be_number(end, "linux,initrd-end")?;
                    let size = end
                        .checked_sub(start)
                        .ok_or(BootInfoError::BadProperty("linux,initrd-end"))?;
                    self.initrd = Some(MemRange::new(start, size));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end_cpu(
        &mut self,
        node: &Frame<'a>,
        parent: Option<&Frame<'a>>,
    ) -> Result<(), BootInfoError> {
        let is_cpu = node
            .device_type
            .and_then(c_string)
            .is_none_or(|t| t == "cpu");
        let enabled = node
            .status
            .and_then(c_string)
            .is_none_or(|s| s == "okay" || s == "ok");
        if !(is_cpu && enabled) {
            return Ok(());
        }
        let isa = Isa::new(node.isa.and_then(c_string).ok_or(BootInfoError::NoIsa)?);
        self.harts += 1;
        // The hart id is `reg` in `/cpus`' address cells; a cpu without a
        // readable one cannot be named to SBI, so it is only counted.
        let id = parent.and_then(|cpus| {
            let cells = cpus.address_cells;
            let bytes = node.reg?.get(..4 * cells as usize)?;
            fdt::read_cells(bytes, cells)
        });
        match id {
            Some(id) => self.hart_list.push(Hart {
                id,
                smode_mmu: node
                    .mmu_type
                    .and_then(c_string)
                    .is_some_and(mmu_type_has_sv39),
            }),
            None => self.hart_list.count_unlisted(),
        }
        match self.isa {
            Some(kept) if kept.has_h() && !isa.has_h() => self.isa = Some(isa),
            Some(_) => {}
            None => self.isa = Some(isa),
        }
        Ok(())
    }
}

impl<'a> BootInfo<'a> {
    /// Reads a DTB; every malformed or missing piece is an error, never a panic.
    pub fn from_dtb(blob: &'a [u8]) -> Result<Self, BootInfoError> {
        let fdt = Fdt::new(blob)?;
        let mut walk = Walk {
            stack: [Frame::new(Kind::Other); MAX_DEPTH],
            depth: 0,
            memory: RangeList::new(),
            reserved: RangeList::new(),
            harts: 0,
            hart_list: HartList::new(),
            isa: None,
            timebase_hz: None,
            initrd: None,
            test_finisher: None,
            cmdline: "",
            virtio_mmio: RangeList::new(),
        };
        for (start, size) in fdt.reservations() {
            walk.reserved.push(MemRange::new(start, size))?;
        }
        for event in fdt.events() {
            match event {
                Event::BeginNode(name) => walk.begin(name)?,
                Event::Property { name, value } => walk.property(name, value)?,
                Event::EndNode => walk.end()?,
            }
        }
        if walk.memory.total_size() == 0 {
            return Err(BootInfoError::NoMemory);
        }
        let isa = walk.isa.ok_or(BootInfoError::NoHarts)?;
        walk.virtio_mmio.sort_by_start();
        Ok(BootInfo {
            memory: walk.memory,
            reserved: walk.reserved,
            hart_count: walk.harts,
            harts: walk.hart_list,
            isa,
            timebase_hz: walk.timebase_hz,
            initrd: walk.initrd,
            test_finisher: walk.test_finisher,
            cmdline: walk.cmdline,
            virtio_mmio: walk.virtio_mmio,
        })
    }
}
