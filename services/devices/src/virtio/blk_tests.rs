//! Tests of the virtio-blk model, acting as the guest driver on a split
//! queue in test RAM, with a block service that records what it is asked.

use super::*;
use crate::bus::AccessSize;
use crate::testing::{GUEST_BUFFERS, TEST_VM, VirtioGuest};
use crate::virtio::VIRTIO_F_VERSION_1;
use crate::virtio::mmio::{INT_CONFIG_CHANGE, INT_USED_BUFFER};

const DISK: u8 = 2;
const HEADER: u64 = GUEST_BUFFERS;
const STATUS: u64 = GUEST_BUFFERS + 0x100;
const DATA: u64 = GUEST_BUFFERS + 0x1000;
const KIB: u32 = 1024;

fn disk(sectors: u64, read_only: bool) -> DiskInfo {
    DiskInfo { sectors, read_only }
}

/// A guest driver that negotiated FLUSH (so the cache is writeback and a
/// write is one block-service request).
fn guest_with(info: DiskInfo) -> VirtioGuest<VirtioBlk> {
    guest_negotiating(info, VIRTIO_F_VERSION_1 | feature::FLUSH)
}

fn guest_negotiating(info: DiskInfo, features: u64) -> VirtioGuest<VirtioBlk> {
    let mut guest = VirtioGuest::new(VirtioBlk::new(DISK, info));
    guest.block.info = info;
    guest.bring_up_with(1, features);
    guest
}

fn guest() -> VirtioGuest<VirtioBlk> {
    guest_with(disk(0x1000, false))
}

/// Writes a request header at HEADER and poisons the status byte.
fn header(guest: &mut VirtioGuest<VirtioBlk>, kind: u32, sector: u64) {
    guest.ram.write_u32(HEADER, kind);
    guest.ram.write_u32(HEADER + 4, 0);
    guest.ram.write_u64(HEADER + 8, sector);
    guest.ram.write_bytes(STATUS, &[0xff]);
}

/// Posts `bufs` as one request, notifies, and returns (status byte at
/// STATUS, used length), checking the request was answered.
fn submit(guest: &mut VirtioGuest<VirtioBlk>, bufs: &[(u64, u32, bool)]) -> (u8, u32) {
    let before = guest.queues[0].used_idx(&guest.ram);
    let head = guest.post_and_notify(0, bufs);
    assert_eq!(guest.dev.failure(), None);
    assert_eq!(guest.queues[0].used_idx(&guest.ram), before.wrapping_add(1));
    let (id, len) = guest.queues[0].used_entry(&guest.ram, before);
    assert_eq!(id, u32::from(head));
    (guest.ram.bytes_at(STATUS, 1)[0], len)
}

fn read(sector: u64, gpa: u64, len: u32) -> blk::Request {
    blk::Request::Read {
        disk: DISK,
        vm: TEST_VM,
        sector,
        gpa,
        len,
    }
}

fn write(sector: u64, gpa: u64, len: u32) -> blk::Request {
    blk::Request::Write {
        disk: DISK,
        vm: TEST_VM,
        sector,
        gpa,
        len,
    }
}

#[test]
fn a_read_moves_sectors_to_the_guest_buffer_and_answers_ok() {
    let mut guest = guest();
    header(&mut guest, request_type::IN, 5);
    let answer = submit(
        &mut guest,
        &[(HEADER, 16, false), (DATA, 1024, true), (STATUS, 1, true)],
    );
    assert_eq!(answer, (status::OK, 1024 + 1), "data and status written");
    assert_eq!(guest.block.requests, [read(5, DATA, 1024)]);
    assert_eq!(guest.read(0x060), INT_USED_BUFFER);
    assert_eq!(guest.dev.device().requests(), 1);
}

#[test]
fn a_write_names_the_guest_buffer_and_sector() {
    let mut guest = guest();
    header(&mut guest, request_type::OUT, 9);
    let answer = submit(
        &mut guest,
        &[(HEADER, 16, false), (DATA, 512, false), (STATUS, 1, true)],
    );
    assert_eq!(answer, (status::OK, 1), "only the status is written");
    assert_eq!(guest.block.requests, [write(9, DATA, 512)]);
}

