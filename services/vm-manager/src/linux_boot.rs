//! How a VM that boots a Linux kernel is configured: the kernel command
//! line ([`Cmdline`], checked once where it enters: a scenario file, a
//! `Create` request) and the optional initrd ([`LinuxBoot`]). The kernel
//! itself is the configuration's image; [`LinuxBoot`] being present is what
//! makes it a kernel rather than a raw image.

extern crate alloc;

use alloc::string::String;
use core::fmt;

use crate::name::{ImageName, InvalidName};

/// The longest command line: Linux's riscv `COMMAND_LINE_SIZE` is 1024
/// bytes with the terminating NUL.
pub const MAX_CMDLINE: usize = 1023;

/// Why a command line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    /// It holds a NUL byte, which would end the string early.
    Nul,
    /// It is longer than the limit.
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::Nul => f.write_str("cmdline contains a NUL byte: remove it"),
            CmdlineError::TooLong { len, max } => write!(
                f,
                "cmdline is {len} bytes: Linux takes at most {max}, shorten it"
            ),
        }
    }
}

/// A checked kernel command line (`/chosen/bootargs`): no NUL, at most
/// [`MAX_CMDLINE`] bytes. Empty when none was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cmdline(String);

impl Cmdline {
    /// Checks `text` against the rules.
    pub fn parse(text: &str) -> Result<Cmdline, CmdlineError> {
        check_cmdline(text, MAX_CMDLINE)?;
        Ok(Cmdline(String::from(text)))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a command line: no NUL, at most `max` bytes.
pub fn check_cmdline(text: &str, max: usize) -> Result<(), CmdlineError> {
    if text.as_bytes().contains(&0) {
        return Err(CmdlineError::Nul);
    }
    if text.len() > max {
        return Err(CmdlineError::TooLong {
            len: text.len(),
            max,
        });
    }
    Ok(())
}

/// What a Linux guest boots with besides its kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinuxBoot {
    /// The initial ramdisk's boot-image entry, if any.
    pub initrd: Option<ImageName>,
    /// The kernel command line.
    pub cmdline: Cmdline,
}

/// A build-time [`LinuxBoot`], as the generated scenario writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticLinuxBoot {
    /// The initrd's boot-image entry, if any.
    pub initrd: Option<&'static str>,
    /// The kernel command line ("" for none).
    pub cmdline: &'static str,
}

/// Why a build-time [`StaticLinuxBoot`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinuxBootError {
    /// The initrd name breaks the naming rule.
    Initrd(InvalidName),
    /// The command line breaks its rules.
    Cmdline(CmdlineError),
}

impl fmt::Display for LinuxBootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinuxBootError::Initrd(e) => write!(f, "initrd {e}"),
            LinuxBootError::Cmdline(e) => e.fmt(f),
        }
    }
}

impl StaticLinuxBoot {
    /// Checks it and makes the run-time form.
    pub fn to_boot(&self) -> Result<LinuxBoot, LinuxBootError> {
        let initrd = self
            .initrd
            .map(ImageName::parse)
            .transpose()
            .map_err(LinuxBootError::Initrd)?;
        let cmdline = Cmdline::parse(self.cmdline).map_err(LinuxBootError::Cmdline)?;
        Ok(LinuxBoot { initrd, cmdline })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;

    #[test]
    fn command_lines_up_to_1023_bytes_without_nul_are_taken() {
        let long = "x".repeat(MAX_CMDLINE);
        assert_eq!(Cmdline::parse(&long).unwrap().as_str().len(), 1023);
        assert_eq!(Cmdline::parse("").unwrap().as_str(), "");
        let comma = "console=ttyS0 earlycon=sbi,foo";
        assert_eq!(Cmdline::parse(comma).unwrap().as_str(), comma);
    }

    #[test]
    fn bad_command_lines_say_what_to_do() {
        let e = Cmdline::parse(&"x".repeat(1024)).unwrap_err();
        assert_eq!(
            std::format!("{e}"),
            "cmdline is 1024 bytes: Linux takes at most 1023, shorten it"
        );
        let e = Cmdline::parse("a\0b").unwrap_err();
        assert_eq!(
            std::format!("{e}"),
            "cmdline contains a NUL byte: remove it"
        );
    }

    #[test]
    fn static_boots_are_checked() {
        let good = StaticLinuxBoot {
            initrd: Some("lx-initrd"),
            cmdline: "console=ttyS0",
        };
        let boot = good.to_boot().unwrap();
        assert_eq!(boot.initrd.unwrap().as_str(), "lx-initrd");
        let bad = StaticLinuxBoot {
            initrd: Some("bad name"),
            ..good
        };
        assert!(matches!(bad.to_boot(), Err(LinuxBootError::Initrd(_))));
    }
}
