//! The boot sequence on bare metal, the same on every architecture: console,
//! boot info (DTB or Multiboot, as a `MachineInfo`), virtualization support,
//! memory, heap, paging, traps, timer, the other processors; each failure
//! prints one `mica: ...` line and powers off with a failure status.

extern crate alloc;

use core::fmt;

use log::{LevelFilter, info, warn};
use mica_boot::MemRange;
use mica_boot::image::BootImage;

use crate::arch;
use crate::bootmem;
use crate::frame::{FRAME_SIZE, FrameAllocator};
use crate::{ExitStatus, klog, ticks};

/// Frames trackable by the bitmap: 4 GiB of RAM.
pub(crate) const FRAME_WORDS: usize = (4 << 30) / 4096 / 64;
/// Kernel heap size.
const HEAP_BYTES: u64 = 4 << 20;
use crate::ticks::TICK_HZ;
/// Ticks the boot self-check waits for.
const BOOT_TICKS: u64 = 3;

pub(crate) static FRAMES: spin::Mutex<FrameAllocator<FRAME_WORDS>> =
    spin::Mutex::new(FrameAllocator::new());

/// Prints `mica: <what>` and powers off with a failure status.
fn fail(what: fmt::Arguments<'_>) -> ! {
    klog::print(format_args!("mica: {what}\n"));
    arch::shutdown(ExitStatus::Failure)
}

/// Names joined by commas, for a log line.
struct Names<'a>(&'a [&'a str]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// `, N times` for a bounded count, nothing for an endless one.
struct Times(Option<u64>);

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, ", {n} times"),
            None => Ok(()),
        }
    }
}

