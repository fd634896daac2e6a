//! A flattened-device-tree (FDT v17) writer into a caller's byte buffer.
//!
//! The writer never writes past the buffer: once it runs out of room it keeps
//! counting, so [`FdtWriter::finish`] can say how many bytes a retry needs.
//! Property names come from the closed [`Prop`] set, so the strings block is
//! fixed and every name offset is known before the structure block is written.

const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;
/// One all-zero (address, size) entry: the memory-reservation block's end.
const RSVMAP_LEN: usize = 16;
const VERSION: u32 = 17;
const LAST_COMPATIBLE_VERSION: u32 = 16;
const TOKEN_BEGIN_NODE: u32 = 1;
const TOKEN_END_NODE: u32 = 2;
const TOKEN_PROP: u32 = 3;
const TOKEN_END: u32 = 9;

macro_rules! props {
    ($($variant:ident => $name:literal,)*) => {
        /// Every property name the guest tree uses; the strings block holds
        /// them in this order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Prop { $($variant,)* }

        impl Prop {
            const ALL: &'static [Prop] = &[$(Prop::$variant,)*];

            const fn name(self) -> &'static str {
                match self { $(Prop::$variant => $name,)* }
            }
        }
    };
}

props! {
    AddressCells => "#address-cells",
    SizeCells => "#size-cells",
    InterruptCells => "#interrupt-cells",
    Compatible => "compatible",
    Model => "model",
    Bootargs => "bootargs",
    StdoutPath => "stdout-path",
    InitrdStart => "linux,initrd-start",
    InitrdEnd => "linux,initrd-end",
    VmName => "mica,vm-name",
    TimebaseFrequency => "timebase-frequency",
    DeviceType => "device_type",
    Reg => "reg",
    Status => "status",
    RiscvIsa => "riscv,isa",
    RiscvIsaBase => "riscv,isa-base",
    RiscvIsaExtensions => "riscv,isa-extensions",
    MmuType => "mmu-type",
    InterruptController => "interrupt-controller",
    Phandle => "phandle",
    Ranges => "ranges",
    ClockFrequency => "clock-frequency",
    Interrupts => "interrupts",
    InterruptParent => "interrupt-parent",
    InterruptsExtended => "interrupts-extended",
    RiscvNdev => "riscv,ndev",
    NoMap => "no-map",
}

impl Prop {
    /// Offset of this name in the strings block.
    fn offset(self) -> usize {
        Prop::ALL
            .iter()
            .take_while(|&&p| p != self)
            .map(|p| p.name().len() + 1)
            .sum()
    }

    fn strings_len() -> usize {
        Prop::ALL.iter().map(|p| p.name().len() + 1).sum()
    }
}

/// Writes an FDT into `buf`; see the module documentation.
pub(super) struct FdtWriter<'b> {
    buf: &'b mut [u8],
    /// Bytes written so far, counting those that did not fit.
    len: usize,
}

impl<'b> FdtWriter<'b> {
    /// Starts a tree: room for the header, then the empty reservation block.
    pub(super) fn new(buf: &'b mut [u8]) -> Self {
        let mut w = FdtWriter { buf, len: 0 };
        w.bytes(&[0; HEADER_LEN]);
        w.bytes(&[0; RSVMAP_LEN]);
        w
    }

    fn bytes(&mut self, data: &[u8]) {
        let start = self.len.min(self.buf.len());
        let end = self.len.saturating_add(data.len()).min(self.buf.len());
        if let (Some(dst), Some(src)) = (self.buf.get_mut(start..end), data.get(..end - start)) {
            dst.copy_from_slice(src);
        }
        self.len = self.len.saturating_add(data.len());
    }

    fn word(&mut self, value: u32) {
        self.bytes(&value.to_be_bytes());
    }

    fn pad4(&mut self) {
        let pad = (4 - self.len % 4) % 4;
        self.bytes(&[0; 3][..pad]);
    }

    /// Opens a node named `name` (no unit address).
    pub(super) fn begin_node(&mut self, name: &str) {
        self.word(TOKEN_BEGIN_NODE);
        self.bytes(name.as_bytes());
        self.bytes(&[0]);
        self.pad4();
    }

