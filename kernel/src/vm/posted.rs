//! Posted writes, the kernel's half: which of a VM's device writes may be
//! completed at once (the ranges its ioreq service declared with
//! `ioreq_post`), and the kernel's write index into the VM's ring
//! (`ipc::ioreq_abi::posted`).
//!
//! A posted write costs the guest one trap and no service: the arch layer
//! offers each store to a device window here first ([`Posting::post`]);
//! if it is taken the vCPU steps past the instruction and runs on. The
//! ioreq task hears of the ring when the vCPU next leaves the CPU (the
//! kernel's run loop asks [`Posting::take_news`]) and drains it before any
//! slot of the VM, so a later synchronous access sees every write before
//! it. A full ring, or a write outside the ranges, takes the slot path.
//!
//! A vCPU's run may post without the kernel lock ([`Posting::lease`]): the
//! run gets the VM's first range and the write index ([`PostLease`]) and
//! the hart posts the guest's stores to that range straight from its exit,
//! re-entering the guest at once. One run of a VM holds the lease at a time
//! (the ring has one producer); while it is out the kernel's own
//! [`Posting::post`] refuses (another vCPU's store takes the slot path,
//! which the ioreq task serves after the ring). The lease comes back
//! ([`Posting::settle`]) when the holder's exit is next handled under the
//! lock, or ([`Posting::settle_any`]) once every hart is out of the VM's
//! guests before a reset or a change of the ranges: the ring's published
//! write index is then the kernel's write index.

use ipc::ioreq_abi::posted::{PostedPage, PostedWrite};
use ipc::syscall::MAX_POSTED_RANGES;
use ipc::{Error, Space};

use super::stats::{ExitKind, VcpuStats, VmStats};

/// One postable range: `[start, end)` of `space`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    space: Space,
    start: u64,
    end: u64,
}

impl Range {
    #[inline]
    fn covers(&self, write: &PostedWrite) -> bool {
        write.space == self.space
            && write.addr >= self.start
            && write
                .addr
                .checked_add(u64::from(write.size))
                .is_some_and(|end| end <= self.end)
    }
}

/// A VM's postable ranges and its ring's write index. Lives as long as the
/// VM's ring page: created with the VM, kept across resets and ioreq
/// service restarts (the ring is mapped into the next service as it is).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Posting {
    ranges: [Option<Range>; MAX_POSTED_RANGES],
    /// The kernel's own write index (the page's copy is only published).
    next: u32,
    /// Writes were posted since the ioreq task last heard of the ring.
    news: bool,
    /// Until when (timer counts) the vCPU yields for the ring to drain
    /// ([`Posting::drain_first`]); `None` while it does not wait.
    wait_until: Option<u64>,
    /// The vCPU whose run holds the lease ([`Posting::lease`]), if any.
    leased_to: Option<u8>,
}

/// A vCPU run's leave to post without the kernel lock: the VM's first
/// range (a UART's transmit register, typically; writes to the others take
/// the kernel's path) and the write index ([`Posting::lease`]). Small,
/// so that handing it out and back costs a few stores. The default holds
/// nothing and posts nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostLease {
    /// The range it covers, `[start, end)` of `space`, flat: the hart's
    /// loop around the guest entry reads it.
    space: Space,
    start: u64,
    end: u64,
    next: u32,
    /// Writes posted under the lease since the kernel last counted them.
    posted: u32,
    held: bool,
}

impl Default for PostLease {
    fn default() -> Self {
        PostLease {
            space: Space::Mmio,
            start: 0,
            end: 0,
            next: 0,
            posted: 0,
            held: false,
        }
    }
}

impl PostLease {
    /// Puts `write` in `ring` if the lease is held, a range covers the
    /// write and the ring has room; whether it did (if not, the exit takes
    /// the kernel's path).
    #[inline]
    pub fn post(&mut self, ring: &PostedPage, write: &PostedWrite) -> bool {
        // `Range::covers`, written out: through it, the hart's loop around
        // the guest entry kept more registers and the null SBI call beside
        // this cost 266 instructions instead of 149.
        let inside = write.space == self.space
            && write.addr >= self.start
            && write
                .addr
                .checked_add(u64::from(write.size))
                .is_some_and(|end| end <= self.end);
        if !self.held || !inside || !ring.push(&mut self.next, write) {
            return false;
        }
        self.posted = self.posted.wrapping_add(1);
        true
    }

    /// Whether the lease is held (it may post).
    #[inline]
    pub fn held(&self) -> bool {
        self.held
    }

    /// Writes posted since the last call (the kernel counts them as
    /// device exits and posted writes).
    #[inline]
    pub fn take_posted(&mut self) -> u32 {
        core::mem::take(&mut self.posted)
    }

