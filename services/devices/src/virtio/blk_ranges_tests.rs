//! Tests of the virtio-blk model's DISCARD and WRITE_ZEROES requests, its
//! cache modes (CONFIG_WCE) and requests in indirect tables.

use super::*;

/// A driver that negotiated FLUSH, DISCARD and WRITE_ZEROES.
fn guest_with(info: DiskInfo) -> VirtioGuest<VirtioBlk> {
    let features = VIRTIO_F_VERSION_1 | feature::FLUSH | feature::DISCARD | feature::WRITE_ZEROES;
    guest_negotiating(info, features)
}

/// Where the segments go.
const SEGMENTS: u64 = GUEST_BUFFERS + 0x200;

/// Writes segment `i` (sector, num_sectors, flags) at SEGMENTS.
fn segment(guest: &mut VirtioGuest<VirtioBlk>, i: u64, sector: u64, sectors: u32, flags: u32) {
    let at = SEGMENTS + i * 16;
    guest.ram.write_u64(at, sector);
    guest.ram.write_u32(at + 8, sectors);
    guest.ram.write_u32(at + 12, flags);
}

/// Submits a `kind` request with `count` segments from SEGMENTS.
fn submit_ranges(guest: &mut VirtioGuest<VirtioBlk>, kind: u32, count: u32) -> (u8, u32) {
    header(guest, kind, 0);
    submit(
        guest,
        &[
            (HEADER, 16, false),
            (SEGMENTS, 16 * count, false),
            (STATUS, 1, true),
        ],
    )
}

fn zeroes(sector: u64, sectors: u32) -> blk::Request {
    blk::Request::WriteZeroes {
        disk: DISK,
        sector,
        sectors,
    }
}

#[test]
fn write_zeroes_asks_the_service_to_zero_the_range_in_pieces() {
    let mut guest = guest_with(disk(0x10_0000, false));
    segment(&mut guest, 0, 7, 5000, 0);
    let answer = submit_ranges(&mut guest, request_type::WRITE_ZEROES, 1);
    assert_eq!(answer, (status::OK, 1), "only the status is written");
    let piece = blk::MAX_ZEROES_SECTORS;
    assert_eq!(
        guest.block.requests,
        [
            zeroes(7, piece),
            zeroes(7 + u64::from(piece), piece),
            zeroes(7 + 2 * u64::from(piece), 5000 - 2 * piece),
        ]
    );
    // The unmap flag is allowed: the sectors are zeroed all the same.
    guest.block.requests.clear();
    segment(&mut guest, 0, 0, 1, 1);
    let answer = submit_ranges(&mut guest, request_type::WRITE_ZEROES, 1);
    assert_eq!(answer, (status::OK, 1));
    assert_eq!(guest.block.requests, [zeroes(0, 1)]);
}

#[test]
fn discard_is_checked_and_leaves_the_disk_alone() {
    let mut guest = guest_with(disk(0x1000, false));
    segment(&mut guest, 0, 0x800, 0x800, 0);
    let answer = submit_ranges(&mut guest, request_type::DISCARD, 1);
    assert_eq!(answer, (status::OK, 1));
    assert!(guest.block.requests.is_empty(), "nothing asked of the disk");
}

