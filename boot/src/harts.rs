//! [`HartList`]: the harts the device tree names by id (each enabled
//! `/cpus/cpu@N` node's `reg`), and whether each can run Mica's kernel
//! (an S-mode MMU with Sv39), so the kernel knows which harts to start.

/// Most harts a [`HartList`] names; further enabled cpus are only counted.
pub const MAX_LISTED_HARTS: usize = 32;

/// One enabled cpu node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hart {
    /// Its `reg`: the hart id SBI calls name it by.
    pub id: u64,
    /// Whether its `mmu-type` is `riscv,sv39`, `riscv,sv48` or
    /// `riscv,sv57` (each of which has the Sv39 the kernel pages with);
    /// false for `riscv,none`, `riscv,sv32` or no `mmu-type` at all.
    pub smode_mmu: bool,
}

impl Hart {
    const NONE: Hart = Hart {
        id: 0,
        smode_mmu: false,
    };
}

/// Whether a cpu node's `mmu-type` string names an MMU with Sv39.
pub fn mmu_type_has_sv39(mmu_type: &str) -> bool {
    matches!(mmu_type, "riscv,sv39" | "riscv,sv48" | "riscv,sv57")
}

/// The enabled harts in device-tree order, at most [`MAX_LISTED_HARTS`].
#[derive(Debug, Clone, Copy)]
pub struct HartList {
    harts: [Hart; MAX_LISTED_HARTS],
    len: usize,
    unlisted: usize,
}

impl HartList {
    /// An empty list.
    pub const fn new() -> Self {
        HartList {
            harts: [Hart::NONE; MAX_LISTED_HARTS],
            len: 0,
            unlisted: 0,
        }
    }

    /// Appends `hart`; past [`MAX_LISTED_HARTS`] it is only counted.
    pub fn push(&mut self, hart: Hart) {
        match self.harts.get_mut(self.len) {
            Some(slot) => {
                *slot = hart;
                self.len += 1;
            }
            None => self.unlisted += 1,
        }
    }

    /// Counts an enabled cpu the list cannot name (no readable `reg`).
    pub fn count_unlisted(&mut self) {
        self.unlisted += 1;
    }

    /// The listed harts.
    pub fn as_slice(&self) -> &[Hart] {
        self.harts.get(..self.len).unwrap_or_default()
    }

    /// Enabled cpus not in the list: past [`MAX_LISTED_HARTS`] or without
    /// a readable hart id.
    pub fn unlisted(&self) -> usize {
        self.unlisted
    }
}

impl Default for HartList {
    fn default() -> Self {
        HartList::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_bound_harts_are_counted_not_listed() {
        let mut list = HartList::new();
        for id in 0..(MAX_LISTED_HARTS as u64 + 3) {
            list.push(Hart {
                id,
                smode_mmu: true,
            });
        }
        list.count_unlisted();
        assert_eq!(list.as_slice().len(), MAX_LISTED_HARTS);
        assert_eq!(list.as_slice().last().map(|h| h.id), Some(31));
        assert_eq!(list.unlisted(), 4);
    }

    #[test]
    fn only_mmus_with_sv39_count() {
        assert!(mmu_type_has_sv39("riscv,sv39"));
        assert!(mmu_type_has_sv39("riscv,sv48"));
        assert!(mmu_type_has_sv39("riscv,sv57"));
        assert!(!mmu_type_has_sv39("riscv,sv32"));
        assert!(!mmu_type_has_sv39("riscv,none"));
        assert!(!mmu_type_has_sv39(""));
    }
}