    /// Ends the run's copy, the hart out of its guest (the next entry gets
    /// a new one): the writes it posted count as `vcpu`'s device exits and
    /// `vm`'s posted writes.
    #[inline]
    pub fn count_into(&mut self, vcpu: &mut VcpuStats, vm: &mut VmStats) {
        let posted = core::mem::take(self).take_posted();
        if posted != 0 {
            vcpu.exits_of(ExitKind::Device, posted);
            vm.add_posted_writes(posted);
        }
    }
}

impl Posting {
    /// No ranges, an empty ring.
    pub const fn new() -> Self {
        Self {
            ranges: [None; MAX_POSTED_RANGES],
            next: 0,
            news: false,
            wait_until: None,
            leased_to: None,
        }
    }

    /// The lease for a run of vCPU `vcpu` about to enter its guest, under
    /// the kernel lock: a held one if no other run holds it and a range is
    /// set, else one that posts nothing.
    #[inline]
    pub fn lease(&mut self, vcpu: u8) -> PostLease {
        if self.leased_to.is_some_and(|v| v != vcpu) {
            return PostLease::default();
        }
        let Some(range) = self.ranges.iter().flatten().next().copied() else {
            return PostLease::default();
        };
        self.leased_to = Some(vcpu);
        PostLease {
            space: range.space,
            start: range.start,
            end: range.end,
            next: self.next,
            posted: 0,
            held: true,
        }
    }

    /// Whether a run holds the lease (a change of the ranges takes it back
    /// first, with the holder out of its guest).
    #[inline]
    pub fn leased(&self) -> bool {
        self.leased_to.is_some()
    }

    /// Takes the lease back from vCPU `vcpu`'s run (if it holds it), under
    /// the kernel lock with the holder out of its guest: the ring's
    /// published write index is the kernel's again.
    #[inline]
    pub fn settle(&mut self, ring: &PostedPage, vcpu: u8) {
        if self.leased_to == Some(vcpu) {
            self.settle_any(ring);
        }
    }

    /// Takes the lease back from whichever run holds it, under the kernel
    /// lock with every hart out of the VM's guests.
    pub fn settle_any(&mut self, ring: &PostedPage) {
        if self.leased_to.take().is_some() {
            let next = ring.published();
            if next != self.next {
                self.news = true;
            }
            self.next = next;
        }
    }

    /// `ioreq_post`: writes to `[start, start + len)` of `space` may be
    /// posted; `len` 0 removes the range that starts at `start`. Setting a
    /// range that is set already changes nothing.
    /// `InvalidArgument` for PCI configuration space or the removal of a
    /// range that does not exist, `InvalidRange` for one that wraps,
    /// `RangeOverlap` for one that overlaps another, `TableFull` when
    /// [`MAX_POSTED_RANGES`] are set.
    pub fn set(&mut self, space: Space, start: u64, len: u64) -> Result<(), Error> {
        if space == Space::PciConfig {
            return Err(Error::InvalidArgument);
        }
        if len == 0 {
            let slot = self
                .ranges
                .iter_mut()
                .find(|r| r.is_some_and(|r| r.space == space && r.start == start))
                .ok_or(Error::InvalidArgument)?;
            *slot = None;
            return Ok(());
        }
        let end = start.checked_add(len).ok_or(Error::InvalidRange)?;
        // The same range again (a restarted ioreq service sends it anew).
        let same = self
            .ranges
            .iter()
            .flatten()
            .any(|r| r.space == space && r.start == start && r.end == end);
        if same {
            return Ok(());
        }
        let overlaps = self
            .ranges
            .iter()
            .flatten()
            .any(|r| r.space == space && start < r.end && r.start < end);
        if overlaps {
            return Err(Error::RangeOverlap);
        }
        let slot = self
            .ranges
            .iter_mut()
            .find(|r| r.is_none())
            .ok_or(Error::TableFull)?;
        *slot = Some(Range { space, start, end });
        Ok(())
    }

    /// Puts `write` in `ring` if a range covers it, the ring has room and
    /// no run holds the lease; whether it did (if not, the caller takes the
    /// slot path).
    #[inline]
    pub fn post(&mut self, ring: &PostedPage, write: &PostedWrite) -> bool {
        if self.leased_to.is_some()
            || !self.ranges.iter().flatten().any(|r| r.covers(write))
            || !ring.push(&mut self.next, write)
        {
            return false;
        }
        self.news = true;
        true
    }

