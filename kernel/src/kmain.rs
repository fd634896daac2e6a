//! The boot sequence on bare metal: console, boot info, H extension, memory,
//! heap, paging, traps, timer; each failure prints one `mica: ...` line and
//! powers off with a failure status.

extern crate alloc;

use core::fmt;

use log::{LevelFilter, info};
use mica_boot::image::BootImage;
use mica_boot::{BootInfo, MemRange};

use crate::arch;
use crate::bootmem;
use crate::frame::{FRAME_SIZE, FrameAllocator};
use crate::{ExitStatus, klog, ticks};

/// Frames trackable by the bitmap: 4 GiB of RAM.
pub(crate) const FRAME_WORDS: usize = (4 << 30) / 4096 / 64;
/// Kernel heap size.
const HEAP_BYTES: u64 = 4 << 20;
/// Timer ticks per second.
const TICK_HZ: u64 = 100;
/// Ticks the boot self-check waits for.
const BOOT_TICKS: u64 = 3;

pub(crate) static FRAMES: spin::Mutex<FrameAllocator<FRAME_WORDS>> =
    spin::Mutex::new(FrameAllocator::new());

/// Prints `mica: <what>` and powers off with a failure status.
fn fail(what: fmt::Arguments<'_>) -> ! {
    klog::print(format_args!("mica: {what}\n"));
    arch::shutdown(ExitStatus::Failure)
}

#[unsafe(no_mangle)]
extern "C" fn kmain_entry(hart: usize, dtb_addr: usize) -> ! {
    klog::init(arch::console_write, LevelFilter::Info);
    let dtb = match arch::dtb_slice(dtb_addr) {
        Ok(bytes) => bytes,
        Err(e) => fail(format_args!("malformed boot image: {e}")),
    };
    let info = match BootInfo::from_dtb(dtb) {
        Ok(info) => info,
        Err(e) => fail(format_args!("malformed boot image: {e}")),
    };
    arch::platform_init(&info);
    info!(
        "booting on {} ({} harts, {} MiB)",
        arch::NAME,
        info.hart_count,
        info.memory.total_size() >> 20
    );
    if !arch::hypervisor_available(&info) {
        fail(format_args!("RISC-V H extension not available"));
    }
    info!("boot hart {hart}, isa {}", info.isa.as_str());

    let image = arch::kernel_image();
    let dtb_range = MemRange::new(dtb.as_ptr() as u64, dtb.len() as u64);
    let mut frames = FRAMES.lock();
    let memory = match bootmem::plan(&mut frames, &info, image.whole(), &[dtb_range]) {
        Ok(summary) => summary,
        Err(e) => fail(format_args!("{e}")),
    };
    info!(
        "memory: {} MiB free of {} MiB (kernel {} KiB at {:#x})",
        memory.free_bytes >> 20,
        memory.ram_bytes >> 20,
        image.whole().size >> 10,
        image.whole().start
    );

    // The boot image (initrd) holds the service tasks and guest images.
    let boot_image = match info.initrd {
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
            info!("paging: Sv39 on, kernel tables at {root:#x}");
            root
        }
        Err(e) => fail(format_args!("cannot build kernel page tables: {e:?}")),
    };
    drop(frames);

    arch::trap_init();
    let hz = info.timebase_hz.unwrap_or(arch::timer_ticks_per_second());
    arch::timer_init(hz, arch::timer_has_sstc(&info));
    ticks::set_interval(ticks::interval_for(hz, TICK_HZ));
    arch::timer_set_deadline(arch::timer_now() + ticks::interval_for(hz, TICK_HZ));
    while ticks::count() < BOOT_TICKS {
        arch::wait_for_interrupt();
    }
    let via = if arch::timer_uses_sstc() {
        "Sstc"
    } else {
        "SBI TIME"
    };
    info!("timer: {} ticks at {TICK_HZ} Hz via {via}", ticks::count());

    if let Some(image) = boot_image {
        info!("boot complete, starting tasks");
        crate::userland::start(kernel_root, image)
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
