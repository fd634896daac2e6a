//! Copying out of memory the kernel reaches through a translation (a task's
//! page tables, a VM's G-stage tables), page by page: the one place that
//! decides whether a translated address may be touched. Each arch supplies
//! the walk and the copy itself; nothing is touched that the walk refused
//! or that is not RAM the caller accepts ([`crate::ram`]).

/// Copies `out.len()` bytes from address `at` (in the translated space) into
/// `out`: `translate` gives the physical address of one address (or `None`
/// where the space gives no access), `may_touch(pa, len)` says whether that
/// physical range may be read, and `copy(pa, dst)` reads it. `false` (and
/// `out` is not to be trusted) at the first address that is not mapped, not
/// allowed or wraps; no byte from there on is touched.
pub fn copy_from(
    at: u64,
    out: &mut [u8],
    page_size: u64,
    mut translate: impl FnMut(u64) -> Option<u64>,
    may_touch: impl Fn(u64, u64) -> bool,
    mut copy: impl FnMut(u64, &mut [u8]),
) -> bool {
    let mut done = 0;
    while done < out.len() {
        let Some(addr) = at.checked_add(done as u64) else {
            return false;
        };
        let Some(pa) = translate(addr) else {
            return false;
        };
        let in_page = page_size - addr % page_size;
        let n = usize::try_from(in_page).map_or(out.len() - done, |p| p.min(out.len() - done));
        if !may_touch(pa, n as u64) {
            return false;
        }
        copy(pa, &mut out[done..done + n]);
        done += n;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A task's space: user page 0x1000 and 0x3000 are RAM, 0x2000 is a
    /// device window it mapped; RAM reads as its address's low byte.
    fn translate(va: u64) -> Option<u64> {
        let pa = match va & !0xfff {
            0x1000 => 0x8000_1000,
            0x2000 => 0x1000_1000,
            0x3000 => 0x8000_7000,
            _ => return None,
        };
        Some(pa | (va & 0xfff))
    }

    fn is_ram(pa: u64, len: u64) -> bool {
        pa >= 0x8000_0000 && pa + len <= 0x9000_0000
    }

    /// Copies and returns the result and every physical range read.
    fn read(at: u64, len: usize) -> (bool, Vec<u8>, Vec<(u64, usize)>) {
        let mut out = std::vec![0u8; len];
        let mut touched = Vec::new();
        let ok = copy_from(at, &mut out, 4096, translate, is_ram, |pa, dst| {
            touched.push((pa, dst.len()));
            for (i, b) in dst.iter_mut().enumerate() {
                *b = (pa + i as u64).to_le_bytes()[0];
            }
        });
        (ok, out, touched)
    }

    #[test]
    fn ram_pages_are_read_page_by_page() {
        let (ok, out, touched) = read(0x1ffe, 2);
        assert!(ok);
        assert_eq!(out, [0xfe, 0xff]);
        assert_eq!(touched, [(0x8000_1ffe, 2)]);
    }

    #[test]
    fn a_device_window_is_refused_and_never_touched() {
        let (ok, _, touched) = read(0x2000, 8);
        assert!(!ok);
        assert!(touched.is_empty(), "{touched:x?}");
        // From RAM into the window: the RAM part is read, the window not.
        let (ok, _, touched) = read(0x1ff0, 0x20);
        assert!(!ok);
        assert_eq!(touched, [(0x8000_1ff0, 0x10)]);
        // From the window into RAM: nothing at all.
        let (ok, _, touched) = read(0x2ff0, 0x20);
        assert!(!ok);
        assert!(touched.is_empty());
    }

    #[test]
    fn unmapped_and_wrapping_addresses_are_refused() {
        assert!(!read(0x4000, 1).0);
        assert!(!read(0x3fff, 2).0, "runs off the last page");
        assert!(!read(u64::MAX, 2).0);
        assert!(read(0x3000, 0).0, "nothing asked, nothing read");
    }
}
