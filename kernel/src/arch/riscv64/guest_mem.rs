//! A VM's memory over its life: RAM, G-stage tables, the ioreq page and
//! the posted-write ring from
//! the frame allocator at create, the guest image and device tree copied in,
//! the boot-protocol entry state at start, zeroed RAM at reset and every
//! frame back to the allocator at destroy.

extern crate alloc;

use alloc::vec::Vec;

use ipc::ioreq_abi::page::IoreqPage;
use ipc::ioreq_abi::posted::{PostedPage, PostedWrite};
use ipc::syscall::{GUEST_GENID_FROM_END, GUEST_IMAGE_OFFSET, IPC_BUFFER_SIZE};
use ipc::{Error, Space};

use super::fpu::{FpOwner, FpRegs};
use super::gstage::{self, GuestPerms};
use super::sv39::PAGE_SIZE;
use super::vcpu::{GuestTables, GuestVm, Vcpu, VsCsrs, forget_loaded_hgatp, hfence_gvma_all};
use super::world_switch::GuestFrame;
use crate::frame::FrameAllocator;
use crate::vm::boot_ranges;
use crate::vm::console::ConsoleLine;
use crate::vm::ioreq_path::VcpuRun;
use crate::vm::posted::Posting;
use crate::vm::tlb_tag::TlbTag;
use crate::vm::{GUEST_RAM_BASE, Vm, VmName};

/// Frames shared with the ioreq task: the ioreq page, the posted-write ring.
const SHARED_FRAMES: usize = 2;

/// Bytes at the top of RAM kept for the device tree.
const DTB_BYTES: u64 = IPC_BUFFER_SIZE as u64;

fn zero(addr: u64, bytes: u64) {
    // SAFETY: callers pass frames this VM owns (RAM, tables, ioreq page):
    // identity-mapped kernel RAM that nothing else uses.
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, bytes as usize) };
}

impl GuestVm {
    /// Builds VM `name` with `ram_bytes` (a multiple of 2 MiB) of zeroed RAM
    /// at [`GUEST_RAM_BASE`], its G-stage tables, the VMID `tag` (flushed
    /// before the first entry when another VM used it) and a free ioreq
    /// page; its vCPU is stopped until [`GuestVm::start`].
    pub fn create<const W: usize>(
        frames: &mut FrameAllocator<W>,
        name: VmName,
        ram_bytes: u64,
        tag: TlbTag,
    ) -> Result<Self, Error> {
        let ram_frames = (ram_bytes / PAGE_SIZE) as usize;
        let ram = frames
            .alloc_contiguous(ram_frames, 512)
            .map_err(|_| Error::OutOfMemory)?;
        let Ok(root) = frames.alloc_contiguous(gstage::ROOT_FRAMES, gstage::ROOT_FRAMES) else {
            free_run(frames, ram, ram_frames);
            return Err(Error::OutOfMemory);
        };
        // The ioreq page and, right after it, the posted-write ring.
        let Ok(ioreq_frame) = frames.alloc_contiguous(SHARED_FRAMES, 1) else {
            free_run(frames, ram, ram_frames);
            free_run(frames, root, gstage::ROOT_FRAMES);
            return Err(Error::OutOfMemory);
        };
        zero(ram, ram_bytes);
        zero(root, gstage::ROOT_BYTES);
        zero(ioreq_frame, SHARED_FRAMES as u64 * PAGE_SIZE);
        let mut vm = GuestVm {
            vm: Vm::new(name, ram_bytes),
            root,
            vmid: tag.id,
            vmid_stale: tag.reused,
            console: ConsoleLine::new(),
            ioreq_frame,
            posting: Posting::new(),
            vcpu: Vcpu {
                id: 0,
                frame: GuestFrame::default(),
                vs: VsCsrs::default(),
                run: VcpuRun::Stopped,
                pending: None,
                deadline: None,
                fp: FpRegs::default(),
                fp_token: FpOwner::fresh_token(),
            },
            ram,
            tables: Vec::new(),
            dtb_gpa: 0,
            stray_reported: false,
            bad_completion_reported: false,
        };
        *vm.page() = IoreqPage::new();
        let mapped = gstage::map_range(
            &mut GuestTables {
                frames: Some(&mut *frames),
                record: Some(&mut vm.tables),
            },
            root,
            GUEST_RAM_BASE,
            ram,
            ram_bytes,
            GuestPerms::RAM,
        );
        if mapped.is_err() {
            vm.destroy(frames);
            return Err(Error::OutOfMemory);
        }
        hfence_gvma_all();
        Ok(vm)
    }

