//! Targets for what the kernel and the vm-manager read before anything
//! runs: the firmware's device tree, the boot image and the service ELFs
//! in it, guest Linux Image headers, scenario files, and the trapping
//! instruction of a guest MMIO access.

use mica_boot::BootInfo;
use mica_boot::fdt::{self, Event, Fdt};
use mica_boot::image::{self, BootImage, EntrySpec};
use mica_boot::multiboot::{self, MultibootInfo, PhysMemory};
use mica_kernel::arch::riscv64::mmio_decode::{self, AccessKind, MmioAccess, Width};
use mica_kernel::arch::x86_64::{cr4, mov_cr, svm_exit, vmx_exit};
use mica_kernel::elf;
use mica_kernel::vm::exit::GuestExit;
use vm_manager::linux_image;
use vm_manager::scenario_file::{self, MEM_MIB, ScenarioVm};
use vm_manager::{ImageName, VmName};

use crate::input::Input;

/// The firmware's device tree: a blob `Fdt::new` accepts walks as a
/// balanced tree, and the boot-info reader refuses (never panics on)
/// anything it cannot use.
pub fn dtb(data: &[u8]) {
    let _ = fdt::total_size(data);
    if let Ok(tree) = Fdt::new(data) {
        assert!(tree.as_bytes().len() <= data.len());
        let mut depth = 0usize;
        for event in tree.events() {
            match event {
                Event::BeginNode(_) => depth += 1,
                Event::EndNode => {
                    depth = depth
                        .checked_sub(1)
                        .expect("a node closed that never opened");
                }
                Event::Property { value, .. } => {
                    assert!(depth > 0, "a property outside every node");
                    for cells in 0..4 {
                        let _ = fdt::read_cells(value, cells);
                    }
                }
            }
        }
        let _ = tree.reservations().count();
    }
    if let Ok(info) = BootInfo::from_dtb(data) {
        let _ = info.has_h();
        let machine = info.machine();
        assert_eq!(machine.cmdline, info.cmdline);
        assert_eq!(machine.boot_image, info.initrd);
        assert_eq!(machine.cpu_count, Some(info.hart_count));
    }
}

/// Where the fuzzed loader's memory starts (so address 0 is unreadable).
pub const MULTIBOOT_BASE: u64 = 0x1000;

/// A loader's memory: the fuzz bytes at [`MULTIBOOT_BASE`].
struct LoaderMemory<'a>(&'a [u8]);

impl PhysMemory for LoaderMemory<'_> {
    fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(addr.checked_sub(MULTIBOOT_BASE)?).ok()?;
        self.0.get(start..start.checked_add(len)?)
    }
}

/// The Multiboot information an x86 loader leaves (its pointers into the
/// loader's memory all untrusted): an accepted structure's command line,
/// modules and memory lie where the reader could read them. The first
/// byte picks where in memory the structure starts.
pub fn multiboot(data: &[u8]) {
    let Some((&at, memory)) = data.split_first() else {
        return;
    };
    let mem = LoaderMemory(memory);
    let addr = MULTIBOOT_BASE + u64::from(at);
    let Ok(info) = MultibootInfo::parse(&mem, multiboot::BOOTLOADER_MAGIC, addr) else {
        return;
    };
    assert!(info.modules().len() <= multiboot::MAX_MODULES);
    let range = info.cmdline_range;
    if !info.cmdline.is_empty() {
        let len = usize::try_from(range.size).expect("a small string");
        assert_eq!(
            mem.read(range.start, len - 1),
            Some(info.cmdline.as_bytes())
        );
    }
    let machine = info.machine();
    for module in info.modules() {
        // Empty modules hold nothing to keep the allocator off.
        assert!(
            module.range.size == 0 || machine.reserved.as_slice().contains(&module.range),
            "module {module:?} is not reserved"
        );
    }
}

/// The boot image: an image that parses holds entries inside its bytes
/// with unique names, and writing those entries again makes an image that
/// parses to the same entries.
pub fn boot_image(data: &[u8]) {
    let Ok(parsed) = BootImage::parse(data) else {
        return;
    };
    let entries: Vec<_> = parsed.entries().collect();
    assert_eq!(
        entries.len(),
        parsed.len(),
        "an entry of a checked image is missing"
    );
    for entry in &entries {
        let end = entry
            .offset
            .checked_add(entry.spec.data.len())
            .expect("blob end overflows");
        assert!(
            end <= data.len(),
            "blob of {} ends past the image",
            entry.spec.name
        );
        assert_eq!(parsed.find(entry.spec.name).as_ref(), Some(entry));
    }
    let specs: Vec<EntrySpec<'_>> = entries.iter().map(|e| e.spec).collect();
    let mut out = vec![0u8; image::image_len(&specs)];
    let rebuilt = image::write(&specs, &mut out).expect("a parsed image's entries write again");
    let again: Vec<_> = rebuilt.entries().collect();
    assert_eq!(again.len(), entries.len());
    for (a, b) in entries.iter().zip(&again) {
        let (a, b) = (&a.spec, &b.spec);
        assert_eq!(
            (
                a.name, a.kind, a.priority, a.serves, a.may_call, a.rights, a.data
            ),
            (
                b.name, b.kind, b.priority, b.serves, b.may_call, b.rights, b.data
            )
        );
    }
}

