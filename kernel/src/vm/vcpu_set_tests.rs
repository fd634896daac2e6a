use super::*;

/// A vCPU with just a number and counters.
#[derive(Debug)]
struct TestVcpu {
    id: u8,
    stats: VcpuStats,
    on_cpu: Option<u8>,
}

set_vcpu_from_fields!(TestVcpu);

fn set_of(count: u8) -> VcpuSet<TestVcpu> {
    let vcpu = |id| TestVcpu {
        id,
        stats: VcpuStats::new(),
        on_cpu: None,
    };
    VcpuSet::new(vcpu(0), (1..count).map(vcpu).collect())
}

fn ids(set: &VcpuSet<TestVcpu>) -> Vec<u8> {
    let mut ids: Vec<u8> = set.iter().map(|v| v.id).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn select_swaps_a_parked_vcpu_in_and_keeps_every_vcpu() {
    let mut set = set_of(3);
    assert_eq!(set.count(), 3);
    assert!(set.select(2));
    assert_eq!(set.cur.id, 2);
    assert!(set.select(2), "the selected one stays");
    assert_eq!(set.cur.id, 2);
    assert!(set.select(0));
    assert_eq!(set.cur.id, 0);
    assert_eq!(ids(&set), [0, 1, 2]);
    assert_eq!(set.parked_mut().count(), 2);
}

#[test]
fn select_of_a_missing_vcpu_changes_nothing() {
    let mut set = set_of(2);
    assert!(set.select(1));
    assert!(!set.select(2));
    assert_eq!(set.cur.id, 1);
    assert_eq!(ids(&set), [0, 1]);
}

#[test]
fn get_mut_finds_the_selected_and_parked_vcpus() {
    let mut set = set_of(2);
    assert_eq!(set.get_mut(0).map(|v| v.id), Some(0));
    assert_eq!(set.get_mut(1).map(|v| v.id), Some(1));
    assert!(set.get_mut(2).is_none());
}

#[test]
fn io_exits_count_on_the_selected_vcpu() {
    let mut set = set_of(2);
    assert!(set.select(1));
    set.io_exit_at(5);
    assert_eq!(set.cur.stats.io_resumed(9), Some(4));
    assert_eq!(set.stats(0), Some(VcpuStats::new()));
    assert_eq!(set.stats(1).map(|s| s.round_trips), Some(1));
    assert_eq!(set.stats(2), None);
    assert_eq!(set.all_stats().count(), 2);
}

#[test]
fn wakeups_gather_until_taken_or_cleared() {
    let mut set = set_of(3);
    set.wake(1 << 1);
    set.wake(1 << 2);
    assert_eq!(set.take_wakeups(), 0b110);
    assert_eq!(set.take_wakeups(), 0);
    set.wake(1);
    set.clear_wakeups();
    assert_eq!(set.take_wakeups(), 0);
}

#[test]
fn running_elsewhere_names_the_other_cpus_runs() {
    let mut set = set_of(3);
    for (id, cpu) in [(0, Some(1)), (1, None), (2, Some(3))] {
        if let Some(v) = set.get_mut(id) {
            v.on_cpu = cpu;
        }
    }
    let mut runs: Vec<(usize, u8)> = set
        .running_elsewhere(1)
        .map(|(cpu, v)| (cpu, v.id))
        .collect();
    runs.sort_unstable();
    assert_eq!(runs, [(3, 2)]);
    assert_eq!(set.running_elsewhere(0).count(), 2);
}