    /// Opens a node named `name@<unit address in lowercase hex>`.
    pub(super) fn begin_node_at(&mut self, name: &str, unit_address: u64) {
        self.word(TOKEN_BEGIN_NODE);
        self.bytes(name.as_bytes());
        self.bytes(b"@");
        self.hex(unit_address);
        self.bytes(&[0]);
        self.pad4();
    }

    fn hex(&mut self, value: u64) {
        let mut digits = [0u8; 16];
        let mut n = value;
        let mut count = 0;
        loop {
            let nibble = (n & 0xf) as usize;
            digits[15 - count] = b"0123456789abcdef"[nibble];
            count += 1;
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        self.bytes(&digits[16 - count..]);
    }

    pub(super) fn end_node(&mut self) {
        self.word(TOKEN_END_NODE);
    }

    fn prop_header(&mut self, prop: Prop, value_len: usize) {
        self.word(TOKEN_PROP);
        self.word(u32::try_from(value_len).unwrap_or(u32::MAX));
        self.word(u32::try_from(prop.offset()).unwrap_or(u32::MAX));
    }

    /// A property with no value (`interrupt-controller;`).
    pub(super) fn prop_empty(&mut self, prop: Prop) {
        self.prop_header(prop, 0);
    }

    /// A property of 32-bit cells.
    pub(super) fn prop_cells(&mut self, prop: Prop, cells: &[u32]) {
        self.prop_header(prop, cells.len() * 4);
        for &cell in cells {
            self.word(cell);
        }
    }

    /// A property of 64-bit numbers, each written as two cells.
    pub(super) fn prop_u64s(&mut self, prop: Prop, values: &[u64]) {
        self.prop_header(prop, values.len() * 8);
        for &value in values {
            self.bytes(&value.to_be_bytes());
        }
    }

    /// One NUL-terminated string made of `parts` (`"mica," + name`).
    pub(super) fn prop_string(&mut self, prop: Prop, parts: &[&str]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.prop_header(prop, len + 1);
        for part in parts {
            self.bytes(part.as_bytes());
        }
        self.bytes(&[0]);
        self.pad4();
    }

    /// A string list: each string NUL-terminated (`compatible`).
    pub(super) fn prop_strings(&mut self, prop: Prop, strings: &[&str]) {
        let len: usize = strings.iter().map(|s| s.len() + 1).sum();
        self.prop_header(prop, len);
        for string in strings {
            self.bytes(string.as_bytes());
            self.bytes(&[0]);
        }
        self.pad4();
    }

    /// A property of cells produced one at a time (`interrupts-extended`),
    /// `count` of them.
    pub(super) fn prop_cells_iter(
        &mut self,
        prop: Prop,
        count: usize,
        cells: impl Iterator<Item = u32>,
    ) {
        self.prop_header(prop, count * 4);
        for cell in cells.take(count) {
            self.word(cell);
        }
    }

    /// Ends the structure block, appends the strings block and fills in the
    /// header. Returns the tree's total size, or the size it needs when `buf`
    /// is too small (`Err(needed)`).
    pub(super) fn finish(mut self) -> Result<usize, usize> {
        self.word(TOKEN_END);
        let struct_start = HEADER_LEN + RSVMAP_LEN;
        let struct_len = self.len - struct_start;
        let strings_start = self.len;
        for prop in Prop::ALL {
            self.bytes(prop.name().as_bytes());
            self.bytes(&[0]);
        }
        let total = self.len;
        if total > self.buf.len() {
            return Err(total);
        }
        let header = [
            MAGIC as usize,
            total,
            struct_start,
            strings_start,
            HEADER_LEN,
            VERSION as usize,
            LAST_COMPATIBLE_VERSION as usize,
            0, // boot_cpuid_phys
            Prop::strings_len(),
            struct_len,
        ];
        self.len = 0;
        for field in header {
            let field = u32::try_from(field).map_err(|_| usize::MAX)?;
            self.word(field);
        }
        Ok(total)
    }
}
