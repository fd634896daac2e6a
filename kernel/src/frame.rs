//! The physical frame allocator: a bitmap over one span of RAM, one bit per
//! 4 KiB frame (set = in use). Every frame starts in use; the boot code frees
//! the RAM the device tree names and then re-reserves what is taken (firmware,
//! kernel image, DTB, initrd).

use mica_boot::MemRange;

/// Bytes in one frame.
pub const FRAME_SIZE: u64 = 4096;

/// Why a frame operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// No run of free frames is long enough.
    OutOfFrames,
    /// The address is outside the span, or not frame-aligned.
    NotManaged(u64),
    /// The frame is already free: a double free.
    AlreadyFree(u64),
}

/// A bitmap allocator for at most `WORDS * 64` frames starting at `base`.
pub struct FrameAllocator<const WORDS: usize> {
    base: u64,
    frames: usize,
    used: [u64; WORDS],
    free: usize,
    hint: usize,
}

impl<const WORDS: usize> Default for FrameAllocator<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> FrameAllocator<WORDS> {
    /// Most frames this allocator can track.
    pub const CAPACITY: usize = WORDS * 64;

    /// An allocator that manages nothing yet (for a `static`).
    pub const fn new() -> Self {
        FrameAllocator {
            base: 0,
            frames: 0,
            used: [u64::MAX; WORDS],
            free: 0,
            hint: 0,
        }
    }

    /// Manages `span` (rounded inward to frames, cut to [`Self::CAPACITY`]),
    /// with every frame in use. Returns the bytes of the span that are managed.
    pub fn init(&mut self, span: MemRange) -> MemRange {
        let start = span.start.next_multiple_of(FRAME_SIZE);
        let end = span.end() & !(FRAME_SIZE - 1);
        let frames = usize::try_from(end.saturating_sub(start) / FRAME_SIZE).unwrap_or(usize::MAX);
        *self = Self::new();
        self.base = start;
        self.frames = frames.min(Self::CAPACITY);
        MemRange::new(start, self.frames as u64 * FRAME_SIZE)
    }

    /// Frames free now.
    pub fn free_frames(&self) -> usize {
        self.free
    }

    /// Frames managed in total.
    pub fn total_frames(&self) -> usize {
        self.frames
    }

    fn is_used(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, used: bool) {
        if self.is_used(i) == used {
            return;
        }
        if used {
            self.used[i / 64] |= 1 << (i % 64);
            self.free -= 1;
        } else {
            self.used[i / 64] &= !(1 << (i % 64));
            self.free += 1;
        }
    }

    /// Frame indices inside the span touched by `range`; `outward` rounds to
    /// every frame that shares a byte, otherwise only whole frames count.
    fn index_range(&self, range: MemRange, outward: bool) -> core::ops::Range<usize> {
        let span_end = self.base + self.frames as u64 * FRAME_SIZE;
        let (start, end) = if outward {
            (
                range.start & !(FRAME_SIZE - 1),
                range.end().saturating_add(FRAME_SIZE - 1) & !(FRAME_SIZE - 1),
            )
        } else {
            (
                range.start.saturating_add(FRAME_SIZE - 1) & !(FRAME_SIZE - 1),
                range.end() & !(FRAME_SIZE - 1),
            )
        };
        let start = start.clamp(self.base, span_end);
        let end = end.clamp(start, span_end);
        let index = |a: u64| usize::try_from((a - self.base) / FRAME_SIZE).unwrap_or(usize::MAX);
        index(start)..index(end)
    }

    /// Marks the whole frames inside `range` free (RAM from the device tree).
    pub fn add_free(&mut self, range: MemRange) {
        for i in self.index_range(range, false) {
            self.set(i, false);
        }
    }

    /// Marks every frame sharing a byte with `range` in use (never handed out).
    pub fn reserve(&mut self, range: MemRange) {
        for i in self.index_range(range, true) {
            self.set(i, true);
        }
    }

    /// One free frame, marked in use; its physical address.
    pub fn alloc(&mut self) -> Result<u64, FrameError> {
        self.alloc_contiguous(1, 1)
    }

    /// `count` contiguous free frames whose first frame's address is a
    /// multiple of `align_frames` frames (e.g. 4 for a 16 KiB-aligned
    /// Sv39x4 root table).
    pub fn alloc_contiguous(
        &mut self,
        count: usize,
        align_frames: usize,
    ) -> Result<u64, FrameError> {
        if count == 0 || count > self.free {
            return Err(FrameError::OutOfFrames);
        }
        let align = align_frames.max(1) as u64 * FRAME_SIZE;
        let mut tried_from_start = self.hint == 0;
        let mut candidate = self.hint;
        loop {
            let addr = (self.base + candidate as u64 * FRAME_SIZE).next_multiple_of(align);
            let first = usize::try_from((addr - self.base) / FRAME_SIZE).unwrap_or(usize::MAX);
            let end = first.saturating_add(count);
            if end > self.frames {
                if tried_from_start {
                    return Err(FrameError::OutOfFrames);
                }
                tried_from_start = true;
                candidate = 0;
                continue;
            }
            match (first..end).find(|&i| self.is_used(i)) {
                Some(busy) => candidate = busy + 1,
                None => {
                    for i in first..end {
                        self.set(i, true);
                    }
                    self.hint = end;
                    return Ok(addr);
                }
            }
        }
    }

