//! Tests of the split virtqueue's device side against a fake guest driver.

use super::*;
use crate::testing::{FakeRam, GuestQueue};
use proptest::prelude::*;

const RAM: u64 = 0x8000_0000;
const BUF: u64 = RAM + 0x4000;

fn setup(size: u16) -> (FakeRam, GuestQueue, SplitQueue) {
    let ram = FakeRam::new(RAM, 0x8000);
    let guest = GuestQueue::new(RAM, size);
    let mut queue = SplitQueue::new(MAX_QUEUE_SIZE);
    queue.size = size;
    queue.desc_table = guest.desc;
    queue.avail_ring = guest.avail;
    queue.used_ring = guest.used;
    queue.ready = true;
    (ram, guest, queue)
}

#[test]
fn pops_chains_in_order_with_their_buffers() {
    let (mut ram, mut guest, mut queue) = setup(8);
    assert_eq!(queue.pop(&mut ram), Ok(None));
    let first = guest.post(&mut ram, &[(BUF, 4, false), (BUF + 0x100, 8, true)]);
    let second = guest.post(&mut ram, &[(BUF + 0x200, 2, true)]);
    let chain = queue.pop(&mut ram).unwrap().unwrap();
    assert_eq!(chain.head, first);
    assert_eq!(
        chain.descriptors.as_slice(),
        &[
            Descriptor {
                addr: BUF,
                len: 4,
                writable: false
            },
            Descriptor {
                addr: BUF + 0x100,
                len: 8,
                writable: true
            },
        ]
    );
    assert_eq!(queue.pop(&mut ram).unwrap().unwrap().head, second);
    assert_eq!(queue.pop(&mut ram), Ok(None));
}

#[test]
fn used_ring_gets_id_length_and_index() {
    let (mut ram, mut guest, mut queue) = setup(4);
    for round in 0..6u16 {
        let head = guest.post(&mut ram, &[(BUF, 16, true)]);
        let chain = queue.pop(&mut ram).unwrap().unwrap();
        queue
            .push_used(&mut ram, chain.head, 10 + u32::from(round))
            .unwrap();
        assert_eq!(guest.used_idx(&ram), round + 1);
        assert_eq!(
            guest.used_entry(&ram, round),
            (u32::from(head), 10 + u32::from(round))
        );
    }
}

#[test]
fn readable_bytes_are_gathered_and_writable_ones_filled() {
    let (mut ram, mut guest, mut queue) = setup(8);
    ram.write(BUF, b"hello ").unwrap();
    ram.write(BUF + 0x100, b"world").unwrap();
    guest.post(
        &mut ram,
        &[
            (BUF, 6, false),
            (BUF + 0x100, 5, false),
            (BUF + 0x200, 3, true),
            (BUF + 0x300, 100, true),
        ],
    );
    let chain = queue.pop(&mut ram).unwrap().unwrap();
    let mut gathered = std::vec::Vec::new();
    let total = chain
        .for_each_readable(&ram, |piece| gathered.extend_from_slice(piece))
        .unwrap();
    assert_eq!((total, gathered.as_slice()), (11, &b"hello world"[..]));
    let mut small = [0u8; 4];
    assert_eq!(chain.read_into(&ram, &mut small), Ok(4));
    assert_eq!(&small, b"hell");
    let mut next = 0u8;
    let written = chain
        .fill_writable(&mut ram, 70, |buf| {
            for b in buf.iter_mut() {
                next += 1;
                *b = next;
            }
            buf.len()
        })
        .unwrap();
    assert_eq!(written, 70);
    assert_eq!(ram.bytes_at(BUF + 0x200, 3), [1, 2, 3]);
    assert_eq!(ram.bytes_at(BUF + 0x300, 2), [4, 5]);
    assert_eq!(
        ram.bytes_at(BUF + 0x300 + 66, 2),
        [70, 0],
        "stops at the limit"
    );
}

#[test]
fn fill_stops_when_the_source_runs_dry() {
    let (mut ram, mut guest, mut queue) = setup(8);
    guest.post(&mut ram, &[(BUF, 64, true)]);
    let chain = queue.pop(&mut ram).unwrap().unwrap();
    let mut left = 5usize;
    let written = chain
        .fill_writable(&mut ram, 64, |buf| {
            let n = left.min(buf.len());
            left -= n;
            n
        })
        .unwrap();
    assert_eq!(written, 5);
}

