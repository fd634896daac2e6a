//! The service's network: frames a VM's card transmits go through the
//! switch into the receive queues of the VMs it sends them to.

use heapless::Vec;
use ipc::{Error, VmId};

use super::{
    BlockBackend, ConsoleSink, DeviceService, EntropySource, GuestMemoryProvider, IrqSink, MAX_VMS,
};
use crate::bus::DeviceEnv;
use crate::switch::Forward;
use crate::virtio::mmio::VirtioMmio;
use crate::virtio::net::{self, Packet, VirtioNet};

/// The most frames switched for one notification of a card's transmit
/// queue (twice its size): a guest that keeps posting cannot hold the
/// service; what is left waits for its next notification.
pub const MAX_FRAMES_PER_NOTIFICATION: usize = 2 * net::QUEUE_SIZE as usize;

impl<C, I, M, E, B> DeviceService<C, I, M, E, B>
where
    C: ConsoleSink,
    I: IrqSink,
    M: GuestMemoryProvider,
    E: EntropySource,
    B: BlockBackend,
{
    /// Takes the frames `vm`'s guest transmitted, one at a time, and
    /// delivers each where the switch sends it; then reports the interrupt
    /// changes of every VM that got one and of `vm` (its transmit buffers
    /// came back).
    pub(super) fn switch_frames(&mut self, vm: VmId) {
        for _ in 0..MAX_FRAMES_PER_NOTIFICATION {
            let got = self.with_card(vm, net::transmit);
            if got != Some(true) {
                break;
            }
            match self.switch.forward(vm, self.packet.frame()) {
                Forward::Drop => {}
                Forward::Port(to) => self.deliver_frame(to),
                Forward::Flood => {
                    let mut ports: Vec<VmId, MAX_VMS> = Vec::new();
                    for slot in &mut self.vms {
                        if slot.vm != vm && slot.net_card().is_some() {
                            // At most MAX_VMS VMs: always room.
                            let _ = ports.push(slot.vm);
                        }
                    }
                    for to in ports {
                        self.deliver_frame(to);
                    }
                }
            }
        }
        self.report_irq_changes(vm, false);
    }

    /// Delivers the frame in `self.packet` to `to`'s network card and
    /// reports its interrupt changes.
    fn deliver_frame(&mut self, to: VmId) {
        let delivered = self.with_card(to, |card, packet, env| {
            net::deliver(card, packet.frame(), env)
        });
        if delivered.is_some() {
            self.report_irq_changes(to, false);
        }
    }

    /// Runs `f` on `vm`'s network card with the service's packet buffer and
    /// an environment over `vm`; `None` when `vm` has no card.
    fn with_card<R>(
        &mut self,
        vm: VmId,
        f: impl FnOnce(&mut VirtioMmio<VirtioNet>, &mut Packet, &mut DeviceEnv<'_>) -> R,
    ) -> Option<R> {
        let Self {
            vms,
            backends,
            packet,
            ..
        } = self;
        let slot = vms.iter_mut().find(|v| v.vm == vm)?;
        let (buses, mut env) = slot.split(backends);
        let card = buses.net_card()?;
        Some(env.with(|env| f(card, packet, env)))
    }

    /// What `vm`'s network card counted (frames sent, received, dropped).
    /// [`Error::NoDevice`] when it has none.
    pub fn net_counters(&mut self, vm: VmId) -> Result<net::NetCounters, Error> {
        self.vm_mut(vm)?
            .net_card()
            .map(|card| card.device().counters())
            .ok_or(Error::NoDevice)
    }
}
