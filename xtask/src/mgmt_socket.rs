//! The management socket of `cargo xtask qemu`, made ready before QEMU
//! opens it: its directory exists, no other `cargo xtask qemu` uses the
//! path (a lock file next to it, held while this one runs), nothing
//! listens there already (a live hypervisor is refused, never replaced),
//! and a stale socket file left by a QEMU that ended is removed. QEMU
//! itself would silently replace whatever is at the path.

use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The claim on a socket path; the lock is released when it is dropped
/// (or the process ends).
#[derive(Debug)]
pub struct Claim {
    _lock: File,
}

/// What [`claim`] found at the path.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Nothing.
    Nothing,
    /// A socket file nobody listens on any more; it was removed.
    Stale,
}

/// The longest path a Unix socket address holds (`sun_path` is 108
/// bytes with its terminating zero).
const MAX_SOCKET_PATH: usize = 107;

/// The lock file of the socket at `socket`.
fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Makes `socket` ready for QEMU to listen on; the claim holds it until
/// dropped. `change` says how to pick another path, for the errors.
pub fn claim(socket: &Path, change: &str) -> Result<(Claim, Found), String> {
    let shown = socket.display();
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(format!(
            "the management socket path {shown} is {len} bytes, longer than a Unix socket takes \
             ({MAX_SOCKET_PATH}): {change}"
        ));
    }
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create {} for the management socket: {e}; {change}",
                dir.display()
            )
        })?;
    }
    let lock = lock_path(socket);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| format!("cannot open {}: {e}", lock.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(format!(
                "another cargo xtask qemu uses the management socket {shown}: stop it, or {change}"
            ));
        }
        Err(TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", lock.display()));
        }
    }
    let claim = Claim { _lock: file };
    let kind = match std::fs::symlink_metadata(socket) {
        Ok(meta) => meta.file_type(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((claim, Found::Nothing)),
        Err(e) => return Err(format!("cannot look at {shown}: {e}")),
    };
    if !kind.is_socket() {
        return Err(format!(
            "{shown} exists and is not a socket: remove it, or {change}"
        ));
    }
    match UnixStream::connect(socket) {
        Ok(_) => Err(format!(
            "a hypervisor already listens on the management socket {shown}: stop it, or {change}"
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(socket)
                .map_err(|e| format!("cannot remove the stale socket {shown}: {e}"))?;
            Ok((claim, Found::Stale))
        }
        Err(e) => Err(format!("cannot tell whether {shown} is in use: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    const CHANGE: &str = "pick another";

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-mgmt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_fresh_path_gets_its_directory_and_a_stale_socket_is_replaced() {
        let dir = temp_dir("fresh");
        let socket = dir.join("mica").join("mgmt.sock");
        let (first, found) = claim(&socket, CHANGE).unwrap();
        assert_eq!(found, Found::Nothing);
        assert!(socket.parent().unwrap().is_dir());
        drop(first);
        // A listener that went away leaves its socket file behind.
        drop(UnixListener::bind(&socket).unwrap());
        assert!(socket.exists());
        let (_claim, found) = claim(&socket, CHANGE).unwrap();
        assert_eq!(found, Found::Stale);
        assert!(!socket.exists(), "QEMU may bind it");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_live_socket_a_second_claim_and_a_plain_file_are_refused() {
        let dir = temp_dir("live");
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("mgmt.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let error = claim(&socket, CHANGE).unwrap_err();
        assert_eq!(
            error,
            format!(
                "a hypervisor already listens on the management socket {}: stop it, or pick another",
                socket.display()
            )
        );
        assert!(socket.exists(), "a live socket is left alone");
        drop(listener);
        let (held, _) = claim(&socket, CHANGE).unwrap();
        let error = claim(&socket, CHANGE).unwrap_err();
        assert!(
            error.starts_with("another cargo xtask qemu uses the management socket"),
            "{error}"
        );
        drop(held);
        let plain = dir.join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let error = claim(&plain, CHANGE).unwrap_err();
        assert!(error.ends_with("exists and is not a socket: remove it, or pick another"));
        let long = dir.join("d".repeat(120)).join("mgmt.sock");
        let error = claim(&long, CHANGE).unwrap_err();
        assert!(
            error.contains("longer than a Unix socket takes (107): pick another"),
            "{error}"
        );
        assert!(!long.parent().unwrap().exists(), "nothing made for it");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
