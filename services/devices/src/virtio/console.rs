//! virtio-console (device ID 3) with a single port and no multiport
//! feature: receiveq 0 carries host input to the guest, transmitq 1 carries
//! guest output to the output sink. It offers VIRTIO_CONSOLE_F_EMERG_WRITE
//! as QEMU's `virtio-serial-device` does: a driver write to `emerg_wr`
//! outputs its low byte at once, without a queue. QEMU's device also
//! offers MULTIPORT when it has more than one port (31 by default); the
//! native reference in the QEMU tests is given one (`max_ports=1`), the
//! shape of this console.

use heapless::Deque;

use super::VirtioDevice;
use super::queue::{MAX_QUEUE_SIZE, QueueError, SplitQueue};
use crate::bus::DeviceEnv;

/// The virtio device ID of a console.
pub const VIRTIO_ID_CONSOLE: u32 = 3;
/// The receive queue's index.
pub const RECEIVEQ: usize = 0;
/// The transmit queue's index.
pub const TRANSMITQ: usize = 1;
/// Feature bit: `emerg_wr` outputs what the driver writes to it.
pub const VIRTIO_CONSOLE_F_EMERG_WRITE: u64 = 1 << 2;
/// Where `emerg_wr` is in the configuration space.
const EMERG_WR_AT: u64 = 8;
/// Host input held while the guest has posted no receive buffer.
pub const INPUT_BUFFER: usize = 64;

/// The console's model.
#[derive(Debug, Default)]
pub struct VirtioConsole {
    pending: Deque<u8, INPUT_BUFFER>,
    dropped: u64,
}

impl VirtioConsole {
    /// A console with no input waiting.
    pub const fn new() -> Self {
        Self {
            pending: Deque::new(),
            dropped: 0,
        }
    }

    /// Queues host input for the guest; bytes that do not fit in the input
    /// buffer are dropped and counted. The caller then serves [`RECEIVEQ`].
    pub fn queue_input(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.pending.push_back(byte).is_err() {
                self.dropped = self.dropped.saturating_add(1);
            }
        }
    }

    /// Input bytes lost because the guest did not take them in time.
    pub fn dropped_input(&self) -> u64 {
        self.dropped
    }

    /// Input bytes waiting for a receive buffer.
    pub fn pending_input(&self) -> usize {
        self.pending.len()
    }

    fn receive(
        &mut self,
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        while !self.pending.is_empty() {
            let Some(chain) = queue.pop(env.memory)? else {
                break;
            };
            let pending = &mut self.pending;
            let written = chain.fill_writable(env.memory, u32::MAX, |buf| {
                let mut n = 0;
                for slot in buf.iter_mut() {
                    let Some(byte) = pending.pop_front() else {
                        break;
                    };
                    *slot = byte;
                    n += 1;
                }
                n
            })?;
            queue.push_used(env.memory, chain.head, written)?;
            used = true;
        }
        Ok(used)
    }

    fn transmit(queue: &mut SplitQueue, env: &mut DeviceEnv<'_>) -> Result<bool, QueueError> {
        let mut used = false;
        while let Some(chain) = queue.pop(env.memory)? {
            let output = &mut *env.output;
            chain.for_each_readable(env.memory, |piece| {
                for &byte in piece {
                    output.write_virtio_byte(byte);
                }
            })?;
            queue.push_used(env.memory, chain.head, 0)?;
            used = true;
        }
        Ok(used)
    }
}

impl VirtioDevice for VirtioConsole {
    fn device_id(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn features(&self) -> u64 {
        VIRTIO_CONSOLE_F_EMERG_WRITE
    }

    fn queue_max_sizes(&self) -> &'static [u16] {
        &[MAX_QUEUE_SIZE, MAX_QUEUE_SIZE]
    }

    fn config(&self) -> &[u8] {
        // cols, rows, max_nr_ports: zero, as SIZE and MULTIPORT are not
        // offered; emerg_wr (write-only) reads as zero.
        &[0; 12]
    }

    fn write_config(&mut self, offset: u64, bytes: &[u8], env: &mut DeviceEnv<'_>) {
        // The character is emerg_wr's first byte (its low byte, le32).
        if offset == EMERG_WR_AT
            && let Some(&byte) = bytes.first()
        {
            env.output.write_virtio_byte(byte);
        }
    }

    fn process_queue(
        &mut self,
        index: usize,
        queue: &mut SplitQueue,
        env: &mut DeviceEnv<'_>,
    ) -> Result<bool, QueueError> {
        match index {
            RECEIVEQ => self.receive(queue, env),
            TRANSMITQ => Self::transmit(queue, env),
            _ => Ok(false),
        }
    }

