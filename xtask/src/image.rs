//! Packs service ELFs and guest images into the Mica boot image that QEMU
//! hands to the kernel as its initrd (format: `mica_boot::image`).

use std::path::{Path, PathBuf};

use mica_boot::image::{EntryKind, EntrySpec, KernelRights, image_len, write};

/// One entry of the boot image, as xtask knows it before reading the file.
#[derive(Clone, Debug)]
pub struct Part {
    /// The entry's unique name (a service or guest image name).
    pub name: String,
    /// Service or guest.
    pub kind: EntryKind,
    /// Scheduling priority of a service.
    pub priority: u8,
    /// The endpoint a service serves.
    pub serves: Option<u8>,
    /// The endpoints it may call.
    pub may_call: &'static [u8],
    /// What the kernel lets it do beyond IPC.
    pub rights: KernelRights,
    /// The virtio device classes it may map (bit `n`: device ID `n`;
    /// with the DEVICES right).
    pub device_classes: u32,
    /// The file to pack.
    pub path: PathBuf,
}

/// The virtio device ID of a console (virtio spec 5.3).
pub const VIRTIO_CONSOLE: u32 = 3;
/// The virtio device ID of an entropy source, virtio-rng (virtio spec 5.4).
pub const VIRTIO_ENTROPY: u32 = 4;
/// virtio device ID of a block device.
pub const VIRTIO_BLOCK: u32 = 2;

impl Part {
    /// The same part, allowed to map the virtio devices of `classes` (bit
    /// `n`: device ID `n`).
    pub fn driving(self, classes: u32) -> Self {
        Self {
            device_classes: classes,
            ..self
        }
    }
}

/// Endpoint numbers (`ipc::syscall::endpoints`).
pub const VM_MANAGER: u8 = 1;
/// The ioreq service's endpoint.
pub const IOREQ: u8 = 2;
/// The device service's endpoint.
pub const DEVICES: u8 = 3;
/// The rng service's endpoint (RISC-V images only: no task serves it on
/// x86_64, whose QEMU has no virtio-mmio bus, so a call there is refused
/// and RDSEED/RDRAND are the only source).
pub const RNG: u8 = 5;
/// The block service's endpoint (`ipc::syscall::endpoints::BLK`).
pub const BLK: u8 = 6;

/// A service part of a boot image.
pub fn service(
    name: &str,
    path: PathBuf,
    priority: u8,
    serves: Option<u8>,
    may_call: &'static [u8],
    rights: KernelRights,
) -> Part {
    let kind = EntryKind::Service;
    Part {
        name: name.into(),
        kind,
        priority,
        serves,
        may_call,
        rights,
        device_classes: 0,
        path,
    }
}

/// A guest part of a boot image.
pub fn guest(name: &str, path: PathBuf) -> Part {
    let rights = KernelRights::default();
    let kind = EntryKind::Guest;
    Part {
        name: name.into(),
        kind,
        priority: 0,
        serves: None,
        may_call: &[],
        rights,
        device_classes: 0,
        path,
    }
}

/// The manifest of the services every boot image has, on both
/// architectures: init, ioreq, devices (with `devices_rights` and ENTROPY,
/// for virtio-rng) and the vm-manager (ENTROPY for generation IDs), their
/// ELFs found by `task`. The last two may also call the rng service
/// ([`rng_service`]), their entropy when the CPU has no source; devices
/// may call the block service ([`blk_service`]) for its virtio-blk models.
pub fn core_services(
    task: impl Fn(&str) -> Result<PathBuf, String>,
    devices_rights: KernelRights,
) -> Result<Vec<Part>, String> {
    Ok(vec![
        // init tells the vm-manager of a restarted ioreq or device service,
        // and probes every service (its watchdog).
        service(
            "init",
            task("mica-init")?,
            10,
            None,
            &[VM_MANAGER, IOREQ, DEVICES, RNG, BLK],
            KernelRights::SUPERVISOR,
        ),
        service(
            "ioreq",
            task("mica-ioreq")?,
            9,
            Some(IOREQ),
            &[DEVICES],
            KernelRights::IOREQ,
        ),
        service(
            "devices",
            task("mica-devices")?,
            8,
            Some(DEVICES),
            &[RNG, BLK],
            devices_rights.union(KernelRights::ENTROPY),
        ),
        service(
            "vm-manager",
            task("mica-vm-manager")?,
            7,
            Some(VM_MANAGER),
            &[IOREQ, DEVICES, RNG],
            KernelRights::VM_CONTROL.union(KernelRights::ENTROPY),
        ),
    ])
}

/// The rng service (RISC-V): drives the host's virtio-rng for the tasks
/// whose CPU has no entropy source. Least privilege: it may map virtio-rng
/// devices and nothing else (DEVICES, for its window and DMA), calls no
/// one and has no other kernel right. Below the services that call it.
pub fn rng_service(task: impl Fn(&str) -> Result<PathBuf, String>) -> Result<Part, String> {
    Ok(service(
        "rng",
        task("mica-rng-task")?,
        6,
        Some(RNG),
        &[],
        KernelRights::DEVICES,
    )
    .driving(1 << VIRTIO_ENTROPY))
}

/// Packs `parts` into `dir/boot.img`, says so, and returns its path.
/// The block service: drives the host's virtio-blk disks (device ID 2,
/// and no other class), reaches guest RAM only through the grants the
/// vm-manager gives its endpoint, and calls nobody.
pub fn blk_service(task: impl Fn(&str) -> Result<PathBuf, String>) -> Result<Part, String> {
    Ok(service(
        "blk",
        task("mica-blk-task")?,
        6,
        Some(BLK),
        &[],
        KernelRights::DEVICES,
    )
    .driving(1 << VIRTIO_BLOCK))
}

