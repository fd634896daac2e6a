//! A run of posted writes to one device ([`DeviceService::write_run`]):
//! the writes done one after the other on the device's model, or on the
//! UART inside it, called directly.

use core::iter::Peekable;

use ipc::Error;
use ipc::devices::BatchWrite;

use super::fits;
use crate::bus::{AccessSize, BusDevice, DeviceEnv};
use crate::model::DeviceModel;
use crate::persist::Persist;
use crate::uart16550::Uart16550;

#[cfg(doc)]
use super::DeviceService;

/// What a run of posted writes needs of its device beside its bus
/// methods: the model, or the UART inside it, called directly (the
/// model's methods dispatch to the very same ones).
pub(super) trait RunTarget: BusDevice {
    /// Whether a write at `offset` changes what is kept
    /// ([`DeviceModel::write_persists`]).
    fn persists(&self, offset: u64) -> bool;
}

impl RunTarget for DeviceModel {
    fn persists(&self, offset: u64) -> bool {
        self.write_persists(offset)
    }
}

impl RunTarget for Uart16550 {
    #[inline]
    fn persists(&self, offset: u64) -> bool {
        Persist::write_persists(self, offset)
    }
}

/// A run of posted writes to one device at `base..base + len`
/// ([`DeviceService::write_run`]): `first`, then those in `rest` inside
/// the device's range. `first`'s failure goes to `result`; the failures of
/// the writes after it are counted in `failures`.
pub(super) struct Run<'a, W: Iterator<Item = BatchWrite>> {
    pub(super) first: BatchWrite,
    pub(super) base: u64,
    pub(super) len: u64,
    /// The level last reported for the device's line.
    pub(super) reported: bool,
    pub(super) rest: &'a mut Peekable<W>,
    pub(super) result: &'a mut Result<(), Error>,
    pub(super) failures: &'a mut u64,
}

impl<W: Iterator<Item = BatchWrite>> Run<'_, W> {
    /// Does the run's writes on `target`, each as [`DeviceService::write`]
    /// checks it. A write whose register is kept ends the run (`true`: the
    /// caller saves the device), as does one that moved the line (`false`:
    /// the caller reports it).
    #[inline]
    pub(super) fn go<T: RunTarget>(&mut self, target: &mut T, env: &mut DeviceEnv<'_>) -> bool {
        let (space, base, len) = (self.first.space, self.base, self.len);
        let mut next = Some(self.first);
        let mut is_first = true;
        while let Some(w) = next {
            let offset = w.addr - base;
            let done = write_to(target, offset, len, w, env);
            let kept = done.is_ok() && target.persists(offset);
            match (done, is_first) {
                (Err(e), true) => *self.result = Err(e),
                (Err(_), false) => *self.failures = self.failures.wrapping_add(1),
                (Ok(()), _) => {}
            }
            is_first = false;
            if kept {
                return true;
            }
            if target.irq_level() != self.reported {
                return false;
            }
            next = self
                .rest
                .next_if(|n| n.space == space && (base..base + len).contains(&n.addr));
        }
        false
    }
}

/// Write `w` at `offset` of `target`, whose range is `len` bytes long,
/// with checks as [`DeviceService::with_device`] makes them.
#[inline]
fn write_to(
    target: &mut impl RunTarget,
    offset: u64,
    len: u64,
    w: BatchWrite,
    env: &mut DeviceEnv<'_>,
) -> Result<(), Error> {
    let size = AccessSize::from_bytes(w.size).ok_or(Error::BadAccess)?;
    fits(offset, size, len)?;
    target
        .write(offset, size, w.value & size.mask(), env)
        .map_err(|_| Error::BadAccess)
}
