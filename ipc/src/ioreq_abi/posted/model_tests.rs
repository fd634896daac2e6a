//! Every interleaving of one producer (the kernel's `push`) and one
//! consumer (the service's `pop`) on a real [`PostedPage`], checked for
//! lost, doubled and reordered writes and, with a happens-before race
//! detector (vector clocks), for an entry read before its write is
//! published or overwritten before its read is over.
//!
//! The ring has 64 entries, too many to explore a whole lap with every
//! stale view each side may have of the other's index. So each test
//! explores a window of a few pushes and pops from a starting point reached
//! one call at a time (which happens before the window): an empty ring,
//! a ring two entries short of full (the producer reuses entries the
//! consumer reads during the window), and the same across the `u32` wrap of
//! the indices. After the window the rest is drained and checked.
//!
//! Each step calls one of the functions `push` and `pop` are built from, in
//! their order, and is one access to an index or one run of entry accesses:
//!
//! - `push` = `has_room` (load read index) ; `put` ; `publish_write`
//! - `pop` = `read_index` ; `written` (load write index) ; `take` ;
//!   `publish_read`
//!
//! The entries are relaxed atomics, so no access to them is undefined
//! behaviour; the detector still treats them as plain data, since a relaxed
//! read that is not ordered after the write it should see may return the
//! old entry. Memory is sequentially consistent; as in the slot model
//! (`slot/model_tests.rs`), per-location coherence makes each index
//! sequentially consistent and the race check covers the entries (DRF-SC).
//! A step that would only find the ring full (producer) or empty (consumer)
//! is not taken: it changes nothing but the waiter's clock, and a join
//! left out can only add a reported race, never hide one.

extern crate std;

use std::collections::HashSet;
use std::format;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::string::String;
use std::vec::Vec;

use super::*;
use crate::ioreq_abi::memory_model::{acquires, join, releases};

const PRODUCER: usize = 0;
const CONSUMER: usize = 1;

/// Pushes and pops explored per window.
const WINDOW: u32 = 6;

type Clock = [u32; 2];

#[derive(Clone, Copy)]
struct Orderings {
    read_load: Ordering,
    write_publish: Ordering,
    write_load: Ordering,
    read_publish: Ordering,
}

const REAL: Orderings = Orderings {
    read_load: READ_INDEX_LOAD,
    write_publish: WRITE_INDEX_PUBLISH,
    write_load: WRITE_INDEX_LOAD,
    read_publish: READ_INDEX_PUBLISH,
};

/// The write the producer pushes at index `n`.
fn nth(n: u32) -> PostedWrite {
    PostedWrite {
        space: if n.is_multiple_of(2) {
            Space::Mmio
        } else {
            Space::Pio
        },
        addr: 0x3f8 + u64::from(n),
        size: 1,
        value: u64::from(n) ^ 0x5a5a,
    }
}

#[derive(Clone, Copy, Hash, PartialEq, Eq, Debug)]
enum ProducerPc {
    Room,
    Put,
    Publish,
    Done,
}

#[derive(Clone, Copy, Hash, PartialEq, Eq, Debug)]
enum ConsumerPc {
    ReadIndex,
    Written,
    Take,
    Publish,
}

/// Epochs of an entry's last write (by the producer) and last read (by
/// the consumer).
#[derive(Clone, Copy, Hash, PartialEq, Eq, Default)]
struct Shadow {
    written: u32,
    read: u32,
}

struct World {
    page: PostedPage,
    shadow: [Shadow; ENTRIES],
    /// What a load of the read / write index acquires.
    read_released: Clock,
    write_released: Clock,
    clocks: [Clock; 2],
    producer: ProducerPc,
    next: u32,
    consumer: ConsumerPc,
    /// The consumer's registers: its read index and the write index seen.
    read: u32,
    write: u32,
    pushes_left: u32,
    pops_left: u32,
}

