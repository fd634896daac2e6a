//! Unit tests of the scheduler.

use super::*;

fn t(slot: usize) -> TaskId {
    TaskId::new(slot, 1).unwrap()
}

fn p(level: usize) -> Priority {
    Priority::new(level).unwrap()
}

fn admitted(tasks: &[(usize, usize)]) -> Scheduler {
    let mut s = Scheduler::new();
    for &(slot, level) in tasks {
        s.admit(t(slot), p(level)).unwrap();
    }
    s
}

#[test]
fn priorities_are_bounded() {
    assert_eq!(Priority::new(PRIORITIES), None);
    assert_eq!(Priority::new(usize::MAX), None);
    assert_eq!(Priority::new(PRIORITIES - 1), Some(Priority::HIGHEST));
    assert_eq!(Priority::HIGHEST.level(), PRIORITIES - 1);
}

#[test]
fn nothing_ready_means_idle() {
    let mut s = Scheduler::new();
    assert_eq!(s.schedule(), Decision::Idle);
    assert_eq!(s.tick(), Decision::Idle);
    assert_eq!(s.yield_now(), Decision::Idle);
    assert_eq!(s.current(), None);
}

#[test]
fn the_most_urgent_ready_task_runs_first() {
    let mut s = admitted(&[(1, 3), (2, 10), (3, 7)]);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(2)));
    assert_eq!(s.state(t(2)), Some(TaskState::Running));
    assert_eq!(s.schedule(), Decision::Continue);
    s.block(t(2), TaskState::BlockedRecv).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(3)));
    s.check_invariants().unwrap();
}

#[test]
fn round_robin_within_a_priority_on_slice_expiry() {
    let mut s = admitted(&[(1, 5), (2, 5), (3, 5)]);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
    let mut order = vec![1];
    for _ in 0..(3 * TIMESLICE_TICKS) {
        if let Decision::SwitchTo(next) = s.tick() {
            order.push(next.slot());
        }
    }
    assert_eq!(order, [1, 2, 3, 1]);
    s.check_invariants().unwrap();
}

#[test]
fn a_lone_task_keeps_running_across_slices() {
    let mut s = admitted(&[(1, 5)]);
    s.schedule();
    for _ in 0..(2 * TIMESLICE_TICKS) {
        assert_eq!(s.tick(), Decision::Continue);
    }
    assert_eq!(s.yield_now(), Decision::Continue);
}

#[test]
fn yield_passes_to_a_peer() {
    let mut s = admitted(&[(1, 5), (2, 5), (3, 1)]);
    s.schedule();
    assert_eq!(s.yield_now(), Decision::SwitchTo(t(2)));
    assert_eq!(s.yield_now(), Decision::SwitchTo(t(1)));
    assert_eq!(s.state(t(3)), Some(TaskState::Ready));
}

#[test]
fn a_more_urgent_task_preempts_when_unblocked() {
    let mut s = admitted(&[(1, 5), (2, 20)]);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(2)));
    s.block(t(2), TaskState::BlockedNotification).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
    s.unblock(t(2)).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(2)));
    assert_eq!(s.state(t(1)), Some(TaskState::Ready));
    s.check_invariants().unwrap();
}

#[test]
fn a_preempted_task_resumes_before_its_peers() {
    let mut s = admitted(&[(1, 5), (2, 5), (9, 20)]);
    s.block(t(9), TaskState::BlockedRecv).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
    s.unblock(t(9)).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(9)));
    s.block(t(9), TaskState::BlockedRecv).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
}

#[test]
fn a_less_urgent_task_does_not_preempt() {
    let mut s = admitted(&[(1, 5), (2, 2)]);
    s.schedule();
    s.block(t(2), TaskState::BlockedSend).unwrap();
    s.unblock(t(2)).unwrap();
    assert_eq!(s.schedule(), Decision::Continue);
    assert_eq!(s.current(), Some(t(1)));
}