    /// Before an exit the kernel reports or acts on for all to see (a stray
    /// access, a stop, a power-off or reboot): whether the vCPU should
    /// yield first, without handling it, so that the ioreq task and the
    /// devices service put out the writes the guest posted before it, and
    /// the guest's output comes out before what the kernel says about the
    /// exit. The guest then runs the same instruction again. It yields
    /// while the ring holds writes the ioreq task has not handed back (it
    /// hands them back once the devices service answered for them, so a
    /// ring read is a ring whose output is out), for `patience` timer
    /// counts from the first yield at most (`now` is the timer's reading):
    /// after that the exit is handled whatever the ring holds (a dead
    /// ioreq task cannot hold a vCPU).
    #[inline]
    pub fn drain_first(&mut self, ring: &PostedPage, now: u64, patience: u64) -> bool {
        // A run that holds the lease may have posted past `next`.
        let next = if self.leased_to.is_some() {
            ring.published()
        } else {
            self.next
        };
        if !ring.unread(next) {
            self.wait_until = None;
            return false;
        }
        let until = *self.wait_until.get_or_insert(now.saturating_add(patience));
        if now >= until {
            self.wait_until = None;
            return false;
        }
        self.news = true;
        true
    }

    /// Whether writes were posted since the last call (the ioreq task is to
    /// hear of the ring).
    #[inline]
    pub fn take_news(&mut self) -> bool {
        core::mem::take(&mut self.news)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::boxed::Box;

    fn thr(value: u64) -> PostedWrite {
        PostedWrite {
            space: Space::Mmio,
            addr: 0x1000_0000,
            size: 1,
            value,
        }
    }

    #[test]
    fn only_writes_inside_a_range_are_posted() {
        let ring = Box::new(PostedPage::new());
        let mut posting = Posting::new();
        assert!(!posting.post(&ring, &thr(1)), "no range yet");
        posting.set(Space::Mmio, 0x1000_0000, 1).unwrap();
        assert!(posting.post(&ring, &thr(1)));
        let outside = [
            PostedWrite {
                addr: 0x1000_0001,
                ..thr(2)
            },
            PostedWrite { size: 2, ..thr(2) },
            PostedWrite {
                space: Space::Pio,
                ..thr(2)
            },
            PostedWrite {
                addr: 0x0fff_ffff,
                size: 4,
                ..thr(2)
            },
            PostedWrite {
                addr: u64::MAX,
                ..thr(2)
            },
        ];
        for write in outside {
            assert!(!posting.post(&ring, &write), "{write:?}");
        }
        assert_eq!(ring.pop(), Some(Ok(thr(1))));
        assert_eq!(ring.pop(), None);
    }

    #[test]
    fn a_lease_posts_alone_and_its_writes_are_the_kernels_once_settled() {
        let ring = Box::new(PostedPage::new());
        let mut posting = Posting::new();
        assert!(!posting.lease(0).held(), "no range: nothing to lease");
        posting.set(Space::Mmio, 0x1000_0000, 8).unwrap();
        assert!(posting.post(&ring, &thr(1)));
        assert!(posting.take_news());
        posting.set(Space::Mmio, 0x2000_0000, 8).unwrap();
        let mut lease = posting.lease(0);
        assert!(lease.held());
        // One run holds it: another vCPU's run gets none, and the kernel's
        // own post refuses (that store takes the slot path).
        let mut other = posting.lease(1);
        assert!(!other.held());
        assert!(!other.post(&ring, &thr(9)));
        assert!(!posting.post(&ring, &thr(9)));
        assert!(lease.post(&ring, &thr(2)));
        assert!(lease.post(&ring, &thr(3)));
        let outside = PostedWrite {
            addr: 0x2000_0000,
            ..thr(4)
        };
        assert!(!lease.post(&ring, &outside));
        assert_eq!(lease.take_posted(), 2);
        assert_eq!(lease.take_posted(), 0);
        // The holder's writes count for the ring's drain before it is
        // settled.
        assert!(posting.drain_first(&ring, 0, 10));
        // Only the holder's settle takes it back.
        posting.settle(&ring, 1);
        assert!(!posting.post(&ring, &thr(9)));
        posting.settle(&ring, 0);
        assert!(posting.take_news(), "the lease's writes are news");
        assert!(posting.post(&ring, &thr(5)));
        for value in [1, 2, 3, 5] {
            assert_eq!(ring.pop(), Some(Ok(thr(value))));
        }
        assert_eq!(ring.pop(), None);
        // Any holder, once every hart is out of the guest.
        let mut again = posting.lease(1);
        assert!(again.post(&ring, &thr(6)));
        posting.settle_any(&ring);
        assert!(posting.post(&ring, &thr(7)));
        assert_eq!(ring.pop(), Some(Ok(thr(6))));
        assert_eq!(ring.pop(), Some(Ok(thr(7))));
    }

    #[test]
    fn a_full_ring_refuses_the_lease_too() {
        let ring = Box::new(PostedPage::new());
        let mut posting = Posting::new();
        posting.set(Space::Mmio, 0x1000_0000, 8).unwrap();
        let mut lease = posting.lease(0);
        let mut taken = 0;
        while lease.post(&ring, &thr(taken)) {
            taken += 1;
        }
        assert_eq!(usize::try_from(taken), Ok(ipc::ioreq_abi::posted::ENTRIES));
        posting.settle(&ring, 0);
        assert!(!posting.post(&ring, &thr(0)), "still full");
        assert_eq!(ring.pop(), Some(Ok(thr(0))));
        assert!(posting.post(&ring, &thr(1)));
    }

    #[test]
    fn news_is_told_once() {
        let ring = Box::new(PostedPage::new());
        let mut posting = Posting::new();
        posting.set(Space::Mmio, 0x1000_0000, 8).unwrap();
        assert!(!posting.take_news());
        assert!(posting.post(&ring, &thr(1)));
        assert!(posting.post(&ring, &thr(2)));
        assert!(posting.take_news());
        assert!(!posting.take_news());
    }

    #[test]
    fn a_full_ring_sends_the_write_down_the_slot_path() {
        let ring = Box::new(PostedPage::new());
        let mut posting = Posting::new();
        posting.set(Space::Mmio, 0x1000_0000, 1).unwrap();
        let mut n = 0;
        while posting.post(&ring, &thr(n)) {
            n += 1;
        }
        assert_eq!(n, ipc::ioreq_abi::posted::ENTRIES as u64);
        assert!(ring.pop().is_some());
        assert!(posting.post(&ring, &thr(n)), "room again");
    }

    /// A reported exit yields while the service has not handed back
    /// everything the kernel put in the ring, for a bounded time.
    #[test]
    fn a_reported_exit_yields_for_undrained_writes_until_its_patience_ends() {
        let ring = Box::new(PostedPage::new());
        let mut posting = Posting::new();
        posting.set(Space::Mmio, 0x1000_0000, 1).unwrap();
        assert!(!posting.drain_first(&ring, 0, 100), "nothing posted");
        assert!(posting.post(&ring, &thr(1)));
        assert!(posting.take_news());
        assert!(posting.drain_first(&ring, 1_000, 100), "undrained: yield");
        assert!(posting.take_news(), "and the ioreq task hears again");
        assert!(
            posting.drain_first(&ring, 1_050, 100),
            "still undrained (the task runs on another CPU): yield again"
        );
        assert!(
            !posting.drain_first(&ring, 1_100, 100),
            "patience over: handled, drained or not"
        );
        assert!(ring.pop().is_some());
        assert!(!posting.drain_first(&ring, 2_000, 100), "nothing new");
        // Taken but not yet handed back (the devices service has yet to
        // answer for it): the exit waits; handed back, it goes on.
        assert!(posting.post(&ring, &thr(2)));
        let mut read = ring.read_index();
        assert!(ring.take_at(&mut read).is_some());
        assert!(posting.drain_first(&ring, 5_000, 100), "taken, not done");
        ring.release(read);
        assert!(!posting.drain_first(&ring, 5_001, 100), "then handled");
        // Patience starts again at the next wait.
        assert!(posting.post(&ring, &thr(3)));
        assert!(posting.drain_first(&ring, 9_000, 100));
        assert!(posting.drain_first(&ring, 9_099, 100));
    }

    #[test]
    fn ranges_are_checked() {
        let mut posting = Posting::new();
        assert_eq!(
            posting.set(Space::PciConfig, 0, 4),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            posting.set(Space::Mmio, u64::MAX, 2),
            Err(Error::InvalidRange)
        );
        posting.set(Space::Pio, 0x3f8, 1).unwrap();
        assert_eq!(
            posting.set(Space::Pio, 0x3f0, 9),
            Err(Error::RangeOverlap),
            "overlap"
        );
        posting.set(Space::Mmio, 0x3f8, 1).unwrap();
        posting.set(Space::Pio, 0x2f8, 1).unwrap();
        posting.set(Space::Pio, 0x3e8, 1).unwrap();
        assert_eq!(posting.set(Space::Pio, 0x2e8, 1), Err(Error::TableFull));
        // Set again (by a restarted ioreq service): nothing changes, and a
        // full table has room for it.
        assert_eq!(posting.set(Space::Pio, 0x3f8, 1), Ok(()));
        assert_eq!(
            posting.set(Space::Pio, 0x3f8, 2),
            Err(Error::RangeOverlap),
            "a longer range is another range"
        );
        posting.set(Space::Pio, 0x3e8, 0).unwrap();
        assert_eq!(
            posting.set(Space::Pio, 0x3e8, 0),
            Err(Error::InvalidArgument),
            "already removed"
        );
        posting.set(Space::Pio, 0x2e8, 1).unwrap();
    }
}
