//! The x86 boot-info block (`MICA`, name length u32, RAM bytes u64, vCPU
//! count u32, name) read with bounds checks: a guest trusts none of it
//! ([`vm_name`], [`vcpus`]).
//! Builds on the host, where it is tested against the vm-manager's writer.

/// The header's bytes before the name.
const HEADER: usize = 20;
/// Longest name a guest accepts.
pub const NAME_MAX: usize = 64;

/// The VM name in `block` (the block's bytes as far as the guest may read
/// them), or `None` if the magic, length or bytes are wrong.
pub fn vm_name(block: &[u8]) -> Option<&str> {
    if block.get(..4)? != b"MICA" {
        return None;
    }
    let len = u32::from_le_bytes(block.get(4..8)?.try_into().ok()?) as usize;
    if len == 0 || len > NAME_MAX {
        return None;
    }
    let name = block.get(HEADER..HEADER.checked_add(len)?)?;
    if !name.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    core::str::from_utf8(name).ok()
}

/// The vCPU count in `block` (the u32 after the RAM size), or `None` if
/// the magic or bytes are wrong or the count is 0.
pub fn vcpus(block: &[u8]) -> Option<u32> {
    if block.get(..4)? != b"MICA" {
        return None;
    }
    let count = u32::from_le_bytes(block.get(16..20)?.try_into().ok()?);
    (count != 0).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_manager::board::{GuestBoard, GuestBoot};
    use vm_manager::name::VmName;

    #[test]
    fn the_vm_managers_block_names_the_vm() {
        let mut out = [0u8; 4096];
        let name = VmName::parse("vm1").unwrap();
        let guest = GuestBoot {
            name: &name,
            disk: false,
            vcpus: 3,
            ram_bytes: 64 << 20,
            bootargs: "",
            initrd: None,
            timebase_hz: 10_000_000,
            sstc: false,
        };
        let len = GuestBoard::X86Pc.boot_info(&guest, &mut out).unwrap();
        assert_eq!(vm_name(&out[..len]), Some("vm1"));
        assert_eq!(vcpus(&out[..len]), Some(3));
    }

    #[test]
    fn bad_blocks_name_nothing() {
        assert_eq!(vm_name(b""), None);
        assert_eq!(vcpus(b"MICA\x03\0\0\0"), None, "too short for the count");
        assert_eq!(vm_name(b"MICX\x03\0\0\0"), None);
        let mut block = [0u8; 32];
        block[..4].copy_from_slice(b"MICA");
        block[4] = 200; // longer than the block
        assert_eq!(vm_name(&block), None);
        block[4] = 3;
        block[20..23].copy_from_slice(b"a b");
        assert_eq!(vm_name(&block), None, "not printable");
        block[20..23].copy_from_slice(b"vm7");
        assert_eq!(vm_name(&block), Some("vm7"));
        assert_eq!(vcpus(&block), None, "a count of 0");
        block[16] = 4;
        assert_eq!(vcpus(&block), Some(4));
        block[0] = b'X';
        assert_eq!(vcpus(&block), None, "no magic");
    }
}
