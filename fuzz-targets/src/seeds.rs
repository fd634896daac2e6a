//! The seed corpus: valid inputs of every target, built by the real
//! encoders (so they follow the formats as they change), plus the
//! directories of committed inputs each target also starts from.
#![allow(
    clippy::cast_possible_truncation,
    reason = "seeds are built from small constants that fit the narrower fields"
)]

use ipc::devices;
use ipc::ioreq;
use ipc::ioreq_abi::page::{IoreqPage, SLOT_SIZE};
use ipc::ioreq_abi::slot::{self, Direction, IoRequest};
use ipc::{Error, MAX_MESSAGE_SIZE, Space, VmId, blk, rng};
use mica_boot::image::{self, EntryKind, EntrySpec, KernelRights};
use mica_mgmt::frame::{self, FrameBuf, MAX_FRAME};
use serde::Serialize;

use crate::models::{RAM_BASE, RAM_SIZE};

/// Directories (relative to the repository root) whose files seed
/// `target` besides `fuzz/corpus/<target>/`: the real DTBs and scenarios.
pub fn extra_dirs(target: &str) -> &'static [&'static str] {
    match target {
        "dtb" => &["boot/tests/fixtures"],
        "scenario_file" => &["configs"],
        _ => &[],
    }
}

/// The built-in seeds of `target` (empty for an unknown name).
pub fn generated(target: &str) -> Vec<Vec<u8>> {
    match target {
        "ipc_messages" => ipc_messages(),
        "devices_wire" => devices_messages(),
        "ioreq_slot" => ioreq_slots(),
        "posted_ring" => posted_ring(),
        "console_text" => text(&[
            "hello from vm0\n",
            "\x1b[2J\x1b]52;c;ZXZpbA==\x07\r\nmica: forged\n",
            "caf\u{e9} \u{202e}evil\u{2066} \\ tab\there\n",
            "\u{1f600}\u{85}\u{2028}",
        ])
        .into_iter()
        .chain([vec![0xff, 0xe2, 0x82, b'\n', 0xf0, 0x9f], vec![b'x'; 400]])
        .collect(),
        "cobs" => vec![
            vec![],
            vec![0],
            vec![1, 0, 2, 0, 0, 3],
            (0..=255).collect(),
            vec![7; 600],
        ],
        "mgmt_frames" => mgmt_frames(),
        "shell_line" => text(&[
            "vm list",
            "vm create web --kernel linux --initrd linux-initrd --cmdline \"console=ttyS0 quiet\"",
            "vm create t --from vm0 --image hello --mem 64 --vcpus 1",
            "vm create d1 --image hello --disk 0",
            "vm reset vm0 --new-genid",
            "vm clone vm0 vm9",
            "console linux",
            "images",
            "vm images",
            "help",
            "console \"linux\"",
        ]),
        "scenario_file" => text(&[
            "[[vm]]\nname = \"a\"\nimage = \"hello\"\n",
            "[[vm]]\nname = \"l\"\nkernel = \"linux\"\ninitrd = \"i\"\ncmdline = \"x\"\nmem_mib = 128\nvcpus = 1\npre_launched = false\n",
        ]),
        "boot_image" => vec![boot_image()],
        "elf" => vec![elf(243), elf(62)],
        "linux_image" => vec![linux_header()],
        "multiboot" => vec![multiboot_info()],
        "mmio_decode" => mmio_instructions(),
        "x86_exit" => x86_exits(),
        "uart16550" => vec![uart_session()],
        "virtio_console" | "virtio_rng" | "virtio_net" => vec![virtio_session()],
        "virtio_blk" => vec![virtio_blk_session(false), virtio_blk_session(true)],
        "virtqueue" => virtqueue_sessions(),
        "vmgenid" => vec![vec![
            1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 4, 0, 0, 4, 2, 9, 9, 9, 3, 0, 16, 4, 1, 16, 0, 1,
        ]],
        "plic" => vec![plic_session()],
        "devices_service" => vec![service_session()],
        _ => Vec::new(),
    }
}