#[test]
fn illegal_transitions_are_refused() {
    let mut s = admitted(&[(1, 5)]);
    assert_eq!(
        s.unblock(t(1)),
        Err(SchedError::IllegalTransition {
            from: TaskState::Ready
        })
    );
    assert_eq!(
        s.block(t(1), TaskState::Running),
        Err(SchedError::IllegalTransition {
            from: TaskState::Ready
        })
    );
    s.block(t(1), TaskState::BlockedReply).unwrap();
    assert_eq!(
        s.block(t(1), TaskState::BlockedRecv),
        Err(SchedError::IllegalTransition {
            from: TaskState::BlockedReply
        })
    );
    s.kill(t(1)).unwrap();
    assert_eq!(
        s.kill(t(1)),
        Err(SchedError::IllegalTransition {
            from: TaskState::Dead
        })
    );
    assert_eq!(
        s.unblock(t(1)),
        Err(SchedError::IllegalTransition {
            from: TaskState::Dead
        })
    );
}

#[test]
fn unknown_and_stale_tasks_are_refused() {
    let mut s = admitted(&[(1, 5)]);
    let stale = TaskId::new(1, 0).unwrap();
    assert_eq!(s.unblock(t(2)), Err(SchedError::UnknownTask));
    assert_eq!(s.kill(stale), Err(SchedError::UnknownTask));
    assert_eq!(s.state(stale), None);
    assert_eq!(s.admit(stale, p(1)), Err(SchedError::SlotInUse));
}

#[test]
fn reaping_needs_a_dead_task_and_frees_the_slot() {
    let mut s = admitted(&[(1, 5)]);
    assert_eq!(
        s.reap(t(1)),
        Err(SchedError::IllegalTransition {
            from: TaskState::Ready
        })
    );
    s.kill(t(1)).unwrap();
    s.reap(t(1)).unwrap();
    let successor = TaskId::new(1, 2).unwrap();
    s.admit(successor, p(3)).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(successor));
}

#[test]
fn killing_the_running_task_leaves_the_cpu_to_others() {
    let mut s = admitted(&[(1, 5), (2, 4)]);
    s.schedule();
    s.kill(t(1)).unwrap();
    assert_eq!(s.current(), None);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(2)));
    s.kill(t(2)).unwrap();
    assert_eq!(s.schedule(), Decision::Idle);
    s.check_invariants().unwrap();
}

#[test]
fn killing_a_ready_task_takes_it_off_its_queue() {
    let mut s = admitted(&[(1, 5), (2, 5)]);
    s.kill(t(2)).unwrap();
    s.schedule();
    assert_eq!(s.yield_now(), Decision::Continue);
    s.check_invariants().unwrap();
}

#[test]
fn direct_switch_runs_the_partner_on_the_donated_slice() {
    let mut s = admitted(&[(1, 5), (2, 5), (3, 5)]);
    s.block(t(2), TaskState::BlockedRecv).unwrap();
    s.schedule();
    s.tick();
    s.tick();
    assert_eq!(
        s.direct_switch(t(1), t(2), TaskState::BlockedReply),
        Ok(Decision::SwitchTo(t(2)))
    );
    assert_eq!(s.state(t(1)), Some(TaskState::BlockedReply));
    assert_eq!(s.current(), Some(t(2)));
    // The partner runs on what was left of the caller's slice.
    let left = TIMESLICE_TICKS - 2;
    for _ in 1..left {
        assert_eq!(s.tick(), Decision::Continue);
    }
    assert_eq!(s.tick(), Decision::SwitchTo(t(3)));
    s.check_invariants().unwrap();
}

