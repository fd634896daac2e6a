//! The device models the service can attach, as one type a bus can hold.

use ipc::devices::DeviceKind;
use ipc::{Error, VmId};

use crate::bus::{AccessSize, BlockBackend, BusDevice, DeviceEnv, DeviceError};
use crate::persist::Persist;
use crate::plic::Plic;
use crate::uart16550::Uart16550;
use crate::virtio::blk::VirtioBlk;
use crate::virtio::console::VirtioConsole;
use crate::virtio::mmio::VirtioMmio;
use crate::virtio::net::{VirtioNet, mac_for};
use crate::virtio::rng::VirtioRng;
use crate::vmgenid::VmGenId;

/// One attached device model.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "models live inline in fixed-size bus tables; there is no heap"
)]
pub enum DeviceModel {
    /// A 16550A UART.
    Uart(Uart16550),
    /// A virtio-mmio console.
    VirtioConsole(VirtioMmio<VirtioConsole>),
    /// A virtio-mmio entropy source.
    VirtioRng(VirtioMmio<VirtioRng>),
    /// A virtio-mmio block device.
    VirtioBlk(VirtioMmio<VirtioBlk>),
    /// A virtio-mmio network card, on the service's switch.
    VirtioNet(VirtioMmio<VirtioNet>),
    /// The VM generation ID device.
    VmGenId(VmGenId),
    /// The interrupt controller.
    Plic(Plic),
}

impl DeviceModel {
    /// A model of `kind` for `vm` in its reset state; a generation ID
    /// device starts with `generation_id`, a network card has `vm`'s MAC
    /// address, a block device asks `block` what its disk is (and fails as
    /// that does: `Error::NoDevice` for no such disk).
    pub fn new(
        vm: VmId,
        kind: DeviceKind,
        generation_id: u128,
        block: &mut dyn BlockBackend,
    ) -> Result<Self, Error> {
        Ok(match kind {
            DeviceKind::Uart16550 => Self::Uart(Uart16550::new()),
            DeviceKind::VirtioConsole => Self::VirtioConsole(VirtioMmio::new(VirtioConsole::new())),
            DeviceKind::VirtioRng => Self::VirtioRng(VirtioMmio::new(VirtioRng::new())),
            DeviceKind::VmGenId => Self::VmGenId(VmGenId::new(generation_id)),
            DeviceKind::Plic => Self::Plic(Plic::new()),
            DeviceKind::VirtioBlk { disk } => {
                Self::VirtioBlk(VirtioMmio::new(VirtioBlk::attach(disk, block)?))
            }
            DeviceKind::VirtioNet => Self::VirtioNet(VirtioMmio::new(VirtioNet::new(mac_for(vm)))),
        })
    }

    /// Which kind of model this is.
    pub fn kind(&self) -> DeviceKind {
        match self {
            Self::Uart(_) => DeviceKind::Uart16550,
            Self::VirtioConsole(_) => DeviceKind::VirtioConsole,
            Self::VirtioRng(_) => DeviceKind::VirtioRng,
            Self::VirtioBlk(dev) => DeviceKind::VirtioBlk {
                disk: dev.device().disk(),
            },
            Self::VirtioNet(_) => DeviceKind::VirtioNet,
            Self::VmGenId(_) => DeviceKind::VmGenId,
            Self::Plic(_) => DeviceKind::Plic,
        }
    }

    /// A read of a model whose reads need no [`DeviceEnv`] (the UART, read
    /// on nearly every guest exit), done directly; `None` for the others.
    #[inline]
    pub fn read_without_env(
        &mut self,
        offset: u64,
        size: AccessSize,
    ) -> Option<Result<u64, DeviceError>> {
        match self {
            Self::Uart(dev) => Some(dev.read_access(offset, size)),
            _ => None,
        }
    }

    /// The model's kept registers ([`Persist`]), if it keeps any (the
    /// generation ID device does not: the vm-manager sets its ID again).
    pub fn persist(&mut self) -> Option<&mut dyn Persist> {
        match self {
            Self::Uart(dev) => Some(dev),
            Self::VirtioConsole(dev) => Some(dev),
            Self::VirtioRng(dev) => Some(dev),
            Self::VirtioBlk(dev) => Some(dev),
            Self::VirtioNet(dev) => Some(dev),
            Self::Plic(dev) => Some(dev),
            Self::VmGenId(_) => None,
        }
    }

