//! Access rights carried by a capability, as a small set of flags.

use core::fmt;
use core::ops::BitOr;

/// A set of rights. What each right permits depends on the object type; the
/// constants say which operations check it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u8);

impl Rights {
    /// No rights at all.
    pub const NONE: Rights = Rights(0);
    /// Map a memory grant readable; read a VM's or vCPU's state.
    pub const READ: Rights = Rights(1 << 0);
    /// Map a memory grant writable; change a VM's or vCPU's state.
    pub const WRITE: Rights = Rights(1 << 1);
    /// Pass this capability (or a derived one) to another task.
    pub const GRANT: Rights = Rights(1 << 2);
    /// Send on an endpoint without waiting; signal a notification.
    pub const SEND: Rights = Rights(1 << 3);
    /// Call through an endpoint (send, then wait for the one-shot reply).
    pub const CALL: Rights = Rights(1 << 4);
    /// Receive on an endpoint; wait on or poll a notification.
    pub const RECV: Rights = Rights(1 << 5);
    /// Every right.
    pub const ALL: Rights = Rights(0b11_1111);

    /// Whether every right in `other` is also in `self`.
    pub const fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// The rights of `other` that `self` lacks.
    pub const fn missing(self, other: Rights) -> Rights {
        Rights(other.0 & !self.0)
    }

    /// Both sets together.
    pub const fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Rights {
    type Output = Rights;
    fn bitor(self, other: Rights) -> Rights {
        self.union(other)
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Rights, &str); 6] = [
            (Rights::READ, "read"),
            (Rights::WRITE, "write"),
            (Rights::GRANT, "grant"),
            (Rights::SEND, "send"),
            (Rights::CALL, "call"),
            (Rights::RECV, "recv"),
        ];
        let mut first = true;
        f.write_str("{")?;
        for (right, name) in NAMES {
            if self.contains(right) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_and_missing() {
        let rw = Rights::READ | Rights::WRITE;
        assert!(rw.contains(Rights::READ));
        assert!(rw.contains(rw));
        assert!(!rw.contains(Rights::READ | Rights::GRANT));
        assert_eq!(rw.missing(Rights::READ | Rights::GRANT), Rights::GRANT);
        assert!(rw.missing(Rights::WRITE).is_empty());
        assert!(Rights::ALL.contains(Rights::CALL | Rights::RECV | Rights::SEND));
    }

    #[test]
    fn debug_names_each_right() {
        assert_eq!(
            format!("{:?}", Rights::CALL | Rights::GRANT),
            "{grant,call}"
        );
        assert_eq!(format!("{:?}", Rights::NONE), "{}");
    }
}
