//! A stand-in hypervisor for tests of the shell and the CLI (feature
//! `testing`): a real `VmManager` over a platform on which every call
//! succeeds (and which remembers the last image it loaded, so a test can
//! check what a `create` asked for, and echoes what is typed at a VM's
//! console as its output, and reports [`EXAMPLE_STATS`] for every VM that
//! holds resources, and gives each VM that asks one of [`EXAMPLE_DISKS`]
//! host disks), with predictable generation IDs 1, 2, 3 ...
//! [`manager_with_images`] is the same over a boot image that holds
//! [`EXAMPLE_IMAGES`] only (and no default image for a create).

use ipc::VmId;
use ipc::devices::{ConsoleChunk, OUTPUT_CHUNK};
use ipc::vm::{ConsolePort, GuestImage, ImageKind, VmStats};
use vm_manager::{
    DynamicDefaults, EntropySource, GenerationId, ImageName, LinuxBoot, Platform, StaticVmConfig,
    VmFlags, VmManager, VmName,
};

/// The guest images of [`manager_with_images`]'s boot image: `hello`
/// (raw, 8 KiB), `vmlinux` (Linux Image, 24 MiB), `initrd` (initrd, 3
/// MiB), and the [`SCENARIO`]'s raw images `linux` (64 KiB) and `zephyr`
/// (300 bytes).
pub fn example_images() -> heapless::Vec<GuestImage, 8> {
    let image = |name: &str, kind, size| GuestImage {
        name: ipc::wire_name(name).unwrap_or_default(),
        kind,
        size,
    };
    heapless::Vec::from_iter([
        image("hello", ImageKind::Raw, 8 * 1024),
        image("vmlinux", ImageKind::LinuxImage, 24 * 1024 * 1024),
        image("initrd", ImageKind::Initrd, 3 * 1024 * 1024),
        // A Linux Image by its bytes, but sos boots it raw: listed as raw.
        image("linux", ImageKind::LinuxImage, 64 * 1024),
        image("zephyr", ImageKind::Raw, 300),
    ])
}

/// What [`example_images`] lists, as a failed create shows it.
pub const EXAMPLE_IMAGES: &str = "hello (raw, 8 KiB), vmlinux (Linux Image, 24 MiB), \
                                  initrd (initrd, 3 MiB), linux (raw, 64 KiB), \
                                  zephyr (raw, 300 bytes)";

/// The figures the stand-in reports for each VM: a guest that printed
/// through its UART for a while.
pub const EXAMPLE_STATS: VmStats = VmStats {
    device_exits: 23_711,
    hypercall_exits: 310,
    wait_exits: 12,
    interrupt_exits: 40,
    other_exits: 3,
    ioreq_round_trips: 23_702,
    service_ns: 1_234_567_890,
    posted_writes: 9,
    net: Some(ipc::devices::NetCounters {
        sent: 12,
        received: 10,
        tx_dropped: 0,
        rx_dropped: 2,
    }),
    // One vCPU, which made every exit.
    vcpus: heapless::Vec::from_array([ipc::vm::VcpuInfo {
        state: ipc::vm::VcpuState::Waiting,
        exits: 24_076,
        round_trips: 23_702,
        cpu: None,
    }]),
};

/// The most console bytes the stand-in keeps per VM.
pub const ECHO_CAPACITY: usize = 1024;

/// A platform on which every call succeeds and nothing happens, except that
/// it remembers the last image it was asked to load, and each VM's console
/// echoes what is typed (a guest shell would).
#[derive(Clone, Debug, Default)]
pub struct NullPlatform {
    /// The image of the last `load_image`, with its Linux boot settings.
    pub last_load: Option<(ImageName, Option<LinuxBoot>)>,
    /// Each VM's console output: what was typed at it, then its own output
    /// (bytes beyond [`ECHO_CAPACITY`] are dropped).
    pub consoles: heapless::Vec<(VmId, heapless::Vec<u8, ECHO_CAPACITY>), 16>,
    /// The boot image's guest images; when there are any, an image not
    /// among them does not load (`UnknownImage`).
    pub images: heapless::Vec<GuestImage, 8>,
    /// Which VM holds which host disk; the stand-in machine has
    /// [`EXAMPLE_DISKS`] disks, each one VM's at a time.
    pub disks: heapless::Vec<(VmId, u8), 16>,
}

/// How many host disks the stand-in machine has (0 and 1): another number
/// is refused as the block service refuses it (`NoDevice`).
pub const EXAMPLE_DISKS: u8 = 2;

impl NullPlatform {
    /// `vm`'s console output, created empty on first use.
    pub fn console_mut(&mut self, vm: VmId) -> Option<&mut heapless::Vec<u8, ECHO_CAPACITY>> {
        if !self.consoles.iter().any(|(id, _)| *id == vm) {
            self.consoles.push((vm, heapless::Vec::new())).ok()?;
        }
        self.consoles
            .iter_mut()
            .find(|(id, _)| *id == vm)
            .map(|(_, output)| output)
    }
}