    /// Whether a guest write at `offset` may change what the model keeps:
    /// [`Persist::write_persists`] of [`persist`](Self::persist)'s model,
    /// false for one that keeps nothing. Asked after every write, so each
    /// model is called directly, not through `dyn Persist`.
    #[inline]
    pub fn write_persists(&self, offset: u64) -> bool {
        match self {
            Self::Uart(dev) => dev.write_persists(offset),
            Self::VirtioConsole(dev) => dev.write_persists(offset),
            Self::VirtioRng(dev) => dev.write_persists(offset),
            Self::VirtioBlk(dev) => dev.write_persists(offset),
            Self::VirtioNet(dev) => dev.write_persists(offset),
            Self::Plic(dev) => dev.write_persists(offset),
            Self::VmGenId(_) => false,
        }
    }

    /// After its registers were restored: a virtio device takes up its
    /// queues again ([`VirtioMmio::resume`]); other models need nothing.
    pub fn resume(&mut self, env: &mut DeviceEnv<'_>) {
        match self {
            Self::VirtioConsole(dev) => dev.resume(env),
            Self::VirtioRng(dev) => dev.resume(env),
            Self::VirtioBlk(dev) => dev.resume(env),
            Self::VirtioNet(dev) => dev.resume(env),
            Self::Uart(_) | Self::Plic(_) | Self::VmGenId(_) => {}
        }
    }

    fn as_bus_device(&mut self) -> &mut dyn BusDevice {
        match self {
            Self::Uart(dev) => dev,
            Self::VirtioConsole(dev) => dev,
            Self::VirtioRng(dev) => dev,
            Self::VirtioBlk(dev) => dev,
            Self::VirtioNet(dev) => dev,
            Self::VmGenId(dev) => dev,
            Self::Plic(dev) => dev,
        }
    }
}

impl BusDevice for DeviceModel {
    fn size(&self) -> u64 {
        match self {
            Self::Uart(dev) => dev.size(),
            Self::VirtioConsole(dev) => dev.size(),
            Self::VirtioRng(dev) => dev.size(),
            Self::VirtioBlk(dev) => dev.size(),
            Self::VirtioNet(dev) => dev.size(),
            Self::VmGenId(dev) => dev.size(),
            Self::Plic(dev) => dev.size(),
        }
    }

    #[inline]
    fn read(
        &mut self,
        offset: u64,
        size: AccessSize,
        env: &mut DeviceEnv<'_>,
    ) -> Result<u64, DeviceError> {
        match self.read_without_env(offset, size) {
            Some(result) => result,
            None => self.as_bus_device().read(offset, size, env),
        }
    }

    /// Each model is called directly (a guest's output is a write per
    /// byte), not through `dyn BusDevice`.
    #[inline]
    fn write(
        &mut self,
        offset: u64,
        size: AccessSize,
        value: u64,
        env: &mut DeviceEnv<'_>,
    ) -> Result<(), DeviceError> {
        match self {
            Self::Uart(dev) => dev.write(offset, size, value, env),
            Self::VirtioConsole(dev) => dev.write(offset, size, value, env),
            Self::VirtioRng(dev) => dev.write(offset, size, value, env),
            Self::VirtioBlk(dev) => dev.write(offset, size, value, env),
            Self::VirtioNet(dev) => dev.write(offset, size, value, env),
            Self::VmGenId(dev) => dev.write(offset, size, value, env),
            Self::Plic(dev) => dev.write(offset, size, value, env),
        }
    }

    fn irq_latched(&mut self) {
        if let Self::VmGenId(dev) = self {
            dev.irq_latched();
        }
    }