#[test]
fn a_chain_without_writable_buffers_is_refused_for_filling() {
    let (mut ram, mut guest, mut queue) = setup(8);
    guest.post(&mut ram, &[(BUF, 8, false)]);
    let chain = queue.pop(&mut ram).unwrap().unwrap();
    assert_eq!(
        chain.fill_writable(&mut ram, 8, |b| b.len()),
        Err(QueueError::WritableRequired)
    );
}

#[test]
fn a_looping_chain_is_refused() {
    let (mut ram, mut guest, mut queue) = setup(4);
    guest.write_desc(&mut ram, 0, BUF, 1, 1, 1);
    guest.write_desc(&mut ram, 1, BUF, 1, 1, 0);
    guest.publish(&mut ram, 0);
    assert_eq!(queue.pop(&mut ram), Err(QueueError::ChainTooLong));
}

#[test]
fn out_of_range_indices_and_addresses_are_refused() {
    let (mut ram, mut guest, mut queue) = setup(4);
    guest.publish(&mut ram, 4);
    assert_eq!(
        queue.pop(&mut ram),
        Err(QueueError::DescriptorIndex { index: 4 })
    );

    let (mut ram, mut guest, mut queue) = setup(4);
    guest.write_desc(&mut ram, 0, BUF, 1, 1, 9);
    guest.publish(&mut ram, 0);
    assert_eq!(
        queue.pop(&mut ram),
        Err(QueueError::DescriptorIndex { index: 9 })
    );

    let (mut ram, mut guest, mut queue) = setup(4);
    guest.post(&mut ram, &[(0x10, 4, false)]);
    let chain = queue.pop(&mut ram).unwrap().unwrap();
    let mut buf = [0u8; 4];
    assert!(matches!(
        chain.read_into(&ram, &mut buf),
        Err(QueueError::Memory(_))
    ));

    let (mut ram, _guest, mut queue) = setup(4);
    queue.avail_ring = 0x10;
    assert!(matches!(queue.pop(&mut ram), Err(QueueError::Memory(_))));
    queue.used_ring = u64::MAX - 3;

    assert!(queue.push_used(&mut ram, 0, 0).is_err());
}

#[test]
fn length_overflows_are_refused() {
    let (mut ram, mut guest, mut queue) = setup(4);
    guest.post(&mut ram, &[(u64::MAX - 2, 4, true)]);
    assert_eq!(queue.pop(&mut ram), Err(QueueError::LengthOverflow));

    let (mut ram, mut guest, mut queue) = setup(4);
    guest.post(&mut ram, &[(BUF, u32::MAX, true), (BUF, 2, true)]);
    assert_eq!(queue.pop(&mut ram), Err(QueueError::LengthOverflow));
}

#[test]
fn indirect_and_misordered_descriptors_are_refused() {
    let (mut ram, mut guest, mut queue) = setup(4);
    guest.write_desc(&mut ram, 0, BUF, 16, 4, 0);
    guest.publish(&mut ram, 0);
    assert_eq!(queue.pop(&mut ram), Err(QueueError::IndirectNotNegotiated));

    let (mut ram, mut guest, mut queue) = setup(4);
    guest.post(&mut ram, &[(BUF, 4, true), (BUF, 4, false)]);
    assert_eq!(queue.pop(&mut ram), Err(QueueError::ReadableAfterWritable));
}

#[test]
fn an_avail_index_jump_beyond_the_queue_size_is_refused() {
    let (mut ram, guest, mut queue) = setup(4);
    ram.write_u16(guest.avail + 2, 5);
    assert_eq!(
        queue.pop(&mut ram),
        Err(QueueError::AvailIdxJump { distance: 5 })
    );
    ram.write_u16(guest.avail + 2, 4);
    assert!(queue.pop(&mut ram).is_ok());
}

#[test]
fn validity_needs_power_of_two_size_and_aligned_rings() {
    let (_, _, mut queue) = setup(8);
    assert!(queue.is_valid());
    for size in [0, 3, 128] {
        queue.size = size;
        assert!(!queue.is_valid(), "size {size}");
    }
    queue.size = 8;
    queue.desc_table += 8;
    assert!(!queue.is_valid());
    queue.desc_table -= 8;
    queue.avail_ring += 1;
    assert!(!queue.is_valid());
    queue.avail_ring -= 1;
    queue.used_ring += 2;
    assert!(!queue.is_valid());
    queue.reset();
    assert_eq!(
        (queue.size, queue.ready, queue.desc_table),
        (MAX_QUEUE_SIZE, false, 0)
    );
}

