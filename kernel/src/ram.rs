//! Which physical addresses are RAM. Before the kernel touches a task's or a
//! guest's memory through an address it translated (a task's page tables, a
//! VM's G-stage tables), it checks that the whole range lies in RAM the
//! frame allocator manages: a device window that a task mapped (MMIO, where
//! a read can have side effects, or is not in the kernel's map at all) is
//! refused, never touched.

use mica_boot::{MAX_MEMORY_RANGES, MemRange, RangeList};

use crate::frame::FRAME_SIZE;

/// The machine's RAM as the kernel may touch it: the ranges the boot info
/// names, cut to whole frames inside the span the frame allocator manages
/// (which the kernel's identity map covers).
#[derive(Debug, Clone, Copy, Default)]
pub struct RamMap {
    ranges: RangeList<MAX_MEMORY_RANGES>,
}

impl RamMap {
    /// No RAM at all: every range is refused.
    pub const fn new() -> Self {
        RamMap {
            ranges: RangeList::new(),
        }
    }

    /// The whole frames of `ram` inside `managed`; a range outside it, less
    /// than a frame, or past [`MAX_MEMORY_RANGES`] (the boot info keeps no
    /// more) is left out: refused, the safe side.
    pub fn from_ranges(ram: &[MemRange], managed: MemRange) -> Self {
        let mut ranges = RangeList::new();
        for r in ram {
            let start =
                r.start.max(managed.start).saturating_add(FRAME_SIZE - 1) & !(FRAME_SIZE - 1);
            let end = r.end().min(managed.end()) & !(FRAME_SIZE - 1);
            if start < end {
                // Full: the rest is refused.
                let _ = ranges.push(MemRange::new(start, end - start));
            }
        }
        RamMap { ranges }
    }

    /// Whether every byte of `[start, start + len)` is RAM (ranges that
    /// touch count as one). An empty range, or one that wraps, is not.
    pub fn contains(&self, start: u64, len: u64) -> bool {
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        if len == 0 {
            return false;
        }
        let mut at = start;
        while at < end {
            let Some(r) = self
                .ranges
                .as_slice()
                .iter()
                .find(|r| r.start <= at && at < r.end())
            else {
                return false;
            };
            at = r.end();
        }
        true
    }
}

/// Whether `[start, start + len)` lies wholly inside `outer` (a VM's own
/// RAM, where a G-stage or nested translation must land). An empty range,
/// or one that wraps, does not.
pub fn lies_in(outer: MemRange, start: u64, len: u64) -> bool {
    start
        .checked_add(len)
        .is_some_and(|end| len > 0 && outer.start <= start && end <= outer.end())
}

/// The running machine's RAM, set once at boot.
static RAM: spin::Once<RamMap> = spin::Once::new();

/// Records the machine's RAM (boot, after the frame allocator is set up);
/// a second call changes nothing.
pub fn set(map: RamMap) {
    RAM.call_once(|| map);
}

/// Whether the kernel may touch `[pa, pa + len)` as RAM; before [`set`],
/// nothing is.
pub fn is_ram(pa: u64, len: u64) -> bool {
    RAM.get().is_some_and(|map| map.contains(pa, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU virt's 256 MiB, and a span the allocator manages over it.
    const VIRT_RAM: MemRange = MemRange::new(0x8000_0000, 256 << 20);

    fn virt() -> RamMap {
        RamMap::from_ranges(&[VIRT_RAM], VIRT_RAM)
    }

    #[test]
    fn a_range_inside_ram_is_ram_up_to_its_last_byte() {
        let m = virt();
        assert!(m.contains(0x8000_0000, 1));
        assert!(m.contains(0x8010_0ff0, 16));
        assert!(m.contains(VIRT_RAM.end() - 4096, 4096));
        assert!(!m.contains(VIRT_RAM.end() - 4096, 4097), "one byte past");
        assert!(!m.contains(VIRT_RAM.end(), 1));
        assert!(!m.contains(0x7fff_ffff, 2), "one byte before");
    }

    #[test]
    fn a_virtio_window_or_the_uart_is_not_ram() {
        let m = virt();
        assert!(!m.contains(0x1000_1000, 8), "virtio-mmio window 0");
        assert!(!m.contains(0x1000_0000, 1), "16550 UART");
        assert!(!m.contains(0x0c00_0000, 4), "PLIC");
    }

    #[test]
    fn empty_and_wrapping_ranges_are_refused() {
        let m = virt();
        assert!(!m.contains(0x8000_0000, 0));
        assert!(!m.contains(u64::MAX - 1, 4));
        assert!(!RamMap::new().contains(0x8000_0000, 1), "no RAM known");
    }

    #[test]
    fn a_hole_between_two_ranges_is_not_ram_and_touching_ranges_join() {
        // x86's low memory, the VGA/BIOS hole, then RAM from 1 MiB split
        // in two touching pieces.
        let ram = [
            MemRange::new(0, 0x9_fc00),
            MemRange::new(0x10_0000, 0x10_0000),
            MemRange::new(0x20_0000, 0x100_0000),
        ];
        let m = RamMap::from_ranges(&ram, MemRange::new(0, 0x120_0000));
        assert!(m.contains(0x9_e000, 0x1000));
        assert!(
            !m.contains(0x9_f000, 0x10),
            "the partial last frame of low memory"
        );
        assert!(!m.contains(0xb_8000, 2), "VGA text memory");
        assert!(m.contains(0x1f_fff0, 0x20), "across the join");
        assert!(!m.contains(0x0f_fff0, 0x20), "from the hole into RAM");
    }

    #[test]
    fn ram_outside_what_the_allocator_manages_is_left_out() {
        let managed = MemRange::new(0x8000_0000, 64 << 20);
        let m = RamMap::from_ranges(&[VIRT_RAM], managed);
        assert!(m.contains(managed.end() - 1, 1));
        assert!(!m.contains(managed.end(), 1));
    }

    #[test]
    fn a_translation_lies_in_its_vm_only_inside_that_vm_s_ram() {
        let vm = MemRange::new(0x9000_0000, 2 << 20);
        assert!(lies_in(vm, 0x9000_0000, 4096));
        assert!(lies_in(vm, vm.end() - 8, 8));
        assert!(!lies_in(vm, vm.end() - 8, 9), "past its end");
        assert!(!lies_in(vm, 0x8fff_fff8, 16), "from below");
        assert!(!lies_in(vm, vm.end(), 4096), "the next VM's RAM");
        assert!(!lies_in(vm, 0x9000_0000, 0));
        assert!(!lies_in(vm, u64::MAX, 2));
    }

    #[test]
    fn ranges_past_what_the_boot_info_keeps_are_refused() {
        let ram: std::vec::Vec<MemRange> = (0..=MAX_MEMORY_RANGES as u64)
            .map(|i| MemRange::new(i * 0x2000, 0x1000))
            .collect();
        let m = RamMap::from_ranges(&ram, MemRange::new(0, 0x100_0000));
        let last = (MAX_MEMORY_RANGES as u64 - 1) * 0x2000;
        assert!(m.contains(last, 0x1000));
        assert!(!m.contains(last + 0x2000, 1));
    }
}