#[test]
fn long_buffers_split_at_the_transfer_limit_with_the_sector_advancing() {
    let mut guest = guest();
    header(&mut guest, request_type::IN, 100);
    let other = DATA + 0x4_0000;
    let answer = submit(
        &mut guest,
        &[
            (HEADER, 16, false),
            (DATA, 160 * KIB, true),
            (other, 512, true),
            (STATUS, 1, true),
        ],
    );
    assert_eq!(answer, (status::OK, 160 * KIB + 512 + 1));
    let max = blk::MAX_TRANSFER;
    assert_eq!(max, 64 * KIB);
    assert_eq!(
        guest.block.requests,
        [
            read(100, DATA, max),
            read(228, DATA + 64 * 1024, max),
            read(356, DATA + 128 * 1024, 32 * KIB),
            read(420, other, 512),
        ]
    );
}

#[test]
fn header_data_and_status_may_share_or_split_descriptors() {
    let mut guest = guest();
    // The header in two halves; data and status in one writable buffer.
    header(&mut guest, request_type::IN, 7);
    let half = HEADER + 0x200;
    let bytes = guest.ram.bytes_at(HEADER + 8, 8);
    guest.ram.write_bytes(half, &bytes);
    guest.ram.write_bytes(DATA + 512, &[0xff]);
    let head = guest.post_and_notify(
        0,
        &[(HEADER, 8, false), (half, 8, false), (DATA, 513, true)],
    );
    assert_eq!(
        guest.queues[0].used_entry(&guest.ram, 0),
        (u32::from(head), 513)
    );
    assert_eq!(guest.ram.bytes_at(DATA + 512, 1), [status::OK]);
    assert_eq!(guest.block.requests, [read(7, DATA, 512)]);
    // Header and data in one readable buffer.
    header(&mut guest, request_type::OUT, 3);
    let answer = submit(&mut guest, &[(HEADER, 16 + 1024, false), (STATUS, 1, true)]);
    assert_eq!(answer, (status::OK, 1));
    assert_eq!(guest.block.requests[1], write(3, HEADER + 16, 1024));
}

#[test]
fn flush_asks_the_block_service_to_flush_the_disk() {
    let mut guest = guest();
    header(&mut guest, request_type::FLUSH, 0);
    let answer = submit(&mut guest, &[(HEADER, 16, false), (STATUS, 1, true)]);
    assert_eq!(answer, (status::OK, 1));
    assert_eq!(guest.block.requests, [blk::Request::Flush { disk: DISK }]);
    guest
        .block
        .answers
        .push_back(blk::Response::Err(Error::IoFailed));
    let answer = submit(&mut guest, &[(HEADER, 16, false), (STATUS, 1, true)]);
    assert_eq!(answer, (status::IOERR, 1));
}

#[test]
fn get_id_returns_the_serial_nul_padded() {
    let mut guest = guest();
    header(&mut guest, request_type::GET_ID, 0);
    guest.ram.write_bytes(DATA, &[0xaa; 24]);
    let answer = submit(
        &mut guest,
        &[(HEADER, 16, false), (DATA, 20, true), (STATUS, 1, true)],
    );
    assert_eq!(answer, (status::OK, 21));
    let mut expected = b"mica-disk2".to_vec();
    expected.resize(20, 0);
    expected.extend([0xaa; 4]);
    assert_eq!(guest.ram.bytes_at(DATA, 24), expected);
    assert!(
        guest.block.requests.is_empty(),
        "the model knows its serial"
    );
}

