//! The rng protocol: random bytes from the rng service, which drives the
//! host's virtio-rng device (RISC-V QEMU's `virtio-rng-device`). Tasks ask
//! it when the kernel's `entropy` call has no hardware source to draw on
//! (`mica_rt::entropy`); only tasks the manifest lets call
//! [`crate::syscall::endpoints::RNG`] can.

use serde::{Deserialize, Serialize};

use crate::Error;

/// The most bytes one [`Request::Fill`] asks for (a larger need takes
/// several requests).
pub const MAX_FILL: usize = 256;

/// A request to the rng service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// `len` random bytes (1 to [`MAX_FILL`]; `Error::InvalidArgument`
    /// otherwise).
    Fill {
        /// How many bytes.
        len: u16,
    },
}

/// The rng service's answer.
#[allow(
    clippy::large_enum_variant,
    reason = "an answer lives briefly on the stack before it is encoded; boxing would need a heap in every task"
)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Random bytes from the device: at least one, at most the `len`
    /// asked for (a virtio-rng device may give fewer than offered; ask
    /// again for the rest).
    Bytes(heapless::Vec<u8, MAX_FILL>),
    /// Refused: `Error::NoEntropy` when the machine has no virtio-rng
    /// device (or it gave nothing), `Error::InvalidArgument` for a `len`
    /// out of range.
    Err(Error),
}