    /// Returns the frame at `addr` to the pool.
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        let offset = addr
            .checked_sub(self.base)
            .ok_or(FrameError::NotManaged(addr))?;
        let index = usize::try_from(offset / FRAME_SIZE).unwrap_or(usize::MAX);
        if offset % FRAME_SIZE != 0 || index >= self.frames {
            return Err(FrameError::NotManaged(addr));
        }
        if !self.is_used(index) {
            return Err(FrameError::AlreadyFree(addr));
        }
        self.set(index, false);
        self.hint = self.hint.min(index);
        Ok(())
    }

    /// Returns the `count` frames from `start` (a run
    /// [`FrameAllocator::alloc_contiguous`] gave) to the pool. A frame of
    /// the run that is already free or not managed is passed over, as
    /// [`FrameAllocator::free`] refuses it: a teardown frees what it can.
    pub fn free_contiguous(&mut self, start: u64, count: usize) {
        for i in 0..count as u64 {
            let _ = self.free(start + i * FRAME_SIZE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: u64 = 0x8000_0000;

    fn allocator() -> FrameAllocator<4> {
        // 256 frames (1 MiB) of capacity; 64 frames of RAM.
        let mut a = FrameAllocator::<4>::new();
        a.init(MemRange::new(RAM, 64 * FRAME_SIZE));
        a.add_free(MemRange::new(RAM, 64 * FRAME_SIZE));
        a
    }

    #[test]
    fn hands_out_each_frame_once_then_runs_out() {
        let mut a = allocator();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let f = a.alloc().unwrap();
            assert!((RAM..RAM + 64 * FRAME_SIZE).contains(&f) && f.is_multiple_of(FRAME_SIZE));
            assert!(seen.insert(f), "frame {f:#x} handed out twice");
        }
        assert_eq!(a.alloc(), Err(FrameError::OutOfFrames));
        a.free(RAM + 5 * FRAME_SIZE).unwrap();
        assert_eq!(a.alloc(), Ok(RAM + 5 * FRAME_SIZE));
    }

    #[test]
    fn a_freed_run_can_be_handed_out_again_whole() {
        let mut a = allocator();
        let run = a.alloc_contiguous(64, 1).unwrap();
        assert_eq!(a.alloc(), Err(FrameError::OutOfFrames));
        // Frame 3 of the run was freed on its own already: passed over.
        a.free(run + 3 * FRAME_SIZE).unwrap();
        a.free_contiguous(run, 64);
        assert_eq!(a.free_frames(), 64);
        assert_eq!(a.alloc_contiguous(64, 1), Ok(run));
    }

    #[test]
    fn reserved_ranges_are_never_allocated() {
        let mut a = allocator();
        // A kernel image that ends mid-frame and a DTB of a few bytes.
        a.reserve(MemRange::new(RAM + 2 * FRAME_SIZE, FRAME_SIZE + 1));
        a.reserve(MemRange::new(RAM + 10 * FRAME_SIZE + 100, 8));
        assert_eq!(a.free_frames(), 61);
        let mut got = Vec::new();
        while let Ok(f) = a.alloc() {
            got.push((f - RAM) / FRAME_SIZE);
        }
        for busy in [2, 3, 10] {
            assert!(!got.contains(&busy), "reserved frame {busy} was allocated");
        }
        assert_eq!(got.len(), 61);
    }

    #[test]
    fn partial_ram_frames_are_not_freed() {
        let mut a = FrameAllocator::<4>::new();
        a.init(MemRange::new(RAM, 8 * FRAME_SIZE));
        a.add_free(MemRange::new(RAM + 10, 2 * FRAME_SIZE));
        assert_eq!(
            a.free_frames(),
            1,
            "only the one whole frame inside the range"
        );
        assert_eq!(a.alloc(), Ok(RAM + FRAME_SIZE));
    }

    #[test]
    fn contiguous_runs_respect_alignment_and_skip_holes() {
        let mut a = allocator();
        a.reserve(MemRange::new(RAM + 5 * FRAME_SIZE, 1));
        let run = a.alloc_contiguous(4, 4).unwrap();
        assert_eq!(run % (4 * FRAME_SIZE), 0);
        assert!(run >= RAM + 8 * FRAME_SIZE || run + 4 * FRAME_SIZE <= RAM + 5 * FRAME_SIZE);
        assert_eq!(a.free_frames(), 64 - 1 - 4);
        assert_eq!(a.alloc_contiguous(61, 1), Err(FrameError::OutOfFrames));
    }

    #[test]
    fn freeing_twice_or_foreign_addresses_is_an_error() {
        let mut a = allocator();
        let f = a.alloc().unwrap();
        a.free(f).unwrap();
        assert_eq!(a.free(f), Err(FrameError::AlreadyFree(f)));
        assert_eq!(
            a.free(RAM - FRAME_SIZE),
            Err(FrameError::NotManaged(RAM - FRAME_SIZE))
        );
        assert_eq!(a.free(RAM + 1), Err(FrameError::NotManaged(RAM + 1)));
        assert_eq!(
            a.free(RAM + 64 * FRAME_SIZE),
            Err(FrameError::NotManaged(RAM + 64 * FRAME_SIZE))
        );
    }

    #[test]
    fn span_larger_than_capacity_is_cut() {
        let mut a = FrameAllocator::<1>::new();
        let managed = a.init(MemRange::new(RAM, 1 << 30));
        assert_eq!(managed, MemRange::new(RAM, 64 * FRAME_SIZE));
        a.add_free(MemRange::new(RAM, 1 << 30));
        assert_eq!(a.free_frames(), 64);
    }
}