/// The top of a task's address space on RISC-V (Sv39's lower half).
const SV39_USER_TOP: u64 = 1 << 38;

/// A service task's ELF from the boot image: an accepted executable's
/// segments lie in the file and below the top it was checked against, and
/// its entry point is in an executable segment.
pub fn elf(data: &[u8]) {
    for (machine, user_top) in [
        (elf::EM_RISCV, SV39_USER_TOP),
        (elf::EM_X86_64, 1 << 47),
        (elf::EM_RISCV, u64::MAX),
    ] {
        let Ok(image) = elf::parse(data, machine, user_top) else {
            continue;
        };
        assert!(!image.segments().is_empty());
        for segment in image.segments() {
            let file_end = segment.file_offset.checked_add(segment.file_len);
            assert!(
                file_end.is_some_and(|end| end <= data.len() as u64),
                "{segment:?} reaches past the file"
            );
            assert!(segment.file_len <= segment.mem_len, "{segment:?}");
            let mem_end = segment.vaddr.checked_add(segment.mem_len);
            assert!(
                mem_end.is_some_and(|end| end <= user_top),
                "{segment:?} reaches past {user_top:#x}"
            );
            assert!(segment.page_start() <= segment.page_end());
        }
        assert!(
            image
                .segments()
                .iter()
                .any(|s| s.execute && s.vaddr <= image.entry && image.entry - s.vaddr < s.mem_len),
            "entry {:#x} outside every executable segment",
            image.entry
        );
    }
}

/// A guest kernel's Image header: an accepted header has the magic, an
/// aligned text offset and a footprint that covers the file.
pub fn linux_image(data: &[u8]) {
    let mut input = Input::new(data);
    let file_len = match input.below(3) {
        0 => input.rest().len() as u64,
        1 => input.u64(),
        _ => u64::from(input.u32()),
    };
    let header = input.rest();
    if let Ok(image) = linux_image::parse_header(header, file_len) {
        assert!(linux_image::has_magic(header));
        assert!(image.text_offset.is_multiple_of(linux_image::KERNEL_ALIGN));
        assert!(image.footprint >= image.file_len);
        assert_eq!(image.file_len, file_len);
    }
}

/// A TOML basic string holding `text`.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `vms` as a scenario file.
pub fn scenario_text(vms: &[ScenarioVm]) -> String {
    let mut out = String::new();
    for vm in vms {
        out.push_str("[[vm]]\n");
        out.push_str(&format!("name = {}\n", toml_string(&vm.name)));
        match &vm.linux {
            None => out.push_str(&format!("image = {}\n", toml_string(&vm.image))),
            Some(linux) => {
                out.push_str(&format!("kernel = {}\n", toml_string(&vm.image)));
                if let Some(initrd) = &linux.initrd {
                    out.push_str(&format!("initrd = {}\n", toml_string(initrd)));
                }
                out.push_str(&format!("cmdline = {}\n", toml_string(&linux.cmdline)));
            }
        }
        if let Some(disk) = &vm.disk {
            out.push_str(&format!("disk = {}\n", toml_string(disk)));
        }
        out.push_str(&format!(
            "mem_mib = {}\nvcpus = {}\npre_launched = {}\n\n",
            vm.mem_mib, vm.vcpus, vm.pre_launched
        ));
    }
    out
}

/// A scenario file: an accepted file keeps every rule (valid unique names,
/// memory and vCPUs in range), writes out as Rust, and written back as a
/// scenario file parses to the same VMs.
pub fn scenario_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let vms = match scenario_file::parse(&text) {
        Ok(vms) => vms,
        Err(e) => {
            let lines = text.matches('\n').count() + 1;
            assert!(e.line <= lines, "error on line {} of {lines}: {e}", e.line);
            return;
        }
    };
    assert!(!vms.is_empty());
    for (i, vm) in vms.iter().enumerate() {
        assert!(VmName::parse(&vm.name).is_ok(), "{:?}", vm.name);
        assert!(ImageName::parse(&vm.image).is_ok(), "{:?}", vm.image);
        assert!(MEM_MIB.contains(&vm.mem_mib) && vm.mem_mib % 2 == 0);
        assert!((1..=vm_manager::MAX_VCPUS).contains(&vm.vcpus));
        assert!(vms[..i].iter().all(|other| other.name != vm.name));
    }
    let _ = scenario_file::to_rust(&vms);
    let again = scenario_file::parse(&scenario_text(&vms)).expect("a written scenario parses");
    assert_eq!(again, vms);
}