    /// The VM's ioreq page.
    pub fn page(&mut self) -> &mut IoreqPage {
        // SAFETY: `ioreq_frame` is a 4 KiB-aligned frame this VM owns for its
        // whole life, identity-mapped; `IoreqPage` is 4 KiB of plain integers,
        // valid for any bytes the ioreq task writes. The kernel runs on one
        // hart with interrupts off, so no user write races this borrow.
        unsafe { &mut *(self.ioreq_frame as *mut IoreqPage) }
    }

    /// The physical frame of the ioreq page (to map into the ioreq task).
    pub fn ioreq_frame(&self) -> u64 {
        self.ioreq_frame
    }

    /// The physical frame of the posted-write ring (to map into the ioreq
    /// task), the one after the ioreq page.
    pub fn posted_frame(&self) -> u64 {
        self.ioreq_frame + PAGE_SIZE
    }

    /// Offers the guest's store `write` to the VM's posted-write ring
    /// ([`Posting::post`]): whether it was posted.
    #[inline]
    pub(super) fn post_write(&mut self, write: &PostedWrite) -> bool {
        // SAFETY: the frame after the ioreq page is a 4 KiB-aligned frame
        // this VM owns for its whole life, identity-mapped and zeroed at
        // creation (an empty ring); `PostedPage` is atomics only, valid for
        // any bytes the ioreq task writes, and only accessed through them.
        // The reference ends with this call.
        let ring = unsafe { &*(self.posted_frame() as *const PostedPage) };
        let posted = self.posting.post(ring, write);
        if posted {
            self.vm.stats.posted_write();
        }
        posted
    }

    /// Whether the exit being handled waits for the posted writes first
    /// ([`Posting::drain_first`]).
    pub(super) fn drain_first(&mut self) -> bool {
        // SAFETY: as in `post_write`: the VM's own ring frame, atomics only.
        let ring = unsafe { &*(self.posted_frame() as *const PostedPage) };
        self.posting.drain_first(ring)
    }

    /// `ioreq_post`: see [`Posting::set`].
    pub fn set_posted_range(&mut self, space: Space, start: u64, len: u64) -> Result<(), Error> {
        self.posting.set(space, start, len)
    }

    /// Whether writes were posted since the ioreq task last heard.
    pub fn take_posted_news(&mut self) -> bool {
        self.posting.take_news()
    }