#[test]
fn bad_segments_get_the_status_the_spec_asks_for() {
    let mut guest = guest_with(disk(0x1000, false));
    let ioerr = [
        // Past the capacity, or wrapping.
        (0xfff, 2, 0),
        (u64::MAX, 2, 0),
        // More sectors than offered per segment.
        (0, MAX_WRITE_ZEROES_SECTORS + 1, 0),
    ];
    for (sector, sectors, flags) in ioerr {
        segment(&mut guest, 0, sector, sectors, flags);
        let answer = submit_ranges(&mut guest, request_type::WRITE_ZEROES, 1);
        assert_eq!(answer.0, status::IOERR, "{sector} + {sectors}");
    }
    // An unknown flag, and unmap on a discard: UNSUPP.
    for (kind, flags) in [
        (request_type::WRITE_ZEROES, 2),
        (request_type::WRITE_ZEROES, 1 << 31),
        (request_type::DISCARD, 1),
        (request_type::DISCARD, 4),
    ] {
        segment(&mut guest, 0, 0, 1, flags);
        assert_eq!(submit_ranges(&mut guest, kind, 1).0, status::UNSUPP);
    }
    // More segments than max_*_seg: UNSUPP.
    segment(&mut guest, 0, 0, 1, 0);
    segment(&mut guest, 1, 8, 1, 0);
    for kind in [request_type::WRITE_ZEROES, request_type::DISCARD] {
        assert_eq!(submit_ranges(&mut guest, kind, 2).0, status::UNSUPP);
    }
    // No segment, a piece of one, or segments the device may write.
    header(&mut guest, request_type::WRITE_ZEROES, 0);
    for bufs in [
        &[(HEADER, 16, false), (STATUS, 1, true)][..],
        &[
            (HEADER, 16, false),
            (SEGMENTS, 12, false),
            (STATUS, 1, true),
        ],
        &[(HEADER, 16, false), (SEGMENTS, 16, true), (STATUS, 1, true)],
    ] {
        assert_eq!(submit(&mut guest, bufs).0, status::IOERR);
    }
    assert!(guest.block.requests.is_empty(), "nothing reached the disk");
}

#[test]
fn a_read_only_disk_refuses_discard_and_write_zeroes() {
    let mut guest = guest_with(disk(64, true));
    segment(&mut guest, 0, 0, 1, 0);
    for kind in [request_type::WRITE_ZEROES, request_type::DISCARD] {
        assert_eq!(submit_ranges(&mut guest, kind, 1).0, status::IOERR);
    }
    assert!(guest.block.requests.is_empty());
}

#[test]
fn a_failed_zeroing_is_an_io_error() {
    let mut guest = guest_with(disk(0x1000, false));
    guest
        .block
        .answers
        .push_back(blk::Response::Err(Error::IoFailed));
    segment(&mut guest, 0, 0, 1, 0);
    let answer = submit_ranges(&mut guest, request_type::WRITE_ZEROES, 1);
    assert_eq!(answer.0, status::IOERR);
    assert_eq!(guest.dev.failure(), None, "the device carries on");
}

#[test]
fn a_segment_outside_guest_ram_fails_the_device() {
    let mut guest = guest_with(disk(0x1000, false));
    header(&mut guest, request_type::WRITE_ZEROES, 0);
    guest.post_and_notify(
        0,
        &[(HEADER, 16, false), (0x1000, 16, false), (STATUS, 1, true)],
    );
    assert!(matches!(guest.dev.failure(), Some(QueueError::Memory(_))));
}

/// A 512-byte write at sector 3, its status.
fn write_once(guest: &mut VirtioGuest<VirtioBlk>) -> u8 {
    header(guest, request_type::OUT, 3);
    submit(
        guest,
        &[(HEADER, 16, false), (DATA, 512, false), (STATUS, 1, true)],
    )
    .0
}