impl Clone for World {
    fn clone(&self) -> Self {
        let page = PostedPage::new();
        page.read
            .store(self.page.read.load(Ordering::Relaxed), Ordering::Relaxed);
        page.write
            .store(self.page.write.load(Ordering::Relaxed), Ordering::Relaxed);
        for (to, from) in page.entries.iter().zip(&self.page.entries) {
            for (a, b) in [
                (&to.addr, &from.addr),
                (&to.value, &from.value),
                (&to.meta, &from.meta),
            ] {
                a.store(b.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        Self {
            page,
            shadow: self.shadow,
            read_released: self.read_released,
            write_released: self.write_released,
            clocks: self.clocks,
            producer: self.producer,
            next: self.next,
            consumer: self.consumer,
            read: self.read,
            write: self.write,
            pushes_left: self.pushes_left,
            pops_left: self.pops_left,
        }
    }
}

impl World {
    /// The consumer at `read`, the producer at `next` with the writes in
    /// between in the ring, all of it before the window.
    fn start(read: u32, next: u32) -> Self {
        let page = PostedPage::new();
        page.publish_read(read);
        let mut index = read;
        while index != next {
            page.put(index, &nth(index));
            index = index.wrapping_add(1);
        }
        page.publish_write(next);
        Self {
            page,
            shadow: [Shadow::default(); ENTRIES],
            read_released: [0; 2],
            write_released: [0; 2],
            clocks: [[1, 0], [0, 1]],
            producer: ProducerPc::Room,
            next,
            consumer: ConsumerPc::ReadIndex,
            read,
            write: next,
            pushes_left: WINDOW,
            pops_left: WINDOW,
        }
    }

    /// A digest of everything but the page's untouched tail.
    fn key(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.page.read.load(Ordering::Relaxed).hash(&mut h);
        self.page.write.load(Ordering::Relaxed).hash(&mut h);
        for entry in &self.page.entries {
            entry.addr.load(Ordering::Relaxed).hash(&mut h);
            entry.value.load(Ordering::Relaxed).hash(&mut h);
            entry.meta.load(Ordering::Relaxed).hash(&mut h);
        }
        (
            &self.shadow,
            self.read_released,
            self.write_released,
            self.clocks,
            self.producer,
            self.next,
            self.consumer,
            (self.read, self.write, self.pushes_left, self.pops_left),
        )
            .hash(&mut h);
        h.finish()
    }

    fn acquire(&mut self, t: usize, ordering: Ordering, released: Clock) {
        if acquires(ordering) {
            join(&mut self.clocks[t], &released);
        }
    }

    /// A store by `t`: what a later acquire of it gets.
    fn release(&mut self, t: usize, ordering: Ordering) -> Clock {
        if releases(ordering) {
            let clock = self.clocks[t];
            self.clocks[t][t] += 1;
            clock
        } else {
            [0; 2]
        }
    }

    fn slot(index: u32) -> usize {
        index as usize % ENTRIES
    }
}

type Move = (&'static str, Result<World, String>);

fn producer_moves(world: &World, o: Orderings) -> Vec<Move> {
    let mut w = world.clone();
    let (label, result) = match w.producer {
        ProducerPc::Done => return Vec::new(),
        ProducerPc::Room => {
            if !w.page.has_room(w.next) {
                return Vec::new(); // full: waits
            }
            let released = w.read_released;
            w.acquire(PRODUCER, o.read_load, released);
            w.producer = ProducerPc::Put;
            ("push: load read index", Ok(w))
        }
        ProducerPc::Put => {
            let shadow = w.shadow[World::slot(w.next)];
            let result = if shadow.read > w.clocks[PRODUCER][CONSUMER] {
                Err(format!(
                    "data race: write {} overwrites entry {} before the consumer's read of it \
                     happens before",
                    w.next,
                    World::slot(w.next)
                ))
            } else {
                w.page.put(w.next, &nth(w.next));
                w.shadow[World::slot(w.next)].written = w.clocks[PRODUCER][PRODUCER];
                w.producer = ProducerPc::Publish;
                Ok(w)
            };
            ("push: write entry", result)
        }
        ProducerPc::Publish => {
            w.next = w.next.wrapping_add(1);
            w.page.publish_write(w.next);
            w.write_released = w.release(PRODUCER, o.write_publish);
            w.pushes_left -= 1;
            w.producer = if w.pushes_left == 0 {
                ProducerPc::Done
            } else {
                ProducerPc::Room
            };
            ("push: publish write index", Ok(w))
        }
    };
    Vec::from([(label, result)])
}

fn consumer_moves(world: &World, o: Orderings) -> Vec<Move> {
    let mut w = world.clone();
    let (label, result) = match w.consumer {
        ConsumerPc::ReadIndex => {
            if w.pops_left == 0 {
                return Vec::new();
            }
            w.read = w.page.read_index();
            w.consumer = ConsumerPc::Written;
            ("pop: load read index", Ok(w))
        }
        ConsumerPc::Written => {
            let write = w.page.written();
            if write == w.read {
                return Vec::new(); // empty: waits
            }
            let released = w.write_released;
            w.acquire(CONSUMER, o.write_load, released);
            w.write = write;
            let result = if write.wrapping_sub(w.read) as usize > ENTRIES {
                Err(format!("overrun: read {} write {write}", w.read))
            } else {
                w.consumer = ConsumerPc::Take;
                Ok(w)
            };
            ("pop: load write index", result)
        }
        ConsumerPc::Take => {
            let entry = World::slot(w.read);
            let result = if w.shadow[entry].written > w.clocks[CONSUMER][PRODUCER] {
                Err(format!(
                    "data race: the consumer reads entry {entry} before the producer's write of \
                     it happens before"
                ))
            } else {
                match w.page.take(w.read) {
                    Ok(taken) if taken == nth(w.read) => {
                        w.shadow[entry].read = w.clocks[CONSUMER][CONSUMER];
                        w.pops_left -= 1;
                        w.consumer = ConsumerPc::Publish;
                        Ok(w)
                    }
                    other => Err(format!(
                        "pop {} got {other:?}, pushed {:?}",
                        w.read,
                        nth(w.read)
                    )),
                }
            };
            ("pop: read entry", result)
        }
        ConsumerPc::Publish => {
            w.page.publish_read(w.read.wrapping_add(1));
            w.read_released = w.release(CONSUMER, o.read_publish);
            w.consumer = ConsumerPc::ReadIndex;
            ("pop: publish read index", Ok(w))
        }
    };
    Vec::from([(label, result)])
}

/// After the window: the rest comes out in order, then nothing.
fn drain(world: &World) -> Result<(), String> {
    let mut index = world.read.wrapping_add(1);
    while index != world.next {
        let popped = world.page.pop();
        if popped != Some(Ok(nth(index))) {
            return Err(format!("drain at {index}: {popped:?}"));
        }
        index = index.wrapping_add(1);
    }
    match world.page.pop() {
        None => Ok(()),
        Some(extra) => Err(format!("an extra entry: {extra:?}")),
    }
}

struct Explored {
    states: usize,
    finals: usize,
}

/// Every state reachable from `start` once.
fn explore(start: World, o: Orderings) -> Result<Explored, String> {
    let mut seen = HashSet::new();
    let mut stack = Vec::from([start]);
    let mut explored = Explored {
        states: 0,
        finals: 0,
    };
    while let Some(world) = stack.pop() {
        if !seen.insert(world.key()) {
            continue;
        }
        explored.states += 1;
        let mut moves = producer_moves(&world, o);
        moves.extend(consumer_moves(&world, o));
        if moves.is_empty() {
            explored.finals += 1;
            if world.producer != ProducerPc::Done || world.pops_left != 0 {
                return Err(format!(
                    "stuck: producer {:?} at {}, consumer {:?} at {}",
                    world.producer, world.next, world.consumer, world.read
                ));
            }
            drain(&world)?;
        }
        for (label, next) in moves {
            let next = next.map_err(|e| {
                format!(
                    "{label}: {e} (producer at {}, consumer at {})",
                    world.next, world.read
                )
            })?;
            stack.push(next);
        }
    }
    Ok(explored)
}

/// Where the windows start: (read index, write index).
const STARTS: [(u32, u32); 3] = [
    (0, 0),
    (0, ENTRIES_U32 - 2),
    (0u32.wrapping_sub(ENTRIES_U32), 0u32.wrapping_sub(2)),
];
const ENTRIES_U32: u32 = 64;
const _: () = assert!(ENTRIES_U32 as usize == ENTRIES);

#[test]
fn every_write_comes_out_once_in_order_in_every_interleaving() {
    for (read, next) in STARTS {
        let explored = explore(World::start(read, next), REAL)
            .unwrap_or_else(|broken| panic!("from {read}/{next}: {broken}"));
        // Final states differ only in what each side last saw of the other.
        assert!(explored.finals >= 1);
        assert!(explored.states > 100, "{} states", explored.states);
    }
}

#[test]
fn the_model_finds_each_weakened_ordering() {
    let weakened = [
        (
            Orderings {
                write_publish: Ordering::Relaxed,
                ..REAL
            },
            0,
            "reads entry",
        ),
        (
            Orderings {
                write_load: Ordering::Relaxed,
                ..REAL
            },
            0,
            "reads entry",
        ),
        (
            Orderings {
                read_publish: Ordering::Relaxed,
                ..REAL
            },
            1,
            "overwrites entry",
        ),
        (
            Orderings {
                read_load: Ordering::Relaxed,
                ..REAL
            },
            1,
            "overwrites entry",
        ),
    ];
    for (orderings, start, race) in weakened {
        let (read, next) = STARTS[start];
        match explore(World::start(read, next), orderings) {
            Ok(explored) => panic!("no race found in {} states", explored.states),
            Err(broken) => assert!(broken.contains(race), "{broken}"),
        }
    }
}
