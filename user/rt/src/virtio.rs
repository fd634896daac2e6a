//! Driving a real virtio device from a task with the `virtio-drivers`
//! crate: [`MicaHal`], its `Hal` over `dma_alloc` (queues in DMA pages,
//! buffers bounced through a small pool of DMA pages, so a device only ever
//! sees memory the kernel handed out for it), and [`find_device`], which
//! probes the machine's virtio-mmio windows for a device of one type
//! ([`find_devices`] for all of them).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

use crate::device::{device_map, dma_alloc};

/// Bounce pages: one buffer of at most a page each, shared at a time.
const BOUNCE_PAGES: usize = 4;

/// The bounce pool: its first page's user and physical address (0 until
/// first use) and which pages are lent out.
static BOUNCE_VA: AtomicUsize = AtomicUsize::new(0);
static BOUNCE_PA: AtomicUsize = AtomicUsize::new(0);
static BOUNCE_USED: AtomicU32 = AtomicU32::new(0);
/// Windows are probed once, so each `MmioTransport` is the only one.
static PROBED: AtomicBool = AtomicBool::new(false);

/// The `Hal` of Mica tasks.
pub struct MicaHal;

/// The pool's (va, pa), taken from the kernel on first use.
fn bounce_pool() -> Option<(usize, usize)> {
    if BOUNCE_VA.load(Ordering::Relaxed) == 0 {
        let region = dma_alloc(BOUNCE_PAGES).ok()?;
        BOUNCE_PA.store(usize::try_from(region.pa).ok()?, Ordering::Relaxed);
        BOUNCE_VA.store(region.va, Ordering::Relaxed);
    }
    Some((
        BOUNCE_VA.load(Ordering::Relaxed),
        BOUNCE_PA.load(Ordering::Relaxed),
    ))
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned, physically contiguous
// pages mapped only at the returned address and never handed out twice, so
// the pointers are valid and alias nothing; buffers are shared through
// bounce pages from the same source, one buffer per page at a time.
unsafe impl Hal for MicaHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match dma_alloc(pages) {
            Ok(region) => match NonNull::new(region.va as *mut u8) {
                Some(va) => (region.pa, va),
                None => (0, NonNull::dangling()),
            },
            // A zero physical address is the crate's "no memory".
            Err(_) => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // The kernel takes DMA pages back when the task ends; a driver of a
        // long-lived device frees its queues only then.
        0
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Only the PCI transport asks; tasks use virtio-mmio windows.
        panic!("mica-rt: no PCI BARs are mapped for tasks");
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let len = buffer.len();
        assert!(
            len <= PAGE_SIZE,
            "mica-rt: a shared buffer is at most a page"
        );
        let Some((va, pa)) = bounce_pool() else {
            panic!("mica-rt: no DMA memory for bounce buffers");
        };
        let used = BOUNCE_USED.load(Ordering::Relaxed);
        let Some(page) = (0..BOUNCE_PAGES).find(|p| used & (1 << p) == 0) else {
            panic!("mica-rt: more than {BOUNCE_PAGES} buffers shared at once");
        };
        BOUNCE_USED.store(used | (1 << page), Ordering::Relaxed);
        let bounce = (va + page * PAGE_SIZE) as *mut u8;
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller lends a valid buffer of `len` bytes; the
            // bounce page is this task's DMA memory, `len <= PAGE_SIZE`
            // bytes of it are free for this buffer.
            unsafe { core::ptr::copy_nonoverlapping(buffer.as_ptr().cast::<u8>(), bounce, len) };
        }
        (pa + page * PAGE_SIZE) as PhysAddr
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let (va, pa) = (
            BOUNCE_VA.load(Ordering::Relaxed),
            BOUNCE_PA.load(Ordering::Relaxed),
        );
        let Some(page) = usize::try_from(paddr)
            .ok()
            .and_then(|p| p.checked_sub(pa))
            .map(|offset| offset / PAGE_SIZE)
            .filter(|&p| p < BOUNCE_PAGES)
        else {
            return;
        };
        if direction != BufferDirection::DriverToDevice {
            let bounce = (va + page * PAGE_SIZE) as *const u8;
            // SAFETY: `paddr` came from `share` for this buffer (same
            // length, at most a page); the device has finished with it.
            unsafe {
                core::ptr::copy_nonoverlapping(bounce, buffer.as_ptr().cast::<u8>(), buffer.len());
            }
        }
        BOUNCE_USED.fetch_and(!(1 << page), Ordering::Relaxed);
    }
}

/// The first virtio-mmio window (by address) that holds a device of type
/// `kind` and that this task may map, as a transport; `None` when none
/// does, or when the windows were probed before (each window gets one
/// transport in a task's life).
pub fn find_device(kind: DeviceType) -> Option<MmioTransport<'static>> {
    find_devices::<1>(kind).into_iter().next()
}

/// Every virtio-mmio window (by address, at most `N`) that holds a device
/// of type `kind` and that this task may map, as transports; empty when
/// none does, or when the windows were probed before (each window gets one
/// transport in a task's life, so a task probes once, for all its devices).
pub fn find_devices<const N: usize>(kind: DeviceType) -> heapless::Vec<MmioTransport<'static>, N> {
    let mut found = heapless::Vec::new();
    if PROBED.swap(true, Ordering::Relaxed) {
        return found;
    }
    // `device_map` refuses the first index past the machine's windows
    // (`InvalidArgument`), and each window holding a device of a class the
    // manifest does not give this task (`PermissionDenied`: skipped).
    for index in 0..ipc::syscall::MAX_DEVICE_WINDOWS {
        if found.is_full() {
            break;
        }
        let window = match device_map(index) {
            Ok(window) => window,
            Err(ipc::Error::PermissionDenied) => continue,
            Err(_) => break,
        };
        let Some(header) = NonNull::new(window.va as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the kernel mapped this window's registers (and its config
        // space, `window.size` bytes in all) at `window.va` for the rest of
        // the task's life; it is probed once, so no other transport or
        // reference aliases it.
        let transport = unsafe { MmioTransport::new(header, window.size) };
        // An empty transport (device id 0) or a bad one is skipped.
        if let Ok(transport) = transport
            && transport.device_type() == kind
        {
            let _ = found.push(transport);
        }
    }
    found
}
