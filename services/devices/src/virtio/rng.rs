//! virtio-rng (device ID 4): one request queue whose device-writable
//! buffers the device fills from an injected entropy source.

use super::VirtioDevice;
use super::queue::{MAX_QUEUE_SIZE, QueueError, SplitQueue};
use crate::bus::DeviceEnv;

/// The virtio device ID of an entropy source.
pub const VIRTIO_ID_RNG: u32 = 4;
/// The most bytes given for one request; a driver asking for more gets
/// this many (the spec lets the device write fewer bytes than offered).
pub const MAX_BYTES_PER_REQUEST: u32 = 4096;

/// The entropy device's model.
#[derive(Clone, Copy, Debug, Default)]
pub struct VirtioRng {
    bytes_served: u64,
}

impl VirtioRng {
    /// A new entropy device.
    pub const fn new() -> Self {
        Self { bytes_served: 0 }
    }

    /// Random bytes handed to the guest so far.
    pub fn bytes_served(&self) -> u64 {
        self.bytes_served
    }
}

impl VirtioDevice for VirtioRng {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_RNG
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &'static [u16] {
        &[MAX_QUEUE_SIZE]
    }

    fn config(&self) -> &[u8] {
        &[]
    }

    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError> {
        if index != 0 {
            return Ok(false);
        }
        let mut used = false;
        while let Some(chain) = queue.pop(env.memory)? {
            let entropy = &mut *env.entropy;
            let written = chain.fill_writable(env.memory, MAX_BYTES_PER_REQUEST, |buf| {
                entropy.fill(buf);
                buf.len()
            })?;
            queue.push_used(env.memory, chain.head, written)?;
            self.bytes_served = self.bytes_served.saturating_add(u64::from(written));
            used = true;
        }
        Ok(used)
    }

    fn reset(&mut self) {}
}