#[test]
fn writethrough_mode_flushes_after_every_write() {
    let flush = blk::Request::Flush { disk: DISK };
    // Neither CONFIG_WCE nor FLUSH negotiated: writes are stable when
    // answered (5.2.6.2, case 1).
    let mut guest = guest_negotiating(disk(64, false), VIRTIO_F_VERSION_1);
    assert!(guest.dev.device().writethrough());
    assert_eq!(write_once(&mut guest), status::OK);
    assert_eq!(guest.block.requests, [write(3, DATA, 512), flush]);
    // CONFIG_WCE negotiated: writeback (1) after reset; the driver may
    // switch to writethrough (0) and back.
    let features =
        VIRTIO_F_VERSION_1 | feature::FLUSH | feature::CONFIG_WCE | feature::WRITE_ZEROES;
    let mut guest = guest_negotiating(disk(64, false), features);
    assert!(!guest.dev.device().writethrough());
    assert_eq!(guest.read_sized(0x120, AccessSize::Byte), 1);
    assert_eq!(write_once(&mut guest), status::OK);
    assert_eq!(guest.block.requests, [write(3, DATA, 512)]);
    guest.block.requests.clear();
    guest.write_sized(0x120, AccessSize::Byte, 0);
    assert_eq!(guest.read_sized(0x120, AccessSize::Byte), 0);
    assert!(guest.dev.device().writethrough());
    assert_eq!(write_once(&mut guest), status::OK);
    segment(&mut guest, 0, 9, 2, 0);
    assert_eq!(
        submit_ranges(&mut guest, request_type::WRITE_ZEROES, 1).0,
        status::OK
    );
    assert_eq!(
        guest.block.requests,
        [write(3, DATA, 512), flush, zeroes(9, 2), flush]
    );
    // A failed flush fails the write.
    guest.block.requests.clear();
    guest
        .block
        .answers
        .extend([blk::Response::Ok, blk::Response::Err(Error::IoFailed)]);
    assert_eq!(write_once(&mut guest), status::IOERR);
    // Writes elsewhere in the configuration space change nothing.
    guest.write_sized(0x121, AccessSize::Byte, 0xff);
    guest.write(0x100, 0);
    assert_eq!(guest.read(0x100), 64, "capacity");
    // Any non-zero byte is writeback; a reset brings writeback back.
    guest.write_sized(0x120, AccessSize::Byte, 7);
    assert_eq!(guest.read_sized(0x120, AccessSize::Byte), 1);
    guest.write_sized(0x120, AccessSize::Byte, 0);
    guest.write(0x070, 0);
    assert_eq!(guest.read_sized(0x120, AccessSize::Byte), 1);
    assert!(guest.dev.device().writethrough(), "nothing negotiated yet");
}

#[test]
fn a_request_in_an_indirect_table_is_served() {
    let features = VIRTIO_F_VERSION_1 | feature::FLUSH | crate::virtio::VIRTIO_F_INDIRECT_DESC;
    let mut guest = guest_negotiating(disk(64, false), features);
    header(&mut guest, request_type::IN, 4);
    let table = GUEST_BUFFERS + 0x3000;
    let head = guest.queues[0].post_indirect(
        &mut guest.ram,
        table,
        &[
            (HEADER, 16, false),
            (DATA, 512, true),
            (DATA + 0x1000, 512, true),
            (STATUS, 1, true),
        ],
    );
    guest.write(0x050, 0);
    assert_eq!(guest.dev.failure(), None);
    assert_eq!(guest.ram.bytes_at(STATUS, 1), [status::OK]);
    assert_eq!(
        guest.queues[0].used_entry(&guest.ram, 0),
        (u32::from(head), 1024 + 1)
    );
    assert_eq!(
        guest.block.requests,
        [read(4, DATA, 512), read(5, DATA + 0x1000, 512)]
    );
}

#[test]
fn ring_features_and_the_cache_mode_outlive_a_service_restart() {
    use crate::persist::{MAX_PAYLOAD, Persist};
    use crate::virtio::mmio::VirtioMmio;
    let features = VIRTIO_F_VERSION_1
        | feature::FLUSH
        | feature::CONFIG_WCE
        | crate::virtio::VIRTIO_F_INDIRECT_DESC;
    let mut guest = guest_negotiating(disk(64, false), features);
    guest.write_sized(0x120, AccessSize::Byte, 0);
    let mut saved = [0u8; MAX_PAYLOAD];
    let len = guest.dev.save(&mut saved);
    // The restarted service's model, from reset, takes the record back.
    let mut fresh = VirtioMmio::new(VirtioBlk::new(DISK, disk(64, false)));
    assert!(fresh.restore(&saved[..len]));
    guest.dev = fresh;
    guest.with_env(|dev, env| dev.resume(env));
    assert!(guest.dev.device().writethrough(), "writeback 0 kept");
    assert_eq!(guest.read_sized(0x120, AccessSize::Byte), 0);
    // An indirect request is still served, and flushed.
    header(&mut guest, request_type::OUT, 2);
    guest.queues[0].post_indirect(
        &mut guest.ram,
        GUEST_BUFFERS + 0x3000,
        &[(HEADER, 16, false), (DATA, 512, false), (STATUS, 1, true)],
    );
    guest.write(0x050, 0);
    assert_eq!(guest.dev.failure(), None);
    assert_eq!(guest.ram.bytes_at(STATUS, 1), [status::OK]);
    assert_eq!(
        guest.block.requests,
        [write(2, DATA, 512), blk::Request::Flush { disk: DISK }]
    );
}
