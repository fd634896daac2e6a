//! Generated trees read back with Mica's own DTB reader (`mica-boot`).

use super::*;
use mica_boot::BootInfo;
use mica_boot::fdt::{Event, Fdt};

extern crate std;
use std::string::String;
use std::vec::Vec;

fn name(text: &str) -> VmName {
    VmName::parse(text).unwrap()
}

const SLOTS: [MmioDevice; 2] = [virtio_mmio_slot(0), virtio_mmio_slot(1)];

fn generate_vec(platform: &GuestPlatform<'_>) -> Vec<u8> {
    let mut buf = [0u8; 8192];
    let len = generate(platform, &mut buf).unwrap();
    buf[..len].to_vec()
}

/// Every (path, property, value) of the tree, paths like `/soc/serial@10000000`.
fn properties(blob: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let fdt = Fdt::new(blob).unwrap();
    let mut path: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for event in fdt.events() {
        match event {
            Event::BeginNode(n) => path.push(n),
            Event::EndNode => {
                path.pop();
            }
            Event::Property { name, value } => {
                let joined = if path.len() <= 1 {
                    String::from("/")
                } else {
                    path[1..].iter().fold(String::new(), |acc, p| acc + "/" + p)
                };
                out.push((joined, String::from(name), value.to_vec()));
            }
        }
    }
    out
}

fn prop(blob: &[u8], path: &str, prop: &str) -> Option<Vec<u8>> {
    properties(blob)
        .into_iter()
        .find(|(p, n, _)| p == path && n == prop)
        .map(|(_, _, v)| v)
}

