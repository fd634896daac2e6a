//! A small ELF64 reader for loading service tasks: it checks the header and
//! every `PT_LOAD` segment against the file's bounds and the user address
//! range before the kernel copies a byte. Task images are embedded in the
//! kernel today, but they are read as untrusted bytes all the same.

/// `e_machine` of RISC-V.
pub const EM_RISCV: u16 = 243;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// Segments a task image may have.
pub const MAX_SEGMENTS: usize = 8;

const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const PT_LOAD: u32 = 1;
const ET_EXEC: u16 = 2;
const PAGE: u64 = 4096;

/// Why an image cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than its headers say.
    Truncated,
    /// Not a 64-bit little-endian ELF (bad magic, class, data or version).
    NotElf64,
    /// Not a static executable for the expected machine.
    WrongKind,
    /// A segment's file range runs past the end of the file.
    SegmentOutsideFile,
    /// A segment lies (partly) outside user addresses, or overflows.
    SegmentOutsideUser,
    /// A segment's `p_filesz` exceeds its `p_memsz`.
    FileLargerThanMemory,
    /// A segment's address and file offset differ modulo the page size.
    Misaligned,
    /// Two segments share a page.
    Overlap,
    /// A segment is both writable and executable.
    WritableAndExecutable,
    /// More than [`MAX_SEGMENTS`] loadable segments, or none.
    SegmentCount,
    /// The entry point is not inside an executable segment.
    BadEntry,
}

/// One `PT_LOAD` segment, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// Virtual address of the first byte.
    pub vaddr: u64,
    /// Bytes in memory (the tail past `file_len` is zero).
    pub mem_len: u64,
    /// Offset of the segment's bytes in the file.
    pub file_offset: u64,
    /// Bytes copied from the file.
    pub file_len: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

impl Segment {
    /// First page-aligned address.
    pub fn page_start(&self) -> u64 {
        self.vaddr & !(PAGE - 1)
    }

    /// One past the last page.
    pub fn page_end(&self) -> u64 {
        (self.vaddr + self.mem_len).next_multiple_of(PAGE)
    }
}

/// A checked executable: its entry point and loadable segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfImage {
    /// Where the task starts.
    pub entry: u64,
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
}

impl ElfImage {
    /// The loadable segments, in file order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }
}

fn read<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    let end = at.checked_add(N).ok_or(ElfError::Truncated)?;
    let slice = bytes.get(at..end).ok_or(ElfError::Truncated)?;
    let mut out = [0; N];
    out.copy_from_slice(slice);
    Ok(out)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    read::<2>(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    read::<4>(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    read::<8>(b, at).map(u64::from_le_bytes)
}

/// Checks `bytes` as a static executable for `machine` whose segments all
/// lie below `user_top`.
pub fn parse(bytes: &[u8], machine: u16, user_top: u64) -> Result<ElfImage, ElfError> {
    let ident = read::<16>(bytes, 0)?;
    if ident[..4] != *b"\x7fELF" || ident[4] != 2 || ident[5] != 1 || ident[6] != 1 {
        return Err(ElfError::NotElf64);
    }
    if bytes.len() < EHDR_LEN {
        return Err(ElfError::Truncated);
    }
    if u16_at(bytes, 16)? != ET_EXEC || u16_at(bytes, 18)? != machine {
        return Err(ElfError::WrongKind);
    }
    let entry = u64_at(bytes, 24)?;
    let phoff = usize::try_from(u64_at(bytes, 32)?).map_err(|_| ElfError::Truncated)?;
    let phentsize = usize::from(u16_at(bytes, 54)?);
    let phnum = usize::from(u16_at(bytes, 56)?);
    if phentsize < PHDR_LEN {
        return Err(ElfError::NotElf64);
    }
    let mut image = ElfImage {
        entry,
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
    };
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ElfError::Truncated)?;
        if u32_at(bytes, at)? != PT_LOAD {
            continue;
        }
        let segment = check_segment(bytes, at, user_top)?;
        if image
            .segments()
            .iter()
            .any(|s| s.page_start() < segment.page_end() && segment.page_start() < s.page_end())
        {
            return Err(ElfError::Overlap);
        }
        let slot = image
            .segments
            .get_mut(image.count)
            .ok_or(ElfError::SegmentCount)?;
        *slot = segment;
        image.count += 1;
    }
    if image.count == 0 {
        return Err(ElfError::SegmentCount);
    }
    if !image
        .segments()
        .iter()
        .any(|s| s.execute && s.vaddr <= entry && entry < s.vaddr + s.mem_len)
    {
        return Err(ElfError::BadEntry);
    }
    Ok(image)
}