#[test]
fn serials_name_the_disk_number() {
    for (disk, name) in [
        (0u8, &b"mica-disk0"[..]),
        (7, b"mica-disk7"),
        (42, b"mica-disk42"),
        (100, b"mica-disk100"),
        (255, b"mica-disk255"),
    ] {
        let serial = VirtioBlk::new(
            disk,
            DiskInfo {
                sectors: 1,
                read_only: false,
            },
        )
        .serial();
        assert_eq!(&serial[..name.len()], name);
        assert!(serial[name.len()..].iter().all(|&b| b == 0));
    }
}

#[test]
fn unknown_request_types_are_unsupported() {
    let mut guest = guest();
    // DISCARD (11) and WRITE_ZEROES (13) not negotiated, and types never
    // offered.
    for kind in [2, 11, 13, 0x8000_0000] {
        header(&mut guest, kind, 0);
        let answer = submit(
            &mut guest,
            &[(HEADER, 16, false), (DATA, 512, true), (STATUS, 1, true)],
        );
        assert_eq!(answer, (status::UNSUPP, 1), "type {kind:#x}");
    }
    assert!(guest.block.requests.is_empty());
}

#[test]
fn a_request_past_the_capacity_fails_without_asking_the_service() {
    let mut guest = guest_with(disk(16, false));
    for (kind, sector, len) in [
        (request_type::IN, 15, 1024),
        (request_type::OUT, 16, 512),
        (request_type::IN, u64::MAX, 512),
    ] {
        header(&mut guest, kind, sector);
        let writable = kind == request_type::IN;
        let answer = submit(
            &mut guest,
            &[
                (HEADER, 16, false),
                (DATA, len, writable),
                (STATUS, 1, true),
            ],
        );
        assert_eq!(answer, (status::IOERR, 1), "sector {sector}");
    }
    assert!(guest.block.requests.is_empty());
    // The last sectors are fine.
    header(&mut guest, request_type::IN, 14);
    let answer = submit(
        &mut guest,
        &[(HEADER, 16, false), (DATA, 1024, true), (STATUS, 1, true)],
    );
    assert_eq!(answer.0, status::OK);
}

#[test]
fn buffers_that_follow_one_another_in_guest_memory_take_one_request() {
    let mut guest = guest();
    header(&mut guest, request_type::IN, 8);
    // Four pages back to back (Linux's usual scatter list), then one apart.
    let mut bufs = std::vec![(HEADER, 16, false)];
    for page in 0..4 {
        bufs.push((DATA + page * 0x1000, 0x1000, true));
    }
    bufs.extend([(DATA + 0x8000, 512, true), (STATUS, 1, true)]);
    let answer = submit(&mut guest, &bufs);
    assert_eq!(answer, (status::OK, 0x4000 + 512 + 1));
    assert_eq!(
        guest.block.requests,
        [read(8, DATA, 0x4000), read(40, DATA + 0x8000, 512)]
    );
    // Pieces of sectors that join into whole ones are fine too.
    guest.block.requests.clear();
    header(&mut guest, request_type::OUT, 2);
    let answer = submit(
        &mut guest,
        &[
            (HEADER, 16, false),
            (DATA, 100, false),
            (DATA + 100, 412, false),
            (STATUS, 1, true),
        ],
    );
    assert_eq!(answer, (status::OK, 1));
    assert_eq!(guest.block.requests, [write(2, DATA, 512)]);
}

#[test]
fn buffers_that_are_not_whole_sectors_fail() {
    let mut guest = guest();
    header(&mut guest, request_type::IN, 0);
    // 1024 bytes in all, but no piece a whole number of sectors.
    let answer = submit(
        &mut guest,
        &[
            (HEADER, 16, false),
            (DATA, 100, true),
            (DATA + 0x1000, 924, true),
            (STATUS, 1, true),
        ],
    );
    assert_eq!(answer, (status::IOERR, 1));
    assert!(guest.block.requests.is_empty());
}