fn cells(value: &[u8]) -> Vec<u32> {
    value
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn one_vcpu_tree_reads_back_with_memory_harts_and_isa() {
    let vm = name("alpha");
    let platform = GuestPlatform::standard(&vm, 1, 64 << 20, "console=ttyS0", &SLOTS);
    let blob = generate_vec(&platform);
    let info = BootInfo::from_dtb(&blob).unwrap();
    assert_eq!(info.hart_count, 1);
    assert_eq!(info.isa.as_str(), "rv64imafdc_zicntr_zicsr_zifencei");
    assert!(!info.has_h());
    assert_eq!(info.memory.as_slice().len(), 1);
    assert_eq!(info.memory.as_slice()[0].start, RAM_BASE);
    assert_eq!(info.memory.as_slice()[0].size, 64 << 20);
    assert_eq!(info.timebase_hz, Some(10_000_000));
    assert_eq!(info.initrd, None);
    // Only the generation-ID page, just below the DTB's page, is reserved.
    let reserved = info.reserved.as_slice();
    assert_eq!(reserved.len(), 1);
    assert_eq!(reserved[0].start, RAM_BASE + (64 << 20) - 2 * 4096);
    assert_eq!(reserved[0].size, 4096);
}

#[test]
fn four_vcpus_give_four_harts_and_four_plic_contexts() {
    let vm = name("quad");
    let mut platform = GuestPlatform::standard(&vm, 4, 256 << 20, "", &SLOTS);
    platform.initrd = Some(InitrdRange {
        start: 0x8800_0000,
        end: 0x8840_0000,
    });
    let blob = generate_vec(&platform);
    let info = BootInfo::from_dtb(&blob).unwrap();
    assert_eq!(info.hart_count, 4);
    let initrd = info.initrd.unwrap();
    assert_eq!((initrd.start, initrd.size), (0x8800_0000, 0x40_0000));

    let ext = prop(&blob, "/soc/plic@c000000", "interrupts-extended").unwrap();
    assert_eq!(cells(&ext), [2, 9, 3, 9, 4, 9, 5, 9]);
    for hart in 0..4u32 {
        let cpu = std::format!("/cpus/cpu@{hart}");
        assert_eq!(cells(&prop(&blob, &cpu, "reg").unwrap()), [hart]);
        assert_eq!(prop(&blob, &cpu, "mmu-type").unwrap(), b"riscv,sv39\0");
        let intc = cpu + "/interrupt-controller";
        assert_eq!(cells(&prop(&blob, &intc, "phandle").unwrap()), [2 + hart]);
        assert_eq!(prop(&blob, &intc, "interrupt-controller").unwrap(), b"");
    }
}

/// The most vCPUs a VM may have: PLIC context `n` is still hart `n`'s
/// S-mode external interrupt (the device service drives context `n` as
/// vCPU `n`'s), for every hart.
#[test]
fn the_most_vcpus_give_a_hart_and_a_plic_context_each() {
    let vm = name("octo");
    let platform = GuestPlatform::standard(&vm, MAX_VCPUS, 256 << 20, "", &SLOTS);
    let blob = generate_vec(&platform);
    assert_eq!(BootInfo::from_dtb(&blob).unwrap().hart_count, 8);
    let ext = cells(&prop(&blob, "/soc/plic@c000000", "interrupts-extended").unwrap());
    let contexts: Vec<[u32; 2]> = ext.chunks(2).map(|c| [c[0], c[1]]).collect();
    assert_eq!(contexts.len(), 8);
    for (context, pair) in contexts.iter().enumerate() {
        let hart = u32::try_from(context).unwrap();
        let intc = std::format!("/cpus/cpu@{hart}/interrupt-controller");
        let phandle = cells(&prop(&blob, &intc, "phandle").unwrap());
        assert_eq!(*pair, [phandle[0], 9], "context {context}: hart {hart}'s");
        let cpu = std::format!("/cpus/cpu@{hart}");
        assert_eq!(cells(&prop(&blob, &cpu, "reg").unwrap()), [hart]);
    }
    assert!(prop(&blob, "/cpus/cpu@8", "reg").is_none(), "no ninth hart");
}

#[test]
fn chosen_names_the_vm_and_the_console() {
    let vm = name("web-1.prod");
    let platform = GuestPlatform::standard(&vm, 2, 32 << 20, "console=ttyS0 quiet", &SLOTS);
    let blob = generate_vec(&platform);
    assert_eq!(
        prop(&blob, "/chosen", "mica,vm-name").unwrap(),
        b"web-1.prod\0"
    );
    assert_eq!(
        prop(&blob, "/chosen", "bootargs").unwrap(),
        b"console=ttyS0 quiet\0"
    );
    assert_eq!(
        prop(&blob, "/chosen", "stdout-path").unwrap(),
        b"/soc/serial@10000000\0"
    );
    assert_eq!(prop(&blob, "/", "model").unwrap(), b"mica,web-1.prod\0");
    assert_eq!(prop(&blob, "/", "compatible").unwrap(), b"riscv-virtio\0");
    assert_eq!(prop(&blob, "/chosen", "linux,initrd-start"), None);
}

#[test]
fn devices_are_wired_to_the_plic() {
    let vm = name("dev");
    let platform = GuestPlatform::standard(&vm, 1, 16 << 20, "", &SLOTS);
    let blob = generate_vec(&platform);
    let uart = "/soc/serial@10000000";
    assert_eq!(prop(&blob, uart, "compatible").unwrap(), b"ns16550a\0");
    assert_eq!(
        cells(&prop(&blob, uart, "reg").unwrap()),
        [0, 0x1000_0000, 0, 0x100]
    );
    assert_eq!(
        cells(&prop(&blob, uart, "clock-frequency").unwrap()),
        [3_686_400]
    );
    assert_eq!(cells(&prop(&blob, uart, "interrupts").unwrap()), [10]);
    assert_eq!(cells(&prop(&blob, uart, "interrupt-parent").unwrap()), [1]);
    let plic = "/soc/plic@c000000";
    assert_eq!(cells(&prop(&blob, plic, "phandle").unwrap()), [1]);
    assert_eq!(cells(&prop(&blob, plic, "riscv,ndev").unwrap()), [0x5f]);
    let virtio = "/soc/virtio_mmio@10002000";
    assert_eq!(prop(&blob, virtio, "compatible").unwrap(), b"virtio,mmio\0");
    assert_eq!(cells(&prop(&blob, virtio, "interrupts").unwrap()), [2]);
    let genid = "/soc/vmgenid@10101000";
    assert_eq!(
        prop(&blob, genid, "compatible").unwrap(),
        b"microsoft,vmgenid\0"
    );
    // The ID in the page below the DTB's (16 MiB of RAM: ends 0x8100_0000),
    // then the device's registers.
    assert_eq!(
        cells(&prop(&blob, genid, "reg").unwrap()),
        [0, 0x80ff_e000, 0, 16, 0, 0x1010_1000, 0, 0x20]
    );
    assert_eq!(cells(&prop(&blob, genid, "interrupts").unwrap()), [12]);
    assert_eq!(cells(&prop(&blob, genid, "interrupt-parent").unwrap()), [1]);
    let reserved = "/reserved-memory/vmgenid@80ffe000";
    assert_eq!(
        cells(&prop(&blob, reserved, "reg").unwrap()),
        [0, 0x80ff_e000, 0, 0x1000]
    );
    assert_eq!(prop(&blob, reserved, "no-map").unwrap(), b"");
    assert_eq!(
        genid_address(RAM_BASE, 16 << 20) + GENID_FROM_END,
        RAM_BASE + (16 << 20),
        "the kernel's generation-ID page"
    );
}

#[test]
fn the_generation_id_page_needs_room_in_ram() {
    let vm = name("tiny");
    let mut platform = GuestPlatform::standard(&vm, 1, 4096, "", &[]);
    let mut buf = [0u8; 8192];
    assert_eq!(generate(&platform, &mut buf), Err(GuestDtError::BadRam));
    platform.vmgenid = None;
    assert!(generate(&platform, &mut buf).is_ok());
}

#[test]
fn header_is_fdt_v17_with_aligned_blocks() {
    let vm = name("hdr");
    let blob = generate_vec(&GuestPlatform::standard(&vm, 1, 1 << 20, "x", &[]));
    let word = |i: usize| u32::from_be_bytes(blob[4 * i..4 * i + 4].try_into().unwrap());
    assert_eq!(word(0), 0xd00d_feed);
    assert_eq!(word(1) as usize, blob.len());
    assert_eq!(word(2) % 4, 0, "structure block aligned");
    assert_eq!(word(4) % 8, 0, "reservation block aligned");
    assert_eq!((word(5), word(6)), (17, 16));
    assert_eq!(
        word(2) + word(9),
        word(3),
        "strings follow the structure block"
    );
    assert_eq!(word(3) + word(8), word(1));
}

#[test]
fn every_short_buffer_is_an_error_naming_the_size() {
    let vm = name("small");
    let platform = GuestPlatform::standard(&vm, 4, 1 << 30, "console=ttyS0", &SLOTS);
    let full = generate_vec(&platform);
    for len in 0..full.len() {
        let mut buf = std::vec![0u8; len];
        assert_eq!(
            generate(&platform, &mut buf),
            Err(GuestDtError::BufferTooSmall { needed: full.len() }),
            "buffer of {len} bytes"
        );
    }
    let mut exact = std::vec![0u8; full.len()];
    assert_eq!(generate(&platform, &mut exact), Ok(full.len()));
    assert_eq!(exact, full);
}

#[test]
fn bad_descriptions_are_refused() {
    let vm = name("bad");
    let base = GuestPlatform::standard(&vm, 1, 16 << 20, "", &SLOTS);
    let mut buf = [0u8; 8192];
    let mut try_with = |change: &dyn Fn(&mut GuestPlatform<'_>)| {
        let mut p = base;
        change(&mut p);
        generate(&p, &mut buf)
    };
    assert_eq!(
        try_with(&|p| p.vcpus = 0),
        Err(GuestDtError::BadVcpuCount(0))
    );
    assert_eq!(
        try_with(&|p| p.vcpus = 9),
        Err(GuestDtError::BadVcpuCount(9)),
        "a VM has at most 8 vCPUs"
    );
    assert_eq!(try_with(&|p| p.ram_size = 0), Err(GuestDtError::BadRam));
    assert_eq!(
        try_with(&|p| p.bootargs = "a\0b"),
        Err(GuestDtError::NulInBootargs)
    );
    let outside = InitrdRange {
        start: 0x9000_0000,
        end: 0x9000_1000,
    };
    assert_eq!(
        try_with(&|p| p.initrd = Some(outside)),
        Err(GuestDtError::BadInitrd)
    );
    let backwards = InitrdRange {
        start: 0x8000_2000,
        end: 0x8000_1000,
    };
    assert_eq!(
        try_with(&|p| p.initrd = Some(backwards)),
        Err(GuestDtError::BadInitrd)
    );
    let mut uart = UART;
    uart.irq = 0x60;
    assert_eq!(
        try_with(&|p| p.uart = uart),
        Err(GuestDtError::IrqOutOfRange(0x60))
    );
    const SAME: [MmioDevice; 2] = [virtio_mmio_slot(0), virtio_mmio_slot(0)];
    assert_eq!(
        try_with(&|p| p.virtio_mmio = &SAME),
        Err(GuestDtError::Overlap(0x1000_1000))
    );
    let mut genid = VMGENID;
    genid.base = 0x8000_0000;
    assert_eq!(
        try_with(&|p| p.vmgenid = Some(genid)),
        Err(GuestDtError::Overlap(0x8000_0000))
    );
}

#[test]
fn without_vmgenid_there_is_no_node() {
    let vm = name("nogen");
    let mut platform = GuestPlatform::standard(&vm, 1, 16 << 20, "", &[]);
    platform.vmgenid = None;
    let blob = generate_vec(&platform);
    assert!(
        !properties(&blob)
            .iter()
            .any(|(p, _, _)| p.contains("vmgenid"))
    );
    assert!(
        !properties(&blob)
            .iter()
            .any(|(p, _, _)| p.contains("virtio"))
    );
    assert!(BootInfo::from_dtb(&blob).is_ok());
}

#[test]
fn harts_list_their_extensions_and_sstc_only_when_the_host_has_it() {
    let vm = name("isa");
    let mut platform = GuestPlatform::standard(&vm, 1, 64 << 20, "", &SLOTS);
    platform.timebase_hz = 25_000_000;
    let blob = generate_vec(&platform);
    let cpu = "/cpus/cpu@0";
    assert_eq!(prop(&blob, cpu, "riscv,isa-base").unwrap(), b"rv64i\0");
    assert_eq!(
        prop(&blob, cpu, "riscv,isa-extensions").unwrap(),
        b"i\0m\0a\0f\0d\0c\0zicntr\0zicsr\0zifencei\0"
    );
    assert_eq!(
        cells(&prop(&blob, "/cpus", "timebase-frequency").unwrap()),
        [25_000_000]
    );
    platform.sstc = true;
    let blob = generate_vec(&platform);
    let extensions = prop(&blob, cpu, "riscv,isa-extensions").unwrap();
    assert!(extensions.ends_with(b"zifencei\0sstc\0"));
    assert_eq!(
        prop(&blob, cpu, "riscv,isa").unwrap(),
        b"rv64imafdc_zicntr_zicsr_zifencei_sstc\0"
    );
    platform.timebase_hz = 0;
    let mut buf = [0u8; 8192];
    assert_eq!(generate(&platform, &mut buf), Err(GuestDtError::NoTimebase));
}

#[test]
fn a_1023_byte_command_line_is_the_bootargs_exactly() {
    let vm = name("long");
    let line = "x".repeat(1023);
    let platform = GuestPlatform::standard(&vm, 1, 64 << 20, &line, &SLOTS);
    let mut buf = std::vec![0u8; 16384];
    let len = generate(&platform, &mut buf).unwrap();
    assert!(len > 1023, "{len}");
    let mut expected = line.into_bytes();
    expected.push(0);
    assert_eq!(prop(&buf[..len], "/chosen", "bootargs").unwrap(), expected);
}