fn text(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn encoded<T: Serialize>(message: &T) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    ipc::encode(message, &mut buf)
        .expect("seed messages fit")
        .to_vec()
}

mod messages;
use messages::{devices_requests, devices_responses, ioreq_requests, vm_requests, vm_responses};

fn tagged(tag: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(body);
    out
}

fn ipc_messages() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    out.extend(vm_requests().iter().map(|m| tagged(0, encoded(m))));
    out.extend(vm_responses().iter().map(|m| tagged(1, encoded(m))));
    out.extend(ioreq_requests().iter().map(|m| tagged(2, encoded(m))));
    out.push(tagged(
        3,
        encoded(&ioreq::Response::Dispatched { count: 4 }),
    ));
    out.extend(devices_requests().iter().map(|m| tagged(4, encoded(m))));
    out.extend(devices_responses().iter().map(|m| tagged(5, encoded(m))));
    let irq = devices::IrqEvent::SetLevel {
        vm: VmId(1),
        irq: 10,
        asserted: true,
    };
    out.push(tagged(6, encoded(&irq)));
    out.push(tagged(7, encoded(&Error::ServerDied)));
    out.push(tagged(8, encoded(&rng::Request::Fill { len: 16 })));
    out.push(tagged(
        9,
        encoded(&rng::Response::Bytes(
            heapless::Vec::from_slice(&[0x5a; 16]).expect("fits"),
        )),
    ));
    out.push(tagged(9, encoded(&rng::Response::Err(Error::NoEntropy))));
    out.push(tagged(
        10,
        encoded(&blk::Request::Read {
            disk: 0,
            vm: VmId(1),
            sector: 8,
            gpa: 0x8020_0000,
            len: 4096,
        }),
    ));
    out.push(tagged(10, encoded(&blk::Request::Flush { disk: 0 })));
    out.push(tagged(
        11,
        encoded(&blk::Response::Info(blk::DiskInfo {
            sectors: 131_072,
            read_only: false,
        })),
    ));
    out.push(tagged(11, encoded(&blk::Response::Err(Error::IoFailed))));
    out
}

fn devices_messages() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = devices_requests().iter().map(encoded).collect();
    out.extend(devices_responses().iter().map(encoded));
    out
}

fn ioreq_slots() -> Vec<Vec<u8>> {
    let requests = [
        IoRequest {
            vcpu: 0,
            space: Space::Mmio,
            addr: 0x1000_0000,
            size: 1,
            direction: Direction::Write,
            value: 0x41,
        },
        IoRequest {
            vcpu: 1,
            space: Space::Pio,
            addr: 0x3fd,
            size: 1,
            direction: Direction::Read,
            value: 0,
        },
        IoRequest {
            vcpu: 2,
            space: Space::PciConfig,
            addr: 1 << 20 | 3 << 15 | 0x10,
            size: 4,
            direction: Direction::Read,
            value: 0,
        },
        IoRequest {
            vcpu: 3,
            space: Space::Mmio,
            addr: 0x1000_1000,
            size: 8,
            direction: Direction::Write,
            value: u64::MAX,
        },
    ];
    requests
        .iter()
        .map(|request| {
            let mut page = IoreqPage::new();
            slot::fill(&mut page, request).expect("seed requests are valid");
            let bytes = page.to_bytes();
            let at = usize::from(request.vcpu) * SLOT_SIZE;
            let mut out = bytes[at..at + SLOT_SIZE].to_vec();
            out.push(request.vcpu);
            // The rest of the page (the seed's slot again, at slot 1), then
            // dispatch, finish and reclaim it.
            out.extend_from_slice(&bytes[at..at + SLOT_SIZE]);
            out.extend(vec![0u8; 4096 - 2 * SLOT_SIZE]);
            out.extend([1, 0, 1, 1, 0x55, 0, 0, 0, 0, 0, 0, 0, 1, 3, 1, 4]);
            out
        })
        .collect()
}

