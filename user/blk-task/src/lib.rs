//! The block service's pure part: [`BlkService`] answers `ipc::blk`
//! requests from a table of [`Disk`]s (the host's virtio-blk devices in
//! the task, `main.rs`; fakes in the tests), moving sectors to and from a
//! VM's RAM through [`GuestRam`] (the kernel's `vm_ram_read` /
//! `vm_ram_write`, which hold it to the VMs that granted their RAM to this
//! service) in chunks of [`CHUNK`] bytes. It checks every request before
//! the device or guest RAM is touched: a disk number it has no disk at, a
//! length that is not whole sectors or is too long, sectors past the end,
//! a write to a read-only disk; a transfer that fails halfway is answered
//! with the error (the guest sees an I/O error; what was written stays).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use ipc::blk::{
    DiskInfo, MAX_DISKS, MAX_TRANSFER, MAX_ZEROES_SECTORS, Request, Response, SECTOR_SIZE,
};
use ipc::{Error, VmId};

/// Bytes moved per device request and per guest-RAM copy (a page: what one
/// `vm_ram_read` call and one bounce buffer of the driver hold).
pub const CHUNK: usize = 4096;

/// A disk as the service drives it.
pub trait Disk {
    /// Its size and whether it may be written.
    fn info(&self) -> DiskInfo;
    /// Reads `buf.len()` bytes (whole sectors, at most [`CHUNK`]) from
    /// `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), Error>;
    /// Writes `buf` (whole sectors, at most [`CHUNK`]) at `sector`.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), Error>;
    /// Makes every write so far durable.
    fn flush(&mut self) -> Result<(), Error>;
}

/// The RAM of the VMs that granted it to this service.
pub trait GuestRam {
    /// Copies `out.len()` bytes of `vm`'s RAM at guest-physical `gpa`.
    fn read(&mut self, vm: VmId, gpa: u64, out: &mut [u8]) -> Result<(), Error>;
    /// Copies `data` into `vm`'s RAM at guest-physical `gpa`.
    fn write(&mut self, vm: VmId, gpa: u64, data: &[u8]) -> Result<(), Error>;
}

/// The block service: disks by number, and the guest RAM they move to.
pub struct BlkService<D, R> {
    disks: heapless::Vec<Option<D>, MAX_DISKS>,
    ram: R,
}

/// Which way a transfer goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    DiskToGuest,
    GuestToDisk,
}

impl<D: Disk, R: GuestRam> BlkService<D, R> {
    /// Serves `disks` (disk `n` is `disks[n]`; `None` leaves a number
    /// unused) over `ram`. Disks past [`MAX_DISKS`] are not served.
    pub fn new(disks: impl IntoIterator<Item = Option<D>>, ram: R) -> Self {
        let mut table = heapless::Vec::new();
        for disk in disks {
            if table.push(disk).is_err() {
                break;
            }
        }
        BlkService { disks: table, ram }
    }

    /// How many disk numbers hold a disk.
    pub fn disk_count(&self) -> usize {
        self.disks.iter().flatten().count()
    }

    /// Answers one request.
    pub fn answer(&mut self, request: Request) -> Response {
        let answer = match request {
            Request::Info { disk } => self.disk(disk).map(|d| Response::Info(d.info())),
            Request::Read {
                disk,
                vm,
                sector,
                gpa,
                len,
            }
            | Request::Write {
                disk,
                vm,
                sector,
                gpa,
                len,
            } => {
                let direction = if matches!(request, Request::Read { .. }) {
                    Direction::DiskToGuest
                } else {
                    Direction::GuestToDisk
                };
                self.transfer(direction, disk, vm, sector, gpa, len)
                    .map(|()| Response::Ok)
            }
            Request::Flush { disk } => self
                .disk(disk)
                .and_then(|d| d.flush().map_err(|_| Error::IoFailed))
                .map(|()| Response::Ok),
            Request::WriteZeroes {
                disk,
                sector,
                sectors,
            } => self
                .write_zeroes(disk, sector, sectors)
                .map(|()| Response::Ok),
        };
        answer.unwrap_or_else(Response::Err)
    }

