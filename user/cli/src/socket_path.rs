//! The management socket's default path, the one place both sides agree
//! on it: `cargo xtask qemu` opens the socket there unless told otherwise
//! (`--mgmt SOCKET`, `--no-mgmt`), and `mica` connects there when
//! `--socket` is not given. In order:
//!
//! 1. `$MICA_SOCKET`, when set and not empty;
//! 2. `$XDG_RUNTIME_DIR/mica/mgmt.sock` (the user's own runtime directory);
//! 3. `$HOME/.cache/mica/mgmt.sock`.
//!
//! Only RISC-V Mica has a management channel, so one path serves; two
//! hypervisors at once need a path each (`MICA_SOCKET`, `--mgmt`).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The variable that names the socket, above every default.
pub const ENV: &str = "MICA_SOCKET";

/// The socket's name in its directory.
const FILE: &str = "mgmt.sock";

/// Why there is no default path: none of the variables it comes from is
/// set to an absolute path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoDefault;

impl fmt::Display for NoDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no default management socket: none of {ENV}, XDG_RUNTIME_DIR and HOME is set to an \
             absolute path; name the socket with --socket SOCKET or {ENV}"
        )
    }
}

impl std::error::Error for NoDefault {}

/// The default socket path, from the variables `var` reads (the process
/// environment: `|name| std::env::var_os(name)`).
pub fn default_socket(var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, NoDefault> {
    if let Some(path) = var(ENV).filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let absolute = |name: &str| {
        var(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    if let Some(dir) = absolute("XDG_RUNTIME_DIR") {
        return Ok(dir.join("mica").join(FILE));
    }
    absolute("HOME")
        .map(|home| home.join(".cache").join("mica").join(FILE))
        .ok_or(NoDefault)
}

/// [`default_socket`] of this process's environment.
pub fn from_env() -> Result<PathBuf, NoDefault> {
    default_socket(|name| std::env::var_os(name))
}

/// Whether `path` is where [`from_env`] points (for messages that say
/// how a path was chosen).
pub fn is_default(path: &Path) -> bool {
    from_env().is_ok_and(|default| default == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        }
    }

    #[test]
    fn mica_socket_wins_then_the_runtime_dir_then_home() {
        let all = [
            ("MICA_SOCKET", "/tmp/one.sock"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("HOME", "/home/ann"),
        ];
        assert_eq!(default_socket(env(&all)), Ok("/tmp/one.sock".into()));
        assert_eq!(
            default_socket(env(&all[1..])),
            Ok("/run/user/1000/mica/mgmt.sock".into())
        );
        assert_eq!(
            default_socket(env(&all[2..])),
            Ok("/home/ann/.cache/mica/mgmt.sock".into())
        );
        // A relative MICA_SOCKET is the user's choice; relative
        // directories are not.
        assert_eq!(
            default_socket(env(&[("MICA_SOCKET", "here.sock")])),
            Ok("here.sock".into())
        );
    }

    #[test]
    fn empty_or_relative_variables_are_passed_over() {
        let vars = [
            ("MICA_SOCKET", ""),
            ("XDG_RUNTIME_DIR", "relative/dir"),
            ("HOME", "/root"),
        ];
        assert_eq!(
            default_socket(env(&vars)),
            Ok("/root/.cache/mica/mgmt.sock".into())
        );
        assert_eq!(default_socket(env(&vars[..2])), Err(NoDefault));
        assert!(
            NoDefault
                .to_string()
                .contains("--socket SOCKET or MICA_SOCKET")
        );
    }
}
