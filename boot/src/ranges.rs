//! Physical address ranges and a fixed-capacity list of them (no allocator at
//! boot).

/// A physical address range `[start, start + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemRange {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
}

impl MemRange {
    /// A range of `size` bytes at `start`.
    pub const fn new(start: u64, size: u64) -> Self {
        MemRange { start, size }
    }

    /// One past the last byte, saturating at the top of the address space.
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }

    /// Whether the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &MemRange) -> bool {
        self.start < other.end() && other.start < self.end()
    }
}

/// The list is full: the device tree names more ranges than Mica keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFull;

/// Up to `N` ranges, in the order they were pushed.
#[derive(Debug, Clone, Copy)]
pub struct RangeList<const N: usize> {
    items: [MemRange; N],
    len: usize,
}

impl<const N: usize> Default for RangeList<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RangeList<N> {
    /// An empty list.
    pub const fn new() -> Self {
        RangeList {
            items: [MemRange::new(0, 0); N],
            len: 0,
        }
    }

    /// Appends `range`; empty ranges are dropped.
    pub fn push(&mut self, range: MemRange) -> Result<(), ListFull> {
        if range.size == 0 {
            return Ok(());
        }
        let slot = self.items.get_mut(self.len).ok_or(ListFull)?;
        *slot = range;
        self.len += 1;
        Ok(())
    }

    /// The ranges pushed so far.
    pub fn as_slice(&self) -> &[MemRange] {
        &self.items[..self.len]
    }

    /// Orders the ranges by start address (a device tree lists nodes in any
    /// order; an index into the list must not depend on it).
    pub fn sort_by_start(&mut self) {
        self.items[..self.len].sort_unstable_by_key(|r| r.start);
    }

    /// Sum of the sizes.
    pub fn total_size(&self) -> u64 {
        self.as_slice()
            .iter()
            .fold(0u64, |acc, r| acc.saturating_add(r.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_list_refuses_instead_of_dropping_silently() {
        let mut list = RangeList::<2>::new();
        list.push(MemRange::new(0, 1)).unwrap();
        list.push(MemRange::new(0, 0)).unwrap();
        list.push(MemRange::new(8, 8)).unwrap();
        assert_eq!(list.push(MemRange::new(16, 1)), Err(ListFull));
        assert_eq!(list.as_slice().len(), 2);
        assert_eq!(list.total_size(), 9);
    }

    #[test]
    fn sorting_orders_by_start() {
        let mut list = RangeList::<3>::new();
        list.push(MemRange::new(0x3000, 1)).unwrap();
        list.push(MemRange::new(0x1000, 2)).unwrap();
        list.push(MemRange::new(0x2000, 3)).unwrap();
        list.sort_by_start();
        let starts = list.as_slice().iter().map(|r| r.start);
        assert!(starts.eq([0x1000, 0x2000, 0x3000]));
    }

    #[test]
    fn overlap_is_half_open() {
        let a = MemRange::new(0x1000, 0x1000);
        assert!(a.overlaps(&MemRange::new(0x1fff, 1)));
        assert!(!a.overlaps(&MemRange::new(0x2000, 1)));
        assert_eq!(MemRange::new(u64::MAX, 10).end(), u64::MAX);
    }
}