#[test]
fn direct_switch_yields_to_a_more_urgent_ready_task() {
    let mut s = admitted(&[(1, 9), (2, 3), (3, 5)]);
    s.block(t(2), TaskState::BlockedRecv).unwrap();
    s.schedule();
    assert_eq!(
        s.direct_switch(t(1), t(2), TaskState::BlockedReply),
        Ok(Decision::SwitchTo(t(3)))
    );
    assert_eq!(s.state(t(2)), Some(TaskState::Ready));
    s.check_invariants().unwrap();
}

#[test]
fn direct_switch_checks_both_parties() {
    let mut s = admitted(&[(1, 5), (2, 5)]);
    assert_eq!(
        s.direct_switch(t(1), t(2), TaskState::BlockedReply),
        Err(SchedError::NotRunning)
    );
    s.schedule();
    assert_eq!(
        s.direct_switch(t(1), t(2), TaskState::BlockedReply),
        Err(SchedError::IllegalTransition {
            from: TaskState::Ready
        })
    );
    assert_eq!(
        s.direct_switch(t(1), t(7), TaskState::BlockedReply),
        Err(SchedError::UnknownTask)
    );
    assert_eq!(s.current(), Some(t(1)));
}

#[test]
fn rewait_moves_only_between_blocked_states() {
    let mut s = admitted(&[(1, 5), (2, 5)]);
    s.block(t(1), TaskState::BlockedSend).unwrap();
    s.rewait(t(1), TaskState::BlockedReply).unwrap();
    assert_eq!(s.state(t(1)), Some(TaskState::BlockedReply));
    assert_eq!(
        s.rewait(t(1), TaskState::Ready),
        Err(SchedError::IllegalTransition {
            from: TaskState::BlockedReply
        })
    );
    assert_eq!(
        s.rewait(t(2), TaskState::BlockedRecv),
        Err(SchedError::IllegalTransition {
            from: TaskState::Ready
        })
    );
}

/// An I/O-bound vCPU (slot 1) beside two spinning peers (2, 3) and a
/// service (9): each completion puts it back on the CPU as soon as the
/// service blocks, not behind its peers' whole slices; a plain unblock
/// would queue it behind both.
#[test]
fn a_vcpu_whose_io_completed_runs_before_spinning_peers() {
    let mut s = admitted(&[(1, 0), (2, 0), (3, 0), (9, 9)]);
    s.block(t(9), TaskState::BlockedRecv).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
    for _ in 0..3 {
        // The vCPU exits for I/O; the service serves it and completes it.
        s.block(t(1), TaskState::Held).unwrap();
        s.unblock(t(9)).unwrap();
        assert_eq!(s.schedule(), Decision::SwitchTo(t(9)));
        s.unblock_boosted(t(1)).unwrap();
        s.block(t(9), TaskState::BlockedRecv).unwrap();
        assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
        s.check_invariants().unwrap();
    }
    let mut plain = admitted(&[(1, 0), (2, 0), (3, 0)]);
    assert_eq!(plain.schedule(), Decision::SwitchTo(t(1)));
    plain.block(t(1), TaskState::Held).unwrap();
    assert_eq!(plain.schedule(), Decision::SwitchTo(t(2)));
    plain.unblock(t(1)).unwrap();
    assert_eq!(plain.yield_now(), Decision::SwitchTo(t(3)));
}

/// The boost does not starve the peers: a vCPU that is boosted after every
/// tick still loses the CPU when its slice is used up, and both peers run
/// before it runs again.
#[test]
fn a_boosted_vcpu_still_yields_when_its_slice_is_used_up() {
    let mut s = admitted(&[(1, 0), (2, 0), (3, 0)]);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
    let mut ran = vec![1];
    for _ in 0..(3 * TIMESLICE_TICKS + 1) {
        let current = s.current().unwrap();
        if current == t(1) {
            // Exit for I/O and come straight back, boosted.
            s.block(t(1), TaskState::Held).unwrap();
            s.unblock_boosted(t(1)).unwrap();
            assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
        }
        if let Decision::SwitchTo(next) = s.tick() {
            ran.push(next.slot());
        }
        s.check_invariants().unwrap();
    }
    assert_eq!(ran, [1, 2, 3, 1]);
    assert_eq!(
        s.unblock_boosted(t(2)),
        Err(SchedError::IllegalTransition {
            from: TaskState::Ready
        })
    );
}