    fn disk(&mut self, disk: u8) -> Result<&mut D, Error> {
        self.disks
            .get_mut(usize::from(disk))
            .and_then(Option::as_mut)
            .ok_or(Error::NoDevice)
    }

    /// Writes zero sectors over `sectors` sectors from `sector`, a
    /// [`CHUNK`] at a time (the disk has no zeroing command of its own
    /// that the driver offers).
    fn write_zeroes(&mut self, disk: u8, sector: u64, sectors: u32) -> Result<(), Error> {
        let device = self.disk(disk)?;
        let info = device.info();
        if sectors == 0 || sectors > MAX_ZEROES_SECTORS {
            return Err(Error::InvalidArgument);
        }
        let end = sector
            .checked_add(u64::from(sectors))
            .ok_or(Error::InvalidRange)?;
        if end > info.sectors {
            return Err(Error::InvalidRange);
        }
        if info.read_only {
            return Err(Error::PermissionDenied);
        }
        let zeroes = [0u8; CHUNK];
        let per_chunk = CHUNK as u64 / SECTOR_SIZE;
        let mut at = sector;
        while at < end {
            let n = (end - at).min(per_chunk);
            let bytes = usize::try_from(n * SECTOR_SIZE).map_err(|_| Error::InvalidArgument)?;
            device
                .write(at, &zeroes[..bytes])
                .map_err(|_| Error::IoFailed)?;
            at += n;
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        direction: Direction,
        disk: u8,
        vm: VmId,
        sector: u64,
        gpa: u64,
        len: u32,
    ) -> Result<(), Error> {
        let Self { disks, ram } = self;
        let device = disks
            .get_mut(usize::from(disk))
            .and_then(Option::as_mut)
            .ok_or(Error::NoDevice)?;
        let info = device.info();
        if len == 0 || len > MAX_TRANSFER || u64::from(len) % SECTOR_SIZE != 0 {
            return Err(Error::InvalidArgument);
        }
        let sectors = u64::from(len) / SECTOR_SIZE;
        let end = sector.checked_add(sectors).ok_or(Error::InvalidRange)?;
        if end > info.sectors {
            return Err(Error::InvalidRange);
        }
        gpa.checked_add(u64::from(len)).ok_or(Error::InvalidRange)?;
        if direction == Direction::GuestToDisk && info.read_only {
            return Err(Error::PermissionDenied);
        }
        let total = usize::try_from(len).map_err(|_| Error::InvalidArgument)?;
        let mut buf = [0u8; CHUNK];
        let mut done = 0usize;
        while done < total {
            let n = (total - done).min(CHUNK);
            let chunk = &mut buf[..n];
            let at_sector = sector + (done as u64) / SECTOR_SIZE;
            let at_gpa = gpa + done as u64;
            match direction {
                Direction::DiskToGuest => {
                    device.read(at_sector, chunk).map_err(|_| Error::IoFailed)?;
                    ram.write(vm, at_gpa, chunk).map_err(guest_refusal)?;
                }
                Direction::GuestToDisk => {
                    ram.read(vm, at_gpa, chunk).map_err(guest_refusal)?;
                    device
                        .write(at_sector, chunk)
                        .map_err(|_| Error::IoFailed)?;
                }
            }
            done += n;
        }
        Ok(())
    }
}

/// Served on the block service's endpoint as it is.
impl<D: Disk, R: GuestRam> ipc::server::Service for BlkService<D, R> {
    type Request = Request;
    type Response = Response;

    fn handle(&mut self, request: Request) -> Response {
        self.answer(request)
    }

    fn refusal(error: Error) -> Response {
        Response::Err(error)
    }
}

/// A guest-RAM copy the kernel refused: the guest's buffer is not in its
/// RAM, or the VM gave this service no grant. Both are the guest's (or its
/// controller's) doing, not the disk's: `InvalidRange`, which the
/// virtio-blk model turns into NEEDS_RESET.
fn guest_refusal(error: Error) -> Error {
    match error {
        Error::InvalidRange | Error::PermissionDenied | Error::UnknownVm => Error::InvalidRange,
        other => other,
    }
}

#[cfg(test)]
mod tests;
