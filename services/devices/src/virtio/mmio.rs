//! The virtio-mmio transport, version 2 (virtio 1.2 section 4.2.2): the
//! register file a driver uses to negotiate features, set up queues, notify
//! the device and acknowledge interrupts, with the device configuration
//! space at offset 0x100.
//!
//! A driver error found in a virtqueue puts the device into a failed state:
//! the status gets DEVICE_NEEDS_RESET, a configuration-change interrupt is
//! raised, the error is kept for [`VirtioMmio::failure`], and no queue is
//! served until the driver resets the device by writing 0 to Status.

use super::queue::RingFeatures;
use super::queue::{QueueError, SplitQueue};
use super::{MAX_QUEUES, TRANSPORT_FEATURES, VIRTIO_F_VERSION_1, VirtioDevice};
use crate::bus::{AccessSize, BusDevice, DeviceEnv, DeviceError};
use crate::persist::{Persist, Reader, Writer};

/// Bytes the transport occupies.
pub const VIRTIO_MMIO_SIZE: u64 = 0x200;
/// "virt" in little-endian ASCII.
pub const MAGIC_VALUE: u32 = 0x7472_6976;
/// The vendor ID reported to drivers ("MICA" in little-endian ASCII).
pub const VENDOR_ID: u32 = 0x4143_494d;

/// Device status bits (section 2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u32 = 2;
    /// The driver is ready; queues may be used.
    pub const DRIVER_OK: u32 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an error and must be reset.
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u32 = 0x80;
}

/// InterruptStatus bit: buffers were used.
pub const INT_USED_BUFFER: u32 = 1;
/// InterruptStatus bit: the configuration (or the device status) changed.
pub const INT_CONFIG_CHANGE: u32 = 2;

/// The virtio-mmio register offsets (virtio 1.2, 4.2.2).
pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// A virtio device behind the MMIO transport.
#[derive(Debug)]
pub struct VirtioMmio<D> {
    device: D,
    queues: [SplitQueue; MAX_QUEUES],
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
    status: u32,
    failure: Option<QueueError>,
    /// The last queue notification changed the device's kept state.
    notify_changed_kept: bool,
}

fn set_half(word: &mut u64, high: bool, value: u32) {
    *word = if high {
        (*word & 0xffff_ffff) | (u64::from(value) << 32)
    } else {
        (*word & !0xffff_ffff) | u64::from(value)
    };
}

fn half(word: u64, select: u32) -> u32 {
    match select {
        0 => (word & 0xffff_ffff) as u32,
        1 => (word >> 32) as u32,
        _ => 0,
    }
}

impl<D: VirtioDevice> VirtioMmio<D> {
    /// The transport around `device`, in its reset state.
    pub fn new(device: D) -> Self {
        let mut queues = [SplitQueue::new(0); MAX_QUEUES];
        for (queue, &max) in queues.iter_mut().zip(device.queue_max_sizes()) {
            *queue = SplitQueue::new(max);
        }
        Self {
            device,
            queues,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            status: 0,
            failure: None,
            notify_changed_kept: false,
        }
    }

    /// The device-specific model.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device-specific model, mutably (e.g. to queue console input).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The InterruptStatus register.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// The driver error that put the device into the failed state, if any.
    pub fn failure(&self) -> Option<QueueError> {
        self.failure
    }

    /// The features the device offers (device-specific plus the
    /// transport's: VERSION_1, INDIRECT_DESC, EVENT_IDX).
    pub fn offered_features(&self) -> u64 {
        self.device.features() | TRANSPORT_FEATURES
    }

    /// The features the driver accepted.
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// Serves queue `index` if the driver has made the device live and the
    /// queue ready; raises the used-buffer interrupt when buffers were used
    /// (and, with EVENT_IDX, the driver's `used_event` was passed), or
    /// fails the device on a driver error.
    pub fn process_queue(&mut self, index: usize, env: &mut DeviceEnv<'_>) {
        self.serve_queue(index, env, |device, queue, env| {
            device.process_queue(index, queue, env)
        });
    }