/// The ticks that fall while services serve a boosted vCPU's I/O are not
/// charged to it, but they still end its turn: once a slice of ticks has
/// passed since its turn began, its next completion queues it at the back,
/// so a vCPU that does nothing but I/O cannot keep its peers off the CPU.
#[test]
fn a_boost_lasts_one_slice_of_ticks_even_when_services_take_them() {
    let mut s = admitted(&[(1, 0), (2, 0), (9, 9)]);
    s.block(t(9), TaskState::BlockedRecv).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
    for round in 0..=TIMESLICE_TICKS {
        s.block(t(1), TaskState::Held).unwrap();
        s.unblock(t(9)).unwrap();
        assert_eq!(s.schedule(), Decision::SwitchTo(t(9)));
        // Every tick lands on the service.
        assert_eq!(s.tick(), Decision::Continue);
        s.unblock_boosted(t(1)).unwrap();
        s.block(t(9), TaskState::BlockedRecv).unwrap();
        let next = s.schedule();
        if round + 1 < TIMESLICE_TICKS {
            assert_eq!(next, Decision::SwitchTo(t(1)), "round {round}: boosted");
        } else {
            assert_eq!(
                next,
                Decision::SwitchTo(t(2)),
                "round {round}: the peer's turn"
            );
            break;
        }
    }
    s.check_invariants().unwrap();
}

/// `hand_over` is the general path's "block the server, unblock the vCPU
/// boosted, schedule" in one step: whenever it applies, the scheduler ends
/// up exactly as the general path leaves it (state, current task, queues,
/// what runs after later ticks); when it does not, nothing changed. Checked
/// over random schedules of ticks, blocks, wake-ups and hand-overs.
#[test]
fn hand_over_equals_the_general_path_whenever_it_applies() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut applied = 0;
    for _ in 0..2000 {
        // Two vCPUs (0), a service (9) and a busier service (12).
        let mut s = admitted(&[(1, 0), (2, 0), (9, 9), (12, 12)]);
        s.block(t(12), TaskState::BlockedRecv).unwrap();
        s.block(t(9), TaskState::BlockedRecv).unwrap();
        s.schedule();
        for _ in 0..next(40) {
            let current = s.current();
            let held = [t(1), t(2)]
                .into_iter()
                .find(|&v| s.state(v) == Some(TaskState::Held));
            match next(6) {
                // The service completes a held vCPU's I/O, the general way.
                4 if current == Some(t(9)) && held.is_some() => {
                    s.block(t(9), TaskState::BlockedRecv).unwrap();
                    s.unblock_boosted(held.unwrap()).unwrap();
                    s.schedule();
                }
                0 => {
                    s.tick();
                }
                1 if current.is_some_and(|c| c.slot() < 3) => {
                    // A vCPU exits for I/O to the service, if it waits.
                    let c = current.unwrap();
                    if s.state(t(9)) == Some(TaskState::BlockedRecv) {
                        s.direct_switch(c, t(9), TaskState::Held).unwrap();
                    }
                }
                2 if s.state(t(12)) == Some(TaskState::BlockedRecv) => {
                    s.unblock(t(12)).unwrap();
                    s.schedule();
                }
                3 if current == Some(t(12)) => {
                    s.block(t(12), TaskState::BlockedRecv).unwrap();
                    s.schedule();
                }
                _ => {}
            }
            s.check_invariants().unwrap();
        }
        let Some(server) = s.current().filter(|c| c.slot() >= 9) else {
            continue;
        };
        let vcpu = [t(1), t(2)]
            .into_iter()
            .find(|&v| s.state(v) == Some(TaskState::Held));
        let Some(vcpu) = vcpu else { continue };
        let mut general = s.clone();
        general.block(server, TaskState::BlockedRecv).unwrap();
        general.unblock_boosted(vcpu).unwrap();
        let decision = general.schedule();
        let mut fast = s.clone();
        match fast.hand_over(server, TaskState::BlockedRecv, vcpu) {
            Some(()) => {
                applied += 1;
                assert_eq!(decision, Decision::SwitchTo(vcpu));
                fast.check_invariants().unwrap();
                for _ in 0..3 * TIMESLICE_TICKS {
                    assert_eq!(fast.current(), general.current());
                    for slot in [1, 2, 9, 12] {
                        assert_eq!(fast.state(t(slot)), general.state(t(slot)));
                    }
                    assert_eq!(fast.tick(), general.tick());
                }
            }
            None => {
                assert_eq!(format!("{fast:?}"), format!("{s:?}"), "unchanged");
                assert_ne!(decision, Decision::SwitchTo(vcpu), "general ran it");
            }
        }
    }
    assert!(applied > 100, "the plain case was exercised ({applied})");
}