pub fn pack_into(parts: &[Part], dir: &Path) -> Result<PathBuf, String> {
    let out = dir.join("boot.img");
    let size = pack(parts, &out)?;
    println!("xtask: boot image {} ({size} bytes)", out.display());
    Ok(out)
}

/// Reads every part and writes the image to `out`; returns its size.
pub fn pack(parts: &[Part], out: &Path) -> Result<usize, String> {
    let mut blobs = Vec::with_capacity(parts.len());
    for part in parts {
        let data = std::fs::read(&part.path)
            .map_err(|e| format!("boot image: cannot read {}: {e}", part.path.display()))?;
        if data.is_empty() {
            return Err(format!("boot image: {} is empty", part.path.display()));
        }
        blobs.push(data);
    }
    let specs: Vec<EntrySpec<'_>> = parts
        .iter()
        .zip(&blobs)
        .map(|(part, data)| EntrySpec {
            name: &part.name,
            kind: part.kind,
            priority: part.priority,
            serves: part.serves,
            may_call: part
                .may_call
                .iter()
                .fold(0u64, |mask, &ep| mask | 1u64 << (ep % 64)),
            rights: part.rights,
            device_classes: part.device_classes,
            data,
        })
        .collect();
    let mut image = vec![0u8; image_len(&specs)];
    write(&specs, &mut image).map_err(|e| format!("boot image: {e}"))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, &image).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(image.len())
}

#[cfg(test)]
mod tests {
    use super::{Part, pack};
    use mica_boot::image::{BootImage, EntryKind, KernelRights};

    fn part(name: &'static str, kind: EntryKind, path: std::path::PathBuf) -> Part {
        Part {
            name: name.into(),
            kind,
            priority: 5,
            rights: KernelRights::default(),
            serves: Some(1),
            may_call: &[2, 3],
            device_classes: 0,
            path,
        }
    }

    #[test]
    fn only_the_vm_manager_and_devices_may_draw_entropy() {
        let parts = super::core_services(|p| Ok(p.into()), KernelRights::CONSOLE).unwrap();
        let mut holders: Vec<&str> = parts
            .iter()
            .filter(|p| p.rights.contains(KernelRights::ENTROPY))
            .map(|p| p.name.as_str())
            .collect();
        holders.sort_unstable();
        assert_eq!(holders, ["devices", "vm-manager"]);
    }

    #[test]
    fn the_rng_service_maps_only_virtio_rng_and_only_its_clients_and_the_watchdog_call_it() {
        let rng = super::rng_service(|p| Ok(p.into())).unwrap();
        assert_eq!(rng.serves, Some(super::RNG));
        assert_eq!(rng.device_classes, 1 << 4, "virtio-rng (device ID 4) only");
        assert_eq!(rng.rights, KernelRights::DEVICES);
        assert!(rng.may_call.is_empty());
        let parts = super::core_services(|p| Ok(p.into()), KernelRights::CONSOLE).unwrap();
        let mut callers: Vec<&str> = parts
            .iter()
            .filter(|p| p.may_call.contains(&super::RNG))
            .map(|p| p.name.as_str())
            .collect();
        callers.sort_unstable();
        assert_eq!(callers, ["devices", "init", "vm-manager"]);
        assert_eq!(usize::from(super::RNG), ipc::syscall::endpoints::RNG);
    }

    #[test]
    fn the_block_service_maps_only_virtio_blk_and_calls_nobody() {
        let blk = super::blk_service(|p| Ok(p.into())).unwrap();
        assert_eq!(blk.serves, Some(super::BLK));
        assert_eq!(blk.device_classes, 1 << 2, "virtio-blk (device ID 2) only");
        assert_eq!(blk.rights, KernelRights::DEVICES);
        assert!(blk.may_call.is_empty());
        assert_eq!(usize::from(super::BLK), ipc::syscall::endpoints::BLK);
    }

    #[test]
    fn only_the_device_service_and_the_watchdog_call_the_block_service() {
        let parts = super::core_services(|p| Ok(p.into()), KernelRights::CONSOLE).unwrap();
        let mut callers: Vec<&str> = parts
            .iter()
            .filter(|p| p.may_call.contains(&super::BLK))
            .map(|p| p.name.as_str())
            .collect();
        callers.sort_unstable();
        assert_eq!(callers, ["devices", "init"]);
        let devices = parts.iter().find(|p| p.name == "devices").unwrap();
        assert_eq!(devices.may_call, [super::RNG, super::BLK]);
    }

    #[test]
    fn packs_files_into_an_image_the_kernel_parser_accepts() {
        let dir = std::env::temp_dir().join(format!("mica-xtask-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("svc.elf"), b"\x7fELF service").unwrap();
        let out = dir.join("boot.img");
        let parts = [part("ioreq", EntryKind::Service, dir.join("svc.elf"))];
        let size = pack(&parts, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len(), size);
        let image = BootImage::parse(&bytes).unwrap();
        let entry = image.find("ioreq").unwrap();
        assert_eq!(entry.spec.data, b"\x7fELF service");
        assert_eq!(entry.spec.may_call, 0b1100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_or_empty_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("mica-xtask-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("empty"), b"").unwrap();
        let out = dir.join("boot.img");
        let missing = pack(&[part("a", EntryKind::Guest, dir.join("nope"))], &out).unwrap_err();
        assert!(missing.starts_with("boot image: cannot read"), "{missing}");
        let empty = pack(&[part("a", EntryKind::Guest, dir.join("empty"))], &out).unwrap_err();
        assert!(empty.ends_with("is empty"), "{empty}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