    /// Copies `bytes` into RAM at `offset` from its start, if they end at
    /// or below the generation-ID page (just below the device tree's).
    fn copy_in(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let end = offset
            .checked_add(bytes.len() as u64)
            .ok_or(Error::OutOfMemory)?;
        if end > self.genid_offset() {
            return Err(Error::OutOfMemory);
        }
        // SAFETY: `ram + offset .. ram + end` lies inside this VM's RAM
        // (checked above): kernel-owned identity-mapped frames; the source
        // is a slice distinct from guest RAM.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (self.ram + offset) as *mut u8,
                bytes.len(),
            );
        }
        Ok(())
    }

    fn dtb_offset(&self) -> u64 {
        self.vm.ram_bytes.saturating_sub(DTB_BYTES)
    }

    fn genid_offset(&self) -> u64 {
        self.vm.ram_bytes.saturating_sub(GUEST_GENID_FROM_END)
    }

    /// Writes the generation ID at the start of the generation-ID page;
    /// returns its guest-physical address.
    pub fn write_genid(&mut self, id: [u8; 16]) -> Result<u64, Error> {
        if self.vm.ram_bytes < GUEST_GENID_FROM_END {
            return Err(Error::OutOfMemory);
        }
        let offset = self.genid_offset();
        // SAFETY: `offset + 16` lies inside this VM's RAM (it is at least
        // GUEST_GENID_FROM_END bytes): identity-mapped frames it owns.
        unsafe {
            core::ptr::copy_nonoverlapping(id.as_ptr(), (self.ram + offset) as *mut u8, id.len());
        }
        Ok(GUEST_RAM_BASE + offset)
    }

    /// Copies all of `src`'s RAM, page by page, over the start of this
    /// VM's; `Error::InvalidArgument` (nothing copied) if it is smaller.
    pub fn clone_ram_from(&mut self, src: &GuestVm) -> Result<(), Error> {
        if src.vm.ram_bytes > self.vm.ram_bytes {
            return Err(Error::InvalidArgument);
        }
        for page in 0..src.vm.ram_bytes / PAGE_SIZE {
            let offset = page * PAGE_SIZE;
            // SAFETY: both pages lie inside their VM's RAM (`offset` is
            // below `src`'s size, which is at most this VM's): distinct
            // VMs' identity-mapped frames, so the ranges do not overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    (src.ram + offset) as *const u8,
                    (self.ram + offset) as *mut u8,
                    PAGE_SIZE as usize,
                );
            }
        }
        Ok(())
    }

    /// Copies a guest image to [`GUEST_IMAGE_OFFSET`] in RAM.
    pub fn load_image(&mut self, image: &[u8]) -> Result<(), Error> {
        self.copy_in(GUEST_IMAGE_OFFSET, image)
    }

    /// `vm_load`: copies an image (kernel, initrd or raw guest) to `offset`
    /// in RAM; it must end at or below the generation-ID page.
    pub fn load_at(&mut self, offset: u64, image: &[u8]) -> Result<(), Error> {
        boot_ranges::check_fill(self.vm.ram_bytes, offset, image.len() as u64)?;
        self.copy_in(offset, image)
    }

    /// The `len` bytes of RAM at guest-physical `gpa` a device model reads
    /// or writes (`vm_ram_read`, `vm_ram_write`), checked by
    /// `boot_ranges::dma_offset`.
    pub fn dma_window(&mut self, gpa: u64, len: usize) -> Result<&mut [u8], Error> {
        let offset = boot_ranges::dma_offset(GUEST_RAM_BASE, self.vm.ram_bytes, gpa, len as u64)?;
        // SAFETY: `ram + offset .. + len` lies inside this VM's RAM (checked
        // above): identity-mapped frames it owns, touched while its vCPU is
        // out of the guest (this CPU runs the system call).
        Ok(unsafe { core::slice::from_raw_parts_mut((self.ram + offset) as *mut u8, len) })
    }

    /// `vm_write_ram`: copies `bytes` (a chunk of a device tree) to
    /// `offset` in RAM, below the generation-ID page.
    pub fn write_ram(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        self.load_at(offset, bytes)
    }

    /// Copies a device tree (at most 4 KiB) to the top page of RAM; returns
    /// its guest-physical address.
    pub fn set_dtb(&mut self, dtb: &[u8]) -> Result<u64, Error> {
        if dtb.len() as u64 > DTB_BYTES {
            return Err(Error::MessageTooLarge);
        }
        let offset = self.dtb_offset();
        zero(self.ram + offset, DTB_BYTES);
        // SAFETY: the last page of this VM's RAM (identity-mapped, owned).
        unsafe {
            core::ptr::copy_nonoverlapping(dtb.as_ptr(), (self.ram + offset) as *mut u8, dtb.len());
        }
        self.dtb_gpa = GUEST_RAM_BASE + offset;
        Ok(self.dtb_gpa)
    }

    /// `vm_start`: vCPU 0 enters at `entry` with a1 = the device tree at
    /// `dtb` (offsets from the start of RAM, checked against it).
    pub fn start_at(&mut self, entry: u64, dtb: u64) -> Result<(), Error> {
        boot_ranges::check_start(self.vm.ram_bytes, entry, dtb)?;
        self.dtb_gpa = GUEST_RAM_BASE + dtb;
        self.enter(GUEST_RAM_BASE + entry);
        Ok(())
    }

    /// Puts vCPU 0 in the boot-protocol entry state at the raw image (the
    /// boot self-test's guests).
    pub fn start(&mut self) {
        self.enter(GUEST_RAM_BASE + GUEST_IMAGE_OFFSET);
    }

    /// Puts vCPU 0 in the boot-protocol entry state: pc = `pc`, a0 = hart
    /// 0, a1 = the device tree, satp/vsatp 0; the VM runs again.
    fn enter(&mut self, pc: u64) {
        let mut frame = GuestFrame::default();
        frame.sepc = pc as usize;
        frame.regs[11] = self.dtb_gpa as usize;
        // The first entry is in VS-mode (the guest's supervisor).
        frame.sstatus = super::csr::SSTATUS_SPP;
        self.vcpu.frame = frame;
        self.vcpu.vs = VsCsrs::default();
        self.vcpu.vs.vstimecmp = usize::MAX;
        self.vcpu.run = VcpuRun::Runnable;
        self.vcpu.pending = None;
        self.vcpu.deadline = None;
        self.vcpu.fp = FpRegs::default();
        self.vcpu.fp_token = FpOwner::fresh_token();
        self.stray_reported = false;
        self.bad_completion_reported = false;
        self.console = ConsoleLine::new();
        self.vm = self.vm.restarted();
    }

    /// Stops the vCPU, drops any I/O request, zeroes RAM and forgets the
    /// device tree.
    pub fn reset(&mut self) {
        self.vcpu.run = VcpuRun::Stopped;
        self.vcpu.pending = None;
        *self.page() = IoreqPage::new();
        zero(self.ram, self.vm.ram_bytes);
        self.dtb_gpa = 0;
    }

    /// Returns every frame of the VM to the allocator (its VMID goes back
    /// with its record, `crate::vm::control::destroy`).
    pub fn destroy<const W: usize>(mut self, frames: &mut FrameAllocator<W>) {
        let ram_frames = (self.vm.ram_bytes / PAGE_SIZE) as usize;
        free_run(frames, self.ram, ram_frames);
        free_run(frames, self.root, gstage::ROOT_FRAMES);
        for table in self.tables.drain(..) {
            let _ = frames.free(table);
        }
        free_run(frames, self.ioreq_frame, SHARED_FRAMES);
        hfence_gvma_all();
        forget_loaded_hgatp();
    }

    /// A started VM with `image` at [`GUEST_IMAGE_OFFSET`] and no device
    /// tree (the boot self-test's position-independent guests).
    pub fn with_image<const W: usize>(
        frames: &mut FrameAllocator<W>,
        name: VmName,
        ram_bytes: u64,
        image: &[u8],
        tag: TlbTag,
    ) -> Result<Self, Error> {
        let mut vm = Self::create(frames, name, ram_bytes, tag)?;
        if let Err(e) = vm.load_image(image) {
            vm.destroy(frames);
            return Err(e);
        }
        vm.start();
        Ok(vm)
    }
}

fn free_run<const W: usize>(frames: &mut FrameAllocator<W>, start: u64, count: usize) {
    for i in 0..count as u64 {
        let _ = frames.free(start + i * PAGE_SIZE);
    }
}
