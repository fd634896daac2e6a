//! Virtio devices behind the virtio-mmio transport (version 2): the
//! transport, the device side of split virtqueues, and the console, entropy,
//! block and network devices.

pub mod blk;
pub mod console;
pub mod mmio;
pub mod net;
pub mod net_ctrl;
pub mod queue;
pub mod rng;

use crate::bus::DeviceEnv;
use crate::persist::{Reader, Writer};
use queue::{QueueError, SplitQueue};

/// Feature bit: the device follows virtio 1.x (required by this transport).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Feature bit: descriptors may point at indirect tables (2.7.5.3).
pub const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;
/// Feature bit: `used_event` and `avail_event` suppress interrupts and
/// notifications (2.7.7, 2.7.10).
pub const VIRTIO_F_EVENT_IDX: u64 = 1 << 29;
/// The features the transport offers for every device, as QEMU's
/// virtio-mmio devices do.
pub const TRANSPORT_FEATURES: u64 =
    VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;

/// The most queues any model here has.
pub const MAX_QUEUES: usize = 3;

/// The device-specific half of a virtio device; the transport does the rest.
pub trait VirtioDevice {
    /// The virtio device ID (1 = network, 2 = block, 3 = console, 4 = entropy).
    fn device_id(&self) -> u32;
    /// Device-specific feature bits offered (the transport adds
    /// [`TRANSPORT_FEATURES`]).
    fn features(&self) -> u64;
    /// The driver set FEATURES_OK and the device accepted `features` (all
    /// of them offered).
    fn features_negotiated(&mut self, _features: u64) {}
    /// The maximum size of each queue, one entry per queue (at most
    /// [`MAX_QUEUES`]).
    fn queue_max_sizes(&self) -> &'static [u16];
    /// The device configuration space.
    fn config(&self) -> &[u8];
    /// A driver write of `bytes` at `offset` in the configuration space;
    /// fields that are not writable ignore it (the default: none are).
    fn write_config(&mut self, _offset: u64, _bytes: &[u8], _env: &mut DeviceEnv<'_>) {}
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
    /// Writes what the driver set in the device's own state that must
    /// outlive a device-service restart (virtio-blk's `writeback`, a
    /// network card's address and receive filter); one zero byte for a
    /// device without any.
    fn save_kept(&self, out: &mut Writer<'_>) {
        out.u8(0);
    }
    /// Whether `saved` starts with what [`VirtioDevice::save_kept`]
    /// writes (read past it): the transport checks before it changes
    /// anything.
    fn kept_decodes(saved: &mut Reader<'_>) -> bool
    where
        Self: Sized,
    {
        saved.u8().is_some()
    }
    /// Takes back what [`VirtioDevice::save_kept`] wrote, after a restart
    /// (the negotiated features are already back); `saved` passed
    /// [`VirtioDevice::kept_decodes`].
    fn restore_kept(&mut self, saved: &mut Reader<'_>) {
        let _ = saved.u8();
    }
    /// A count that moves whenever a queue notification changed what
    /// [`VirtioDevice::save_kept`] writes (a network card's control
    /// command): the transport then keeps its record again.
    fn kept_generation(&self) -> u32 {
        0
    }
}