fn posted_ring() -> Vec<Vec<u8>> {
    let push = |out: &mut Vec<u8>, pio: u8, addr: u64, size: u8, value: u64| {
        out.push(0);
        out.push(pio);
        out.extend(addr.to_le_bytes());
        out.push(size);
        out.extend(value.to_le_bytes());
    };
    let mut seed = Vec::new();
    for i in 0..70u64 {
        push(&mut seed, (i % 2) as u8, 0x1000_0000 + i, (i % 4) as u8, i);
        if i % 3 == 0 {
            seed.push(1);
        }
    }
    let mut scribbled = seed.clone();
    scribbled.extend([
        3, 5, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 1, 1, 2, 7, 0, 0, 0, 1,
    ]);
    vec![seed, scribbled]
}

fn mgmt_frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf: FrameBuf = [0; MAX_FRAME];
    let mut stream = vec![0u8];
    for request in vm_requests() {
        let frame = frame::encode(&request, &mut buf)
            .expect("seed requests fit")
            .to_vec();
        stream.extend(&frame);
        out.push(frame);
    }
    for response in vm_responses() {
        out.push(
            frame::encode(&response, &mut buf)
                .expect("seed responses fit")
                .to_vec(),
        );
    }
    out.push(frame::version_notice(&mut buf).to_vec());
    out.push(stream);
    out
}