fn check_segment(bytes: &[u8], at: usize, user_top: u64) -> Result<Segment, ElfError> {
    let flags = u32_at(bytes, at + 4)?;
    let segment = Segment {
        file_offset: u64_at(bytes, at + 8)?,
        vaddr: u64_at(bytes, at + 16)?,
        file_len: u64_at(bytes, at + 32)?,
        mem_len: u64_at(bytes, at + 40)?,
        execute: flags & 1 != 0,
        write: flags & 2 != 0,
        read: flags & 4 != 0,
    };
    let file_end = segment
        .file_offset
        .checked_add(segment.file_len)
        .ok_or(ElfError::SegmentOutsideFile)?;
    if file_end > bytes.len() as u64 {
        return Err(ElfError::SegmentOutsideFile);
    }
    if segment.file_len > segment.mem_len {
        return Err(ElfError::FileLargerThanMemory);
    }
    let mem_end = segment
        .vaddr
        .checked_add(segment.mem_len)
        .ok_or(ElfError::SegmentOutsideUser)?;
    if segment.vaddr < PAGE || mem_end.checked_add(PAGE - 1).is_none_or(|e| e > user_top) {
        return Err(ElfError::SegmentOutsideUser);
    }
    if segment.vaddr % PAGE != segment.file_offset % PAGE {
        return Err(ElfError::Misaligned);
    }
    if segment.write && segment.execute {
        return Err(ElfError::WritableAndExecutable);
    }
    Ok(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: u64 = 1 << 38;

    /// An ELF with the given (flags, offset, vaddr, filesz, memsz) segments.
    fn elf(entry: u64, segments: &[(u32, u64, u64, u64, u64)], file_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; file_len.max(64 + 56 * segments.len())];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4..7].copy_from_slice(&[2, 1, 1]);
        b[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        b[18..20].copy_from_slice(&EM_RISCV.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&u16::try_from(segments.len()).unwrap().to_le_bytes());
        for (i, &(flags, off, vaddr, filesz, memsz)) in segments.iter().enumerate() {
            let p = 64 + 56 * i;
            b[p..p + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            b[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
            b[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            b[p + 16..p + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
            b[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        b
    }

    const RX: u32 = 5;
    const RW: u32 = 6;

    #[test]
    fn a_text_and_bss_image_loads() {
        let b = elf(
            0x1_0010,
            &[
                (RX, 0x1000, 0x1_0000, 0x100, 0x100),
                (RW, 0x2000, 0x2_0000, 0x10, 0x3000),
            ],
            0x2010,
        );
        let image = parse(&b, EM_RISCV, TOP).unwrap();
        assert_eq!(image.entry, 0x1_0010);
        assert_eq!(image.segments().len(), 2);
        let bss = image.segments()[1];
        assert!(bss.write && !bss.execute && bss.mem_len > bss.file_len);
        assert_eq!((bss.page_start(), bss.page_end()), (0x2_0000, 0x2_3000));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = elf(0x1_0000, &[(RX, 0x1000, 0x1_0000, 0x100, 0x100)], 0x1100);
        for len in 0..b.len() {
            assert!(
                parse(&b[..len], EM_RISCV, TOP).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
    }

    #[test]
    fn headers_for_other_machines_or_formats_are_refused() {
        let b = elf(0x1_0000, &[(RX, 0x1000, 0x1_0000, 0x100, 0x100)], 0x1100);
        assert_eq!(parse(&b, EM_X86_64, TOP), Err(ElfError::WrongKind));
        let mut big_endian = b.clone();
        big_endian[5] = 2;
        assert_eq!(parse(&big_endian, EM_RISCV, TOP), Err(ElfError::NotElf64));
    }

    #[test]
    fn segments_are_checked_against_file_and_user_space() {
        let one = |seg, len| parse(&elf(0x1_0000, &[seg], len), EM_RISCV, TOP);
        assert_eq!(
            one((RX, 0x1000, 0x1_0000, 0x200, 0x200), 0x1100),
            Err(ElfError::SegmentOutsideFile)
        );
        assert_eq!(
            one((RX, u64::MAX, 0x1_0000, 2, 2), 0x1100),
            Err(ElfError::SegmentOutsideFile)
        );
        assert_eq!(
            one((RX, 0x1000, 0x1_0000, 0x100, 0x10), 0x1100),
            Err(ElfError::FileLargerThanMemory)
        );
        assert_eq!(
            one((RX, 0x1000, TOP - 0x1000, 0x100, 0x2000), 0x1100),
            Err(ElfError::SegmentOutsideUser)
        );
        assert_eq!(
            one((RX, 0x1000, u64::MAX - 0xff, 0x100, 0x100), 0x1100),
            Err(ElfError::SegmentOutsideUser)
        );
        assert_eq!(
            one((RX, 0x1000, 0, 0x100, 0x100), 0x1100),
            Err(ElfError::SegmentOutsideUser)
        );
        assert_eq!(
            one((RX, 0x1004, 0x1_0000, 0x10, 0x10), 0x1100),
            Err(ElfError::Misaligned)
        );
        assert_eq!(
            one((RX | 2, 0x1000, 0x1_0000, 0x100, 0x100), 0x1100),
            Err(ElfError::WritableAndExecutable)
        );
    }

    #[test]
    fn overlaps_and_bad_entries_are_refused() {
        let two = [
            (RX, 0x1000, 0x1_0000, 0x100, 0x100),
            (RW, 0x2800, 0x1_0800, 0x10, 0x10),
        ];
        assert_eq!(
            parse(&elf(0x1_0000, &two, 0x2900), EM_RISCV, TOP),
            Err(ElfError::Overlap)
        );
        let data_only = [(RW, 0x1000, 0x1_0000, 0x100, 0x100)];
        assert_eq!(
            parse(&elf(0x1_0000, &data_only, 0x1100), EM_RISCV, TOP),
            Err(ElfError::BadEntry)
        );
        let text = [(RX, 0x1000, 0x1_0000, 0x100, 0x100)];
        assert_eq!(
            parse(&elf(0x1_0100, &text, 0x1100), EM_RISCV, TOP),
            Err(ElfError::BadEntry)
        );
        assert_eq!(
            parse(&elf(0x1_0000, &[], 0x100), EM_RISCV, TOP),
            Err(ElfError::SegmentCount)
        );
    }
}
