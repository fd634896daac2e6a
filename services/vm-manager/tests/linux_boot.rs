//! A VM that boots a Linux kernel, through the task's platform over a fake
//! kernel that knows the boot image's entries: the kernel goes to its
//! `text_offset`, the initrd after it, the device tree says where the
//! initrd is and carries the command line and the host's timer, a long
//! command line's tree is written in chunks below the generation-ID page,
//! vCPU 0 starts at the kernel, and a reset does it all again.

mod common;

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

use common::OkLinks;
use ipc::syscall::PLATFORM_SSTC;
use ipc::vm::{CreateOptions, ImageKind, Request, Response, WireCmdline};
use ipc::{Error, VmId, wire_name};
use mica_boot::BootInfo;
use vm_manager::{
    EntropySource, KernelPlatform, StaticLinuxBoot, StaticVmConfig, VmFlags, VmKernel, VmManager,
};

const MIB: u64 = 1024 * 1024;

/// What the fake kernel saw.
#[derive(Default)]
struct Kernel {
    /// The boot image's guests, numbered in name order.
    images: BTreeMap<String, Vec<u8>>,
    /// (vm, image, offset) of every `vm_load`.
    loads: Vec<(u16, String, u64)>,
    /// The last device tree and where it went (`None` = the top page).
    dtb: Vec<u8>,
    dtb_at: Option<u64>,
    /// (vm, entry, dtb) of every `vm_start`.
    starts: Vec<(u16, u64, u64)>,
    resets: usize,
}

