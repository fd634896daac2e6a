//! Every interleaving of the kernel's and the ioreq service's accesses to
//! one slot, checked for lost, doubled and misread requests and, with a
//! happens-before race detector (vector clocks), for payload data races.
//!
//! # What is modelled
//!
//! Three threads share slot 0 of a real [`IoreqPage`]: the kernel
//! (submit, wait, collect; optionally [`withdraw`] a PENDING request), the
//! service (claim, decode, finish) and a second service instance that is
//! started when the first dies (the model may kill it before any of its
//! steps) and begins as `VmIoreq::activate` does: a PROCESSING slot is
//! adopted, anything else waits for the next PENDING request.
//!
//! A step is one access to the state word (an atomic load, store or
//! compare-exchange) or one run of plain type/payload accesses between two
//! of them, and each step calls the very function the public API is built
//! from, in the order the public function calls it:
//!
//! - `fill` = `step(Fill)` (load) ; `encode` ; `set_state_word(PENDING)`
//! - `take_matching` = `state_word()` ; `read_matching` ;
//!   `set_state_word(FREE)`
//! - `withdraw` = `claim(PENDING -> FREE)`
//! - `begin_processing` = `claim(PENDING -> PROCESSING)` ; `decode`
//! - `finish` = `step(Complete)` (load) ; `write_result` ;
//!   `set_state_word(COMPLETE)`
//! - `adopt` = `state_word()` ; `decode`
//!
//! # Why this covers weak memory
//!
//! Memory here is sequentially consistent: a load sees the last store. The
//! state word is the only atomic location of a slot, and per location every
//! architecture is coherent, which is exactly sequential consistency for
//! that location. The plain type/payload words are where weak memory
//! matters, and for them the model checks the hypothesis of the DRF-SC
//! theorem: every two conflicting accesses by different threads are ordered
//! by happens-before, which only an acquire access reading a release (or an
//! RMW of its release sequence) creates, with the orderings the real code
//! uses ([`STATE_LOAD`], [`STATE_PUBLISH`], [`CLAIM`]). A race-free program
//! has only sequentially consistent executions, so checking every SC
//! interleaving checks every execution. Grouping a run of plain accesses
//! into one step loses no race: only atomic steps create happens-before
//! edges, so the grouped interleavings reach every happens-before graph.
//!
//! The tests at the end weaken one ordering (or read the request before
//! claiming it, as this code did before the harts came) and expect the
//! model to find the race: a checker that cannot fail checks nothing.

extern crate std;

use std::collections::HashSet;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::ioreq_abi::memory_model::{acquires, join, releases};
use crate::ioreq_abi::page::{SLOT_SIZE, STATE_PUBLISH};

const KERNEL: usize = 0;
const SERVICE: usize = 1;
const SUCCESSOR: usize = 2;
const THREADS: usize = 3;
const VCPU: u8 = 0;

/// A vector clock: how far each thread's history is known.
type Clock = [u32; THREADS];

/// The orderings the model gives the state-word accesses.
#[derive(Clone, Copy)]
struct Orderings {
    load: Ordering,
    publish: Ordering,
    claim: Ordering,
    claim_failure: Ordering,
}

/// The real code's.
const REAL: Orderings = Orderings {
    load: STATE_LOAD,
    publish: STATE_PUBLISH,
    claim: CLAIM,
    claim_failure: STATE_LOAD,
};

/// How the service takes a PENDING request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// As `begin_processing` does: claim, then read.
    ClaimThenRead,
    /// Read under PENDING, then claim (the order before this model).
    ReadThenClaim,
}

struct Scenario {
    requests: Vec<IoRequest>,
    withdraw: bool,
    death: bool,
    flavor: Flavor,
    orderings: Orderings,
}

impl Scenario {
    fn new(requests: Vec<IoRequest>) -> Self {
        Self {
            requests,
            withdraw: false,
            death: false,
            flavor: Flavor::ClaimThenRead,
            orderings: REAL,
        }
    }

    /// What the device answers (reads) or what the kernel gets back (the
    /// value written, for writes).
    fn expected(&self, request: &IoRequest) -> u64 {
        match request.direction {
            Direction::Read => mask_to_size(device_value(request), request.size),
            Direction::Write => request.value,
        }
    }
}

fn device_value(request: &IoRequest) -> u64 {
    0x1122_3344_5566_7788 ^ request.addr
}