#[test]
fn a_read_only_disk_offers_ro_and_refuses_writes() {
    let mut guest = guest_with(disk(64, true));
    guest.write(0x014, 0);
    assert_eq!(u64::from(guest.read(0x010)) & feature::RO, feature::RO);
    header(&mut guest, request_type::OUT, 0);
    let answer = submit(
        &mut guest,
        &[(HEADER, 16, false), (DATA, 512, false), (STATUS, 1, true)],
    );
    assert_eq!(answer, (status::IOERR, 1));
    assert!(guest.block.requests.is_empty(), "no data written");
    header(&mut guest, request_type::IN, 0);
    let answer = submit(
        &mut guest,
        &[(HEADER, 16, false), (DATA, 512, true), (STATUS, 1, true)],
    );
    assert_eq!(answer, (status::OK, 513));
}

#[test]
fn a_guest_buffer_the_kernel_refuses_fails_the_device() {
    let mut guest = guest();
    guest
        .block
        .answers
        .push_back(blk::Response::Err(Error::InvalidRange));
    header(&mut guest, request_type::IN, 0);
    guest.post_and_notify(
        0,
        &[(HEADER, 16, false), (DATA, 512, true), (STATUS, 1, true)],
    );
    assert_eq!(
        guest.dev.failure(),
        Some(QueueError::Memory(OutOfRange {
            addr: DATA,
            len: 512
        }))
    );
    assert_eq!(guest.read(0x070) & 0x40, 0x40, "DEVICE_NEEDS_RESET");
    assert_eq!(guest.read(0x060) & INT_CONFIG_CHANGE, INT_CONFIG_CHANGE);
    assert_eq!(guest.queues[0].used_idx(&guest.ram), 0);
}

#[test]
fn a_failed_or_refused_transfer_is_an_io_error() {
    let mut guest = guest();
    for error in [
        Error::IoFailed,
        Error::PermissionDenied,
        Error::ServiceHung { endpoint: 6 },
    ] {
        guest.block.answers.push_back(blk::Response::Err(error));
        header(&mut guest, request_type::OUT, 0);
        let answer = submit(
            &mut guest,
            &[(HEADER, 16, false), (DATA, 512, false), (STATUS, 1, true)],
        );
        assert_eq!(answer, (status::IOERR, 1), "{error:?}");
    }
    // A read that fails half-way tells what it had moved.
    guest.block.requests.clear();
    guest
        .block
        .answers
        .extend([blk::Response::Ok, blk::Response::Err(Error::IoFailed)]);
    header(&mut guest, request_type::IN, 0);
    let answer = submit(
        &mut guest,
        &[
            (HEADER, 16, false),
            (DATA, 128 * KIB, true),
            (STATUS, 1, true),
        ],
    );
    assert_eq!(answer, (status::IOERR, 64 * KIB + 1));
    assert_eq!(
        guest.block.requests.len(),
        2,
        "nothing asked after the failure"
    );
}

#[test]
fn data_buffers_the_wrong_way_round_are_an_io_error() {
    let mut guest = guest();
    // A read into a buffer the device may only read.
    header(&mut guest, request_type::IN, 0);
    let answer = submit(
        &mut guest,
        &[(HEADER, 16, false), (DATA, 512, false), (STATUS, 1, true)],
    );
    assert_eq!(answer, (status::IOERR, 1));
    // A write from a buffer the device may only write.
    header(&mut guest, request_type::OUT, 0);
    let answer = submit(
        &mut guest,
        &[(HEADER, 16, false), (DATA, 512, true), (STATUS, 1, true)],
    );
    assert_eq!(answer, (status::IOERR, 1));
    assert!(guest.block.requests.is_empty());
}

#[test]
fn a_request_with_nowhere_to_put_its_status_fails_the_device() {
    let mut guest = guest();
    header(&mut guest, request_type::OUT, 0);
    guest.post_and_notify(0, &[(HEADER, 16, false), (DATA, 512, false)]);
    assert_eq!(guest.dev.failure(), Some(QueueError::WritableRequired));
    assert!(guest.block.requests.is_empty());
}

