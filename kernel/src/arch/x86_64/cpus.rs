//! Which x86 CPUs the kernel brings up, and which are online: the pure part
//! of application-processor bring-up (`smp.rs` sends the IPIs), tested on
//! the host.
//!
//! CPUs are numbered by [`numbering`]: the boot CPU is CPU 0, the other
//! enabled processors of the ACPI MADT follow in table order, known by
//! their local APIC id. A started CPU announces itself in [`CpuSet`] once
//! it runs on the kernel's page table with its GDT, TSS and the IDT loaded,
//! then parks until [`CpuSet::release`], once the kernel's tasks are
//! loaded; then the CPUs [`scheduling_cpus`] counts enter the scheduler.

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

pub use mica_boot::acpi::MAX_CPUS;

/// Highest local APIC id an xAPIC's ICR can name (8-bit destination).
pub const MAX_XAPIC_ID: u32 = 0xff;

/// The kernel's CPUs by number, as local APIC ids: the boot CPU first,
/// then `listed` (the MADT's enabled processors) without it, the first
/// [`MAX_CPUS`] in all. Returns the ids and how many are used.
pub fn numbering(boot: u32, listed: &[u32]) -> ([u32; MAX_CPUS], usize) {
    let mut ids = [0; MAX_CPUS];
    ids[0] = boot;
    let mut len = 1;
    for &id in listed.iter().filter(|&&id| id != boot) {
        if len == MAX_CPUS {
            break;
        }
        ids[len] = id;
        len += 1;
    }
    (ids, len)
}

/// The CPUs by number (their local APIC ids), which are online, and the
/// flag that releases the parked ones.
pub struct CpuSet {
    apic_ids: [AtomicU32; MAX_CPUS],
    len: AtomicUsize,
    online: crate::online::Online<MAX_CPUS>,
}

impl core::ops::Deref for CpuSet {
    type Target = crate::online::Online<MAX_CPUS>;

    /// Which CPUs are online, and the release flag.
    fn deref(&self) -> &Self::Target {
        &self.online
    }
}

impl CpuSet {
    /// No CPU known.
    pub const fn new() -> Self {
        CpuSet {
            apic_ids: [const { AtomicU32::new(0) }; MAX_CPUS],
            len: AtomicUsize::new(0),
            online: crate::online::Online::new(),
        }
    }

    /// Numbers the CPUs: CPU n has local APIC id `ids[n]` (the first
    /// [`MAX_CPUS`]). Called by the boot CPU before it starts any other.
    pub fn number(&self, ids: &[u32]) {
        let ids = &ids[..ids.len().min(MAX_CPUS)];
        for (slot, &id) in self.apic_ids.iter().zip(ids) {
            slot.store(id, Ordering::Relaxed);
        }
        self.len.store(ids.len(), Ordering::Release);
    }

    /// The number of the CPU whose local APIC id is `apic_id`.
    pub fn index_of(&self, apic_id: u32) -> Option<usize> {
        let len = self.len.load(Ordering::Acquire);
        self.apic_ids[..len]
            .iter()
            .position(|id| id.load(Ordering::Relaxed) == apic_id)
    }

    /// CPU `cpu`'s local APIC id.
    pub fn apic_id(&self, cpu: usize) -> Option<u32> {
        (cpu < self.len.load(Ordering::Acquire)).then(|| self.apic_ids[cpu].load(Ordering::Relaxed))
    }
}

impl Default for CpuSet {
    fn default() -> Self {
        CpuSet::new()
    }
}

/// The kernel's CPUs.
pub static CPUS: CpuSet = CpuSet::new();

/// The boot log's summary: `online` CPUs, the boot CPU included, of
/// which the first `scheduling` run the services and vCPUs (all of them
/// under SVM; under VMX only CPU 0, see [`scheduling_cpus`]).
pub struct Summary {
    /// CPUs online, the boot CPU included.
    pub online: usize,
    /// CPUs that run vCPUs.
    pub scheduling: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.online, self.scheduling) {
            (0 | 1, _) => write!(f, "1 CPU online (CPU 0 runs the services and the vCPUs)"),
            (n, s) if s >= n => write!(f, "{n} CPUs online (all {n} run the services and vCPUs)"),
            (n, 0 | 1) => write!(
                f,
                "{n} CPUs online (CPU 0 runs the services and every vCPU: a VMCS stays on the CPU that loaded it; {} idle)",
                n - 1
            ),
            (n, s) => write!(
                f,
                "{n} CPUs online (CPUs 0-{} run the services and vCPUs, the rest idle)",
                s - 1
            ),
        }
    }
}