    /// Runs `serve` on queue `index` with the device model, as
    /// [`VirtioMmio::process_queue`] does: only while the driver has the
    /// device live (FEATURES_OK and DRIVER_OK, not failed) and the queue
    /// ready. `serve` returns whether it put buffers on the used ring (which
    /// raises the used-buffer interrupt, unless EVENT_IDX says the driver
    /// does not want it yet); its error fails the device.
    /// Returns `None` when the queue could not be served (not live, not
    /// ready, or `serve` failed), else what `serve` returned.
    pub fn serve_queue(
        &mut self,
        index: usize,
        env: &mut DeviceEnv<'_>,
        serve: impl FnOnce(&mut D, &mut SplitQueue, &mut DeviceEnv<'_>) -> Result<bool, QueueError>,
    ) -> Option<bool> {
        let live = status::DRIVER_OK | status::FEATURES_OK;
        if self.status & live != live
            || self.failure.is_some()
            || self.status & status::DEVICE_NEEDS_RESET != 0
        {
            return None;
        }
        let queue = self.queues.get_mut(index).filter(|q| q.ready)?;
        let before = queue.used_index();
        let outcome = serve(&mut self.device, queue, env)
            .and_then(|used| Ok((used, used && queue.needs_interrupt(env.memory, before)?)));
        match outcome {
            Ok((used, interrupt)) => {
                if interrupt {
                    self.interrupt_status |= INT_USED_BUFFER;
                }
                Some(used)
            }
            Err(err) => {
                self.fail(err);
                None
            }
        }
    }

    fn fail(&mut self, err: QueueError) {
        self.failure = Some(err);
        self.status |= status::DEVICE_NEEDS_RESET;
        self.interrupt_status |= INT_CONFIG_CHANGE;
    }

    /// FEATURES_OK is set (by the driver, or in a restored state): the
    /// queues and the device act on what was negotiated.
    fn features_accepted(&mut self) {
        let ring = RingFeatures::negotiated(self.driver_features);
        for queue in &mut self.queues {
            queue.features = ring;
        }
        self.device.features_negotiated(self.driver_features);
    }

    fn reset(&mut self) {
        for queue in &mut self.queues {
            queue.reset();
        }
        self.device.reset();
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
        self.status = 0;
        self.failure = None;
    }

    fn selected_queue(&mut self) -> Option<&mut SplitQueue> {
        let index = usize::try_from(self.queue_sel).ok()?;
        self.queues.get_mut(index).filter(|q| q.max_size != 0)
    }

    /// A queue register write; ignored while the queue is ready, since the
    /// driver must not change a live queue.
    fn configure_queue(&mut self, apply: impl FnOnce(&mut SplitQueue)) {
        if let Some(queue) = self.selected_queue().filter(|q| !q.ready) {
            apply(queue);
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value = value & 0xff & !status::DEVICE_NEEDS_RESET;
        let asks_features_ok =
            value & status::FEATURES_OK != 0 && self.status & status::FEATURES_OK == 0;
        if asks_features_ok {
            let unknown = self.driver_features & !self.offered_features();
            if unknown != 0 || self.driver_features & VIRTIO_F_VERSION_1 == 0 {
                // The driver re-reads Status and sees FEATURES_OK refused.
                value &= !status::FEATURES_OK;
            } else {
                self.features_accepted();
            }
        }
        self.status = value | (self.status & status::DEVICE_NEEDS_RESET);
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        match offset {
            reg::MAGIC => MAGIC_VALUE,
            reg::VERSION => 2,
            reg::DEVICE_ID => self.device.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => half(self.offered_features(), self.device_features_sel),
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size)),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            // The configuration never changes while the device runs.
            reg::CONFIG_GENERATION => 0,
            // Write-only and reserved registers read as zero.
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32, env: &mut DeviceEnv<'_>) {
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            // Features are frozen once negotiated.
            reg::DRIVER_FEATURES if self.status & status::FEATURES_OK == 0 => {
                match self.driver_features_sel {
                    0 => set_half(&mut self.driver_features, false, value),
                    1 => set_half(&mut self.driver_features, true, value),
                    _ => {}
                }
            }
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM => {
                let size = u16::try_from(value).unwrap_or(0);
                self.configure_queue(|q| q.size = size);
            }
            reg::QUEUE_READY => {
                if let Some(queue) = self.selected_queue() {
                    // A configuration the device cannot use stays not ready.
                    queue.ready = value & 1 == 1 && queue.is_valid();
                }
            }
            reg::QUEUE_NOTIFY => {
                let before = self.device.kept_generation();
                if let Ok(index) = usize::try_from(value & 0xffff) {
                    self.process_queue(index, env);
                }
                self.notify_changed_kept = self.device.kept_generation() != before;
            }
            reg::INTERRUPT_ACK => self.interrupt_status &= !value,
            reg::STATUS => self.write_status(value),
            reg::QUEUE_DESC_LOW => {
                self.configure_queue(|q| set_half(&mut q.desc_table, false, value))
            }
            reg::QUEUE_DESC_HIGH => {
                self.configure_queue(|q| set_half(&mut q.desc_table, true, value))
            }
            reg::QUEUE_DRIVER_LOW => {
                self.configure_queue(|q| set_half(&mut q.avail_ring, false, value))
            }
            reg::QUEUE_DRIVER_HIGH => {
                self.configure_queue(|q| set_half(&mut q.avail_ring, true, value))
            }
            reg::QUEUE_DEVICE_LOW => {
                self.configure_queue(|q| set_half(&mut q.used_ring, false, value))
            }
            reg::QUEUE_DEVICE_HIGH => {
                self.configure_queue(|q| set_half(&mut q.used_ring, true, value))
            }
            // Read-only and reserved registers ignore writes.
            _ => {}
        }
    }

