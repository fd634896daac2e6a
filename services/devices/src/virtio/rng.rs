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
            let written =
                chain.fill_writable(env.memory, MAX_BYTES_PER_REQUEST, |buf| entropy.fill(buf))?;
            queue.push_used(env.memory, chain.head, written)?;
            self.bytes_served = self.bytes_served.saturating_add(u64::from(written));
            used = true;
        }
        Ok(used)
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{GUEST_BUFFERS, VirtioGuest};
    use crate::virtio::mmio::INT_USED_BUFFER;

    #[test]
    fn requests_are_filled_from_the_entropy_source() {
        let mut guest = VirtioGuest::new(VirtioRng::new());
        guest.bring_up(1);
        let head = guest.post_and_notify(
            0,
            &[(GUEST_BUFFERS, 3, true), (GUEST_BUFFERS + 0x100, 2, true)],
        );
        assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS, 4), [1, 2, 3, 0]);
        assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS + 0x100, 2), [4, 5]);
        assert_eq!(
            guest.queues[0].used_entry(&guest.ram, 0),
            (u32::from(head), 5)
        );
        assert_eq!(guest.read(0x060), INT_USED_BUFFER);
        assert_eq!(guest.dev.device().bytes_served(), 5);
    }

    #[test]
    fn without_a_hardware_source_the_guest_gets_no_bytes_not_made_up_ones() {
        let mut guest = VirtioGuest::new(VirtioRng::new());
        guest.entropy.dry = true;
        guest.bring_up(1);
        guest.ram.write_bytes(GUEST_BUFFERS, &[0xaa; 8]);
        let head = guest.post_and_notify(0, &[(GUEST_BUFFERS, 8, true)]);
        // Answered (the driver is not left waiting) with a used length of 0.
        assert_eq!(
            guest.queues[0].used_entry(&guest.ram, 0),
            (u32::from(head), 0)
        );
        assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS, 8), [0xaa; 8]);
        assert_eq!(guest.dev.device().bytes_served(), 0);
        assert_eq!(guest.dev.failure(), None);
    }

    #[test]
    fn several_requests_are_served_by_one_notification() {
        let mut guest = VirtioGuest::new(VirtioRng::new());
        guest.bring_up(1);
        guest.queues[0].post(&mut guest.ram, &[(GUEST_BUFFERS, 8, true)]);
        guest.queues[0].post(&mut guest.ram, &[(GUEST_BUFFERS + 0x100, 8, true)]);
        guest.write(0x050, 0);
        assert_eq!(guest.queues[0].used_idx(&guest.ram), 2);
        assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS + 0x100, 1), [9]);
    }

    #[test]
    fn a_huge_request_gets_at_most_the_per_request_limit() {
        let mut guest = VirtioGuest::new(VirtioRng::new());
        guest.bring_up(1);
        guest.post_and_notify(0, &[(GUEST_BUFFERS, 0x10000, true)]);
        assert_eq!(
            guest.queues[0].used_entry(&guest.ram, 0).1,
            MAX_BYTES_PER_REQUEST
        );
    }

    #[test]
    fn a_request_without_a_writable_buffer_fails_the_device() {
        let mut guest = VirtioGuest::new(VirtioRng::new());
        guest.bring_up(1);
        guest.post_and_notify(0, &[(GUEST_BUFFERS, 8, false)]);
        assert_eq!(guest.dev.failure(), Some(QueueError::WritableRequired));
        assert_eq!(guest.queues[0].used_idx(&guest.ram), 0);
    }

    #[test]
    fn a_buffer_outside_guest_ram_fails_the_device() {
        let mut guest = VirtioGuest::new(VirtioRng::new());
        guest.bring_up(1);
        guest.post_and_notify(0, &[(0x1000, 8, true)]);
        assert!(matches!(guest.dev.failure(), Some(QueueError::Memory(_))));
    }
}