#[test]
fn a_short_header_is_an_io_error() {
    let mut guest = guest();
    header(&mut guest, request_type::IN, 0);
    let answer = submit(&mut guest, &[(HEADER, 8, false), (STATUS, 1, true)]);
    assert_eq!(answer, (status::IOERR, 1));
    // No readable byte at all: the status alone.
    let answer = submit(&mut guest, &[(STATUS, 1, true)]);
    assert_eq!(answer, (status::IOERR, 1));
    assert!(guest.block.requests.is_empty());
}

#[test]
fn a_status_outside_guest_ram_fails_the_device() {
    let mut guest = guest();
    header(&mut guest, request_type::FLUSH, 0);
    guest.post_and_notify(0, &[(HEADER, 16, false), (0x1000, 1, true)]);
    assert!(matches!(guest.dev.failure(), Some(QueueError::Memory(_))));
}

#[test]
fn config_space_is_virtio_blk_config_little_endian() {
    let mut guest = guest_with(disk(0x0123_4567_89ab, false));
    let config = 0x100;
    assert_eq!(
        guest.read_sized(config, AccessSize::Double),
        0x0123_4567_89ab
    );
    assert_eq!(guest.read(config), 0x4567_89ab);
    assert_eq!(guest.read(config + 4), 0x0123);
    assert_eq!(guest.read(config + 8), 0, "size_max: not offered");
    assert_eq!(guest.read(config + 12), SEG_MAX, "seg_max");
    // 16383 cylinders at most, 16 heads, 63 sectors a track.
    assert_eq!(guest.read(config + 16), 16383 | 16 << 16 | 63 << 24);
    assert_eq!(guest.read(config + 20), 512, "blk_size");
    assert_eq!(guest.read_sized(config + 20, AccessSize::Half), 512);
    assert_eq!(guest.read_sized(config + 21, AccessSize::Byte), 2);
    assert_eq!(
        guest.read(config + 24),
        0,
        "topology: exp 0, offset 0, min_io 0"
    );
    assert_eq!(guest.read(config + 28), 0, "opt_io_size");
    assert_eq!(
        guest.read(config + 32),
        1 | 1 << 16,
        "writeback 1, num_queues 1"
    );
    assert_eq!(guest.read(config + 36), MAX_DISCARD_SECTORS);
    assert_eq!(guest.read(config + 40), 1, "max_discard_seg");
    assert_eq!(guest.read(config + 44), 1, "discard_sector_alignment");
    assert_eq!(guest.read(config + 48), MAX_WRITE_ZEROES_SECTORS);
    assert_eq!(guest.read(config + 52), 1, "max_write_zeroes_seg");
    assert_eq!(guest.read(config + 56), 0, "write_zeroes_may_unmap");
    assert_eq!(guest.read(config + 60), 0, "nothing past it");
}

#[test]
fn the_geometry_is_qemus_for_a_disk_without_partitions() {
    // 64 MiB: 131072 / (16 * 63) = 130 cylinders, as QEMU reports.
    let mut guest = guest_with(disk(131_072, false));
    assert_eq!(guest.read_sized(0x110, AccessSize::Half), 130);
    let mut tiny = guest_with(disk(8, false));
    assert_eq!(tiny.read_sized(0x110, AccessSize::Half), 2, "at least 2");
}

#[test]
fn the_device_identifies_and_offers_its_features() {
    let mut guest = VirtioGuest::new(VirtioBlk::new(DISK, disk(8, false)));
    assert_eq!(guest.read(0x008), VIRTIO_ID_BLOCK);
    guest.write(0x014, 0);
    let offered = u64::from(guest.read(0x010));
    // What QEMU's virtio-blk-device offers for a raw image, and the
    // transport's ring features.
    assert_eq!(
        offered,
        feature::SEG_MAX
            | feature::GEOMETRY
            | feature::BLK_SIZE
            | feature::FLUSH
            | feature::TOPOLOGY
            | feature::CONFIG_WCE
            | feature::DISCARD
            | feature::WRITE_ZEROES
            | crate::virtio::VIRTIO_F_INDIRECT_DESC
            | crate::virtio::VIRTIO_F_EVENT_IDX
    );
    assert_eq!(offered & feature::RO, 0, "writable disk");
    guest.write(0x030, 0);
    assert_eq!(guest.read(0x034), u32::from(MAX_QUEUE_SIZE));
    guest.write(0x030, 1);
    assert_eq!(guest.read(0x034), 0, "one request queue");
    // A driver taking every feature offered gets FEATURES_OK.
    let all = offered | VIRTIO_F_VERSION_1;
    assert_eq!(guest.negotiate(all) & 8, 8);
    assert_eq!(guest.dev.driver_features(), all);
}

