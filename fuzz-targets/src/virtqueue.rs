//! The split virtqueue's device side on its own, with random ring features
//! (VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX) negotiated: the guest
//! writes descriptors, indirect-table entries, ring entries, `used_event`
//! and raw bytes in its RAM; the device pops, returns and decides
//! interrupts. A popped chain must keep every rule the queue promises, an
//! empty ring with EVENT_IDX must leave `avail_event` at the next entry,
//! and a single returned chain must interrupt exactly when `used_event`
//! named it.

use devices::memory::{GuestMemory, SliceGuestMemory};
use devices::virtio::queue::{MAX_CHAIN, RingFeatures, SplitQueue};

use crate::input::Input;

const RAM_BASE: u64 = 0x8000_0000;
const RAM_SIZE: usize = 0x4000;
const DESC: u64 = RAM_BASE;
const AVAIL: u64 = RAM_BASE + 0x1000;
const USED: u64 = RAM_BASE + 0x2000;
/// Where the guest puts indirect tables and buffers.
const TABLES: u64 = RAM_BASE + 0x3000;

/// A guest-physical address: mostly inside RAM, sometimes anything.
fn address(input: &mut Input<'_>) -> u64 {
    match input.below(8) {
        0 => input.u64(),
        1..=4 => TABLES + u64::from(input.u16()) % 0x1000,
        _ => RAM_BASE + u64::from(input.u16()) % RAM_SIZE as u64,
    }
}

/// A descriptor's bytes: address, length, flags (mostly the known
/// ones), next.
fn descriptor(input: &mut Input<'_>) -> [u8; 16] {
    let addr = address(input);
    let len = if input.bool() {
        input.u32()
    } else {
        // Often a whole indirect table's worth.
        u32::from(input.below(8)) * 16
    };
    let flags = if input.below(8) == 0 {
        input.u16()
    } else {
        u16::from(input.below(8))
    };
    let next = u16::from(input.u8());
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&addr.to_le_bytes());
    out[8..12].copy_from_slice(&len.to_le_bytes());
    out[12..14].copy_from_slice(&flags.to_le_bytes());
    out[14..].copy_from_slice(&next.to_le_bytes());
    out
}

fn read_u16(ram: &SliceGuestMemory<'_>, addr: u64) -> u16 {
    let mut buf = [0u8; 2];
    ram.read(addr, &mut buf).expect("ring fields are in RAM");
    u16::from_le_bytes(buf)
}

/// Drives one queue as the input says.
pub fn virtqueue(data: &[u8]) {
    let mut input = Input::new(data);
    let features = RingFeatures {
        indirect_desc: input.bool(),
        event_idx: input.bool(),
    };
    let size = 1u16 << input.below(7);
    let mut bytes = vec![0u8; RAM_SIZE];
    let mut ram = SliceGuestMemory::new(RAM_BASE, &mut bytes);
    let mut queue = SplitQueue::new(64);
    queue.size = size;
    queue.desc_table = DESC;
    queue.avail_ring = AVAIL;
    queue.used_ring = USED;
    queue.ready = true;
    queue.features = features;
    let used_event = AVAIL + 4 + 2 * u64::from(size);
    let avail_event = USED + 4 + 8 * u64::from(size);
    let mut avail_idx = 0u16;
    let mut popped = 0u16;
    while !input.is_empty() {
        match input.below(7) {
            0 => {
                let at = DESC + u64::from(u16::from(input.u8()) % size) * 16;
                let entry = descriptor(&mut input);
                ram.write(at, &entry).expect("in RAM");
            }
            1 => {
                let at = TABLES + u64::from(input.below(64)) * 16;
                let entry = descriptor(&mut input);
                ram.write(at, &entry).expect("in RAM");
            }
            2 => {
                let slot = AVAIL + 4 + u64::from(avail_idx % size) * 2;
                let head = u16::from(input.u8());
                ram.write(slot, &head.to_le_bytes()).expect("in RAM");
                avail_idx = avail_idx.wrapping_add(1);
                ram.write(AVAIL + 2, &avail_idx.to_le_bytes())
                    .expect("in RAM");
            }
            3 => {
                let event = input.u16();
                ram.write(used_event, &event.to_le_bytes()).expect("in RAM");
            }
            4 => {
                let at = usize::from(input.u16()) % RAM_SIZE;
                let raw = input.bytes(32);
                let end = (at + raw.len()).min(RAM_SIZE);
                let _ = ram.write(RAM_BASE + at as u64, &raw[..end - at]);
                // The guest may have moved the avail index itself.
                avail_idx = read_u16(&ram, AVAIL + 2);
            }
            _ => match queue.pop(&mut ram) {
                Ok(Some(chain)) => {
                    popped = popped.wrapping_add(1);
                    let most = if features.indirect_desc {
                        MAX_CHAIN
                    } else {
                        usize::from(size)
                    };
                    assert!(chain.descriptors.len() <= most, "chain too long");
                    assert!(!chain.descriptors.is_empty(), "an empty chain");
                    assert!(
                        chain
                            .descriptors
                            .windows(2)
                            .all(|w| w[0].writable <= w[1].writable),
                        "a readable buffer after a writable one"
                    );
                    let mut total = 0u32;
                    for d in &chain.descriptors {
                        assert!(d.addr.checked_add(u64::from(d.len)).is_some(), "wraps");
                        total = total.checked_add(d.len).expect("total fits 32 bits");
                    }
                    let before = queue.used_index();
                    if queue.push_used(&mut ram, chain.head, input.u32()).is_err() {
                        return;
                    }
                    let event = read_u16(&ram, used_event);
                    let fires = queue
                        .needs_interrupt(&ram, before)
                        .expect("used_event is in RAM");
                    let wanted = !features.event_idx || event == before;
                    assert_eq!(fires, wanted, "interrupt for used_event {event}");
                }
                Ok(None) => {
                    if features.event_idx {
                        assert_eq!(read_u16(&ram, avail_event), popped, "avail_event");
                    }
                }
                // The driver broke a rule: the device stops here.
                Err(_) => return,
            },
        }
    }
}