    #[inline]
    fn irq_level(&self) -> bool {
        match self {
            Self::Uart(dev) => dev.irq_level(),
            Self::VirtioConsole(dev) => dev.irq_level(),
            Self::VirtioRng(dev) => dev.irq_level(),
            Self::VirtioBlk(dev) => dev.irq_level(),
            Self::VirtioNet(dev) => dev.irq_level(),
            Self::VmGenId(dev) => dev.irq_level(),
            Self::Plic(dev) => dev.irq_level(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::NoBlock;
    use crate::testing::TestEnv;
    use ipc::blk;
    use std::vec::Vec;

    /// A block service with one disk, number 2.
    struct OneDisk;

    impl BlockBackend for OneDisk {
        fn request(&mut self, request: &blk::Request) -> blk::Response {
            match request {
                blk::Request::Info { disk: 2 } => blk::Response::Info(blk::DiskInfo {
                    sectors: 8,
                    read_only: false,
                }),
                _ => blk::Response::Err(Error::NoDevice),
            }
        }
    }

    #[test]
    fn each_kind_builds_its_model_with_its_size() {
        let cases = [
            (DeviceKind::Uart16550, 8),
            (DeviceKind::VirtioConsole, 0x200),
            (DeviceKind::VirtioRng, 0x200),
            (DeviceKind::VmGenId, 0x20),
            (DeviceKind::Plic, 0x60_0000),
            (DeviceKind::VirtioBlk { disk: 2 }, 0x200),
            (DeviceKind::VirtioNet, 0x200),
        ];
        for (kind, size) in cases {
            let model = DeviceModel::new(VmId(1), kind, 7, &mut OneDisk).unwrap();
            assert_eq!(model.kind(), kind);
            assert_eq!(model.size(), size);
            assert!(!model.irq_level());
        }
    }

    /// The registers each test writes and reads back: every byte of a
    /// UART, the first words of any other model.
    fn registers(model: &DeviceModel) -> Vec<(u64, AccessSize)> {
        match model {
            DeviceModel::Uart(_) => (0..8).map(|o| (o, AccessSize::Byte)).collect(),
            _ => (0..0x100)
                .step_by(4)
                .filter(|&o| o + 4 <= model.size())
                .map(|o| (o, AccessSize::Word))
                .collect(),
        }
    }

    const KINDS: [DeviceKind; 7] = [
        DeviceKind::Uart16550,
        DeviceKind::VirtioConsole,
        DeviceKind::VirtioRng,
        DeviceKind::VmGenId,
        DeviceKind::Plic,
        DeviceKind::VirtioBlk { disk: 2 },
        DeviceKind::VirtioNet,
    ];

    /// A write goes to each model directly: the same results, the same
    /// state after it, as through `dyn BusDevice`; and whether a write
    /// persists is what the model's `Persist` says (nothing for a model
    /// that keeps nothing).
    #[test]
    fn each_model_is_written_and_asked_as_through_its_traits() {
        for kind in KINDS {
            let mut direct = DeviceModel::new(VmId(1), kind, 7, &mut OneDisk).unwrap();
            let mut through = DeviceModel::new(VmId(1), kind, 7, &mut OneDisk).unwrap();
            let (mut env_a, mut env_b) = (TestEnv::default(), TestEnv::default());
            for (i, (offset, size)) in registers(&direct).into_iter().enumerate() {
                let value = 0x5a5a_5a5a_u64.rotate_left(u32::try_from(i).unwrap()) & size.mask();
                assert_eq!(
                    direct.write(offset, size, value, &mut env_a.env()),
                    through
                        .as_bus_device()
                        .write(offset, size, value, &mut env_b.env()),
                    "{kind:?} write at {offset:#x}"
                );
                let persists = through.persist().is_some_and(|p| p.write_persists(offset));
                assert_eq!(
                    direct.write_persists(offset),
                    persists,
                    "{kind:?} at {offset:#x}"
                );
            }
            for (offset, size) in registers(&direct) {
                assert_eq!(
                    direct.read(offset, size, &mut env_a.env()),
                    through.read(offset, size, &mut env_b.env()),
                    "{kind:?} read at {offset:#x}"
                );
            }
            assert_eq!(env_a.output.0, env_b.output.0, "{kind:?} output");
            assert_eq!(direct.irq_level(), through.irq_level(), "{kind:?} line");
        }
    }

    #[test]
    fn a_block_device_needs_its_disk() {
        let kind = DeviceKind::VirtioBlk { disk: 1 };
        assert_eq!(
            DeviceModel::new(VmId(1), kind, 0, &mut OneDisk).err(),
            Some(Error::NoDevice)
        );
        assert_eq!(
            DeviceModel::new(VmId(1), kind, 0, &mut NoBlock).err(),
            Some(Error::NoDevice)
        );
    }
}
/// Every device slot of every VM is as big as the biggest model, and the
/// service's state lives in a static of MAX_VMS VMs of such slots: the
/// network card, with its receive filter, must not be that model.
#[cfg(test)]
#[test]
fn a_network_card_makes_no_device_slot_bigger() {
    use core::mem::size_of;
    let others = [
        size_of::<Uart16550>(),
        size_of::<VirtioMmio<VirtioConsole>>(),
        size_of::<VirtioMmio<VirtioRng>>(),
        size_of::<VirtioMmio<VirtioBlk>>(),
        size_of::<VmGenId>(),
        size_of::<Plic>(),
    ];
    let biggest_other = others.iter().copied().max().unwrap_or(0);
    assert!(size_of::<VirtioMmio<VirtioNet>>() <= biggest_other);
}