/// Checks a decoded access against the instruction's length rule.
fn check_access(access: &MmioAccess, raw: u64) {
    assert!(matches!(access.insn_len, 2 | 4));
    let width = access.width;
    let mask = match width {
        Width::B1 => 0xff,
        Width::B2 => 0xffff,
        Width::B4 => 0xffff_ffff,
        Width::B8 => u64::MAX,
    };
    assert_eq!(mmio_decode::store_value(width, raw) & !mask, 0);
    if let AccessKind::Load { rd, sign_extend } = access.kind {
        assert!(rd.is_none_or(|r| (1..32).contains(&r.index())));
        let value = mmio_decode::load_value(width, sign_extend, raw);
        assert_eq!(value & mask, raw & mask, "the loaded bytes change");
        let high = value & !mask;
        if sign_extend {
            assert!(
                high == 0 || high == !mask,
                "{value:#x} is not sign-extended"
            );
        } else {
            assert_eq!(high, 0);
        }
    }
}

/// The instruction a guest's MMIO access trapped on, fetched (`decode_raw`)
/// or as the hardware transformed it (`decode_htinst`): decoding agrees
/// with the instruction's length, both decoders agree on 32-bit forms, and
/// the values moved are cut and extended to the access width.
pub fn mmio_decode(data: &[u8]) {
    let mut input = Input::new(data);
    let insn = input.u32();
    let htinst = input.u64();
    let raw = input.u64();
    if let Ok(access) = mmio_decode::decode_raw(insn) {
        assert_eq!(
            Some(access.insn_len),
            mmio_decode::insn_len((insn & 0xffff) as u16)
        );
        check_access(&access, raw);
    }
    if insn & 0b11 == 0b11 {
        assert_eq!(
            mmio_decode::decode_raw(insn),
            mmio_decode::decode_htinst(u64::from(insn))
        );
    }
    if let Ok(access) = mmio_decode::decode_htinst(htinst) {
        check_access(&access, raw);
    }
    let _ = mmio_decode::fault_gpa(htinst, raw);
}

/// Checks an x86 exit as the kernel acts on it: a port access has a width
/// of 1, 2 or 4 with the value cut to it, and either makes an ioreq request
/// the slot accepts or reaches past the last port (which the backend
/// answers itself).
fn check_x86_exit(exit: &GuestExit) {
    if let GuestExit::Pio(pio) = exit {
        assert!(matches!(pio.size, 1 | 2 | 4), "{pio:?}");
        if let Some(value) = pio.write {
            assert!(pio.size == 4 || value >> (8 * pio.size) == 0, "{pio:?}");
        }
        let valid = ipc::ioreq_abi::slot::validate(&pio.request(0)).is_ok();
        assert!(valid != pio.past_last_port(), "{pio:?}: valid {valid}");
    }
}

/// An x86 guest exit (SVM's EXITCODE and EXITINFO words, VMX's exit
/// reason and qualification), with the guest's RAX: decoded without a
/// panic into exits the kernel can act on.
pub fn x86_exit(data: &[u8]) {
    let mut input = Input::new(data);
    let svm_code = match input.below(4) {
        0 => u64::from(input.u16()),
        1 => svm_exit::code::IOIO,
        2 => svm_exit::code::NPF,
        _ => input.u64(),
    };
    let (info1, info2, rax) = (input.u64(), input.u64(), input.u64());
    check_x86_exit(&svm_exit::decode(svm_code, info1, info2, rax));
    let reason = match input.below(3) {
        0 => u32::from(input.u8()),
        1 => 30, // I/O instruction
        _ => input.u32(),
    };
    let (qualification, gpa) = (input.u64(), input.u64());
    check_x86_exit(&vmx_exit::decode(reason, qualification, gpa, rax));
    // A MOV to CR4 as SVM decodes it from guest bytes, and the answer to
    // its value: never longer than an instruction, never a host-owned bit
    // accepted.
    let long = input.bool();
    if let Some(mov) = mov_cr::decode(input.bytes(mov_cr::MAX_LEN + 2), long) {
        assert!(mov.len <= mov_cr::MAX_LEN as u64 && mov.cr < 16 && mov.gpr < 16);
    }
    let guest = cr4::Guest {
        cr4: input.u64(),
        long_mode: input.bool(),
        cr3: input.u64(),
    };
    if let cr4::Write::Accept { value, .. } = cr4::write(input.u64(), &guest, input.u64()) {
        assert_eq!(value & !cr4::GUEST_OWNABLE, 0, "{value:#x}");
    }
}