#[test]
fn hand_over_refuses_what_it_cannot_do_plainly() {
    let mut s = admitted(&[(1, 0), (9, 9)]);
    s.block(t(1), TaskState::Held).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(9)));
    // Not the running task, not a blocked state, not a blocked target.
    assert_eq!(s.hand_over(t(1), TaskState::BlockedRecv, t(9)), None);
    assert_eq!(s.hand_over(t(9), TaskState::Ready, t(1)), None);
    assert_eq!(s.hand_over(t(9), TaskState::BlockedRecv, t(7)), None);
    assert_eq!(s.hand_over(t(9), TaskState::BlockedRecv, t(1)), Some(()));
    assert_eq!(s.current(), Some(t(1)));
    assert_eq!(s.state(t(9)), Some(TaskState::BlockedRecv));
    s.check_invariants().unwrap();
}

/// After an operation on one CPU, every CPU it marked decides again (as
/// the interrupt the arch layer sends it would make it), until none is
/// marked.
fn deliver_resched(s: &mut Scheduler) {
    let mut rounds = 0;
    loop {
        let mine = s.cpu();
        let others = s.take_resched();
        if others == 0 {
            break;
        }
        for cpu in (0..MAX_CPUS).filter(|c| others & 1 << c != 0) {
            s.enter(cpu);
            s.schedule();
        }
        // Their decisions may ask this CPU to decide again too.
        let again = s.resched & 1 << mine != 0;
        s.enter(mine);
        if again {
            s.schedule();
        }
        rounds += 1;
        assert!(
            rounds < 4 * MAX_CPUS,
            "requests to decide again never settle"
        );
    }
}

/// Global fixed priority: no ready task is more urgent than any running
/// one, and no CPU idles while a task is ready.
fn most_urgent_run(s: &Scheduler) -> Result<(), String> {
    for cpu in 0..s.cpus() {
        let best_ready = s.highest_ready_on(u8::try_from(cpu).unwrap());
        match s.running_on(cpu) {
            None if best_ready.is_some() => {
                return Err(format!("cpu {cpu} idles beside a ready task"));
            }
            Some(task) if best_ready > s.priority(task) => {
                return Err(format!("cpu {cpu} runs {task:?} below a ready task"));
            }
            _ => {}
        }
    }
    Ok(())
}