const TABLE: u64 = RAM + 0x6000;

fn with_indirect(size: u16) -> (FakeRam, GuestQueue, SplitQueue) {
    let (ram, guest, mut queue) = setup(size);
    queue.features.indirect_desc = true;
    (ram, guest, queue)
}

/// Writes indirect-table entry `i` at [`TABLE`].
fn table_entry(ram: &mut FakeRam, i: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let at = TABLE + i * 16;
    ram.write_u64(at, addr);
    ram.write_u32(at + 8, len);
    ram.write_u16(at + 12, flags);
    ram.write_u16(at + 14, next);
}

#[test]
fn an_indirect_table_after_direct_descriptors_is_one_chain() {
    let (mut ram, mut guest, mut queue) = with_indirect(4);
    ram.write(BUF, b"head").unwrap();
    ram.write(BUF + 0x100, b"-tail").unwrap();
    // Entries chained out of order: 0 -> 2 -> 1.
    table_entry(&mut ram, 0, BUF + 0x100, 5, 1, 2);
    table_entry(&mut ram, 2, BUF + 0x200, 3, 2 | 1, 1);
    table_entry(&mut ram, 1, BUF + 0x300, 4, 2, 0);
    // A direct readable descriptor, then the indirect one (its WRITE flag
    // means nothing).
    guest.write_desc(&mut ram, 0, BUF, 4, 1, 3);
    guest.write_desc(&mut ram, 3, TABLE, 48, 4 | 2, 0);
    guest.publish(&mut ram, 0);
    let chain = queue.pop(&mut ram).unwrap().unwrap();
    assert_eq!(chain.head, 0);
    let lens: std::vec::Vec<(u32, bool)> = chain
        .descriptors
        .iter()
        .map(|d| (d.len, d.writable))
        .collect();
    assert_eq!(lens, [(4, false), (5, false), (3, true), (4, true)]);
    let mut read = [0u8; 16];
    assert_eq!(chain.read_into(&ram, &mut read).unwrap(), 9);
    assert_eq!(&read[..9], b"head-tail");
    let mut n = 0u8;
    let written = chain
        .fill_writable(&mut ram, 100, |b| {
            b.iter_mut().for_each(|x| {
                n += 1;
                *x = n;
            });
            b.len()
        })
        .unwrap();
    assert_eq!(written, 7);
    assert_eq!(ram.bytes_at(BUF + 0x200, 3), [1, 2, 3]);
    assert_eq!(ram.bytes_at(BUF + 0x300, 4), [4, 5, 6, 7]);
}

#[test]
fn an_indirect_table_may_hold_more_than_the_queue_size() {
    let (mut ram, mut guest, mut queue) = with_indirect(2);
    let bufs: std::vec::Vec<(u64, u32, bool)> = (0..MAX_CHAIN as u64)
        .map(|i| (BUF + i * 8, 8, i >= 10))
        .collect();
    guest.post_indirect(&mut ram, TABLE, &bufs);
    let chain = queue.pop(&mut ram).unwrap().unwrap();
    assert_eq!(chain.descriptors.len(), MAX_CHAIN);
}

#[test]
fn indirect_descriptors_need_the_feature() {
    let (mut ram, mut guest, mut queue) = setup(4);
    guest.post_indirect(&mut ram, TABLE, &[(BUF, 4, true)]);
    assert_eq!(queue.pop(&mut ram), Err(QueueError::IndirectNotNegotiated));
}

/// Pops one chain whose only descriptor points at [`TABLE`] with `len`
/// bytes and `flags`, after `entries` wrote the table.
fn pop_table(
    len: u32,
    flags: u16,
    entries: &[(u64, u32, u16, u16)],
) -> Result<DescriptorChain, QueueError> {
    let (mut ram, guest, mut queue) = with_indirect(4);
    for (i, &(addr, len, flags, next)) in entries.iter().enumerate() {
        table_entry(&mut ram, i as u64, addr, len, flags, next);
    }
    let mut guest = guest;
    guest.write_desc(&mut ram, 0, TABLE, len, flags, 1);
    guest.write_desc(&mut ram, 1, BUF, 4, 2, 0);
    guest.publish(&mut ram, 0);
    queue.pop(&mut ram).map(Option::unwrap)
}

