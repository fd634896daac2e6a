//! The vCPUs of one guest VM, for either architecture: the one a run
//! selected, kept in place so that the run's hot paths reach it as a plain
//! field; the others, parked in no particular order; and which of them a
//! sibling woke since the host last heard. The arch layer's vCPU type
//! gives its number and counters through [`SetVcpu`].

extern crate alloc;

use alloc::vec::Vec;

use super::stats::VcpuStats;

/// What a [`VcpuSet`] needs of an architecture's vCPU.
pub trait SetVcpu {
    /// Its number in the VM (0 is the one the VM starts).
    fn id(&self) -> usize;
    /// Its exits and I/O round trips since the VM started.
    fn stats(&self) -> &VcpuStats;
    /// The same, to count into.
    fn stats_mut(&mut self) -> &mut VcpuStats;
    /// The CPU whose run of it is under way, if any.
    fn on_cpu(&self) -> Option<u8>;
}

/// Implements [`SetVcpu`] for `$vcpu`, an architecture's vCPU type with
/// the fields `id: u8`, `stats: VcpuStats` and `on_cpu: Option<u8>`.
#[cfg_attr(
    not(target_os = "none"),
    allow(
        unused_macros,
        reason = "the arch code that uses it is built for Mica only"
    )
)]
macro_rules! set_vcpu_from_fields {
    ($vcpu:ty) => {
        impl $crate::vm::vcpu_set::SetVcpu for $vcpu {
            fn id(&self) -> usize {
                self.id.into()
            }
            fn stats(&self) -> &$crate::vm::stats::VcpuStats {
                &self.stats
            }
            fn stats_mut(&mut self) -> &mut $crate::vm::stats::VcpuStats {
                &mut self.stats
            }
            fn on_cpu(&self) -> Option<u8> {
                self.on_cpu
            }
        }
    };
}
#[cfg_attr(
    not(target_os = "none"),
    allow(
        unused_imports,
        reason = "the arch code that uses it is built for Mica only"
    )
)]
pub(crate) use set_vcpu_from_fields;

/// A VM's vCPUs: the selected one ([`VcpuSet::cur`]) and the parked ones.
pub struct VcpuSet<V> {
    /// The vCPU that ran last, or is about to run ([`VcpuSet::select`]).
    pub cur: V,
    /// The VM's other vCPUs, in no particular order.
    parked: Vec<V>,
    /// vCPUs (bit `n` = vCPU `n`) a sibling started or sent an interrupt
    /// since the host last heard ([`VcpuSet::take_wakeups`]).
    wakeups: u64,
}

impl<V: SetVcpu> VcpuSet<V> {
    /// The set of `cur` (selected) and `parked`, none woken.
    pub fn new(cur: V, parked: Vec<V>) -> Self {
        VcpuSet {
            cur,
            parked,
            wakeups: 0,
        }
    }

    /// How many vCPUs the VM has.
    pub fn count(&self) -> usize {
        1 + self.parked.len()
    }

    /// Makes vCPU `id` the one in [`VcpuSet::cur`] (the one it held is
    /// parked); false, with nothing changed, if the VM has no such vCPU.
    #[inline]
    pub fn select(&mut self, id: usize) -> bool {
        if self.cur.id() == id {
            return true;
        }
        self.select_parked(id)
    }

    #[inline(never)]
    fn select_parked(&mut self, id: usize) -> bool {
        match self.parked.iter().position(|v| v.id() == id) {
            Some(index) => {
                core::mem::swap(&mut self.cur, &mut self.parked[index]);
                true
            }
            None => false,
        }
    }

    /// vCPU `id`, wherever it is kept.
    pub fn get_mut(&mut self, id: usize) -> Option<&mut V> {
        if self.cur.id() == id {
            Some(&mut self.cur)
        } else {
            self.parked.iter_mut().find(|v| v.id() == id)
        }
    }

    /// Every vCPU of the VM.
    pub fn iter(&self) -> impl Iterator<Item = &V> {
        core::iter::once(&self.cur).chain(self.parked.iter())
    }

    /// Every vCPU of the VM, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut V> {
        core::iter::once(&mut self.cur).chain(self.parked.iter_mut())
    }

    /// The vCPUs whose runs are under way on a CPU other than `me`, each
    /// with that CPU.
    pub fn running_elsewhere(&self, me: usize) -> impl Iterator<Item = (usize, &V)> {
        self.iter().filter_map(move |v| {
            let cpu = usize::from(v.on_cpu()?);
            (cpu != me).then_some((cpu, v))
        })
    }

    /// Every vCPU but the selected one, to change.
    pub fn parked_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.parked.iter_mut()
    }

    /// Every vCPU's counters (for [`super::stats::VmStats::figures`]).
    pub fn all_stats(&self) -> impl Iterator<Item = &VcpuStats> {
        self.iter().map(SetVcpu::stats)
    }

    /// vCPU `id`'s counters; `None` for a vCPU the VM lacks.
    pub fn stats(&self, id: usize) -> Option<VcpuStats> {
        self.iter().find(|v| v.id() == id).map(|v| *v.stats())
    }

    /// The selected vCPU made its slot PENDING at `now` (timer ticks): its
    /// round trip starts.
    #[inline]
    pub fn io_exit_at(&mut self, now: u64) {
        self.cur.stats_mut().io_exit(now);
    }

    /// The vCPUs in `mask` (bit `n` = vCPU `n`) were started or sent an
    /// interrupt by a sibling: the host is to let them run.
    #[inline]
    pub fn wake(&mut self, mask: u64) {
        self.wakeups |= mask;
    }

    /// No vCPU is woken any more (its VM starts again or is reset).
    pub fn clear_wakeups(&mut self) {
        self.wakeups = 0;
    }

    /// The vCPUs woken ([`VcpuSet::wake`]) since the last call.
    #[inline]
    pub fn take_wakeups(&mut self) -> u64 {
        core::mem::take(&mut self.wakeups)
    }
}

#[cfg(test)]
#[path = "vcpu_set_tests.rs"]
mod tests;
