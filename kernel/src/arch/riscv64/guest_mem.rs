//! A VM's memory over its life: RAM, G-stage tables, the ioreq page and
//! the posted-write ring from
//! the frame allocator at create, the guest image and device tree copied in,
//! the boot-protocol entry state at start, zeroed RAM at reset and every
//! frame back to the allocator at destroy.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use ipc::Error;
use ipc::ioreq_abi::page::IoreqPage;
use ipc::syscall::GUEST_IMAGE_OFFSET;

use super::fpu::{FpOwner, FpRegs};
use super::gstage::{self, GuestPerms};
use super::guest_sbi::GuestMemoryRead;
use super::guest_tlb::{forget_loaded_hgatp, hfence_gvma_all};
use super::sv39::PAGE_SIZE;
use super::sv39::PteFlags;
use super::vcpu::{GuestVm, HartState, Vcpu};
use super::vs_csrs::VsCsrs;
use super::world_switch::GuestFrame;
use crate::arch::frame_tables::IdentityWalk;
use crate::arch::frame_tables::{FrameTables, zero_frames};
use crate::arch::guest_ram::{IoreqFrames, VmRam};
use crate::frame::FrameAllocator;
use crate::vm::boot_ranges;
use crate::vm::console::ConsoleLine;
use crate::vm::ioreq_path::VcpuRun;
use crate::vm::stats::VcpuStats;
use crate::vm::tlb_tag::TlbTag;
use crate::vm::vcpu_set::VcpuSet;
use crate::vm::{GUEST_RAM_BASE, Vm, VmName};
use mica_boot::MemRange;

/// Frames shared with the ioreq task: the ioreq page, the posted-write ring.
const SHARED_FRAMES: usize = 2;