    fn read_config(&self, offset: u64, size: AccessSize) -> u64 {
        let mut value = [0u8; 8];
        let config = self.device.config();
        for (i, byte) in value.iter_mut().enumerate().take(size.byte_count()) {
            let at = usize::try_from(offset).ok().and_then(|o| o.checked_add(i));
            *byte = at.and_then(|at| config.get(at)).copied().unwrap_or(0);
        }
        u64::from_le_bytes(value)
    }
}

/// Kept: the device status, the negotiated features, the selectors,
/// each queue's configuration (size, readiness, ring addresses) and the
/// device's own driver-set state ([`VirtioDevice::save_kept`]); a
/// queue notification is kept only when it changed that state
/// ([`VirtioDevice::kept_generation`]). Ring positions are not:
/// [`VirtioMmio::resume`] takes them from the used rings in guest memory.
impl<D: VirtioDevice> Persist for VirtioMmio<D> {
    fn save(&self, out: &mut [u8]) -> usize {
        let mut w = Writer::new(out);
        w.u8(self.status.to_le_bytes()[0])
            .u64(self.driver_features)
            .u32(self.device_features_sel)
            .u32(self.driver_features_sel)
            .u32(self.queue_sel);
        for queue in &self.queues {
            w.u16(queue.size)
                .u8(u8::from(queue.ready))
                .u64(queue.desc_table)
                .u64(queue.avail_ring)
                .u64(queue.used_ring);
        }
        self.device.save_kept(&mut w);
        w.written()
    }

