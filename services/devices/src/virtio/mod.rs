//! Virtio devices behind the virtio-mmio transport (version 2): the
//! transport, the device side of split virtqueues, and the console, entropy,
//! block and network devices.

pub mod blk;
pub mod console;
pub mod mmio;
pub mod net;
pub mod queue;
pub mod rng;

use crate::bus::DeviceEnv;
use queue::{QueueError, SplitQueue};

/// Feature bit: the device follows virtio 1.x (required by this transport).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// The most queues any model here has.
pub const MAX_QUEUES: usize = 2;

/// The device-specific half of a virtio device; the transport does the rest.
pub trait VirtioDevice {
    /// The virtio device ID (1 = network, 2 = block, 3 = console, 4 = entropy).
    fn device_id(&self) -> u32;
    /// Device-specific feature bits offered (the transport adds
    /// [`VIRTIO_F_VERSION_1`]).
    fn features(&self) -> u64;
    /// The maximum size of each queue, one entry per queue (at most
    /// [`MAX_QUEUES`]).
    fn queue_max_sizes(&self) -> &'static [u16];
    /// The device configuration space.
    fn config(&self) -> &[u8];
    /// Serves queue `index` after a notification (or when the device has
    /// new data for it). Returns whether it put buffers on the used ring.
    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError>;
    /// Forgets everything the driver set up (device reset).
    fn reset(&mut self);
}