    fn reset(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{GUEST_BUFFERS, VirtioGuest};
    use crate::virtio::mmio::INT_USED_BUFFER;

    fn serve_input(guest: &mut VirtioGuest<VirtioConsole>, bytes: &[u8]) {
        guest.dev.device_mut().queue_input(bytes);
        guest.process_queue(RECEIVEQ);
    }

    #[test]
    fn transmitq_bytes_reach_the_output() {
        let mut guest = VirtioGuest::new(VirtioConsole::new());
        guest.bring_up(2);
        guest.ram.write_bytes(GUEST_BUFFERS, b"hello, ");
        guest.ram.write_bytes(GUEST_BUFFERS + 0x100, b"world\n");
        let head = guest.post_and_notify(
            TRANSMITQ,
            &[(GUEST_BUFFERS, 7, false), (GUEST_BUFFERS + 0x100, 6, false)],
        );
        assert_eq!(guest.output.0, b"hello, world\n");
        let queue = &guest.queues[TRANSMITQ];
        assert_eq!(queue.used_idx(&guest.ram), 1);
        assert_eq!(queue.used_entry(&guest.ram, 0), (u32::from(head), 0));
        assert_eq!(guest.read(0x060), INT_USED_BUFFER);
    }

    #[test]
    fn input_waits_for_a_receive_buffer_then_fills_it() {
        let mut guest = VirtioGuest::new(VirtioConsole::new());
        guest.bring_up(2);
        serve_input(&mut guest, b"ls\n");
        assert_eq!(guest.dev.device().pending_input(), 3);
        assert_eq!(guest.read(0x060), 0);
        let head = guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 2, true)]);
        assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS, 2), b"ls");
        let queue = &guest.queues[RECEIVEQ];
        assert_eq!(queue.used_entry(&guest.ram, 0), (u32::from(head), 2));
        assert_eq!(guest.read(0x060), INT_USED_BUFFER);
        assert_eq!(guest.dev.device().pending_input(), 1);
        // The rest goes into the next buffer the guest posts.
        guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS + 0x100, 16, true)]);
        let queue = &guest.queues[RECEIVEQ];
        assert_eq!(queue.used_entry(&guest.ram, 1).1, 1);
        assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS + 0x100, 1), b"\n");
    }

    #[test]
    fn posted_buffers_are_kept_until_input_arrives() {
        let mut guest = VirtioGuest::new(VirtioConsole::new());
        guest.bring_up(2);
        guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 8, true)]);
        assert_eq!(guest.queues[RECEIVEQ].used_idx(&guest.ram), 0);
        serve_input(&mut guest, b"x");
        assert_eq!(guest.queues[RECEIVEQ].used_entry(&guest.ram, 0).1, 1);
        assert_eq!(guest.ram.bytes_at(GUEST_BUFFERS, 1), b"x");
    }

    #[test]
    fn input_beyond_the_buffer_is_dropped_and_counted() {
        let mut console = VirtioConsole::new();
        console.queue_input(&[b'a'; INPUT_BUFFER + 5]);
        assert_eq!(console.pending_input(), INPUT_BUFFER);
        assert_eq!(console.dropped_input(), 5);
        console.reset();
        assert_eq!(console.pending_input(), 0);
    }

    #[test]
    fn a_read_only_receive_buffer_fails_the_device() {
        let mut guest = VirtioGuest::new(VirtioConsole::new());
        guest.bring_up(2);
        serve_input(&mut guest, b"x");
        guest.post_and_notify(RECEIVEQ, &[(GUEST_BUFFERS, 8, false)]);
        assert_eq!(guest.dev.failure(), Some(QueueError::WritableRequired));
        assert_eq!(guest.read(0x070) & 0x40, 0x40);
    }

    #[test]
    fn emergency_writes_output_their_byte() {
        let mut guest = VirtioGuest::new(VirtioConsole::new());
        guest.bring_up_with(
            2,
            crate::virtio::VIRTIO_F_VERSION_1 | VIRTIO_CONSOLE_F_EMERG_WRITE,
        );
        guest.write(0x108, u32::from(b'!') | 0xab00);
        guest.write_sized(0x108, crate::bus::AccessSize::Byte, u64::from(b'\n'));
        assert_eq!(guest.output.0, b"!\n");
        // Elsewhere in the configuration space nothing is output, and
        // emerg_wr reads as zero.
        guest.write(0x100, u32::from(b'x'));
        guest.write(0x104, u32::from(b'y'));
        assert_eq!(guest.output.0, b"!\n");
        assert_eq!(guest.read(0x108), 0);
    }

    #[test]
    fn the_console_offers_no_multiport_and_two_queues() {
        let mut guest = VirtioGuest::new(VirtioConsole::new());
        guest.write(0x014, 0);
        assert_eq!(guest.read(0x010) & 0b10, 0, "no VIRTIO_CONSOLE_F_MULTIPORT");
        assert_eq!(
            guest.read(0x010) & 0b100,
            0b100,
            "VIRTIO_CONSOLE_F_EMERG_WRITE"
        );
        guest.write(0x030, 0);
        assert_eq!(guest.read(0x034), u32::from(MAX_QUEUE_SIZE));
        guest.write(0x030, 1);
        assert_eq!(guest.read(0x034), u32::from(MAX_QUEUE_SIZE));
    }
}
