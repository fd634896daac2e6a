#![allow(
    clippy::cast_possible_truncation,
    reason = "ring sizes and test counters are small constants"
)]

extern crate std;

use std::boxed::Box;
use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

fn write(n: u64) -> PostedWrite {
    PostedWrite {
        space: if n.is_multiple_of(3) {
            Space::Pio
        } else {
            Space::Mmio
        },
        addr: 0x1000_0000 + n,
        size: [1, 2, 4, 8][(n % 4) as usize],
        value: n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    }
}

fn page() -> Box<PostedPage> {
    Box::new(PostedPage::new())
}

#[test]
fn writes_come_out_in_the_order_they_went_in() {
    let page = page();
    let mut next = 0;
    assert!(page.is_empty());
    for n in 0..10 {
        assert!(page.push(&mut next, &write(n)));
    }
    assert!(!page.is_empty());
    for n in 0..10 {
        assert_eq!(page.pop(), Some(Ok(write(n))));
    }
    assert_eq!(page.pop(), None);
    assert!(page.is_empty());
}

#[test]
fn a_full_ring_refuses_until_the_service_takes_one() {
    let page = page();
    let mut next = 0;
    for n in 0..ENTRIES as u64 {
        assert!(page.push(&mut next, &write(n)), "entry {n} fits");
    }
    assert!(!page.push(&mut next, &write(99)), "the ring is full");
    assert_eq!(next, ENTRIES as u32, "a refused push changes nothing");
    assert_eq!(page.pop(), Some(Ok(write(0))));
    assert!(page.push(&mut next, &write(99)));
    for n in 1..ENTRIES as u64 {
        assert_eq!(page.pop(), Some(Ok(write(n))));
    }
    assert_eq!(page.pop(), Some(Ok(write(99))));
    assert_eq!(page.pop(), None);
}

#[test]
fn indices_wrap_around_u32() {
    let page = page();
    let start = u32::MAX - 2;
    page.scribble_read(start);
    page.scribble_entry(0, 0, start);
    let mut next = start;
    for n in 0..8 {
        assert!(page.push(&mut next, &write(n)));
    }
    assert_eq!(next, start.wrapping_add(8));
    for n in 0..8 {
        assert_eq!(page.pop(), Some(Ok(write(n))));
    }
    assert_eq!(page.pop(), None);
}

/// A service that writes nonsense into its read index gets a full ring:
/// the kernel keeps its own write index and falls back to the slot.
#[test]
fn a_read_index_that_makes_no_sense_reads_as_full() {
    let page = page();
    let mut next = 5;
    for hostile in [6, 100, u32::MAX / 2, 5u32.wrapping_sub(ENTRIES as u32)] {
        page.scribble_read(hostile);
        assert!(
            !page.push(&mut next, &write(1)),
            "read index {hostile} against write index 5"
        );
        assert_eq!(next, 5);
    }
    page.scribble_read(5);
    assert!(page.push(&mut next, &write(1)));
}

#[test]
fn a_corrupted_entry_is_refused_and_consumed() {
    let page = page();
    let mut next = 0;
    assert!(page.push(&mut next, &write(1)));
    assert!(page.push(&mut next, &write(2)));
    for meta in [0, 3, 0x200 | 1, 0x1_0001, u64::MAX] {
        page.scribble_entry(0, meta, 2);
        page.scribble_read(0);
        assert_eq!(
            page.pop(),
            Some(Err(PostedError::BadEntry)),
            "meta {meta:#x}"
        );
        assert_eq!(page.pop(), Some(Ok(write(2))), "the next entry is intact");
    }
}

#[test]
fn a_write_index_far_ahead_is_an_overrun_and_skipped() {
    let page = page();
    page.scribble_entry(0, 1, ENTRIES as u32 + 1);
    assert_eq!(page.pop(), Some(Err(PostedError::Overrun)));
    assert_eq!(page.pop(), None);
    assert!(page.is_empty());
}

#[derive(Clone, Debug)]
enum Op {
    Push(u64),
    Pop,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![any::<u64>().prop_map(Op::Push), Just(Op::Pop)]
}

proptest! {
    /// Any interleaving of pushes and pops behaves like a bounded queue,
    /// from any starting index (wrap-around included).
    #[test]
    fn the_ring_is_a_bounded_fifo(start in any::<u32>(), ops in prop::collection::vec(op(), 0..400)) {
        let page = page();
        page.scribble_read(start);
        page.scribble_entry(0, 0, start);
        let mut next = start;
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(n) => {
                    let fits = model.len() < ENTRIES;
                    prop_assert_eq!(page.push(&mut next, &write(n)), fits);
                    if fits {
                        model.push_back(write(n));
                    }
                }
                Op::Pop => prop_assert_eq!(page.pop(), model.pop_front().map(Ok)),
            }
            prop_assert_eq!(page.is_empty(), model.is_empty());
        }
    }
}