/// How many CPUs schedule vCPUs: the online ones numbered without a gap
/// from CPU 0 (the scheduler counts CPUs `0..n`; one that did not come up
/// leaves those after it idle), and under VMX only the boot CPU (a VMCS
/// is loaded on one CPU at a time, and moving it needs a VMCLEAR there
/// and new host state: not done).
pub fn scheduling_cpus(online: &[bool], svm: bool) -> usize {
    let gapless = online.iter().take_while(|&&on| on).count().max(1);
    if svm { gapless } else { 1 }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::ToString;

    use super::*;

    #[test]
    fn the_boot_cpu_is_cpu_0_whatever_its_apic_id() {
        let (ids, len) = numbering(2, &[0, 1, 2, 3]);
        assert_eq!(&ids[..len], &[2, 0, 1, 3]);
        let (ids, len) = numbering(0, &[0, 1, 2, 3]);
        assert_eq!(&ids[..len], &[0, 1, 2, 3]);
        // Without a MADT, or a MADT that misses the boot CPU.
        let (ids, len) = numbering(5, &[]);
        assert_eq!(&ids[..len], &[5]);
        let (ids, len) = numbering(5, &[0, 1]);
        assert_eq!(&ids[..len], &[5, 0, 1]);
    }

    #[test]
    fn numbering_stops_at_max_cpus() {
        let listed: std::vec::Vec<u32> = (0..12).collect();
        let (ids, len) = numbering(9, &listed);
        assert_eq!(len, MAX_CPUS);
        assert_eq!(&ids[..len], &[9, 0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn cpus_are_found_by_apic_id_and_count_once_they_announce() {
        let cpus = CpuSet::new();
        assert_eq!(cpus.index_of(0), None);
        cpus.number(&[4, 0, 6]);
        assert_eq!(cpus.index_of(6), Some(2));
        assert_eq!(cpus.index_of(1), None);
        assert_eq!(cpus.apic_id(0), Some(4));
        assert_eq!(cpus.apic_id(3), None);
        assert_eq!(cpus.online_count(), 0);
        cpus.announce(0);
        cpus.announce(2);
        cpus.announce(2);
        cpus.announce(MAX_CPUS);
        assert_eq!(cpus.online_count(), 2);
        assert!(cpus.is_online(2));
        assert!(!cpus.is_online(1));
        assert!(!cpus.released());
        cpus.release();
        assert!(cpus.released());
    }

    #[test]
    fn the_summary_reads_like_the_riscv_one() {
        let line = |online, scheduling| Summary { online, scheduling }.to_string();
        assert_eq!(
            line(4, 4),
            "4 CPUs online (all 4 run the services and vCPUs)"
        );
        assert_eq!(
            line(1, 1),
            "1 CPU online (CPU 0 runs the services and the vCPUs)"
        );
        assert_eq!(
            line(4, 1),
            "4 CPUs online (CPU 0 runs the services and every vCPU: a VMCS stays on the CPU that loaded it; 3 idle)"
        );
        assert_eq!(
            line(4, 2),
            "4 CPUs online (CPUs 0-1 run the services and vCPUs, the rest idle)"
        );
    }

    #[test]
    fn cpus_schedule_up_to_the_first_gap_and_only_cpu_0_under_vmx() {
        assert_eq!(scheduling_cpus(&[true, true, true, true], true), 4);
        assert_eq!(scheduling_cpus(&[true, true, false, true], true), 2);
        assert_eq!(scheduling_cpus(&[false; 4], true), 1);
        assert_eq!(scheduling_cpus(&[true, true, true, true], false), 1);
    }
}