#[test]
fn a_task_made_ready_goes_to_an_idle_cpu_and_preempts_the_least_urgent() {
    let mut s = admitted(&[(1, 5), (2, 3), (3, 1)]);
    s.set_cpus(3);
    for cpu in 0..3 {
        s.enter(cpu);
        s.schedule();
    }
    assert_eq!(
        (s.running_on(0), s.running_on(1), s.running_on(2)),
        (Some(t(1)), Some(t(2)), Some(t(3)))
    );
    // CPU 1's task blocks from CPU 0 (a kill, say): CPU 1 is told.
    s.enter(0);
    s.block(t(2), TaskState::Held).unwrap();
    assert_eq!(s.take_resched(), 1 << 1);
    s.enter(1);
    assert_eq!(s.schedule(), Decision::Idle);
    // A task of priority 4 wakes on CPU 0: idle CPU 1 takes it, not CPU 2
    // (running priority 1) and not CPU 0 itself (its caller decides).
    s.enter(0);
    s.admit(t(4), p(4)).unwrap();
    assert_eq!(s.take_resched(), 1 << 1);
    s.enter(1);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(4)));
    // Priority 2 wakes: the least urgent CPU (2, priority 1) is preempted.
    s.enter(0);
    s.unblock(t(2)).unwrap();
    assert_eq!(s.take_resched(), 1 << 2);
    s.enter(2);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(2)));
    // The preempted task waits; nothing is below it, so nobody is told.
    assert_eq!(s.state(t(3)), Some(TaskState::Ready));
    assert_eq!(s.take_resched(), 0);
    s.check_invariants().unwrap();
    most_urgent_run(&s).unwrap();
}

#[test]
fn a_cpu_waiting_for_a_run_another_lets_go_is_asked_to_decide_again() {
    let mut s = admitted(&[(1, 5)]);
    s.set_cpus(3);
    s.enter(0);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
    // Paused from CPU 2 while CPU 0 runs it, then resumed: CPU 1 picks it
    // while CPU 0 still holds the run.
    s.enter(2);
    s.block(t(1), TaskState::Held).unwrap();
    assert_eq!(s.take_resched(), 1 << 0);
    s.unblock(t(1)).unwrap();
    s.take_resched();
    s.enter(1);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
    // CPU 0 lets the run go: CPU 1, which keeps the task, is told.
    s.enter(0);
    assert_eq!(s.current(), None);
    s.let_go(t(1));
    assert_eq!(s.take_resched(), 1 << 1);
    assert_eq!(s.schedule(), Decision::Idle, "CPU 0 does not take it");
    s.enter(1);
    assert_eq!(s.schedule(), Decision::Continue);
    // Nobody picked it (still held): nobody is told.
    s.block(t(1), TaskState::Held).unwrap();
    s.enter(0);
    s.let_go(t(1));
    assert_eq!(s.take_resched(), 0);
    s.check_invariants().unwrap();
}

#[derive(Clone, Debug)]
enum CpuOp {
    Schedule,
    Tick,
    Yield,
    /// The CPU's task blocks.
    Block,
    /// A blocked task (by slot) is woken, boosted or not.
    Wake(usize, bool),
    /// A task (by slot) is killed, wherever it runs.
    Kill(usize),
    /// A killed task's slot holds a new task at this priority.
    Respawn(usize, usize),
    /// The CPU's task hands over to a blocked one (the IPC fast path).
    HandOver(usize),
}