/// The shadow of one plain word (the request type or a payload word): who
/// wrote it last, at which epoch, and each thread's last read epoch.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
struct Shadow {
    writer: usize,
    written: u32,
    reads: [u32; THREADS],
}

/// Shadow index of the request type; payload word `n` is `1 + n`.
const TYPE_WORD: usize = 0;
const WORDS: usize = 1 + 8;
const ALL_WORDS: core::ops::Range<usize> = TYPE_WORD..WORDS;
/// The payload word `write_result` writes (the `value` member at byte 24;
/// checked by `write_result_writes_only_the_value_word`).
const VALUE_WORD: usize = 1 + 24 / 8;

#[derive(Clone, Copy, Hash, PartialEq, Eq, Debug)]
enum KernelPc {
    Check,
    Encode,
    Publish,
    Wait,
    Read,
    Free,
    Done,
}

#[derive(Clone, Copy, Hash, PartialEq, Eq, Debug)]
enum ServicePc {
    NotStarted,
    Activate,
    Adopt,
    AdoptDecode,
    Idle,
    Peeked,
    Decode,
    FinishCheck,
    WriteResult,
    Publish,
    Dead,
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct World {
    slot: [u8; SLOT_SIZE],
    shadow: [Shadow; WORDS],
    released: Clock,
    clocks: [Clock; THREADS],
    kernel: KernelPc,
    current: usize,
    tried_withdraw: bool,
    services: [(ServicePc, Option<usize>); 2],
    completed: Vec<u8>,
    collected: Vec<u8>,
    withdrawn: Vec<bool>,
}

/// One move of one thread: its label and the world after it, or the
/// property it broke.
type Move = (String, Result<World, String>);

impl World {
    fn start(scenario: &Scenario) -> Self {
        let mut clocks = [[0; THREADS]; THREADS];
        for (t, clock) in clocks.iter_mut().enumerate() {
            clock[t] = 1;
        }
        let n = scenario.requests.len();
        Self {
            slot: IoreqSlot::free().to_bytes(),
            shadow: [Shadow {
                writer: KERNEL,
                written: 0,
                reads: [0; THREADS],
            }; WORDS],
            released: [0; THREADS],
            clocks,
            kernel: KernelPc::Check,
            current: 0,
            tried_withdraw: false,
            services: [(ServicePc::Idle, None), (ServicePc::NotStarted, None)],
            completed: vec![0; n],
            collected: vec![0; n],
            withdrawn: vec![false; n],
        }
    }

    /// Runs `f` on the real slot this world's memory holds.
    fn on_slot<R>(&mut self, f: impl FnOnce(&mut IoreqSlot) -> R) -> R {
        let mut slot = IoreqSlot::from_bytes(&self.slot);
        let result = f(&mut slot);
        self.slot = slot.to_bytes();
        result
    }

    fn acquire(&mut self, t: usize, ordering: Ordering) {
        if acquires(ordering) {
            let released = self.released;
            join(&mut self.clocks[t], &released);
        }
    }

    /// A store to the state word: heads a new release sequence.
    fn store(&mut self, t: usize, ordering: Ordering) {
        if releases(ordering) {
            self.released = self.clocks[t];
            self.clocks[t][t] += 1;
        } else {
            self.released = [0; THREADS];
        }
    }

    /// A read-modify-write of the state word: continues the release
    /// sequence it read from.
    fn rmw(&mut self, t: usize, ordering: Ordering) {
        self.acquire(t, ordering);
        if releases(ordering) {
            let clock = self.clocks[t];
            join(&mut self.released, &clock);
            self.clocks[t][t] += 1;
        }
    }

    fn check(&self, t: usize, word: usize, writing: bool) -> Result<(), String> {
        let me = &self.clocks[t];
        let shadow = &self.shadow[word];
        if shadow.writer != t && shadow.written > me[shadow.writer] {
            return Err(format!(
                "data race on payload word {word}: thread {t} {} it, thread {} wrote it and \
                 that write does not happen before",
                if writing { "writes" } else { "reads" },
                shadow.writer
            ));
        }
        if writing {
            for (u, &read) in shadow.reads.iter().enumerate() {
                if u != t && read > me[u] {
                    return Err(format!(
                        "data race on payload word {word}: thread {t} writes it while thread {u}'s \
                         read does not happen before"
                    ));
                }
            }
        }
        Ok(())
    }