/// Entered from the arch's entry code with its two boot registers (RISC-V:
/// hart id and DTB; x86_64: Multiboot magic and information).
#[unsafe(no_mangle)]
extern "C" fn kmain_entry(arg0: usize, arg1: usize) -> ! {
    klog::init(arch::console_write, LevelFilter::Info);
    let firmware = match arch::read_firmware(arg0, arg1) {
        Ok(firmware) => firmware,
        Err(e) => fail(format_args!("malformed boot image: {e}")),
    };
    let info = firmware.machine();
    arch::firmware_init(&firmware);
    let mib = info.memory_bytes() >> 20;
    match info.cpu_count {
        Some(harts) => info!("booting on {} ({harts} harts, {mib} MiB)", arch::NAME),
        None => info!("booting on {} ({mib} MiB)", arch::NAME),
    }
    if let Err(missing) = arch::check_virtualization(&firmware) {
        fail(format_args!("{missing}"));
    }
    // Generation IDs and the guests' virtio-rng draw from this source; a
    // machine without one is named at boot, and the vm-manager says what
    // that means for its VMs.
    match arch::probe_entropy() {
        Some(source) => info!("entropy: {source}"),
        None => warn!(
            "no hardware entropy source (RISC-V Zkr seed CSR, x86 RDSEED/RDRAND): \
             the entropy call will refuse"
        ),
    }

    let image = arch::kernel_image();
    let mut frames = FRAMES.lock();
    let memory = match bootmem::plan(&mut frames, &info, image.whole(), &firmware.taken()) {
        Ok(summary) => summary,
        Err(e) => fail(format_args!("{e}")),
    };
    // What a translated task or guest address must land in to be touched.
    crate::ram::set(crate::ram::RamMap::from_ranges(
        info.memory.as_slice(),
        memory.span,
    ));
    info!(
        "memory: {} MiB free of {} MiB (kernel {} KiB at {:#x})",
        memory.free_bytes >> 20,
        memory.ram_bytes >> 20,
        image.whole().size >> 10,
        image.whole().start
    );

    // A test may hand out fewer VM TLB tags than the hardware has.
    let vm_ids = match crate::vm::tlb_tag::boot_limit(info.cmdline) {
        Ok(limit) => limit,
        Err(word) => fail(format_args!(
            "boot option `{word}` is invalid: use {}=N with N from 1 to {}",
            crate::vm::tlb_tag::BOOT_OPTION,
            crate::vm::tlb_tag::MAX_TAG
        )),
    };
    if let Some(n) = vm_ids {
        info!("vm ids: at most {n} ({})", crate::vm::tlb_tag::BOOT_OPTION);
    }
    // Whether the console is a terminal (`cargo xtask qemu` says).
    match klog::ConsoleMode::from_cmdline(info.cmdline) {
        Ok(mode) => klog::set_mode(mode.unwrap_or(klog::ConsoleMode::Plain)),
        Err(word) => fail(format_args!(
            "boot option `{word}` is invalid: use {}=tty (a terminal) or {}=plain",
            klog::CONSOLE_OPTION,
            klog::CONSOLE_OPTION
        )),
    }
    // A recovery test may have services killed on a schedule.
    let chaos = match crate::chaos::Chaos::from_cmdline(info.cmdline) {
        Ok(chaos) => chaos,
        Err(word) => fail(format_args!(
            "boot option `{word}` is invalid: use {}=[hang:]NAME[,[hang:]NAME...]@MS[xCOUNT] with at most {} names and MS at least {}",
            crate::chaos::BOOT_OPTION,
            crate::chaos::MAX_VICTIMS,
            crate::chaos::MIN_PERIOD_MS
        )),
    };
    if let Some(chaos) = &chaos {
        let hangs = chaos
            .victims()
            .iter()
            .any(|v| v.starts_with(crate::chaos::HANG));
        info!(
            "chaos: {} {} in turn every {} ms{} ({})",
            if hangs { "faulting" } else { "killing" },
            Names(chaos.victims()),
            chaos.period_ms(),
            Times(chaos.count()),
            crate::chaos::BOOT_OPTION
        );
    }

    // The boot image (initrd) holds the service tasks and guest images.
    let boot_image = match info.boot_image {
        None => None,
        Some(range) => match BootImage::parse(arch::initrd_slice(range)) {
            Ok(image) => Some(image),
            Err(e) => fail(format_args!("boot image: {e}")),
        },
    };

    let heap_frames = (HEAP_BYTES / FRAME_SIZE) as usize;
    match frames.alloc_contiguous(heap_frames, 1) {
        Ok(start) => arch::heap::init(MemRange::new(start, HEAP_BYTES)),
        Err(e) => fail(format_args!("no room for the kernel heap: {e:?}")),
    }
    let probe = alloc::vec![0u8; 64 * 1024];
    info!(
        "heap: {} KiB, test allocation of {} KiB ok",
        HEAP_BYTES >> 10,
        probe.len() >> 10
    );
    drop(probe);

    let kernel_root = match arch::enable_kernel_paging(&mut frames, &image, memory.span) {
        Ok(root) => {
            info!("paging: {} on, kernel tables at {root:#x}", arch::PAGING);
            root
        }
        Err(e) => fail(format_args!("cannot build kernel page tables: {e:?}")),
    };
    drop(frames);

    arch::trap_init();
    match arch::timer_start(&firmware) {
        Some(hz) => {
            ticks::set_clock_hz(hz);
            let first = ticks::start(ticks::interval_for(hz, TICK_HZ), arch::timer_now());
            arch::timer_set_deadline(first);
            while ticks::count() < BOOT_TICKS {
                arch::wait_for_interrupt();
            }
            let via = arch::timer_source();
            info!("timer: {} ticks at {TICK_HZ} Hz via {via}", ticks::count());
        }
        None => info!("timer: no timer interrupt on {} yet", arch::NAME),
    }
    // The other processors come up on the kernel's tables and park: the
    // scheduler still runs on this one alone.
    arch::cpus_start(&firmware, kernel_root);

    // With the virtio device each window holds: the manifest grants
    // windows by that class.
    crate::syscall_device::GRANTS.lock().set_windows(
        info.device_windows.as_slice(),
        info.memory.as_slice(),
        &mut arch::virtio_device_id,
    );
    if let Some(image) = boot_image {
        info!("boot complete, starting tasks");
        crate::userland::start(kernel_root, image, vm_ids, chaos)
    }
    info!("no boot image (initrd): nothing to run");
    info!("boot complete, shutting down");
    arch::shutdown(ExitStatus::Success)
}

#[panic_handler]
fn panic(panic: &core::panic::PanicInfo<'_>) -> ! {
    klog::print(format_args!("mica: panic: {panic}\n"));
    arch::shutdown(ExitStatus::Failure)
}