fn cpu_op() -> impl proptest::strategy::Strategy<Value = (usize, CpuOp)> {
    use proptest::prelude::*;
    let op = prop_oneof![
        2 => Just(CpuOp::Schedule),
        3 => Just(CpuOp::Tick),
        1 => Just(CpuOp::Yield),
        3 => Just(CpuOp::Block),
        4 => (1..9usize, any::<bool>()).prop_map(|(slot, boost)| CpuOp::Wake(slot, boost)),
        1 => (1..9usize).prop_map(CpuOp::Kill),
        1 => (1..9usize, 0..4usize).prop_map(|(slot, level)| CpuOp::Respawn(slot, level)),
        2 => (1..9usize).prop_map(CpuOp::HandOver),
    ];
    (0..4usize, op)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Random operations on four CPUs, each followed by the decisions it
    /// asks of the CPUs: the scheduler stays consistent and the running
    /// tasks are always the most urgent ones.
    #[test]
    fn four_cpus_always_run_the_most_urgent_tasks(
        ops in proptest::collection::vec(cpu_op(), 1..200),
        lowest_only in proptest::bool::ANY,
    ) {
        let mut generation = [1u16; 9];
        let id = |slot: usize, generation: &[u16; 9]| TaskId::new(slot, generation[slot]).unwrap();
        let mut s = Scheduler::new();
        s.set_cpus(4);
        if lowest_only {
            // As the kernel runs: services on CPU 0, vCPUs (the lowest
            // level) anywhere.
            s.share_only(1);
        }
        for slot in 1..9 {
            s.admit(id(slot, &generation), p(slot % 4)).unwrap();
        }
        for cpu in 0..4 {
            s.enter(cpu);
            s.schedule();
        }
        for (cpu, op) in ops {
            s.enter(cpu);
            match op {
                CpuOp::Schedule => {
                    s.schedule();
                }
                CpuOp::Tick => {
                    s.tick();
                }
                CpuOp::Yield => {
                    s.yield_now();
                }
                CpuOp::Block => {
                    if let Some(task) = s.current() {
                        s.block(task, TaskState::BlockedRecv).unwrap();
                        s.schedule();
                    }
                }
                CpuOp::Wake(slot, boost) => {
                    let task = id(slot, &generation);
                    if s.state(task).is_some_and(TaskState::is_blocked) {
                        if boost {
                            s.unblock_boosted(task).unwrap();
                        } else {
                            s.unblock(task).unwrap();
                        }
                        s.schedule();
                    }
                }
                CpuOp::Kill(slot) => {
                    let task = id(slot, &generation);
                    if s.kill(task).is_ok() {
                        s.schedule();
                    }
                }
                CpuOp::Respawn(slot, level) => {
                    let task = id(slot, &generation);
                    if s.state(task) == Some(TaskState::Dead) {
                        s.reap(task).unwrap();
                        generation[slot] += 1;
                        s.admit(id(slot, &generation), p(level)).unwrap();
                        s.schedule();
                    }
                }
                CpuOp::HandOver(slot) => {
                    let to = id(slot, &generation);
                    if let Some(from) = s.current()
                        && from != to
                        && s.hand_over(from, TaskState::BlockedRecv, to).is_none()
                        && s.state(to).is_some_and(TaskState::is_blocked)
                    {
                        // The general path: block, wake, decide.
                        s.block(from, TaskState::BlockedRecv).unwrap();
                        s.unblock(to).unwrap();
                        s.schedule();
                    }
                }
            }
            deliver_resched(&mut s);
            s.check_invariants().map_err(proptest::test_runner::TestCaseError::fail)?;
            most_urgent_run(&s).map_err(proptest::test_runner::TestCaseError::fail)?;
        }
    }
}

#[test]
fn cpus_other_than_cpu_0_take_only_the_shared_levels() {
    let mut s = admitted(&[(1, 5), (2, 0), (3, 0)]);
    s.set_cpus(2);
    s.share_only(1);
    // CPU 1 decides first: the service at level 5 is not its to take.
    s.enter(1);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(2)));
    s.enter(0);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
    // The service blocks and wakes from CPU 1: CPU 0, not CPU 1 (which
    // runs a less urgent task), is asked to take it.
    s.enter(0);
    s.block(t(1), TaskState::BlockedRecv).unwrap();
    assert_eq!(s.schedule(), Decision::SwitchTo(t(3)));
    s.enter(1);
    s.unblock(t(1)).unwrap();
    assert_eq!(s.schedule(), Decision::Continue, "CPU 1 keeps its vCPU");
    assert_eq!(s.take_resched(), 1, "CPU 0 must decide again");
    s.enter(0);
    assert_eq!(s.schedule(), Decision::SwitchTo(t(1)));
}