/// A kernel Image of `len` bytes with `image_size` in its header.
fn kernel_image(len: usize, image_size: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    bytes[0x08..0x10].copy_from_slice(&0x20_0000u64.to_le_bytes());
    bytes[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
    bytes[0x38..0x3c].copy_from_slice(b"RSC\x05");
    bytes
}

impl VmKernel for Kernel {
    fn vm_create(&mut self, _: VmId, _: u32, _: u8) -> Result<(), Error> {
        Ok(())
    }
    fn vm_load(&mut self, vm: VmId, image: usize, offset: u64) -> Result<u64, Error> {
        let (name, bytes) = self.images.iter().nth(image).ok_or(Error::UnknownImage)?;
        let len = bytes.len();
        self.loads.push((vm.0, name.clone(), offset));
        Ok(len as u64)
    }
    fn image_info(&mut self, image: usize) -> Result<(u64, [u8; 64]), Error> {
        let (_, bytes) = self.images.iter().nth(image).ok_or(Error::UnknownImage)?;
        let mut header = [0u8; 64];
        let n = bytes.len().min(64);
        header[..n].copy_from_slice(&bytes[..n]);
        Ok((bytes.len() as u64, header))
    }
    fn vm_grant_ram(&mut self, _: VmId, _: u64) -> Result<(), Error> {
        Ok(())
    }
    fn vm_set_dtb(&mut self, _: VmId, dtb: &[u8]) -> Result<(), Error> {
        assert!(dtb.len() <= 4096, "vm_set_dtb takes one page");
        self.dtb = dtb.to_vec();
        self.dtb_at = None;
        Ok(())
    }
    fn vm_write_ram(&mut self, _: VmId, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        self.dtb = bytes.to_vec();
        self.dtb_at = Some(offset);
        Ok(())
    }
    fn vm_start(&mut self, vm: VmId, entry: u64, dtb: u64) -> Result<(), Error> {
        self.starts.push((vm.0, entry, dtb));
        Ok(())
    }
    fn vm_pause(&mut self, _: VmId) -> Result<(), Error> {
        Ok(())
    }
    fn vm_resume(&mut self, _: VmId) -> Result<(), Error> {
        Ok(())
    }
    fn vm_reset(&mut self, _: VmId) -> Result<(), Error> {
        self.resets += 1;
        self.loads.clear();
        Ok(())
    }
    fn vm_destroy(&mut self, _: VmId) -> Result<(), Error> {
        Ok(())
    }
    fn platform_info(&mut self) -> Result<(u64, usize), Error> {
        Ok((25_000_000, PLATFORM_SSTC))
    }
    fn image_name(&mut self, index: usize) -> Result<(ipc::WireName, u64), Error> {
        let (name, bytes) = self.images.iter().nth(index).ok_or(Error::UnknownImage)?;
        Ok((ipc::wire_name(name)?, bytes.len() as u64))
    }
}

struct Fixed;

impl EntropySource for Fixed {
    fn fill(&mut self, out: &mut [u8; 16]) {
        *out = [7; 16];
    }
}

type Manager = VmManager<KernelPlatform<Kernel, OkLinks>, Fixed>;

const SCENARIO: &[StaticVmConfig] = &[StaticVmConfig {
    name: "lx",
    image: "lx",
    mem_mib: 128,
    vcpus: 1,
    flags: VmFlags::STATIC.union(VmFlags::PRE_LAUNCHED),
    linux: Some(StaticLinuxBoot {
        initrd: Some("lx-initrd"),
        cmdline: "console=ttyS0 earlycon=sbi",
    }),
    disk: None,
}];

fn manager(scenario: &'static [StaticVmConfig]) -> Manager {
    let mut kernel = Kernel::default();
    // Debian's sizes: a 31 MB file whose image_size is 0x1e6c000.
    kernel
        .images
        .insert("lx".into(), kernel_image(31_167_488, 0x1e6_c000));
    kernel.images.insert("lx-initrd".into(), vec![1; 3_000_000]);
    kernel.images.insert("raw".into(), vec![0x13; 4096]);
    Manager::new(scenario, KernelPlatform::new(kernel, OkLinks), Fixed).expect("a valid test value")
}

fn kernel(manager: &Manager) -> &Kernel {
    manager.platform().kernel()
}

#[test]
fn the_kernel_initrd_and_device_tree_go_where_the_boot_protocol_wants() {
    let mut manager = manager(SCENARIO);
    let outcomes = manager.launch_pre_launched();
    assert_eq!(outcomes[0].result, Ok(()));
    let k = kernel(&manager);
    assert_eq!(
        k.loads,
        [
            (0, "lx".into(), 0x20_0000),
            // After 0x200000 + 0x1e6c000, rounded up to 2 MiB.
            (0, "lx-initrd".into(), 0x220_0000),
        ]
    );
    let info = BootInfo::from_dtb(&k.dtb).expect("a valid test value");
    let initrd = info.initrd.expect("a valid test value");
    assert_eq!(
        (initrd.start, initrd.size),
        (0x8000_0000 + 0x220_0000, 3_000_000)
    );
    assert_eq!(info.timebase_hz, Some(25_000_000));
    assert!(info.isa.as_str().ends_with("_sstc"));
    assert!(
        k.dtb
            .windows(27)
            .any(|w| w == b"console=ttyS0 earlycon=sbi\0")
    );
    // vCPU 0: pc at the kernel, a1 at the tree in the top page.
    assert_eq!(k.dtb_at, None);
    assert_eq!(k.starts, [(0, 0x20_0000, 128 * MIB - 4096)]);
}

#[test]
fn a_reset_reloads_kernel_and_initrd_and_starts_at_the_kernel_again() {
    let mut manager = manager(SCENARIO);
    manager.launch_pre_launched();
    let answer = manager.handle(Request::Reset {
        name: wire_name("lx").expect("a valid test value"),
        new_generation_id: false,
    });
    assert_eq!(answer, Response::Ok);
    let k = kernel(&manager);
    assert_eq!(k.resets, 1);
    assert_eq!(k.loads.len(), 2, "{:?}", k.loads);
    assert_eq!(k.starts.last(), Some(&(0, 0x20_0000, 128 * MIB - 4096)));
}

#[test]
fn a_tree_larger_than_a_page_goes_below_the_genid_page() {
    let mut manager = manager(&[]);
    // The most harts (8) and a long command line: more than a page of tree.
    let line: String = "x".repeat(256);
    let answer = manager.handle(Request::Create {
        name: wire_name("big").expect("a valid test value"),
        options: CreateOptions {
            kernel: Some(wire_name("lx").expect("a valid test value")),
            cmdline: Some(WireCmdline::try_from(line.as_str()).expect("a valid test value")),
            vcpus: Some(8),
            mem_mib: Some(64),
            ..CreateOptions::default()
        },
    });
    assert!(matches!(answer, Response::Info(_)), "{answer:?}");
    manager.handle(Request::Start {
        name: wire_name("big").expect("a valid test value"),
    });
    let k = kernel(&manager);
    assert!(k.dtb.len() > 4096, "{}", k.dtb.len());
    let at = k.dtb_at.expect("written with vm_write_ram");
    assert_eq!(at % 4096, 0);
    assert!(at + k.dtb.len() as u64 <= 64 * MIB - 8192);
    assert_eq!(k.starts, [(0, 0x20_0000, at)]);
}

#[test]
fn a_raw_image_named_as_a_kernel_or_a_kernel_too_big_is_refused() {
    let mut manager = manager(&[]);
    let create = |manager: &mut Manager, kernel: &str, mem_mib| {
        manager.handle(Request::Create {
            name: wire_name("bad").expect("a valid test value"),
            options: CreateOptions {
                kernel: Some(wire_name(kernel).expect("a valid test value")),
                mem_mib: Some(mem_mib),
                ..CreateOptions::default()
            },
        })
    };
    assert_eq!(
        create(&mut manager, "raw", 64),
        Response::Err(Error::InvalidArgument)
    );
    assert_eq!(
        create(&mut manager, "lx", 32),
        Response::Err(Error::OutOfMemory)
    );
    assert_eq!(
        create(&mut manager, "nope", 64),
        Response::Err(Error::UnknownImage)
    );
    assert!(kernel(&manager).loads.is_empty());
}

#[test]
fn a_raw_image_still_loads_and_starts_at_2_mib_with_empty_bootargs() {
    let mut manager = manager(&[]);
    let answer = manager.handle(Request::Create {
        name: wire_name("r").expect("a valid test value"),
        options: CreateOptions {
            image: Some(wire_name("raw").expect("a valid test value")),
            ..CreateOptions::default()
        },
    });
    assert!(matches!(answer, Response::Info(_)), "{answer:?}");
    manager.handle(Request::Start {
        name: wire_name("r").expect("a valid test value"),
    });
    let k = kernel(&manager);
    assert_eq!(k.loads, [(0, "raw".into(), 0x20_0000)]);
    assert_eq!(k.starts, [(0, 0x20_0000, 128 * MIB - 4096)]);
    assert!(k.dtb.windows(9).any(|w| w == b"bootargs\0"));
    assert!(
        BootInfo::from_dtb(&k.dtb)
            .expect("a valid test value")
            .initrd
            .is_none()
    );
}

/// `images` through the kernel's calls: each entry's name and size from
/// `image_name`, its kind from how the scenario boots it, else from the
/// header `image_info` reads.
#[test]
fn images_are_read_from_the_kernel_and_named_by_their_use_or_their_bytes() {
    let mut kernel = Kernel::default();
    kernel
        .images
        .insert("lx".into(), kernel_image(31_167_488, 0x1e6_c000));
    // The scenario's initrd: its bytes say nothing, its use says initrd.
    kernel.images.insert("lx-initrd".into(), vec![1; 3_000_000]);
    kernel.images.insert("other".into(), kernel_image(8192, 0));
    kernel.images.insert("raw".into(), vec![0x13; 4096]);
    kernel.images.insert("rd.gz".into(), vec![0x1f, 0x8b, 8, 0]);
    let mut m = Manager::new(SCENARIO, KernelPlatform::new(kernel, OkLinks), Fixed).unwrap();
    let Response::Images { images, next } = m.handle(Request::Images { from: 0 }) else {
        panic!("expected an images page");
    };
    assert_eq!(next, None);
    let listed: Vec<(&str, ImageKind, u64)> = images
        .iter()
        .map(|i| (i.name.as_str(), i.kind, i.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("lx", ImageKind::LinuxImage, 31_167_488),
            ("lx-initrd", ImageKind::Initrd, 3_000_000),
            ("other", ImageKind::LinuxImage, 8192),
            ("raw", ImageKind::Raw, 4096),
            ("rd.gz", ImageKind::Initrd, 4),
        ]
    );
}
