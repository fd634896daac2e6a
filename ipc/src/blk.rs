//! The block protocol: the devices service's virtio-blk models ask the
//! block service, which drives the host's virtio-blk disks with
//! `virtio-drivers`, to move sectors between a disk and a VM's RAM. The
//! block service reaches the VM's RAM only through the grant the
//! vm-manager gives it for that VM (`vm_grant_ram`), so a request names
//! guest-physical addresses, never bytes: a guest buffer outside RAM is
//! refused by the kernel (`Error::InvalidRange`), and a model then puts
//! its device in NEEDS_RESET. Only tasks the manifest lets call
//! [`crate::syscall::endpoints::BLK`] (the devices service, and init's
//! watchdog) can.

use serde::{Deserialize, Serialize};

use crate::{Error, VmId};

/// Bytes per sector, the unit of [`Request::Read`] and
/// [`Request::Write`] (virtio-blk's, whatever the disk's own block size).
pub const SECTOR_SIZE: u64 = 512;

/// The most bytes one read or write moves: a longer guest buffer takes
/// several requests.
pub const MAX_TRANSFER: u32 = 64 * 1024;

/// The most sectors one [`Request::WriteZeroes`] zeroes: a longer range
/// takes several requests (each one is answered when its sectors are
/// zero, so one request keeps the service busy for a bounded time).
pub const MAX_ZEROES_SECTORS: u32 = 2048;

/// The most disks the block service serves (the host's virtio-blk devices,
/// in the order of their virtio-mmio windows: QEMU's `-device
/// virtio-blk-device` order, last first on the virt board; see the
/// service).
pub const MAX_DISKS: usize = 8;

/// A request to the block service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// What disk `disk` is ([`Response::Info`]).
    Info {
        /// The disk's number.
        disk: u8,
    },
    /// Reads `len` bytes (a multiple of [`SECTOR_SIZE`], at most
    /// [`MAX_TRANSFER`]) from `sector` on `disk` into VM `vm`'s RAM at
    /// guest-physical `gpa`.
    Read {
        /// The disk's number.
        disk: u8,
        /// The VM whose RAM receives the bytes.
        vm: VmId,
        /// The first sector.
        sector: u64,
        /// Where in the VM's RAM.
        gpa: u64,
        /// How many bytes.
        len: u32,
    },
    /// Writes `len` bytes of VM `vm`'s RAM at `gpa` to `sector` on `disk`
    /// (same rules as [`Request::Read`]). Done when answered: on the disk
    /// as far as the host device's write goes; [`Request::Flush`] makes it
    /// durable.
    Write {
        /// The disk's number.
        disk: u8,
        /// The VM whose RAM holds the bytes.
        vm: VmId,
        /// The first sector.
        sector: u64,
        /// Where in the VM's RAM.
        gpa: u64,
        /// How many bytes.
        len: u32,
    },
    /// Makes every write answered so far durable on the host (the host
    /// device's flush: QEMU syncs its image file).
    Flush {
        /// The disk's number.
        disk: u8,
    },
    /// Writes zeroes over `sectors` sectors (1 to
    /// [`MAX_ZEROES_SECTORS`]) from `sector` on `disk`: done when
    /// answered, as a [`Request::Write`] of zeroes would be.
    WriteZeroes {
        /// The disk's number.
        disk: u8,
        /// The first sector.
        sector: u64,
        /// How many sectors.
        sectors: u32,
    },
}

/// What a disk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    /// Its size in [`SECTOR_SIZE`] sectors.
    pub sectors: u64,
    /// Writes are refused (`Error::PermissionDenied`).
    pub read_only: bool,
}

/// The block service's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// An [`Request::Info`] answer.
    Info(DiskInfo),
    /// Done.
    Ok,
    /// Refused or failed: `Error::NoDevice` for a disk number the service
    /// has no disk at, `Error::InvalidArgument` for a length that is not a
    /// whole number of sectors or exceeds [`MAX_TRANSFER`],
    /// (or, for [`Request::WriteZeroes`], a sector count of 0 or more
    /// than [`MAX_ZEROES_SECTORS`]),
    /// `Error::InvalidRange` for sectors past the disk's end or a guest
    /// range the kernel refused (outside the VM's RAM, or no grant),
    /// `Error::PermissionDenied` for a write to a read-only disk,
    /// `Error::IoFailed` when the host device failed it.
    Err(Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode};

    #[test]
    fn requests_and_answers_round_trip_and_fit_a_message() {
        let requests = [
            Request::Info { disk: 7 },
            Request::Read {
                disk: 1,
                vm: VmId(3),
                sector: u64::MAX,
                gpa: u64::MAX,
                len: MAX_TRANSFER,
            },
            Request::Write {
                disk: 0,
                vm: VmId(u16::MAX),
                sector: 0,
                gpa: 0x8000_0000,
                len: 512,
            },
            Request::Flush { disk: 2 },
            Request::WriteZeroes {
                disk: 7,
                sector: u64::MAX,
                sectors: MAX_ZEROES_SECTORS,
            },
        ];
        let mut buf = [0u8; crate::MAX_MESSAGE_SIZE];
        for request in requests {
            let bytes = encode(&request, &mut buf).unwrap();
            assert_eq!(decode::<Request>(bytes).unwrap(), request);
        }
        // The variants' wire bytes, pinned: a new one goes at the end.
        let tag = |request: Request| encode(&request, &mut [0u8; 64]).unwrap()[0];
        assert_eq!(tag(Request::Info { disk: 0 }), 0);
        assert_eq!(tag(Request::Flush { disk: 0 }), 3);
        let zeroes = Request::WriteZeroes {
            disk: 1,
            sector: 2,
            sectors: 3,
        };
        assert_eq!(encode(&zeroes, &mut buf).unwrap(), [4, 1, 2, 3]);
        for response in [
            Response::Info(DiskInfo {
                sectors: u64::MAX,
                read_only: true,
            }),
            Response::Ok,
            Response::Err(Error::IoFailed),
        ] {
            let bytes = encode(&response, &mut buf).unwrap();
            assert_eq!(decode::<Response>(bytes).unwrap(), response);
        }
    }
}
