//! A writer for the `newc` cpio format (the one Linux unpacks as its
//! initramfs), so that packing an initramfs needs no `cpio` program.
//!
//! Each member is a 110-byte ASCII header (`070701` and thirteen 8-digit
//! hex fields), the NUL-terminated name padded to 4 bytes, then the data
//! padded to 4 bytes; the archive ends with the member `TRAILER!!!`.
//! Timestamps, owners and inode numbers are fixed, so the same members
//! always give the same bytes.

/// File-type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// The name of the member that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// One member of an archive. Paths are relative to the archive's root
/// (`bin/busybox`, no leading `/`); a directory comes before its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    /// A directory with permission bits `mode` (e.g. `0o755`).
    Dir { path: String, mode: u32 },
    /// A regular file with permission bits `mode` and contents `data`.
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    /// A symbolic link to `target`.
    Symlink { path: String, target: String },
    /// A character device node `major:minor` with permission bits `mode`.
    CharDevice {
        path: String,
        mode: u32,
        major: u32,
        minor: u32,
    },
}

impl Member {
    fn path(&self) -> &str {
        match self {
            Member::Dir { path, .. }
            | Member::File { path, .. }
            | Member::Symlink { path, .. }
            | Member::CharDevice { path, .. } => path,
        }
    }
}

/// The archive of `members` in order, ended by the trailer.
pub fn archive(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, member) in members.iter().enumerate() {
        // Inode 0 is the trailer's; hard links are never made.
        let ino = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match member {
            Member::Dir { mode, .. } => (S_IFDIR | mode, 2, &[], (0, 0)),
            Member::File { mode, data, .. } => (S_IFREG | mode, 1, data, (0, 0)),
            Member::Symlink { target, .. } => (S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0)),
            Member::CharDevice {
                mode, major, minor, ..
            } => (S_IFCHR | mode, 1, &[], (*major, *minor)),
        };
        push_member(&mut out, member.path(), ino, mode, nlink, data, rdev);
    }
    push_member(&mut out, TRAILER, 0, 0, 1, &[], (0, 0));
    out
}

/// Appends one header, name and data, each padded to 4 bytes.
fn push_member(
    out: &mut Vec<u8>,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    data: &[u8],
    rdev: (u32, u32),
) {
    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let name_size = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor
    // rdevminor namesize check
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name_size, 0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Pads `out` with NULs to a multiple of 4 bytes (the header starts at a
/// multiple of 4, so this aligns relative to the member too).
fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::{Member, TRAILER, archive};

    /// One parsed member: (name, mode, nlink, rdev major, rdev minor, data).
    type Parsed = (String, u32, u32, u32, u32, Vec<u8>);

    /// A reader written from the format's description, independent of the
    /// writer, checking magic, alignment and the trailer.
    fn parse(bytes: &[u8]) -> Vec<Parsed> {
        let mut members = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(at % 4, 0, "each header starts 4-byte aligned");
            assert_eq!(&bytes[at..at + 6], b"070701", "newc magic at {at}");
            let field = |n: usize| {
                let start = at + 6 + 8 * n;
                let text = std::str::from_utf8(&bytes[start..start + 8]).unwrap();
                u32::from_str_radix(text, 16).unwrap()
            };
            let (mode, nlink, size, rmajor, rminor, name_size) =
                (field(1), field(4), field(6), field(9), field(10), field(11));
            let name_start = at + 110;
            let name = &bytes[name_start..name_start + name_size as usize];
            assert_eq!(name.last(), Some(&0), "names are NUL-terminated");
            let name = String::from_utf8(name[..name.len() - 1].to_vec()).unwrap();
            let data_start = (name_start + name_size as usize).next_multiple_of(4);
            assert!(
                bytes[name_start + name_size as usize..data_start]
                    .iter()
                    .all(|&b| b == 0)
            );
            let data = bytes[data_start..data_start + size as usize].to_vec();
            at = (data_start + size as usize).next_multiple_of(4);
            if name == TRAILER {
                assert_eq!(at, bytes.len(), "nothing after the trailer");
                return members;
            }
            members.push((name, mode, nlink, rmajor, rminor, data));
        }
    }

    #[test]
    fn an_empty_archive_is_just_the_trailer() {
        let bytes = archive(&[]);
        assert_eq!(bytes.len(), 124, "110 header + 11 name, padded to 124");
        // ino mode uid gid nlink=1 mtime filesize devmajor devminor
        // rdevmajor rdevminor namesize=11 check
        let header = format!(
            "070701{}00000001{}0000000b00000000",
            "0".repeat(32),
            "0".repeat(48)
        );
        assert_eq!(header.len(), 110);
        assert_eq!(&bytes[..110], header.as_bytes());
        assert_eq!(&bytes[110..124], b"TRAILER!!!\0\0\0\0".as_slice());
        assert!(parse(&bytes).is_empty());
    }

    #[test]
    fn directories_files_symlinks_and_devices_keep_their_modes_and_data() {
        let members = [
            Member::Dir {
                path: "bin".into(),
                mode: 0o755,
            },
            Member::File {
                path: "bin/busybox".into(),
                mode: 0o755,
                data: b"\x7fELF12345".to_vec(),
            },
            Member::Symlink {
                path: "bin/sh".into(),
                target: "busybox".into(),
            },
            Member::CharDevice {
                path: "dev/console".into(),
                mode: 0o600,
                major: 5,
                minor: 1,
            },
        ];
        let parsed = parse(&archive(&members));
        assert_eq!(
            parsed,
            vec![
                ("bin".into(), 0o040_755, 2, 0, 0, vec![]),
                (
                    "bin/busybox".into(),
                    0o100_755,
                    1,
                    0,
                    0,
                    b"\x7fELF12345".to_vec()
                ),
                ("bin/sh".into(), 0o120_777, 1, 0, 0, b"busybox".to_vec()),
                ("dev/console".into(), 0o020_600, 1, 5, 1, vec![]),
            ]
        );
    }

    #[test]
    fn every_name_and_data_length_is_padded_to_four_bytes() {
        // Names of 1..=4 bytes and data of 0..=4 bytes cover every padding.
        let mut members = Vec::new();
        for n in 1..=4 {
            for len in 0..=4 {
                members.push(Member::File {
                    path: "f".repeat(n) + &len.to_string(),
                    mode: 0o644,
                    data: vec![0xaa; len],
                });
            }
        }
        let parsed = parse(&archive(&members));
        assert_eq!(parsed.len(), members.len());
        for ((name, _, _, _, _, data), member) in parsed.iter().zip(&members) {
            let Member::File { path, data: d, .. } = member else {
                unreachable!()
            };
            assert_eq!((name, data), (path, d));
        }
    }

    #[test]
    fn the_same_members_give_the_same_bytes() {
        let members = [Member::Dir {
            path: "proc".into(),
            mode: 0o555,
        }];
        assert_eq!(archive(&members), archive(&members));
    }
}
