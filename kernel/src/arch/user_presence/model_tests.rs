//! Every interleaving of a shootdown of space `ROOT` on CPU 0 (which holds
//! the kernel lock) with CPU 1 going in and out of user mode, over the real
//! [`UserPresence`] steps. CPU 1's TLB is the version of `ROOT`'s mappings
//! it last loaded: it reloads them when it flushes, and, in user mode in
//! `ROOT`, it may use what it holds. The property: once CPU 0's shootdown
//! is over, CPU 1 is never in user mode in `ROOT` with an older version.
//! The kernel lock is modelled: CPU 1 enters user mode only holding it,
//! CPU 0 holds it from the change to the end of the shootdown. Memory is
//! sequentially consistent (the words are single atomics, each with
//! release/acquire where one CPU acts on what the other published).

extern crate std;

use std::collections::HashSet;
use std::vec::Vec;

use super::UserPresence;

const ROOT: u64 = 0x8000_1000;
const OTHER: u64 = 0x8000_2000;

/// Where CPU 0 is in its change and shootdown.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Changer {
    /// Not started (does not hold the lock).
    Idle,
    /// Holds the lock; the mapping changed (version 1).
    Changed,
    /// CPU 1 is marked stale.
    Marked,
    /// Kicked CPU 1: waits for it to leave `ROOT`.
    Waiting,
    /// The shootdown is over; the lock is released.
    Done,
}

/// Where CPU 1 is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Runner {
    /// In user mode in space `root`.
    User(u64),
    /// Trapped: has not yet said it left.
    Trapped(u64),
    /// In the kernel, without the lock.
    Kernel,
    /// Holds the lock, about to enter user mode in the given space.
    Entering(u64),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct State {
    changer: Changer,
    runner: Runner,
    /// The version of `ROOT`'s mappings CPU 1's TLB holds.
    tlb: u8,
    /// The words, as (in_user of CPU 1, stale of CPU 1).
    in_user: u64,
    stale: bool,
    /// How many times CPU 1 went round; bounds the exploration.
    rounds: u8,
}

const MAX_ROUNDS: u8 = 3;

fn presence(s: &State) -> UserPresence<2> {
    let p = UserPresence::new();
    if s.in_user != 0 {
        p.entering(1, s.in_user);
    }
    if s.stale {
        p.mark_stale(1);
    }
    p
}

fn capture(p: &UserPresence<2>, s: &mut State) {
    // Reads the words back without changing them.
    s.in_user = if p.runs(1, ROOT) {
        ROOT
    } else if p.runs(1, OTHER) {
        OTHER
    } else {
        0
    };
    s.stale = p.stale[1].load(core::sync::atomic::Ordering::Relaxed);
}

fn version(s: &State) -> u8 {
    u8::from(!matches!(s.changer, Changer::Idle))
}

fn lock_held(s: &State) -> bool {
    matches!(
        s.changer,
        Changer::Changed | Changer::Marked | Changer::Waiting
    ) || matches!(s.runner, Runner::Entering(_))
}

fn successors(s: &State) -> Vec<State> {
    let mut next = Vec::new();
    // CPU 0.
    match s.changer {
        Changer::Idle if !lock_held(s) => next.push(State {
            changer: Changer::Changed,
            ..*s
        }),
        Changer::Changed => {
            let p = presence(s);
            p.mark_stale(1);
            let mut n = State {
                changer: Changer::Marked,
                ..*s
            };
            capture(&p, &mut n);
            next.push(n);
        }
        Changer::Marked => {
            let p = presence(s);
            let changer = if p.runs(1, ROOT) {
                Changer::Waiting
            } else {
                Changer::Done
            };
            next.push(State { changer, ..*s });
        }
        Changer::Waiting => {
            // The kick makes CPU 1 trap if it is in user mode.
            if let Runner::User(root) = s.runner {
                next.push(State {
                    runner: Runner::Trapped(root),
                    ..*s
                });
            }
            let p = presence(s);
            if !p.runs(1, ROOT) {
                next.push(State {
                    changer: Changer::Done,
                    ..*s
                });
            }
        }
        Changer::Idle | Changer::Done => {}
    }
    // CPU 1.
    match s.runner {
        Runner::User(root) => next.push(State {
            runner: Runner::Trapped(root),
            ..*s
        }),
        Runner::Trapped(_) => {
            let p = presence(s);
            p.left(1);
            let mut n = State {
                runner: Runner::Kernel,
                ..*s
            };
            capture(&p, &mut n);
            next.push(n);
        }
        Runner::Kernel if !lock_held(s) && s.rounds < MAX_ROUNDS => {
            for root in [ROOT, OTHER] {
                next.push(State {
                    runner: Runner::Entering(root),
                    rounds: s.rounds + 1,
                    ..*s
                });
            }
        }
        Runner::Entering(root) => {
            let p = presence(s);
            let flush = p.entering(1, root);
            let mut n = State {
                runner: Runner::User(root),
                tlb: if flush { version(s) } else { s.tlb },
                ..*s
            };
            // Entering the space it changed loads what it lacks: the TLB
            // of a CPU that held nothing of it is current.
            capture(&p, &mut n);
            next.push(n);
        }
        Runner::Kernel => {}
    }
    next
}

fn explore(start: State) -> usize {
    let mut seen = HashSet::new();
    let mut stack = std::vec![start];
    while let Some(s) = stack.pop() {
        if !seen.insert(s) {
            continue;
        }
        if s.changer == Changer::Done
            && let Runner::User(ROOT) = s.runner
        {
            assert_eq!(
                s.tlb, 1,
                "stale translations in use after the shootdown: {s:?}"
            );
        }
        stack.extend(successors(&s));
    }
    seen.len()
}

#[test]
fn after_a_shootdown_no_cpu_runs_the_space_on_old_translations() {
    // CPU 1 starts in user mode in the space, in another space, or in the
    // kernel; its TLB holds version 0 of the space's mappings.
    for runner in [Runner::User(ROOT), Runner::User(OTHER), Runner::Kernel] {
        let in_user = match runner {
            Runner::User(root) => root,
            _ => 0,
        };
        let states = explore(State {
            changer: Changer::Idle,
            runner,
            tlb: 0,
            in_user,
            stale: false,
            rounds: 0,
        });
        assert!(states > 20, "{states} states explored");
    }
}

/// The model sees the bug it is for: a shootdown that only waits, without
/// marking the CPU stale, leaves it on old translations once it re-enters.
#[test]
fn without_the_mark_the_model_finds_stale_translations() {
    let start = State {
        changer: Changer::Marked,
        runner: Runner::User(ROOT),
        tlb: 0,
        in_user: ROOT,
        stale: false,
        rounds: 0,
    };
    let found = std::panic::catch_unwind(|| explore(start));
    assert!(found.is_err(), "an unmarked shootdown must be caught");
}