    fn read_words(&mut self, t: usize, words: core::ops::Range<usize>) -> Result<(), String> {
        for word in words {
            self.check(t, word, false)?;
            self.shadow[word].reads[t] = self.clocks[t][t];
        }
        Ok(())
    }

    fn write_words(&mut self, t: usize, words: core::ops::Range<usize>) -> Result<(), String> {
        for word in words {
            self.check(t, word, true)?;
            self.shadow[word] = Shadow {
                writer: t,
                written: self.clocks[t][t],
                reads: [0; THREADS],
            };
        }
        Ok(())
    }

    fn state_word(&mut self) -> u32 {
        self.on_slot(|slot| slot.state_word())
    }

    fn index_of(&self, scenario: &Scenario, request: &IoRequest) -> Result<usize, String> {
        let current = scenario.requests.get(self.current);
        // A read's value word holds the result once the service wrote it.
        let same = current.is_some_and(|c| {
            (c.space, c.addr, c.size, c.direction)
                == (request.space, request.addr, request.size, request.direction)
                && (c.direction == Direction::Read || c.value == request.value)
        });
        if !same {
            return Err(format!(
                "the service decoded {request:?}, the kernel's request is {current:?}"
            ));
        }
        Ok(self.current)
    }

    /// The kernel goes on with its next request.
    fn next_request(&mut self, scenario: &Scenario) {
        self.current += 1;
        self.tried_withdraw = false;
        self.kernel = if self.current < scenario.requests.len() {
            KernelPc::Check
        } else {
            KernelPc::Done
        };
    }
}

fn label(thread: &str, what: &str) -> String {
    format!("{thread}: {what}")
}

/// The kernel's possible moves (none while it waits for the service).
fn kernel_moves(world: &World, scenario: &Scenario) -> Vec<Move> {
    let o = scenario.orderings;
    let mut moves = Vec::new();
    let mut w = world.clone();
    let Some(request) = scenario.requests.get(w.current).copied() else {
        return moves;
    };
    match w.kernel {
        KernelPc::Check => {
            let stepped = w.on_slot(|slot| step(slot, SlotEvent::Fill));
            w.acquire(KERNEL, o.load);
            let result = match stepped {
                Ok(SlotState::Pending) => {
                    w.kernel = KernelPc::Encode;
                    Ok(w)
                }
                other => Err(format!("fill found the slot not FREE: {other:?}")),
            };
            moves.push((label("kernel", "fill: load FREE"), result));
        }
        KernelPc::Encode => {
            let result = w.write_words(KERNEL, ALL_WORDS).map(|()| {
                w.on_slot(|slot| encode(slot, &request));
                w.kernel = KernelPc::Publish;
                w
            });
            moves.push((label("kernel", "fill: encode"), result));
        }
        KernelPc::Publish => {
            w.on_slot(|slot| slot.set_state_word(STATE_PENDING));
            w.store(KERNEL, o.publish);
            w.kernel = KernelPc::Wait;
            moves.push((label("kernel", "fill: publish PENDING"), Ok(w)));
        }
        KernelPc::Wait => {
            if scenario.withdraw && !w.tried_withdraw {
                let mut v = w.clone();
                let taken = v.on_slot(|slot| {
                    claim(
                        slot,
                        SlotState::Pending,
                        SlotState::Free,
                        SlotEvent::Withdraw,
                    )
                });
                if taken.is_ok() {
                    v.rmw(KERNEL, o.claim);
                    v.withdrawn[v.current] = true;
                    v.next_request(scenario);
                } else {
                    v.acquire(KERNEL, o.claim_failure);
                    v.tried_withdraw = true;
                }
                moves.push((label("kernel", "withdraw"), Ok(v)));
            }
            match w.state_word() {
                STATE_PENDING | STATE_PROCESSING => {} // blocked
                STATE_COMPLETE => {
                    w.acquire(KERNEL, o.load);
                    w.kernel = KernelPc::Read;
                    moves.push((label("kernel", "take: load COMPLETE"), Ok(w)));
                }
                other => moves.push((
                    label("kernel", "take"),
                    Err(format!("the kernel waits on a slot in state {other}")),
                )),
            }
        }
        KernelPc::Read => {
            let result = w.read_words(KERNEL, ALL_WORDS).and_then(|()| {
                let value = w.on_slot(|slot| read_matching(slot, &request));
                if value.map(|v| mask_to_size(v, request.size)) != Some(scenario.expected(&request))
                {
                    return Err(format!(
                        "the kernel read {value:x?} for {request:?}, expected {:x}",
                        scenario.expected(&request)
                    ));
                }
                w.collected[w.current] += 1;
                w.kernel = KernelPc::Free;
                Ok(w)
            });
            moves.push((label("kernel", "take: read result"), result));
        }
        KernelPc::Free => {
            w.on_slot(|slot| slot.set_state_word(STATE_FREE));
            w.store(KERNEL, o.publish);
            w.next_request(scenario);
            moves.push((label("kernel", "take: publish FREE"), Ok(w)));
        }
        KernelPc::Done => {}
    }
    moves
}

/// Service instance `i`'s possible moves (thread `SERVICE + i`).
fn service_moves(world: &World, scenario: &Scenario, i: usize) -> Vec<Move> {
    let o = scenario.orderings;
    let t = SERVICE + i;
    let name = if i == 0 { "service" } else { "successor" };
    let mut moves = Vec::new();
    let (pc, taken) = world.services[i];
    if i == 0 && scenario.death && !matches!(pc, ServicePc::Dead) {
        // Killed between any two of its steps; the successor starts after
        // the kernel reaped it (the kernel's bookkeeping orders the two).
        let mut w = world.clone();
        w.services[0] = (ServicePc::Dead, None);
        w.services[1] = (ServicePc::Activate, None);
        let dead = w.clocks[SERVICE];
        join(&mut w.clocks[SUCCESSOR], &dead);
        moves.push((label(name, "dies"), Ok(w)));
    }
    let mut w = world.clone();
    let set = |w: &mut World, pc: ServicePc, taken: Option<usize>| w.services[i] = (pc, taken);
    let request_of = |taken: Option<usize>| taken.and_then(|n| scenario.requests.get(n).copied());
    match pc {
        ServicePc::NotStarted | ServicePc::Dead => {}
        ServicePc::Activate => {
            let raw = w.state_word();
            w.acquire(t, o.load);
            let next = if raw == STATE_PROCESSING {
                ServicePc::Adopt
            } else {
                ServicePc::Idle
            };
            set(&mut w, next, None);
            moves.push((label(name, "activate: load state"), Ok(w)));
        }
        ServicePc::Adopt => {
            let raw = w.state_word();
            w.acquire(t, o.load);
            let result = if raw == STATE_PROCESSING {
                set(&mut w, ServicePc::AdoptDecode, None);
                Ok(w)
            } else {
                Err(format!("a PROCESSING slot left that state: {raw}"))
            };
            moves.push((label(name, "adopt: load PROCESSING"), result));
        }
        ServicePc::AdoptDecode | ServicePc::Decode => {
            let result = w.read_words(t, ALL_WORDS).and_then(|()| {
                let decoded = w
                    .on_slot(|slot| decode(slot, VCPU))
                    .map_err(|e| format!("decode: {e:?}"))?;
                let n = w.index_of(scenario, &decoded)?;
                set(&mut w, ServicePc::FinishCheck, Some(n));
                Ok(w)
            });
            moves.push((label(name, "decode"), result));
        }
        ServicePc::Idle => match scenario.flavor {
            Flavor::ClaimThenRead => {
                let claimed = w.on_slot(|slot| {
                    claim(
                        slot,
                        SlotState::Pending,
                        SlotState::Processing,
                        SlotEvent::Dispatch,
                    )
                });
                // A failed claim changes nothing: the service waits.
                if claimed.is_ok() {
                    w.rmw(t, o.claim);
                    set(&mut w, ServicePc::Decode, None);
                    moves.push((label(name, "claim PENDING"), Ok(w)));
                }
            }
            Flavor::ReadThenClaim => {
                if w.state_word() == STATE_PENDING {
                    w.acquire(t, o.load);
                    let result = w.read_words(t, ALL_WORDS).and_then(|()| {
                        let decoded = w
                            .on_slot(|slot| decode(slot, VCPU))
                            .map_err(|e| format!("decode: {e:?}"))?;
                        let n = w.index_of(scenario, &decoded)?;
                        set(&mut w, ServicePc::Peeked, Some(n));
                        Ok(w)
                    });
                    moves.push((label(name, "load PENDING, decode"), result));
                }
            }
        },
        ServicePc::Peeked => {
            let claimed = w.on_slot(|slot| {
                claim(
                    slot,
                    SlotState::Pending,
                    SlotState::Processing,
                    SlotEvent::Dispatch,
                )
            });
            if claimed.is_ok() {
                w.rmw(t, o.claim);
                set(&mut w, ServicePc::FinishCheck, taken);
            } else {
                w.acquire(t, o.claim_failure);
                set(&mut w, ServicePc::Idle, None);
            }
            moves.push((label(name, "claim"), Ok(w)));
        }
        ServicePc::FinishCheck => {
            let stepped = w.on_slot(|slot| step(slot, SlotEvent::Complete));
            w.acquire(t, o.load);
            let result = match stepped {
                Ok(SlotState::Complete) => {
                    set(&mut w, ServicePc::WriteResult, taken);
                    Ok(w)
                }
                other => Err(format!("finish found the slot not PROCESSING: {other:?}")),
            };
            moves.push((label(name, "finish: load PROCESSING"), result));
        }
        ServicePc::WriteResult => {
            let result = match request_of(taken) {
                None => Err(String::from("finish without a request")),
                Some(request) => w.write_words(t, VALUE_WORD..VALUE_WORD + 1).map(|()| {
                    w.on_slot(|slot| write_result(slot, &request, device_value(&request)));
                    set(&mut w, ServicePc::Publish, taken);
                    w
                }),
            };
            moves.push((label(name, "finish: write result"), result));
        }
        ServicePc::Publish => {
            w.on_slot(|slot| slot.set_state_word(STATE_COMPLETE));
            w.store(t, o.publish);
            if let Some(n) = taken {
                w.completed[n] += 1;
            }
            set(&mut w, ServicePc::Idle, None);
            moves.push((label(name, "finish: publish COMPLETE"), Ok(w)));
        }
    }
    moves
}

/// What must hold once nobody can move.
fn check_final(world: &World, scenario: &Scenario) -> Result<(), String> {
    if world.kernel != KernelPc::Done {
        return Err(format!(
            "deadlock: the kernel is stuck at {:?}",
            world.kernel
        ));
    }
    let slot = IoreqSlot::from_bytes(&world.slot);
    if slot.state_word() != STATE_FREE {
        return Err(format!("final state {} is not FREE", slot.state_word()));
    }
    for n in 0..scenario.requests.len() {
        let (done, got, gone) = (world.completed[n], world.collected[n], world.withdrawn[n]);
        let fine = if gone {
            done == 0 && got == 0
        } else {
            done == 1 && got == 1
        };
        if !fine {
            return Err(format!(
                "request {n}: completed {done} times, collected {got} times, withdrawn {gone}"
            ));
        }
    }
    Ok(())
}

struct Explored {
    states: usize,
    finals: usize,
}

/// Depth-first search over every interleaving, each state once.
fn explore(scenario: &Scenario) -> Result<Explored, String> {
    let mut seen = HashSet::new();
    let mut explored = Explored {
        states: 0,
        finals: 0,
    };
    let mut trace = Vec::new();
    visit(
        World::start(scenario),
        scenario,
        &mut seen,
        &mut explored,
        &mut trace,
    )?;
    Ok(explored)
}

fn visit(
    world: World,
    scenario: &Scenario,
    seen: &mut HashSet<World>,
    explored: &mut Explored,
    trace: &mut Vec<String>,
) -> Result<(), String> {
    if !seen.insert(world.clone()) {
        return Ok(());
    }
    explored.states += 1;
    let mut moves = kernel_moves(&world, scenario);
    moves.extend(service_moves(&world, scenario, 0));
    moves.extend(service_moves(&world, scenario, 1));
    if moves.is_empty() {
        explored.finals += 1;
        return check_final(&world, scenario)
            .map_err(|e| format!("{e}\n  after: {}", trace.join("\n         ")));
    }
    for (step, next) in moves {
        trace.push(step);
        let next = next.map_err(|e| format!("{e}\n  after: {}", trace.join("\n         ")))?;
        visit(next, scenario, seen, explored, trace)?;
        trace.pop();
    }
    Ok(())
}

fn mmio_read() -> IoRequest {
    IoRequest {
        vcpu: VCPU,
        space: Space::Mmio,
        addr: 0x1000_0008,
        size: 8,
        direction: Direction::Read,
        value: 0,
    }
}

fn pio_write() -> IoRequest {
    IoRequest {
        vcpu: VCPU,
        space: Space::Pio,
        addr: 0x3f8,
        size: 1,
        direction: Direction::Write,
        value: 0x41,
    }
}

fn pci_read() -> IoRequest {
    IoRequest {
        vcpu: VCPU,
        space: Space::PciConfig,
        addr: (1 << 15) | 0x10,
        size: 4,
        direction: Direction::Read,
        value: 0,
    }
}

fn must_hold(scenario: &Scenario) -> Explored {
    match explore(scenario) {
        Ok(explored) => {
            assert!(explored.finals > 0, "no interleaving finished");
            explored
        }
        Err(broken) => panic!("{broken}"),
    }
}

fn must_break(scenario: &Scenario, what: &str) {
    match explore(scenario) {
        Ok(explored) => panic!(
            "expected {what:?} in one of {} states, found none",
            explored.states
        ),
        Err(broken) => assert!(broken.contains(what), "{broken}"),
    }
}

#[test]
fn one_request_is_served_once_in_every_interleaving() {
    let explored = must_hold(&Scenario::new(vec![mmio_read()]));
    assert!(explored.states > 10, "{} states", explored.states);
}

#[test]
fn requests_in_a_row_reuse_the_slot_without_a_race() {
    must_hold(&Scenario::new(vec![mmio_read(), pio_write(), pci_read()]));
}

#[test]
fn a_kernel_withdraw_races_the_service_claim_and_exactly_one_wins() {
    let scenario = Scenario {
        withdraw: true,
        ..Scenario::new(vec![mmio_read(), pio_write(), pci_read()])
    };
    let explored = must_hold(&scenario);
    // Both outcomes are reached: some interleavings withdraw, some serve.
    assert!(explored.finals > 1, "{} final states", explored.finals);
}

#[test]
fn a_service_dying_at_any_step_is_replaced_and_nothing_is_lost() {
    let scenario = Scenario {
        death: true,
        ..Scenario::new(vec![mmio_read(), pio_write()])
    };
    must_hold(&scenario);
}

#[test]
fn withdraw_and_death_together() {
    let scenario = Scenario {
        death: true,
        withdraw: true,
        ..Scenario::new(vec![pio_write(), mmio_read(), pci_read()])
    };
    must_hold(&scenario);
}

#[test]
fn the_model_finds_a_relaxed_publish() {
    let scenario = Scenario {
        orderings: Orderings {
            publish: Ordering::Relaxed,
            ..REAL
        },
        ..Scenario::new(vec![mmio_read()])
    };
    must_break(&scenario, "data race");
}

#[test]
fn the_model_finds_a_relaxed_load_or_claim() {
    for orderings in [
        Orderings {
            load: Ordering::Relaxed,
            ..REAL
        },
        Orderings {
            claim: Ordering::Release,
            ..REAL
        },
    ] {
        let scenario = Scenario {
            orderings,
            ..Scenario::new(vec![mmio_read()])
        };
        must_break(&scenario, "data race");
    }
}

/// The order before the harts: decode under PENDING, then claim. A kernel
/// that withdraws and refills the slot meanwhile races the decode.
#[test]
fn the_model_finds_a_read_before_the_claim() {
    let without_withdraw = Scenario {
        flavor: Flavor::ReadThenClaim,
        ..Scenario::new(vec![mmio_read(), pio_write()])
    };
    must_hold(&without_withdraw);
    let scenario = Scenario {
        withdraw: true,
        ..without_withdraw
    };
    must_break(&scenario, "data race");
}

/// The model gives `write_result` a footprint of one word; check it.
#[test]
fn write_result_writes_only_the_value_word() {
    for request in [mmio_read(), pci_read()] {
        let mut slot = IoreqSlot::free();
        slot.payload.data = [0xa5a5_a5a5_a5a5_a5a5; 8];
        write_result(&mut slot, &request, 0);
        for (n, word) in slot.payload.data.iter().enumerate() {
            assert_eq!(
                *word == 0xa5a5_a5a5_a5a5_a5a5,
                1 + n != VALUE_WORD,
                "{request:?} word {n}"
            );
        }
    }
}