#[test]
fn several_requests_are_served_by_one_notification() {
    let mut guest = guest();
    header(&mut guest, request_type::IN, 1);
    guest.queues[0].post(
        &mut guest.ram,
        &[(HEADER, 16, false), (DATA, 512, true), (STATUS, 1, true)],
    );
    guest.queues[0].post(
        &mut guest.ram,
        &[
            (HEADER, 16, false),
            (DATA + 512, 512, true),
            (STATUS, 1, true),
        ],
    );
    guest.write(0x050, 0);
    assert_eq!(guest.queues[0].used_idx(&guest.ram), 2);
    assert_eq!(
        guest.block.requests,
        [read(1, DATA, 512), read(1, DATA + 512, 512)]
    );
}

/// Does what the block service would for `requests`, on `disk`'s bytes and
/// the guest's RAM (the model itself never touches the data, so doing it
/// after the requests were made gives the same bytes).
fn apply(requests: &[blk::Request], ram: &mut crate::testing::FakeRam, disk: &mut [u8]) {
    for request in requests {
        match *request {
            blk::Request::Read {
                sector, gpa, len, ..
            } => {
                let at = usize::try_from(sector * SECTOR_SIZE).unwrap();
                ram.write_bytes(gpa, &disk[at..at + len as usize]);
            }
            blk::Request::Write {
                sector, gpa, len, ..
            } => {
                let at = usize::try_from(sector * SECTOR_SIZE).unwrap();
                let bytes = ram.bytes_at(gpa, len as usize);
                disk[at..at + len as usize].copy_from_slice(&bytes);
            }
            _ => {}
        }
    }
}

#[test]
fn sectors_land_where_the_guest_asked_across_split_buffers() {
    let mut guest = guest_with(disk(16, false));
    let mut bytes: std::vec::Vec<u8> = (0..16 * 512)
        .map(|i: u32| u8::try_from((i / 512 * 16 + i % 13) % 256).unwrap())
        .collect();
    // Read sectors 2..5 into a sector and, elsewhere, two more.
    header(&mut guest, request_type::IN, 2);
    let far = DATA + 0x2000;
    let answer = submit(
        &mut guest,
        &[
            (HEADER, 16, false),
            (DATA, 512, true),
            (far, 1024, true),
            (STATUS, 1, true),
        ],
    );
    assert_eq!(answer, (status::OK, 1536 + 1));
    let requests = core::mem::take(&mut guest.block.requests);
    apply(&requests, &mut guest.ram, &mut bytes);
    assert_eq!(guest.ram.bytes_at(DATA, 512), bytes[1024..1536]);
    assert_eq!(guest.ram.bytes_at(far, 1024), bytes[1536..2560]);
    // Write them back, in the other order, at sector 10.
    header(&mut guest, request_type::OUT, 10);
    let answer = submit(
        &mut guest,
        &[
            (HEADER, 16, false),
            (far, 1024, false),
            (DATA, 512, false),
            (STATUS, 1, true),
        ],
    );
    assert_eq!(answer, (status::OK, 1));
    let requests = core::mem::take(&mut guest.block.requests);
    apply(&requests, &mut guest.ram, &mut bytes);
    let expected: std::vec::Vec<u8> = [&bytes[1536..2560], &bytes[1024..1536]].concat();
    assert_eq!(bytes[10 * 512..13 * 512], expected[..]);
}

#[path = "blk_ranges_tests.rs"]
mod ranges;
