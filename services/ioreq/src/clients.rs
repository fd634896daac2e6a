//! One VM's I/O clients: which client emulates which address range of each
//! space (MMIO, PIO, PCI config), and which client is the default that takes
//! every access no range claims.
//!
//! Ranges of one space never overlap. They are kept sorted by (space, start)
//! in a fixed-capacity vector, so a lookup is a binary search and the table
//! needs no heap.

use ipc::Error;
use ipc::Space;
use ipc::ioreq::ClientId;

use crate::slot::PCI_CONFIG_MAX;

/// Most ranges one VM can have registered, over all spaces and clients.
pub const MAX_RANGES: usize = 64;

/// Up to this many ranges a lookup walks them instead of searching.
const LINEAR_LOOKUP_MAX: usize = 8;

/// Largest valid port number.
const PORT_MAX: u64 = 0xffff;

/// A registered range: `[start, last]` of `space` belongs to `client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRange {
    /// MMIO, PIO or PCI config.
    pub space: Space,
    /// First address.
    pub start: u64,
    /// Last address (inclusive, so a range may end at the top of the space).
    pub last: u64,
    /// Who emulates it.
    pub client: ClientId,
}

/// The I/O clients of one VM.
#[derive(Clone, Debug, Default)]
pub struct ClientRegistry {
    /// Sorted by `(space, start)`; disjoint within a space.
    ranges: heapless::Vec<ClientRange, MAX_RANGES>,
    default_client: Option<ClientId>,
}

/// The highest address of `space`.
fn space_last(space: Space) -> u64 {
    match space {
        Space::Mmio => u64::MAX,
        Space::Pio => PORT_MAX,
        Space::PciConfig => PCI_CONFIG_MAX,
    }
}

impl ClientRegistry {
    /// An empty registry: no ranges, no default client.
    pub const fn new() -> Self {
        Self {
            ranges: heapless::Vec::new(),
            default_client: None,
        }
    }

    /// Routes `[start, start + len)` of `space` to `client`.
    ///
    /// Errors: [`Error::InvalidRange`] if `len` is 0, the range wraps past
    /// 2^64 or leaves its space (ports above 0xffff, PCI config offsets above
    /// bus 255); [`Error::RangeOverlap`] if it shares an address with any
    /// registered range of the same space (whoever owns it);
    /// [`Error::TableFull`] if [`MAX_RANGES`] ranges are already registered.
    /// On error nothing changes.
    pub fn register(
        &mut self,
        client: ClientId,
        space: Space,
        start: u64,
        len: u64,
    ) -> Result<(), Error> {
        let last = len
            .checked_sub(1)
            .and_then(|extra| start.checked_add(extra))
            .filter(|&last| last <= space_last(space))
            .ok_or(Error::InvalidRange)?;
        let at = self
            .ranges
            .partition_point(|r| (r.space, r.start) < (space, start));
        let before = at.checked_sub(1).and_then(|i| self.ranges.get(i));
        if before.is_some_and(|r| r.space == space && r.last >= start) {
            return Err(Error::RangeOverlap);
        }
        if self
            .ranges
            .get(at)
            .is_some_and(|r| r.space == space && r.start <= last)
        {
            return Err(Error::RangeOverlap);
        }
        let range = ClientRange {
            space,
            start,
            last,
            client,
        };
        self.ranges.insert(at, range).map_err(|_| Error::TableFull)
    }

    /// Makes `client` the default client, which takes every access that no
    /// range claims.
    ///
    /// A VM has at most one default client: naming the current default again
    /// succeeds and changes nothing; naming another one while a default
    /// exists is [`Error::ClientExists`] (unregister the old one first).
    pub fn set_default(&mut self, client: ClientId) -> Result<(), Error> {
        match self.default_client {
            Some(current) if current != client => Err(Error::ClientExists),
            _ => {
                self.default_client = Some(client);
                Ok(())
            }
        }
    }

    /// Removes every range of `client` and its default role.
    ///
    /// [`Error::UnknownClient`] if it had neither.
    pub fn unregister(&mut self, client: ClientId) -> Result<(), Error> {
        let ranges_before = self.ranges.len();
        self.ranges.retain(|r| r.client != client);
        let had_ranges = self.ranges.len() != ranges_before;
        let was_default = self.default_client == Some(client);
        if was_default {
            self.default_client = None;
        }
        if had_ranges || was_default {
            Ok(())
        } else {
            Err(Error::UnknownClient)
        }
    }

    /// Forgets every range and the default client (VM teardown).
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.default_client = None;
    }

    /// The client whose range holds the whole access `[addr, addr + size)`,
    /// not counting the default client. An access that straddles the end of
    /// a range is not that range's.
    #[inline]
    pub fn range_client(&self, space: Space, addr: u64, size: u8) -> Option<ClientId> {
        let last = addr.checked_add(u64::from(size.max(1)) - 1)?;
        // Ranges of a space are disjoint, so at most one holds `addr`: a
        // few are simply walked (a VM usually has two or three), more are
        // searched.
        let range = if self.ranges.len() <= LINEAR_LOOKUP_MAX {
            self.ranges
                .iter()
                .find(|r| r.space == space && r.start <= addr && addr <= r.last)?
        } else {
            let after = self
                .ranges
                .partition_point(|r| (r.space, r.start) <= (space, addr));
            self.ranges.get(after.checked_sub(1)?)?
        };
        (range.space == space && last <= range.last).then_some(range.client)
    }

    /// The client that takes the access: its range's client, else the
    /// default client, else `None` (nobody).
    #[inline]
    pub fn route(&self, space: Space, addr: u64, size: u8) -> Option<ClientId> {
        self.range_client(space, addr, size).or(self.default_client)
    }

    /// The default client, if one is set.
    pub fn default_client(&self) -> Option<ClientId> {
        self.default_client
    }

    /// Every registered range, sorted by space then start.
    pub fn ranges(&self) -> &[ClientRange] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests;