#[test]
fn bad_indirect_tables_are_refused() {
    let one = [(BUF, 4, 2, 0)];
    assert!(pop_table(16, 4, &one).is_ok());
    for len in [0, 8, 24, 17] {
        assert_eq!(
            pop_table(len, 4, &one),
            Err(QueueError::BadIndirectTable { len })
        );
    }
    let too_many = (u32::from(MAX_QUEUE_SIZE) + 1) * 16;
    assert_eq!(
        pop_table(too_many, 4, &one),
        Err(QueueError::BadIndirectTable { len: too_many })
    );
    assert_eq!(
        pop_table(16, 4 | 1, &one),
        Err(QueueError::IndirectWithNext)
    );
    assert_eq!(
        pop_table(32, 4, &[(BUF, 4, 1, 1), (TABLE, 16, 4, 0)]),
        Err(QueueError::NestedIndirect)
    );
    // 0 -> 1 -> 0 -> ...: a loop inside the table.
    assert_eq!(
        pop_table(32, 4, &[(BUF, 4, 1, 1), (BUF, 4, 1, 0)]),
        Err(QueueError::ChainTooLong)
    );
    assert_eq!(
        pop_table(32, 4, &[(BUF, 4, 1, 2), (BUF, 4, 0, 0)]),
        Err(QueueError::DescriptorIndex { index: 2 })
    );
    assert_eq!(
        pop_table(32, 4, &[(BUF, 4, 2 | 1, 1), (BUF, 4, 0, 0)]),
        Err(QueueError::ReadableAfterWritable)
    );
    assert_eq!(
        pop_table(16, 4, &[(u64::MAX - 2, 4, 2, 0)]),
        Err(QueueError::LengthOverflow)
    );
    // The table itself outside guest RAM, or running past it.
    let (mut ram, mut guest, mut queue) = with_indirect(4);
    guest.write_desc(&mut ram, 0, 0x1000, 16, 4, 0);
    guest.publish(&mut ram, 0);
    assert!(matches!(queue.pop(&mut ram), Err(QueueError::Memory(_))));
    let (mut ram, mut guest, mut queue) = with_indirect(4);
    guest.write_desc(&mut ram, 0, RAM + 0x8000 - 16, 32, 4, 0);
    guest.publish(&mut ram, 0);
    ram.write_u64(RAM + 0x8000 - 16, BUF);
    ram.write_u16(RAM + 0x8000 - 4, 1);
    ram.write_u16(RAM + 0x8000 - 2, 1);
    assert!(matches!(queue.pop(&mut ram), Err(QueueError::Memory(_))));
    let (mut ram, mut guest, mut queue) = with_indirect(4);
    guest.write_desc(&mut ram, 0, u64::MAX - 15, 32, 4, 0);
    guest.publish(&mut ram, 0);
    assert_eq!(queue.pop(&mut ram), Err(QueueError::LengthOverflow));
}

#[test]
fn need_event_follows_the_spec_rule_across_the_u16_wrap() {
    // Entries old..new were used; the driver wants to hear once entry
    // `event` is.
    assert!(need_event(3, 5, 3));
    assert!(need_event(4, 5, 3));
    assert!(!need_event(5, 5, 3), "entry 5 not used yet");
    assert!(!need_event(2, 5, 3), "entry 2 was used before");
    assert!(need_event(0xffff, 1, 0xfffe));
    assert!(need_event(0, 1, 0xfffe));
    assert!(!need_event(1, 1, 0xfffe));
    assert!(!need_event(0xfffd, 1, 0xfffe));
    assert!(!need_event(7, 7, 7), "nothing used");
}

#[test]
fn with_event_idx_an_empty_ring_publishes_avail_event() {
    let (mut ram, mut guest, mut queue) = setup(4);
    ram.write_u16(guest.used + 4 + 4 * 8, 0xabcd);
    assert_eq!(queue.pop(&mut ram), Ok(None));
    assert_eq!(
        guest.avail_event(&ram),
        0xabcd,
        "untouched without EVENT_IDX"
    );
    queue.features.event_idx = true;
    assert_eq!(queue.pop(&mut ram), Ok(None));
    assert_eq!(guest.avail_event(&ram), 0);
    guest.post(&mut ram, &[(BUF, 4, true)]);
    guest.post(&mut ram, &[(BUF, 4, true)]);
    assert!(queue.pop(&mut ram).unwrap().is_some());
    assert!(queue.pop(&mut ram).unwrap().is_some());
    assert_eq!(guest.avail_event(&ram), 0, "only an empty ring updates it");
    assert_eq!(queue.pop(&mut ram), Ok(None));
    assert_eq!(
        guest.avail_event(&ram),
        2,
        "notify me when entry 2 is posted"
    );
    // Across the wrap of the avail index.
    queue.next_avail = 0xffff;
    guest.avail_idx = 0xffff;
    ram.write_u16(guest.avail + 2, 0xffff);
    assert_eq!(queue.pop(&mut ram), Ok(None));
    assert_eq!(guest.avail_event(&ram), 0xffff);
    guest.post(&mut ram, &[(BUF, 4, true)]);
    assert!(queue.pop(&mut ram).unwrap().is_some());
    assert_eq!(queue.pop(&mut ram), Ok(None));
    assert_eq!(guest.avail_event(&ram), 0);
}

