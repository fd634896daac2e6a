//! The block service against a disk and guest RAM in vectors.
#![allow(
    clippy::cast_possible_truncation,
    reason = "test disks and RAM are small: sector numbers, offsets and lengths fit every width"
)]

use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

use super::*;

const SECTORS: u64 = 256;
const BASE: u64 = 0x8000_0000;
const RAM: usize = 64 * 1024 + 4096;

struct FakeDisk {
    bytes: Vec<u8>,
    read_only: bool,
    /// Fail device requests from this sector on.
    broken_from: Option<u64>,
    flushes: usize,
}

impl FakeDisk {
    fn new() -> Self {
        let bytes = (0..SECTORS * SECTOR_SIZE)
            .map(|i| (i / SECTOR_SIZE) as u8)
            .collect();
        FakeDisk {
            bytes,
            read_only: false,
            broken_from: None,
            flushes: 0,
        }
    }

    fn range(&self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, Error> {
        assert!(
            len <= CHUNK && (len as u64).is_multiple_of(SECTOR_SIZE),
            "{len}"
        );
        if self.broken_from.is_some_and(|b| sector >= b) {
            return Err(Error::IoFailed);
        }
        let start = (sector * SECTOR_SIZE) as usize;
        Ok(start..start + len)
    }
}

impl Disk for FakeDisk {
    fn info(&self) -> DiskInfo {
        DiskInfo {
            sectors: SECTORS,
            read_only: self.read_only,
        }
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        let range = self.range(sector, buf.len())?;
        buf.copy_from_slice(&self.bytes[range]);
        Ok(())
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), Error> {
        let range = self.range(sector, buf.len())?;
        self.bytes[range].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Error> {
        if self.broken_from.is_some() {
            return Err(Error::IoFailed);
        }
        self.flushes += 1;
        Ok(())
    }
}

/// VMs' RAM from `BASE`; VMs not in the map granted nothing.
#[derive(Default)]
struct FakeRam(HashMap<u16, Vec<u8>>);

impl FakeRam {
    fn window(&mut self, vm: VmId, gpa: u64, len: usize) -> Result<&mut [u8], Error> {
        let ram = self.0.get_mut(&vm.0).ok_or(Error::PermissionDenied)?;
        let start = gpa.checked_sub(BASE).ok_or(Error::InvalidRange)? as usize;
        ram.get_mut(start..start + len).ok_or(Error::InvalidRange)
    }
}

impl GuestRam for FakeRam {
    fn read(&mut self, vm: VmId, gpa: u64, out: &mut [u8]) -> Result<(), Error> {
        out.copy_from_slice(self.window(vm, gpa, out.len())?);
        Ok(())
    }
    fn write(&mut self, vm: VmId, gpa: u64, data: &[u8]) -> Result<(), Error> {
        self.window(vm, gpa, data.len())?.copy_from_slice(data);
        Ok(())
    }
}

fn service() -> BlkService<FakeDisk, FakeRam> {
    let mut ram = FakeRam::default();
    ram.0.insert(1, vec![0xee; RAM]);
    BlkService::new([Some(FakeDisk::new()), None, Some(FakeDisk::new())], ram)
}

fn read(disk: u8, vm: u16, sector: u64, gpa: u64, len: u32) -> Request {
    Request::Read {
        disk,
        vm: VmId(vm),
        sector,
        gpa,
        len,
    }
}

fn write(disk: u8, vm: u16, sector: u64, gpa: u64, len: u32) -> Request {
    Request::Write {
        disk,
        vm: VmId(vm),
        sector,
        gpa,
        len,
    }
}

fn disk(s: &mut BlkService<FakeDisk, FakeRam>, n: usize) -> &mut FakeDisk {
    s.disks[n].as_mut().unwrap()
}

fn ram(s: &BlkService<FakeDisk, FakeRam>) -> &[u8] {
    &s.ram.0[&1]
}

#[test]
fn info_names_each_disk_and_refuses_numbers_without_one() {
    let mut s = service();
    assert_eq!(s.disk_count(), 2);
    let info = DiskInfo {
        sectors: SECTORS,
        read_only: false,
    };
    assert_eq!(s.answer(Request::Info { disk: 0 }), Response::Info(info));
    assert_eq!(s.answer(Request::Info { disk: 2 }), Response::Info(info));
    for missing in [1, 3, u8::MAX] {
        assert_eq!(
            s.answer(Request::Info { disk: missing }),
            Response::Err(Error::NoDevice)
        );
    }
}

#[test]
fn a_read_lands_in_guest_ram_in_page_chunks() {
    let mut s = service();
    // 3 pages and a sector: four device requests, the last short.
    let len = 3 * CHUNK as u32 + 512;
    assert_eq!(s.answer(read(0, 1, 5, BASE + 512, len)), Response::Ok);
    let ram = ram(&s);
    assert_eq!(ram[..512], [0xee; 512]);
    for (i, byte) in ram[512..512 + len as usize].iter().enumerate() {
        assert_eq!(u64::from(*byte), 5 + i as u64 / SECTOR_SIZE, "byte {i}");
    }
    assert_eq!(ram[512 + len as usize], 0xee);
}

#[test]
fn a_write_takes_guest_bytes_to_the_disk_and_a_flush_reaches_the_device() {
    let mut s = service();
    s.ram.0.get_mut(&1).unwrap()[4096..4096 + 1024].fill(0x5a);
    assert_eq!(s.answer(write(2, 1, 10, BASE + 4096, 1024)), Response::Ok);
    let d = disk(&mut s, 2);
    assert!(d.bytes[10 * 512..12 * 512].iter().all(|&b| b == 0x5a));
    assert_eq!(d.bytes[12 * 512], 12);
    assert_eq!(disk(&mut s, 0).bytes[10 * 512], 10, "other disks untouched");
    assert_eq!(s.answer(Request::Flush { disk: 2 }), Response::Ok);
    assert_eq!(disk(&mut s, 2).flushes, 1);
}

#[test]
fn lengths_must_be_whole_sectors_within_the_transfer_limit() {
    let mut s = service();
    for len in [0, 1, 511, 513, MAX_TRANSFER + 512] {
        assert_eq!(
            s.answer(read(0, 1, 0, BASE, len)),
            Response::Err(Error::InvalidArgument),
            "len {len}"
        );
    }
    assert_eq!(s.answer(read(0, 1, 0, BASE, MAX_TRANSFER)), Response::Ok);
}

#[test]
fn sectors_past_the_end_are_refused_before_anything_moves() {
    let mut s = service();
    assert_eq!(
        s.answer(read(0, 1, SECTORS - 1, BASE, 1024)),
        Response::Err(Error::InvalidRange)
    );
    assert_eq!(
        s.answer(read(0, 1, u64::MAX, BASE, 512)),
        Response::Err(Error::InvalidRange)
    );
    assert_eq!(
        s.answer(write(0, 1, SECTORS, BASE, 512)),
        Response::Err(Error::InvalidRange)
    );
    assert!(ram(&s).iter().all(|&b| b == 0xee));
    assert_eq!(s.answer(read(0, 1, SECTORS - 1, BASE, 512)), Response::Ok);
}

#[test]
fn a_read_only_disk_reads_but_refuses_writes() {
    let mut s = service();
    disk(&mut s, 0).read_only = true;
    assert_eq!(
        s.answer(write(0, 1, 0, BASE, 512)),
        Response::Err(Error::PermissionDenied)
    );
    assert_eq!(disk(&mut s, 0).bytes[0], 0);
    assert_eq!(s.answer(read(0, 1, 0, BASE, 512)), Response::Ok);
}

#[test]
fn guest_ram_the_kernel_refuses_is_an_invalid_range_and_the_disk_keeps_its_bytes() {
    let mut s = service();
    // Outside the VM's RAM, below it, and a VM that granted nothing.
    let outside = BASE + RAM as u64 - 512;
    assert_eq!(
        s.answer(write(0, 1, 0, outside, 1024)),
        Response::Err(Error::InvalidRange)
    );
    assert_eq!(
        s.answer(read(0, 1, 0, BASE - 4096, 512)),
        Response::Err(Error::InvalidRange)
    );
    assert_eq!(
        s.answer(read(0, 7, 0, BASE, 512)),
        Response::Err(Error::InvalidRange)
    );
    assert_eq!(
        s.answer(read(0, 1, 0, u64::MAX - 100, 512)),
        Response::Err(Error::InvalidRange)
    );
    assert_eq!(disk(&mut s, 0).bytes[0], 0);
}

#[test]
fn a_failing_device_is_an_io_error() {
    let mut s = service();
    disk(&mut s, 0).broken_from = Some(8);
    // The first page (sectors 0-7) is read, the second fails.
    assert_eq!(
        s.answer(read(0, 1, 0, BASE, 2 * CHUNK as u32)),
        Response::Err(Error::IoFailed)
    );
    assert_eq!(ram(&s)[0], 0);
    assert_eq!(ram(&s)[CHUNK], 0xee);
    assert_eq!(
        s.answer(write(0, 1, 8, BASE, 512)),
        Response::Err(Error::IoFailed)
    );
    assert_eq!(
        s.answer(Request::Flush { disk: 0 }),
        Response::Err(Error::IoFailed)
    );
}

#[test]
fn no_disk_at_all_refuses_everything_with_no_device() {
    let mut s: BlkService<FakeDisk, FakeRam> = BlkService::new([], FakeRam::default());
    assert_eq!(s.disk_count(), 0);
    assert_eq!(
        s.answer(read(0, 1, 0, BASE, 512)),
        Response::Err(Error::NoDevice)
    );
    assert_eq!(
        s.answer(Request::Flush { disk: 0 }),
        Response::Err(Error::NoDevice)
    );
}

fn zeroes(disk: u8, sector: u64, sectors: u32) -> Request {
    Request::WriteZeroes {
        disk,
        sector,
        sectors,
    }
}

#[test]
fn write_zeroes_zeroes_exactly_its_sectors() {
    let mut s = service();
    // 11 sectors: more than one chunk (8 sectors), not a whole number of them.
    assert_eq!(s.answer(zeroes(2, 3, 11)), Response::Ok);
    let d = disk(&mut s, 2);
    assert_eq!(d.bytes[3 * 512 - 1], 2, "sector 2 untouched");
    assert!(d.bytes[3 * 512..14 * 512].iter().all(|&b| b == 0));
    assert_eq!(d.bytes[14 * 512], 14, "sector 14 untouched");
    assert_eq!(disk(&mut s, 0).bytes[3 * 512], 3, "other disks untouched");
    // Up to the last sector.
    assert_eq!(s.answer(zeroes(0, SECTORS - 1, 1)), Response::Ok);
    assert!(
        disk(&mut s, 0).bytes[(SECTORS as usize - 1) * 512..]
            .iter()
            .all(|&b| b == 0)
    );
}

#[test]
fn write_zeroes_is_refused_before_anything_is_written() {
    let mut s = service();
    for (request, error) in [
        (zeroes(1, 0, 1), Error::NoDevice),
        (zeroes(0, 0, 0), Error::InvalidArgument),
        (zeroes(0, 0, MAX_ZEROES_SECTORS + 1), Error::InvalidArgument),
        (zeroes(0, SECTORS - 1, 2), Error::InvalidRange),
        (zeroes(0, u64::MAX, 2), Error::InvalidRange),
    ] {
        assert_eq!(s.answer(request), Response::Err(error), "{request:?}");
    }
    disk(&mut s, 0).read_only = true;
    assert_eq!(
        s.answer(zeroes(0, 0, 1)),
        Response::Err(Error::PermissionDenied)
    );
    assert!(
        disk(&mut s, 0).bytes[..SECTORS as usize * 512]
            .chunks(512)
            .enumerate()
            .all(|(i, sector)| sector.iter().all(|&b| b == i as u8))
    );
    disk(&mut s, 2).broken_from = Some(4);
    assert_eq!(s.answer(zeroes(2, 0, 16)), Response::Err(Error::IoFailed));
}