    fn restore(&mut self, saved: &[u8]) -> bool {
        let mut r = Reader::new(saved);
        let (Some(status), Some(driver_features), Some(dev_sel), Some(drv_sel), Some(queue_sel)) =
            (r.u8(), r.u64(), r.u32(), r.u32(), r.u32())
        else {
            return false;
        };
        let mut queues = self.queues;
        for queue in &mut queues {
            queue.reset();
            let (Some(size), Some(ready), Some(desc), Some(avail), Some(used)) =
                (r.u16(), r.u8(), r.u64(), r.u64(), r.u64())
            else {
                return false;
            };
            (
                queue.size,
                queue.desc_table,
                queue.avail_ring,
                queue.used_ring,
            ) = (size, desc, avail, used);
            // Kept only as the driver could have made it: valid.
            queue.ready = ready == 1 && queue.is_valid();
        }
        if driver_features & !self.offered_features() != 0 {
            return false;
        }
        // The device's own part is decoded into a copy first: a record
        // that does not decode changes nothing.
        let mut kept = r.clone();
        if !D::kept_decodes(&mut kept) || !kept.is_done() {
            return false;
        }
        self.queues = queues;
        self.status = u32::from(status);
        self.driver_features = driver_features;
        self.device_features_sel = dev_sel;
        self.driver_features_sel = drv_sel;
        self.queue_sel = queue_sel;
        self.interrupt_status = 0;
        self.failure = None;
        if self.status & status::FEATURES_OK != 0 {
            // The ring features and the device's own act again.
            self.features_accepted();
        }
        self.device.restore_kept(&mut r);
        true
    }

    fn write_persists(&self, offset: u64) -> bool {
        match offset {
            reg::QUEUE_NOTIFY => self.notify_changed_kept,
            reg::INTERRUPT_ACK => false,
            _ => true,
        }
    }
}

impl<D: VirtioDevice> VirtioMmio<D> {
    /// After [`Persist::restore`]: every ready queue resumes at its used
    /// index and is served (what the driver posted while no service ran,
    /// and a request the dead service took and never returned), and the
    /// used-buffer interrupt is raised so the driver looks at its used
    /// rings (a completion whose interrupt died with the service is
    /// found; an interrupt with nothing new costs the driver a look).
    pub fn resume(&mut self, env: &mut DeviceEnv<'_>) {
        let live = status::DRIVER_OK | status::FEATURES_OK;
        if self.status & live != live || self.status & status::DEVICE_NEEDS_RESET != 0 {
            return;
        }
        for index in 0..MAX_QUEUES {
            let queue = &mut self.queues[index];
            if !queue.ready {
                continue;
            }
            if let Err(err) = queue.resume_at_used(env.memory) {
                self.fail(err);
                return;
            }
            self.process_queue(index, env);
        }
        self.interrupt_status |= INT_USED_BUFFER;
    }
}

impl<D: VirtioDevice> BusDevice for VirtioMmio<D> {
    fn size(&self) -> u64 {
        VIRTIO_MMIO_SIZE
    }

    fn read(
        &mut self,
        offset: u64,
        size: AccessSize,
        _env: &mut DeviceEnv<'_>,
    ) -> Result<u64, DeviceError> {
        if offset >= VIRTIO_MMIO_SIZE {
            return Err(DeviceError::OutOfRange);
        }
        if !size.is_aligned(offset) {
            return Err(DeviceError::Unaligned);
        }
        if let Some(config_offset) = offset.checked_sub(reg::CONFIG) {
            return Ok(self.read_config(config_offset, size));
        }
        if size != AccessSize::Word {
            return Err(DeviceError::BadWidth);
        }
        Ok(u64::from(self.read_register(offset)))
    }

    fn write(
        &mut self,
        offset: u64,
        size: AccessSize,
        value: u64,
        env: &mut DeviceEnv<'_>,
    ) -> Result<(), DeviceError> {
        if offset >= VIRTIO_MMIO_SIZE {
            return Err(DeviceError::OutOfRange);
        }
        if !size.is_aligned(offset) {
            return Err(DeviceError::Unaligned);
        }
        if let Some(config_offset) = offset.checked_sub(reg::CONFIG) {
            let bytes = value.to_le_bytes();
            let bytes = bytes.get(..size.byte_count()).unwrap_or(&[]);
            self.device.write_config(config_offset, bytes, env);
            return Ok(());
        }
        if size != AccessSize::Word {
            return Err(DeviceError::BadWidth);
        }
        self.write_register(offset, (value & 0xffff_ffff) as u32, env);
        Ok(())
    }

    fn irq_level(&self) -> bool {
        self.interrupt_status != 0
    }
}

#[cfg(test)]
#[path = "mmio_tests.rs"]
mod tests;