#[test]
fn interrupts_follow_used_event_with_event_idx() {
    let (mut ram, mut guest, mut queue) = setup(4);
    guest.set_used_event(&mut ram, 1);
    let used = |queue: &mut SplitQueue, ram: &mut FakeRam, guest: &mut GuestQueue| {
        let before = queue.used_index();
        guest.post(ram, &[(BUF, 4, true)]);
        let chain = queue.pop(ram).unwrap().unwrap();
        queue.push_used(ram, chain.head, 0).unwrap();
        queue.needs_interrupt(ram, before).unwrap()
    };
    assert!(
        used(&mut queue, &mut ram, &mut guest),
        "no EVENT_IDX: always"
    );
    assert!(
        !queue.needs_interrupt(&ram, queue.used_index()).unwrap(),
        "nothing used"
    );
    queue.features.event_idx = true;
    // The used index is 1; the driver asks to hear when entry 2 is used.
    guest.set_used_event(&mut ram, 2);
    assert!(!used(&mut queue, &mut ram, &mut guest), "entry 1");
    assert!(used(&mut queue, &mut ram, &mut guest), "entry 2");
    assert!(
        !used(&mut queue, &mut ram, &mut guest),
        "entry 3: event passed"
    );
    // Across the wrap of the used index.
    queue.next_used = 0xfffe;
    guest.set_used_event(&mut ram, 0xffff);
    assert!(!used(&mut queue, &mut ram, &mut guest), "entry 0xfffe");
    assert!(used(&mut queue, &mut ram, &mut guest), "entry 0xffff");
    guest.set_used_event(&mut ram, 0);
    assert!(used(&mut queue, &mut ram, &mut guest), "entry 0");
    // Two entries in one go: an event on either fires once.
    guest.set_used_event(&mut ram, 1);
    let before = queue.used_index();
    for _ in 0..2 {
        guest.post(&mut ram, &[(BUF, 4, true)]);
        let chain = queue.pop(&mut ram).unwrap().unwrap();
        queue.push_used(&mut ram, chain.head, 0).unwrap();
    }
    assert!(queue.needs_interrupt(&ram, before).unwrap());
    // used_event outside guest RAM.
    queue.avail_ring = RAM + 0x8000 - 6;
    assert!(matches!(
        queue.needs_interrupt(&ram, before),
        Err(QueueError::Memory(_))
    ));
}

proptest! {
    #[test]
    fn random_tables_and_rings_never_panic(
        table in proptest::collection::vec(any::<u8>(), 0x3000),
        size_log in 0u32..7,
        rounds in 1usize..8,
        indirect_desc in any::<bool>(),
        event_idx in any::<bool>(),
    ) {
        let mut ram = FakeRam::new(RAM, 0x8000);
        ram.write(RAM, &table).unwrap();
        let mut queue = SplitQueue::new(MAX_QUEUE_SIZE);
        queue.size = 1 << size_log;
        queue.desc_table = RAM;
        queue.avail_ring = RAM + 0x1000;
        queue.used_ring = RAM + 0x2000;
        queue.features = RingFeatures { indirect_desc, event_idx };
        for _ in 0..rounds {
            match queue.pop(&mut ram) {
                Ok(Some(chain)) => {
                    let most = if indirect_desc {
                        usize::from(queue.size) - 1 + MAX_CHAIN
                    } else {
                        usize::from(queue.size)
                    };
                    prop_assert!(chain.descriptors.len() <= most.min(MAX_CHAIN));
                    let _ = chain.for_each_readable(&ram, |_| {});
                    let _ = chain.fill_writable(&mut ram, 256, |b| b.len());
                    let _ = queue.push_used(&mut ram, chain.head, 0);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}