/// A minimal static RISC-V (243) or x86-64 (62) executable: one PT_LOAD
/// segment, readable and executable, holding the entry point.
pub fn elf(machine: u16) -> Vec<u8> {
    let vaddr: u64 = 0x1_0000;
    let code = [0x13u8, 0, 0, 0, 0x6f, 0, 0, 0];
    let mut out = Vec::new();
    out.extend(b"\x7fELF");
    out.extend([2, 1, 1, 0]);
    out.extend([0u8; 8]);
    out.extend(2u16.to_le_bytes()); // ET_EXEC
    out.extend(machine.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out.extend((vaddr + 120).to_le_bytes()); // entry
    out.extend(64u64.to_le_bytes()); // phoff
    out.extend(0u64.to_le_bytes()); // shoff
    out.extend(0u32.to_le_bytes()); // flags
    out.extend(64u16.to_le_bytes()); // ehsize
    out.extend(56u16.to_le_bytes()); // phentsize
    out.extend(1u16.to_le_bytes()); // phnum
    out.extend([0u8; 6]); // shentsize, shnum, shstrndx
    out.extend(1u32.to_le_bytes()); // PT_LOAD
    out.extend(5u32.to_le_bytes()); // R + X
    out.extend(0u64.to_le_bytes()); // offset
    out.extend(vaddr.to_le_bytes());
    out.extend(vaddr.to_le_bytes());
    out.extend(128u64.to_le_bytes()); // filesz
    out.extend(0x2000u64.to_le_bytes()); // memsz
    out.extend(0x1000u64.to_le_bytes()); // align
    out.extend(code);
    out
}

fn boot_image() -> Vec<u8> {
    let service = elf(243);
    let entries = [
        EntrySpec {
            name: "init",
            kind: EntryKind::Service,
            priority: 3,
            serves: None,
            may_call: 0b110,
            rights: KernelRights::SUPERVISOR,
            device_classes: 0,
            data: &service,
        },
        EntrySpec {
            name: "devices",
            kind: EntryKind::Service,
            priority: 2,
            serves: Some(2),
            may_call: 0,
            rights: KernelRights::CONSOLE.union(KernelRights::GUEST_IRQ),
            device_classes: 0,
            data: &service,
        },
        EntrySpec {
            name: "mgmt",
            kind: EntryKind::Service,
            priority: 1,
            serves: None,
            may_call: 0b10,
            rights: KernelRights::DEVICES,
            device_classes: 1 << 3,
            data: &service,
        },
        EntrySpec {
            name: "hello",
            kind: EntryKind::Guest,
            priority: 0,
            serves: None,
            may_call: 0,
            rights: KernelRights(0),
            device_classes: 0,
            data: b"\x13\x00\x00\x00guest",
        },
    ];
    let mut out = vec![0u8; image::image_len(&entries)];
    image::write(&entries, &mut out).expect("the seed image is valid");
    out
}

/// A Multiboot information structure as QEMU's loader leaves it: memory
/// sizes, a command line, two modules and a memory map of two entries.
fn multiboot_info() -> Vec<u8> {
    use crate::boot::MULTIBOOT_BASE;
    let base = MULTIBOOT_BASE as u32;
    let mut mem = vec![0u8; 0x300];
    let mut put = |at: usize, bytes: &[u8]| mem[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &(1u32 | 1 << 2 | 1 << 3 | 1 << 6).to_le_bytes());
    put(4, &640u32.to_le_bytes());
    put(8, &(127 * 1024u32).to_le_bytes());
    put(16, &(base + 0x100).to_le_bytes());
    put(20, &2u32.to_le_bytes());
    put(24, &(base + 0x140).to_le_bytes());
    put(44, &48u32.to_le_bytes());
    put(48, &(base + 0x200).to_le_bytes());
    put(0x100, b"mica.vm_ids=3 quiet\0");
    for (i, (start, end)) in [(0x20_0000u32, 0x30_0000u32), (0x30_0000, 0x30_1000)]
        .iter()
        .enumerate()
    {
        let at = 0x140 + 16 * i;
        put(at, &start.to_le_bytes());
        put(at + 4, &end.to_le_bytes());
        put(at + 8, &(base + 0x180).to_le_bytes());
    }
    put(0x180, b"boot-image\0");
    for (i, (start, len, kind)) in [(0u64, 0x9_fc00u64, 1u32), (0x10_0000, 0x7ef_0000, 1)]
        .iter()
        .enumerate()
    {
        let at = 0x200 + 24 * i;
        put(at, &20u32.to_le_bytes());
        put(at + 4, &start.to_le_bytes());
        put(at + 12, &len.to_le_bytes());
        put(at + 20, &kind.to_le_bytes());
    }
    let mut out = vec![0u8];
    out.extend(mem);
    out
}

fn linux_header() -> Vec<u8> {
    let mut header = vec![0u8; 64];
    header[0..4].copy_from_slice(&[0x4d, 0x5a, 0x6f, 0x10]);
    header[8..16].copy_from_slice(&0x20_0000u64.to_le_bytes());
    header[16..24].copy_from_slice(&0x140_0000u64.to_le_bytes());
    header[0x30..0x38].copy_from_slice(b"RISCV\0\0\0");
    header[0x38..0x3c].copy_from_slice(b"RSC\x05");
    let mut out = vec![0u8]; // the file is exactly the header
    out.extend(header);
    out
}

fn mmio_instructions() -> Vec<Vec<u8>> {
    // lw a0,0(a1); sw a0,0(a1); lbu x0,5(a0); sd; c.lw; c.sdsp; amoadd.w;
    // flw; and the transformed forms of a load and a compressed store.
    let pairs: [(u32, u64); 8] = [
        (0x0005_a503, 0x0000_2503),
        (0x00a5_a023, 0x00a0_2023),
        (0x0055_4003, 0),
        (0x00b5_3023, 0x00b0_3023),
        (0x4188, 0x0000_2501),
        (0xe02a, 0x00a0_3021),
        (0x00b5_a52f, 0x3000),
        (0x0005_a507, 0x2000),
    ];
    pairs
        .iter()
        .map(|&(insn, htinst)| {
            let mut out = insn.to_le_bytes().to_vec();
            out.extend(htinst.to_le_bytes());
            out.extend(0x8000_0000_0000_00ffu64.to_le_bytes());
            out
        })
        .collect()
}

fn uart_session() -> Vec<u8> {
    let write = |offset: u8, value: u8| [1, offset, 7, value];
    let mut out = Vec::new();
    for (offset, value) in [
        (3, 0x80),
        (0, 0x01),
        (1, 0x00),
        (3, 0x03),
        (2, 0xc7),
        (1, 0x0f),
        (0, b'h'),
        (4, 0x1b),
        (0, b'l'),
        (4, 0x0b),
    ] {
        out.extend(write(offset, value));
    }
    out.extend([2, 20]);
    out.extend(b"0123456789abcdefghij");
    out.extend([3, 0, 5, 7, 0, 0, 7, 3, 0, 2, 7, 3]);
    out
}

/// A virtio driver bringing queue 0 up (8 entries) and notifying it with
/// one descriptor of 16 bytes, readable and writable chains alike.
/// Queues of 8 with both ring features: a chain of one direct
/// descriptor then an indirect table of two entries, popped; then an
/// empty ring; and the same without features (the INDIRECT flag refused).
fn virtqueue_sessions() -> Vec<Vec<u8>> {
    let session = |features: [u8; 2]| {
        let mut out = features.to_vec();
        out.push(3); // queue size 1 << 3
        // Descriptor 0: a readable buffer at RAM + 0x3800, NEXT, next 1.
        out.extend([0, 0, 5, 0x00, 0x38, 1, 0, 16, 0, 0, 0, 1, 1, 1]);
        // Descriptor 1: the table at RAM + 0x3000 (pick 1 -> TABLES + 0),
        // two entries (length pick 2 * 16), INDIRECT.
        out.extend([0, 1, 1, 0, 0, 0, 2, 1, 4, 0]);
        // Table entries 0 and 1: writable buffers, 0 -> 1.
        out.extend([1, 0, 1, 0x00, 0x01, 1, 16, 0, 0, 0, 1, 3, 1]);
        out.extend([1, 1, 1, 0x00, 0x02, 1, 16, 0, 0, 0, 1, 2, 0]);
        // used_event 0, publish head 0, pop, pop (empty).
        out.extend([3, 0, 0, 2, 0, 5, 5]);
        out
    };
    vec![session([1, 1]), session([0, 0]), session([1, 0])]
}

fn virtio_session() -> Vec<u8> {
    const INDEX: [u64; 22] = [
        0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044, 0x050,
        0x060, 0x064, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0a4,
    ];
    let pick = |offset: u64| INDEX.iter().position(|&o| o == offset).expect("a register") as u8;
    let mut out = Vec::new();
    let mut write = |offset: u64, value: u32| {
        out.extend([2, pick(offset), 7, 0]);
        out.extend(value.to_le_bytes());
    };
    let (desc, avail, used) = (0x1000u32, 0x2000u32, 0x3000u32);
    let ram = |at: u32| (RAM_BASE as u32).wrapping_add(at);
    write(0x070, 1);
    write(0x070, 3);
    write(0x024, 1);
    write(0x020, 1);
    write(0x070, 0xb);
    for queue in 0..2 {
        write(0x030, queue);
        write(0x038, 8);
        write(0x080, ram(desc + queue * 0x400));
        write(0x090, ram(avail + queue * 0x400));
        write(0x0a0, ram(used + queue * 0x400));
        write(0x044, 1);
    }
    write(0x070, 0xf);
    // Descriptor 0 of each queue: 16 bytes at 0x800, flags WRITE for the
    // receive/entropy queue; avail ring: flags 0, idx 1, ring[0] = 0.
    for queue in 0..2u32 {
        let mut descriptor = u64::from(ram(0x800)).to_le_bytes().to_vec();
        descriptor.extend(16u32.to_le_bytes());
        descriptor.extend(if queue == 0 { 2u16 } else { 0u16 }.to_le_bytes());
        descriptor.extend(0u16.to_le_bytes());
        out.push(5);
        out.extend(((desc + queue * 0x400) as u16).to_le_bytes());
        out.push(descriptor.len() as u8);
        out.extend(descriptor);
        let ring = [0u8, 0, 1, 0, 0, 0];
        out.extend([5]);
        out.extend(((avail + queue * 0x400) as u16).to_le_bytes());
        out.push(ring.len() as u8);
        out.extend(ring);
    }
    let mut notify = |queue: u32| {
        out.extend([2, pick(0x050), 7, 0]);
        out.extend(queue.to_le_bytes());
    };
    notify(0);
    notify(1);
    out.extend([7, 5, b'h', b'e', b'l', b'l', b'o']);
    out.extend([0, pick(0x060), 7, 2, pick(0x064), 7, 0, 3, 0, 0, 0]);
    const { assert!(RAM_SIZE > 0x3800, "the queues fit in RAM") };
    out
}

/// A disk of 64 sectors (read-only or not) and a virtio-blk driver
/// bringing its queue up (8 entries) and submitting a read of sector 1
/// (header, 512 bytes of data, status: three descriptors), then a write of
/// the same buffer, each answered by the disk in turn.
fn virtio_blk_session(read_only: bool) -> Vec<u8> {
    const INDEX: [u64; 22] = [
        0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044, 0x050,
        0x060, 0x064, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0a4,
    ];
    let pick = |offset: u64| INDEX.iter().position(|&o| o == offset).expect("a register") as u8;
    let mut out = vec![64, 0, if read_only { 0 } else { 1 }];
    let write = |out: &mut Vec<u8>, offset: u64, value: u32| {
        out.extend([2, pick(offset), 7, 0]);
        out.extend(value.to_le_bytes());
    };
    let ram_write = |out: &mut Vec<u8>, at: u16, bytes: &[u8]| {
        out.push(5);
        out.extend(at.to_le_bytes());
        out.push(bytes.len() as u8);
        out.extend(bytes);
    };
    let ram = |at: u32| (RAM_BASE as u32).wrapping_add(at);
    let (desc, avail, used) = (0x1000u32, 0x2000u32, 0x3000u32);
    for (offset, value) in [(0x070, 1), (0x070, 3), (0x024, 1), (0x020, 1), (0x070, 0xb)] {
        write(&mut out, offset, value);
    }
    write(&mut out, 0x030, 0);
    write(&mut out, 0x038, 8);
    write(&mut out, 0x080, ram(desc));
    write(&mut out, 0x090, ram(avail));
    write(&mut out, 0x0a0, ram(used));
    write(&mut out, 0x044, 1);
    write(&mut out, 0x070, 0xf);
    let descriptor = |addr: u32, len: u32, flags: u16, next: u16| {
        let mut d = u64::from(ram(addr)).to_le_bytes().to_vec();
        d.extend(len.to_le_bytes());
        d.extend(flags.to_le_bytes());
        d.extend(next.to_le_bytes());
        d
    };
    for (kind, flags) in [(0u32, 3u16), (1, 1)] {
        // Header: type, reserved, sector 1.
        let mut header = kind.to_le_bytes().to_vec();
        header.extend([0; 4]);
        header.extend(1u64.to_le_bytes());
        ram_write(&mut out, 0x800, &header);
        let mut chain = descriptor(0x800, 16, 1, 1);
        chain.extend(descriptor(0x3800, 512, flags, 2));
        chain.extend(descriptor(0x810, 1, 2, 0));
        ram_write(&mut out, desc as u16, &chain);
        // The disk's next answer (queued by a host event, which finds
        // nothing posted yet), then the request posted and notified.
        out.extend([7, 5]);
        let index = kind as u8;
        ram_write(&mut out, avail as u16, &[0, 0, index + 1, 0, 0, 0]);
        write(&mut out, 0x050, 0);
    }
    out.extend([0, pick(0x060), 7]);
    const { assert!(RAM_SIZE > 0x3a00, "the buffers fit in RAM") };
    out
}

fn plic_session() -> Vec<u8> {
    let mut out = Vec::new();
    // priority[10] = 1; enable source 10 for context 0; threshold 0.
    out.extend([1, 0, 10, 0, 7, 1, 0, 0, 0]);
    out.extend([1, 0, 0, 2, 7, 0, 4, 0, 0]);
    out.extend([2, 10, 1]); // line 10 up
    out.extend([4, 0]); // claim
    out.extend([2, 10, 0, 5, 0, 10, 4, 0]);
    out.extend([0, 0, 0, 4, 7, 1, 0, 0, 1, 7]);
    out
}

/// A VM with a UART and a virtio console: attach, write a line through
/// THR (one by one and batched), read LSR, feed input, read the console.
fn service_session() -> Vec<u8> {
    // Request ops of `service::request`: vm, op, fields.
    let mut out = Vec::new();
    out.extend([1, 0, 0, 0]); // AddVm vm0 "vm0"
    out.extend([1, 0, 1, 0, 2, 4]); // Attach vm0 UART, MMIO, irq 4
    out.extend([1, 0, 1, 1, 2, 5]); // Attach vm0 virtio console, irq 5
    out.extend([1, 0, 4, 2, 0, 1, 0, 0, 0x0f, 0, 0, 0]); // Write IER
    for byte in b"hi\x1b[2J\n" {
        out.extend([1, 0, 4, 2, 0, 0, 0, 0, *byte, 0, 0, 0]); // Write THR
    }
    out.extend([1, 0, 2, 2, 0, 5, 0, 0]); // Read LSR
    out.extend([1, 0, 7, 3, b'o', b'k', b'\n', 1]); // WriteBatch + then
    out.extend([1, 0, 6, 3, b'l', b's', b'\n']); // Input
    out.extend([1, 0, 8, 0, 0]); // ConsoleRead
    out
}

/// An SVM OUT to COM1 and a nested page fault; a VMX OUT and an EPT
/// violation; then a MOV to CR4's bytes and a CR4 write.
fn x86_exits() -> Vec<Vec<u8>> {
    let exit = |svm: u8, info1: u64, vmx: u8, qualification: u64| {
        let mut out = vec![svm];
        out.extend(info1.to_le_bytes());
        out.extend(0x1000_0000u64.to_le_bytes());
        out.extend(0x41u64.to_le_bytes());
        out.push(vmx);
        out.extend(qualification.to_le_bytes());
        out.extend(0x1000_0000u64.to_le_bytes());
        out
    };
    // SVM IOIO: port 0x3f8 in bits 31:16, size 1 (bit 4); VMX I/O
    // qualification: size - 1 in bits 2:0, port in bits 31:16.
    // The OUTs, then `mov cr4, r8` in 64-bit code, and a guest in long
    // mode with CR4.PAE writing PAE | PKE with every bit claimed owned.
    let mut mov_cr4 = exit(1, 0x3f8 << 16 | 1 << 4, 1, 0x3f8 << 16);
    mov_cr4.extend([1, 4, 0x41, 0x0f, 0x22, 0xe0]);
    mov_cr4.extend(0x20u64.to_le_bytes());
    mov_cr4.push(1);
    mov_cr4.extend(0x1000u64.to_le_bytes());
    mov_cr4.extend((0x20u64 | 1 << 22).to_le_bytes());
    mov_cr4.extend(u64::MAX.to_le_bytes());
    vec![
        exit(1, 0x3f8 << 16 | 1 << 4, 1, 0x3f8 << 16),
        exit(2, 2, 0, 48),
        mov_cr4,
    ]
}
