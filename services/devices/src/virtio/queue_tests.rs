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
    assert_eq!(queue.pop(&ram), Ok(None));
    let first = guest.post(&mut ram, &[(BUF, 4, false), (BUF + 0x100, 8, true)]);
    let second = guest.post(&mut ram, &[(BUF + 0x200, 2, true)]);
    let chain = queue.pop(&ram).unwrap().unwrap();
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
    assert_eq!(queue.pop(&ram).unwrap().unwrap().head, second);
    assert_eq!(queue.pop(&ram), Ok(None));
}

#[test]
fn used_ring_gets_id_length_and_index() {
    let (mut ram, mut guest, mut queue) = setup(4);
    for round in 0..6u16 {
        let head = guest.post(&mut ram, &[(BUF, 16, true)]);
        let chain = queue.pop(&ram).unwrap().unwrap();
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
    let chain = queue.pop(&ram).unwrap().unwrap();
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
    let chain = queue.pop(&ram).unwrap().unwrap();
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
    let chain = queue.pop(&ram).unwrap().unwrap();
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
    assert_eq!(queue.pop(&ram), Err(QueueError::ChainTooLong));
}

#[test]
fn out_of_range_indices_and_addresses_are_refused() {
    let (mut ram, mut guest, mut queue) = setup(4);
    guest.publish(&mut ram, 4);
    assert_eq!(
        queue.pop(&ram),
        Err(QueueError::DescriptorIndex { index: 4 })
    );

    let (mut ram, mut guest, mut queue) = setup(4);
    guest.write_desc(&mut ram, 0, BUF, 1, 1, 9);
    guest.publish(&mut ram, 0);
    assert_eq!(
        queue.pop(&ram),
        Err(QueueError::DescriptorIndex { index: 9 })
    );

    let (mut ram, mut guest, mut queue) = setup(4);
    guest.post(&mut ram, &[(0x10, 4, false)]);
    let chain = queue.pop(&ram).unwrap().unwrap();
    let mut buf = [0u8; 4];
    assert!(matches!(
        chain.read_into(&ram, &mut buf),
        Err(QueueError::Memory(_))
    ));

    let (ram, _guest, mut queue) = setup(4);
    queue.avail_ring = 0x10;
    assert!(matches!(queue.pop(&ram), Err(QueueError::Memory(_))));
    queue.used_ring = u64::MAX - 3;
    let mut ram = ram;
    assert!(queue.push_used(&mut ram, 0, 0).is_err());
}

#[test]
fn length_overflows_are_refused() {
    let (mut ram, mut guest, mut queue) = setup(4);
    guest.post(&mut ram, &[(u64::MAX - 2, 4, true)]);
    assert_eq!(queue.pop(&ram), Err(QueueError::LengthOverflow));

    let (mut ram, mut guest, mut queue) = setup(4);
    guest.post(&mut ram, &[(BUF, u32::MAX, true), (BUF, 2, true)]);
    assert_eq!(queue.pop(&ram), Err(QueueError::LengthOverflow));
}

#[test]
fn indirect_and_misordered_descriptors_are_refused() {
    let (mut ram, mut guest, mut queue) = setup(4);
    guest.write_desc(&mut ram, 0, BUF, 16, 4, 0);
    guest.publish(&mut ram, 0);
    assert_eq!(queue.pop(&ram), Err(QueueError::IndirectNotOffered));

    let (mut ram, mut guest, mut queue) = setup(4);
    guest.post(&mut ram, &[(BUF, 4, true), (BUF, 4, false)]);
    assert_eq!(queue.pop(&ram), Err(QueueError::ReadableAfterWritable));
}

#[test]
fn an_avail_index_jump_beyond_the_queue_size_is_refused() {
    let (mut ram, guest, mut queue) = setup(4);
    ram.write_u16(guest.avail + 2, 5);
    assert_eq!(
        queue.pop(&ram),
        Err(QueueError::AvailIdxJump { distance: 5 })
    );
    ram.write_u16(guest.avail + 2, 4);
    assert!(queue.pop(&ram).is_ok());
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

proptest! {
    #[test]
    fn random_tables_and_rings_never_panic(
        table in proptest::collection::vec(any::<u8>(), 0x3000),
        size_log in 0u32..7,
        rounds in 1usize..8,
    ) {
        let mut ram = FakeRam::new(RAM, 0x8000);
        ram.write(RAM, &table).unwrap();
        let mut queue = SplitQueue::new(MAX_QUEUE_SIZE);
        queue.size = 1 << size_log;
        queue.desc_table = RAM;
        queue.avail_ring = RAM + 0x1000;
        queue.used_ring = RAM + 0x2000;
        for _ in 0..rounds {
            match queue.pop(&ram) {
                Ok(Some(chain)) => {
                    prop_assert!(chain.descriptors.len() <= usize::from(queue.size));
                    let _ = chain.for_each_readable(&ram, |_| {});
                    let _ = chain.fill_writable(&mut ram, 256, |b| b.len());
                    let _ = queue.push_used(&mut ram, chain.head, 0);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}