impl Platform for NullPlatform {
    fn create_address_space(&mut self, _: VmId, _: u32) -> Result<(), ipc::Error> {
        Ok(())
    }
    fn load_image(
        &mut self,
        _: VmId,
        image: &ImageName,
        linux: Option<&LinuxBoot>,
    ) -> Result<(), ipc::Error> {
        let initrd = linux.and_then(|boot| boot.initrd.as_ref());
        let known = |name: &ImageName| self.images.iter().any(|i| i.name == name.as_str());
        let loads = self.images.is_empty() || (known(image) && initrd.is_none_or(known));
        if !loads {
            return Err(ipc::Error::UnknownImage);
        }
        self.last_load = Some((image.clone(), linux.cloned()));
        Ok(())
    }
    fn clone_memory(&mut self, _: VmId, _: VmId) -> Result<(), ipc::Error> {
        Ok(())
    }
    fn create_vcpus(&mut self, _: VmId, _: u8) -> Result<(), ipc::Error> {
        Ok(())
    }
    fn register_ioreq(&mut self, _: VmId) -> Result<(), ipc::Error> {
        Ok(())
    }
    fn register_devices(
        &mut self,
        vm: VmId,
        _: &VmName,
        disk: Option<u8>,
    ) -> Result<(), ipc::Error> {
        let Some(disk) = disk else { return Ok(()) };
        if self.disks.iter().any(|&(_, held)| held == disk) {
            return Err(ipc::Error::DiskInUse);
        }
        if disk >= EXAMPLE_DISKS {
            return Err(ipc::Error::NoDevice);
        }
        self.disks
            .push((vm, disk))
            .map_err(|_| ipc::Error::OutOfMemory)
    }
    fn set_generation_id(&mut self, _: VmId, _: GenerationId) -> Result<(), ipc::Error> {
        Ok(())
    }
    fn start(&mut self, _: VmId) -> Result<(), ipc::Error> {
        Ok(())
    }
    fn pause(&mut self, _: VmId) -> Result<(), ipc::Error> {
        Ok(())
    }
    fn resume(&mut self, _: VmId) -> Result<(), ipc::Error> {
        Ok(())
    }
    fn reset(&mut self, _: VmId) -> Result<(), ipc::Error> {
        Ok(())
    }
    fn console_input(&mut self, vm: VmId, _: ConsolePort, bytes: &[u8]) -> Result<(), ipc::Error> {
        if let Some(output) = self.console_mut(vm) {
            for &byte in bytes {
                let _ = output.push(byte);
            }
        }
        Ok(())
    }
    fn console_output(&mut self, vm: VmId, from: u64) -> Result<ConsoleChunk, ipc::Error> {
        let output = self.console_mut(vm).map_or(&[][..], |output| &output[..]);
        let start = usize::try_from(from).map_or(output.len(), |from| from.min(output.len()));
        let bytes = output.get(start..).unwrap_or_default();
        let bytes = bytes.get(..OUTPUT_CHUNK).unwrap_or(bytes);
        Ok(ConsoleChunk {
            next: (start + bytes.len()) as u64,
            lost: 0,
            bytes: heapless::Vec::from_slice(bytes).unwrap_or_default(),
        })
    }
    fn unregister_devices(&mut self, vm: VmId) {
        self.disks.retain(|&(holder, _)| holder != vm);
        if let Some(at) = self.consoles.iter().position(|(id, _)| *id == vm) {
            self.consoles.swap_remove(at);
        }
    }
    fn unregister_ioreq(&mut self, _: VmId) {}
    fn destroy_vcpus(&mut self, _: VmId) {}
    fn free_address_space(&mut self, _: VmId) {}
    fn vm_stats(&mut self, _: VmId) -> Result<VmStats, ipc::Error> {
        Ok(EXAMPLE_STATS)
    }
    fn guest_image(&mut self, index: u16) -> Result<Option<GuestImage>, ipc::Error> {
        Ok(self.images.get(usize::from(index)).cloned())
    }
}

/// Hands out 1, 2, 3 ... as generation IDs.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingEntropy(u128);

impl EntropySource for CountingEntropy {
    fn fill(&mut self, out: &mut [u8; 16]) {
        self.0 += 1;
        *out = self.0.to_le_bytes();
    }
}

/// The scenario: `sos` (2 vCPUs, 512 MiB) and `rtvm` (1 vCPU, 64 MiB).
pub const SCENARIO: &[StaticVmConfig] = &[
    StaticVmConfig {
        name: "sos",
        image: "linux",
        mem_mib: 512,
        vcpus: 2,
        flags: VmFlags::STATIC,
        linux: None,
        disk: None,
    },
    StaticVmConfig {
        name: "rtvm",
        image: "zephyr",
        mem_mib: 64,
        vcpus: 1,
        flags: VmFlags::STATIC,
        linux: None,
        disk: None,
    },
];

/// The stand-in vm-manager: 16 slots.
pub type FakeManager = VmManager<NullPlatform, CountingEntropy>;

/// A vm-manager for [`SCENARIO`] with every VM powered off; any image
/// loads, and a create that names none boots `guest`.
pub fn manager() -> FakeManager {
    manager_over(NullPlatform::default()).with_defaults(DynamicDefaults {
        image: Some("guest"),
        ..DynamicDefaults::default()
    })
}

/// A vm-manager for [`SCENARIO`] whose boot image holds
/// [`example_images`] only: another image does not load, and a create
/// must name one (as on Mica).
pub fn manager_with_images() -> FakeManager {
    manager_over(NullPlatform {
        images: example_images(),
        ..NullPlatform::default()
    })
}

fn manager_over(platform: NullPlatform) -> FakeManager {
    match VmManager::new(SCENARIO, platform, CountingEntropy::default()) {
        Ok(manager) => manager,
        Err(_) => unreachable!("the test scenario is valid"),
    }
}
