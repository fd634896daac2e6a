//! virtio-console (device ID 3) with a single port and no multiport
//! feature: receiveq 0 carries host input to the guest, transmitq 1 carries
//! guest output to the output sink.

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
                    output.write_byte(byte);
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
        0
    }

    fn queue_max_sizes(&self) -> &'static [u16] {
        &[MAX_QUEUE_SIZE, MAX_QUEUE_SIZE]
    }

    fn config(&self) -> &[u8] {
        // cols, rows, max_nr_ports, emerg_wr: all zero, as no feature that
        // gives them meaning is offered.
        &[0; 12]
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
