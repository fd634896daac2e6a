//! Boot-time test hooks on the kernel command line, so QEMU tests can prove
//! that a crash is reported and not mistaken for success:
//! `mica.test=ud2` runs an invalid instruction and `mica.test=pf` writes to
//! the unmapped page at address 0, right after the IDT is loaded. They are
//! documented test hooks, not hidden: whoever writes the command line
//! already controls what the machine boots, and each hook only ends the
//! boot with the failure exit.

/// A fault the kernel provokes on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestHook {
    /// `mica.test=ud2`: an invalid opcode.
    InvalidOpcode,
    /// `mica.test=pf`: a store to address 0 (left unmapped).
    NullStore,
}

/// The hook `cmdline` asks for; unknown values are ignored (the boot says
/// so) and the last `mica.test=` wins.
pub fn parse(cmdline: &str) -> Result<Option<TestHook>, &str> {
    let mut hook = Ok(None);
    for word in cmdline.split_ascii_whitespace() {
        if let Some(value) = word.strip_prefix("mica.test=") {
            hook = match value {
                "ud2" => Ok(Some(TestHook::InvalidOpcode)),
                "pf" => Ok(Some(TestHook::NullStore)),
                other => Err(other),
            };
        }
    }
    hook
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_are_read_from_the_command_line() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("console=ttyS0"), Ok(None));
        assert_eq!(
            parse("a mica.test=ud2 b"),
            Ok(Some(TestHook::InvalidOpcode))
        );
        assert_eq!(parse("mica.test=pf"), Ok(Some(TestHook::NullStore)));
        assert_eq!(parse("mica.test=boom"), Err("boom"));
        assert_eq!(
            parse("mica.test=boom mica.test=ud2"),
            Ok(Some(TestHook::InvalidOpcode))
        );
    }
}