impl GuestVm {
    /// Builds VM `name` with `ram_bytes` (a multiple of 2 MiB) of zeroed RAM
    /// at [`GUEST_RAM_BASE`], its G-stage tables, the VMID `tag` (flushed
    /// before the first entry when another VM used it), a free ioreq page
    /// and `vcpus` (1 to `MAX_VCPUS`) vCPUs, stopped until
    /// [`GuestVm::start`] starts vCPU 0.
    pub fn create<const W: usize>(
        frames: &mut FrameAllocator<W>,
        name: VmName,
        ram_bytes: u64,
        vcpus: usize,
        tag: TlbTag,
    ) -> Result<Self, Error> {
        if vcpus == 0 || vcpus > ipc::syscall::MAX_VCPUS {
            return Err(Error::InvalidArgument);
        }
        let ram_frames = (ram_bytes / PAGE_SIZE) as usize;
        let ram = frames
            .alloc_contiguous(ram_frames, 512)
            .map_err(|_| Error::OutOfMemory)?;
        let Ok(root) = frames.alloc_contiguous(gstage::ROOT_FRAMES, gstage::ROOT_FRAMES) else {
            frames.free_contiguous(ram, ram_frames);
            return Err(Error::OutOfMemory);
        };
        // The ioreq page and, right after it, the posted-write ring.
        let Ok(ioreq_frame) = frames.alloc_contiguous(SHARED_FRAMES, 1) else {
            frames.free_contiguous(ram, ram_frames);
            frames.free_contiguous(root, gstage::ROOT_FRAMES);
            return Err(Error::OutOfMemory);
        };
        zero_frames(ram, ram_frames);
        zero_frames(root, gstage::ROOT_FRAMES);
        zero_frames(ioreq_frame, SHARED_FRAMES);
        let mut vm = GuestVm {
            vm: Vm::new(name, ram_bytes),
            root,
            vmid: tag.id,
            vmid_stale: if tag.reused { u64::MAX } else { 0 },
            vvma_stale: 0,
            icache_stale: 0,
            console: ConsoleLine::new(),
            io: IoreqFrames::new(ioreq_frame, ioreq_frame + PAGE_SIZE),
            vcpus: VcpuSet::new(Vcpu::new(0), (1..vcpus as u8).map(Vcpu::new).collect()),
            ram: VmRam {
                start: ram,
                bytes: ram_bytes,
            },
            tables: Vec::new(),
            dtb_gpa: 0,
            stray_reported: false,
            bad_completion_reported: false,
        };
        *vm.io.page() = IoreqPage::new();
        let mapped = gstage::map_range(
            &mut FrameTables::recording(frames, &mut vm.tables),
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

    /// Whether writes were posted since the ioreq task last heard.
    pub fn take_posted_news(&mut self) -> bool {
        self.io.posting.take_news()
    }

    /// Writes the generation ID at the start of the generation-ID page;
    /// returns its guest-physical address.
    pub fn write_genid(&mut self, id: [u8; 16]) -> Result<u64, Error> {
        Ok(GUEST_RAM_BASE + self.ram.write_genid(id)?)
    }

    /// Copies all of `src`'s RAM over the start of this VM's;
    /// `Error::InvalidArgument` (nothing copied) if it is smaller.
    pub fn clone_ram_from(&mut self, src: &GuestVm) -> Result<(), Error> {
        self.ram.clone_from(&src.ram)
    }

    /// Copies a guest image to [`GUEST_IMAGE_OFFSET`] in RAM.
    pub fn load_image(&mut self, image: &[u8]) -> Result<(), Error> {
        self.ram.copy_in(GUEST_IMAGE_OFFSET, image)
    }

    /// `vm_load`: copies an image (kernel, initrd or raw guest) to `offset`
    /// in RAM; it must end at or below the generation-ID page.
    pub fn load_at(&mut self, offset: u64, image: &[u8]) -> Result<(), Error> {
        boot_ranges::check_fill(self.vm.ram_bytes, offset, image.len() as u64)?;
        self.ram.copy_in(offset, image)
    }

    /// The `len` bytes of RAM at guest-physical `gpa` a device model reads
    /// or writes (`vm_ram_read`, `vm_ram_write`).
    pub fn dma_window(&mut self, gpa: u64, len: usize) -> Result<&mut [u8], Error> {
        self.ram.dma_window(GUEST_RAM_BASE, gpa, len)
    }

    /// `vm_write_ram`: copies `bytes` (a chunk of a device tree) to
    /// `offset` in RAM, below the generation-ID page.
    pub fn write_ram(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        self.load_at(offset, bytes)
    }

    /// Copies a device tree (at most 4 KiB) to the top page of RAM;
    /// returns its guest-physical address.
    pub fn set_dtb(&mut self, dtb: &[u8]) -> Result<u64, Error> {
        self.dtb_gpa = GUEST_RAM_BASE + self.ram.set_top_page(dtb)?;
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
    /// 0, a1 = the device tree, satp/vsatp 0; the other vCPUs are stopped
    /// (the guest starts them with SBI HSM); the VM runs again.
    fn enter(&mut self, pc: u64) {
        let dtb = self.dtb_gpa as usize;
        for vcpu in self.vcpus.iter_mut() {
            if vcpu.id == 0 {
                vcpu.enter(pc, 0, dtb);
                vcpu.stats = VcpuStats::new();
            } else {
                *vcpu = Vcpu::new(vcpu.id);
            }
        }
        self.vcpus.clear_wakeups();
        self.stray_reported = false;
        self.bad_completion_reported = false;
        self.console = ConsoleLine::new();
        self.vm = self.vm.restarted();
    }

    /// Stops every vCPU, drops any I/O request, zeroes RAM and forgets the
    /// device tree.
    pub fn reset(&mut self) {
        self.quiesce();
        // Every hart is out of the guest: a run's posting lease comes back.
        self.io.settle_any();
        for vcpu in self.vcpus.iter_mut() {
            // A hart kicked out of a run of it finds the run gone, and
            // what it was sent goes with the run.
            vcpu.on_cpu = None;
            vcpu.hvip_set = 0;
            vcpu.hvip_clear = 0;
            vcpu.run = VcpuRun::Stopped;
            vcpu.hsm = HartState::Stopped;
            vcpu.pending = None;
        }
        self.vcpus.clear_wakeups();
        *self.io.page() = IoreqPage::new();
        self.ram.zero();
        self.dtb_gpa = 0;
    }

    /// Returns every frame of the VM to the allocator (its VMID goes back
    /// with its record, `crate::vm::control::destroy`).
    pub fn destroy<const W: usize>(mut self, frames: &mut FrameAllocator<W>) {
        // No hart may be in the guest when its memory goes.
        self.quiesce();
        let ram_frames = (self.vm.ram_bytes / PAGE_SIZE) as usize;
        frames.free_contiguous(self.ram.start, ram_frames);
        frames.free_contiguous(self.root, gstage::ROOT_FRAMES);
        for table in self.tables.drain(..) {
            let _ = frames.free(table);
        }
        frames.free_contiguous(self.io.ioreq, SHARED_FRAMES);
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
        let mut vm = Self::create(frames, name, ram_bytes, 1, tag)?;
        if let Err(e) = vm.load_image(image) {
            vm.destroy(frames);
            return Err(e);
        }
        vm.start();
        Ok(vm)
    }
}

impl Vcpu {
    /// vCPU `id`, stopped, with nothing in its registers.
    pub(super) fn new(id: u8) -> Self {
        Vcpu {
            id,
            hsm: HartState::Stopped,
            frame: Box::new(GuestFrame::default()),
            on_cpu: None,
            last_cpu: u8::MAX,
            hvip_set: 0,
            hvip_clear: 0,
            vs: VsCsrs::default(),
            run: VcpuRun::Stopped,
            pending: None,
            deadline: None,
            fp: FpRegs::default(),
            fp_token: FpOwner::fresh_token(),
            stats: VcpuStats::new(),
        }
    }

    /// Starts the vCPU as a hart starts (the boot protocol, SBI HSM
    /// `hart_start`): in S-mode at `pc` with a0 = `a0`, a1 = `a1`, the
    /// other registers zero, satp 0, interrupts off, no timer set, no FP
    /// state.
    pub(super) fn enter(&mut self, pc: u64, a0: usize, a1: usize) {
        let mut frame = GuestFrame::default();
        frame.sepc = pc as usize;
        frame.regs[10] = a0;
        frame.regs[11] = a1;
        // The first entry is in VS-mode (the guest's supervisor).
        frame.sstatus = super::csr::SSTATUS_SPP;
        *self.frame = frame;
        self.hvip_set = 0;
        self.hvip_clear = 0;
        self.vs = VsCsrs::default();
        self.vs.vstimecmp = usize::MAX;
        self.run = VcpuRun::Runnable;
        self.hsm = HartState::Started;
        self.pending = None;
        self.deadline = None;
        self.fp = FpRegs::default();
        self.fp_token = FpOwner::fresh_token();
    }
}

/// Guest RAM read through the G-stage tables.
pub(super) struct GuestRam {
    pub(super) root: u64,
    /// The VM's own RAM (host-physical: first frame, bytes): every
    /// translation must land in it. Kept raw: most SBI calls read no guest
    /// memory, and the range is only built for a read.
    pub(super) ram: u64,
    pub(super) ram_bytes: u64,
}

impl GuestVm {
    /// This VM's RAM as the kernel reads it for the guest.
    #[inline]
    pub(super) fn guest_ram(&self) -> GuestRam {
        GuestRam {
            root: self.root,
            ram: self.ram.start,
            ram_bytes: self.vm.ram_bytes,
        }
    }
}

impl GuestMemoryRead for GuestRam {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let own = MemRange::new(self.ram, self.ram_bytes);
        crate::translated::copy_from(
            gpa,
            buf,
            PAGE_SIZE,
            |at| {
                gstage::translate(&mut IdentityWalk, self.root, at)
                    .filter(|(_, flags)| flags.contains(PteFlags::R))
                    .map(|(hpa, _)| hpa)
            },
            // Only the VM's own RAM, and only RAM, is read for it.
            |hpa, n| crate::ram::lies_in(own, hpa, n) && crate::ram::is_ram(hpa, n),
            |hpa, dst| {
                // SAFETY: `copy_from` passes `hpa..hpa+len` only inside one
                // guest page the VM's G-stage maps readable and that lies in
                // the VM's own RAM frames (checked above): kernel-owned,
                // identity-mapped RAM. The guest cannot change it meanwhile
                // (it is not running); `dst` is a kernel buffer.
                unsafe {
                    core::ptr::copy_nonoverlapping(hpa as *const u8, dst.as_mut_ptr(), dst.len())
                };
            },
        )
    }
}
