//! An x86 VM's memory over its life: RAM, nested page tables (EPT on
//! VMX), a VMCB or VMCS, its ASID (the VPID on VMX, handed out by
//! `crate::vm::tlb_tag`), the ioreq page and
//! the posted-write ring at create (SVM or VMX is switched on with the first VM); the image and the boot-info block copied in; the long-mode entry
//! state at start (identity tables the kernel writes at low guest
//! addresses, see `ipc::syscall::X86_GUEST_PML4`); zeroed RAM at reset and
//! every frame back to the allocator at destroy.

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use ipc::Error;
use ipc::ioreq_abi::page::IoreqPage;
use ipc::syscall::{GUEST_IMAGE_OFFSET, GUEST_RAM_BASE, X86_GUEST_PML4, X86_GUEST_STACK_TOP};
use log::{info, warn};

use super::guest::{GuestVcpu, GuestVm};
use super::msr;
use super::pt4::{self, Flags, PAGE_SIZE, TableMemory};
use super::svm::{self, IOPM_BYTES, MSRPM_BYTES};
use super::vcpu::Vcpu;
use super::virt::{self, Backend};
use super::vmx_controls::Controls;
use super::{vmx, vmx_vcpu};
use crate::arch::frame_tables::FrameTables;
use crate::arch::guest_ram::{IoreqFrames, VmRam};
use crate::frame::FrameAllocator;
use crate::vm::tlb_tag::TlbTag;
use crate::vm::vcpu_set::VcpuSet;
use crate::vm::{StopReason, Vm, VmName, VmState};

/// The guest's identity map: 1 GiB of 2 MiB pages (present, writable,
/// large), so an access anywhere below 1 GiB reaches the nested tables.
const IDENTITY_BYTES: u64 = 1 << 30;
const LARGE: u64 = 2 << 20;
const PRESENT_WRITABLE: u64 = 0b11;
const PAGE_SIZE_BIT: u64 = 1 << 7;

/// The SVM frames every VM shares, set up with the first VM: the I/O
/// permission map (every port intercepted; 0 until then) and the MSR
/// permission map (every MSR but the guest-owned ones, see
/// `msr::GUEST_OWNED`, intercepted). The host's save areas are per CPU
/// (`svm`).
static IOPM: AtomicU64 = AtomicU64::new(0);
static MSRPM: AtomicU64 = AtomicU64::new(0);

fn fill(addr: u64, bytes: u64, value: u8) {
    // SAFETY: callers pass frames this module owns (a VM's RAM, tables,
    // VMCB, ioreq page, the shared SVM maps): identity-mapped kernel RAM
    // nothing else uses.
    unsafe { core::ptr::write_bytes(addr as *mut u8, value, bytes as usize) };
}

fn alloc_filled<const W: usize>(
    frames: &mut FrameAllocator<W>,
    count: usize,
    value: u8,
) -> Result<u64, Error> {
    let start = frames
        .alloc_contiguous(count, 1)
        .map_err(|_| Error::OutOfMemory)?;
    fill(start, count as u64 * PAGE_SIZE, value);
    Ok(start)
}

/// What a new vCPU needs from its backend.
enum Ready {
    /// SVM with the host's VMSAVE area and the shared I/O and MSR
    /// permission maps.
    Svm { iopm: u64, msrpm: u64 },
    /// VMX with the control words, the VMCS revision id, the shared MSR
    /// bitmap and the host's MSR area.
    Vmx {
        controls: Controls,
        revision: u32,
        bitmap: u64,
        host_msrs: u64,
    },
}

/// Turns SVM or VMX on once (a refusal on a CPU with neither).
fn backend_ready<const W: usize>(frames: &mut FrameAllocator<W>) -> Result<Ready, Error> {
    match virt::probe() {
        Some(Backend::Svm) => svm_ready(frames),
        Some(Backend::Vmx) => vmx_ready(frames),
        None => Err(Error::KernelRefused),
    }
}

/// A fresh MSR permission map of `bytes` (SVM's MSRPM, VMX's MSR bitmap)
/// that intercepts every MSR but the guest-owned ones (`msr::GUEST_OWNED`),
/// which `pass` clears in it.
fn msr_map<const W: usize>(
    frames: &mut FrameAllocator<W>,
    bytes: u64,
    pass: fn(&mut [u8], u32) -> bool,
) -> Result<u64, Error> {
    let frame = alloc_filled(frames, (bytes / PAGE_SIZE) as usize, 0xff)?;
    // SAFETY: `frame..frame + bytes` are the frames just allocated for the
    // map, identity-mapped kernel RAM no VMCB or VMCS uses yet.
    let map = unsafe { core::slice::from_raw_parts_mut(frame as *mut u8, bytes as usize) };
    for index in msr::GUEST_OWNED {
        pass(map, index);
    }
    Ok(frame)
}

/// Makes the permission maps every VM shares, once (every CPU turned SVM
/// on as it came up, see `smp`).
fn svm_ready<const W: usize>(frames: &mut FrameAllocator<W>) -> Result<Ready, Error> {
    if IOPM.load(Ordering::Relaxed) == 0 {
        let iopm = alloc_filled(frames, (IOPM_BYTES / PAGE_SIZE) as usize, 0xff)?;
        let msrpm = msr_map(frames, MSRPM_BYTES, msr::msrpm_pass)?;
        MSRPM.store(msrpm, Ordering::Relaxed);
        IOPM.store(iopm, Ordering::Relaxed);
    }
    Ok(Ready::Svm {
        iopm: IOPM.load(Ordering::Relaxed),
        msrpm: MSRPM.load(Ordering::Relaxed),
    })
}

/// The VMXON region once VMX is on (0 until then), the MSR bitmap every
/// VM shares (every MSR but `msr::GUEST_OWNED` intercepted) and the host's
/// MSR area VM exits load.
static VMXON: AtomicU64 = AtomicU64::new(0);
static MSR_BITMAP: AtomicU64 = AtomicU64::new(0);
static HOST_MSRS: AtomicU64 = AtomicU64::new(0);

/// Switches VMX on once (reported in one line) and reads the controls;
/// a CPU that cannot is refused, with the reason logged.
fn vmx_ready<const W: usize>(frames: &mut FrameAllocator<W>) -> Result<Ready, Error> {
    if VMXON.load(Ordering::Relaxed) == 0 {
        if MSR_BITMAP.load(Ordering::Relaxed) == 0 {
            let bitmap = msr_map(frames, PAGE_SIZE, msr::vmx_bitmap_pass)?;
            let host_msrs = alloc_filled(frames, 1, 0)?;
            vmx_vcpu::fill_host_msr_area(host_msrs);
            HOST_MSRS.store(host_msrs, Ordering::Relaxed);
            MSR_BITMAP.store(bitmap, Ordering::Relaxed);
        }
        let region = alloc_filled(frames, 1, 0)?;
        match vmx::enable(region) {
            Ok(revision) => {
                VMXON.store(region, Ordering::Relaxed);
                info!("vmx: VMXON done (VMCS revision {revision:#x})");
            }
            Err(e) => {
                let _ = frames.free(region);
                warn!("vmx: cannot switch VMX on: {e}");
                return Err(Error::KernelRefused);
            }
        }
    }
    match vmx::controls() {
        Ok((controls, revision)) => Ok(Ready::Vmx {
            controls,
            revision,
            bitmap: MSR_BITMAP.load(Ordering::Relaxed),
            host_msrs: HOST_MSRS.load(Ordering::Relaxed),
        }),
        Err(e) => {
            warn!("vmx: cannot run guests: {e}");
            Err(Error::KernelRefused)
        }
    }
}

/// The ASIDs (SVM) or VPIDs (VMX) this CPU has for guests, `1..=n`
/// ([`virt::tlb_tags`]); 0 when it has none Mica can use.
pub fn guest_tlb_tags() -> u16 {
    let backend = virt::probe();
    let nasid = match backend {
        Some(Backend::Svm) => core::arch::x86_64::__cpuid(SVM_FEATURES).ebx,
        _ => 0,
    };
    let invvpid =
        backend == Some(Backend::Vmx) && vmx::controls().is_ok() && vmx_vcpu::vpids_flushable();
    virt::tlb_tags(backend, nasid, invvpid)
}

/// CPUID leaf of the SVM features (EBX: NASID).
const SVM_FEATURES: u32 = 0x8000_000a;

impl GuestVm {
    /// Builds VM `name` with `ram_bytes` (a multiple of 2 MiB, at least
    /// 2 MiB) of zeroed RAM at guest-physical 0, its nested tables, VMCB,
    /// the ASID (VPID) `tag` and a free ioreq page; its vCPU is stopped
    /// until `start`. An x86 VM has one vCPU for now: `vcpus` other than 1
    /// is `InvalidArgument`. `KernelRefused` for tag 0, the host's: a CPU without
    /// usable ASIDs or VPIDs runs no guest.
    ///
    /// A tag another VM had needs no step here: a VM runs only after
    /// `start`, and every start flushes the tag before the first entry
    /// (SVM: TLB_CONTROL 01h, which flushes every ASID's entries on VMRUN,
    /// the one flush encoding all SVM CPUs accept; VMX: INVVPID
    /// single-context with INVEPT).
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
        if ram_bytes < LARGE || !ram_bytes.is_multiple_of(LARGE) || ram_bytes > IDENTITY_BYTES {
            return Err(Error::InvalidArgument);
        }
        let ready = backend_ready(frames)?;
        let leaf = match ready {
            Ready::Svm { .. } => Flags::GUEST_RWX,
            Ready::Vmx { .. } => Flags::EPT_RWX_WB,
        };
        if tag.id == 0 {
            warn!("{name}: this CPU has no ASID or VPID for guests");
            return Err(Error::KernelRefused);
        }
        let asid = u32::from(tag.id);
        let ram_frames = (ram_bytes / PAGE_SIZE) as usize;
        let Ok(ram) = frames.alloc_contiguous(ram_frames, 512) else {
            return Err(Error::OutOfMemory);
        };
        let mut tables = Vec::new();
        let mut nested = FrameTables::recording(frames, &mut tables);
        let built = (|| {
            let ioreq = nested.alloc_table().ok_or(Error::OutOfMemory)?;
            let ring = nested.alloc_table().ok_or(Error::OutOfMemory)?;
            let root = nested.alloc_table().ok_or(Error::OutOfMemory)?;
            // A VMCB or VMCS per vCPU; VMX keeps each vCPU's switched MSRs
            // in a frame of the VM's too.
            let mut state = Vec::new();
            for _ in 0..vcpus {
                let vmcb = nested.alloc_table().ok_or(Error::OutOfMemory)?;
                let msr_area = match ready {
                    Ready::Vmx { .. } => nested.alloc_table().ok_or(Error::OutOfMemory)?,
                    Ready::Svm { .. } => 0,
                };
                state.push((vmcb, msr_area));
            }
            pt4::map_range(&mut nested, root, GUEST_RAM_BASE, ram, ram_bytes, leaf)
                .map_err(|_| Error::OutOfMemory)?;
            Ok::<_, Error>((state, ioreq, ring, root))
        })();
        let (state, ioreq_frame, posted_frame, npt_root) = match built {
            Ok(parts) => parts,
            Err(e) => {
                frames.free_contiguous(ram, ram_frames);
                for table in tables {
                    let _ = frames.free(table);
                }
                return Err(e);
            }
        };
        let mut all = state.into_iter().enumerate().map(|(id, (vmcb, msr_area))| {
            let vcpu = match ready {
                Ready::Svm { iopm, msrpm } => {
                    Vcpu::Svm(svm::Vcpu::new(vmcb, iopm, msrpm, npt_root, asid))
                }
                Ready::Vmx {
                    controls,
                    revision,
                    bitmap,
                    host_msrs,
                } => Vcpu::Vmx(vmx_vcpu::Vcpu::new(
                    vmcb,
                    revision,
                    &controls,
                    npt_root,
                    asid,
                    vmx_vcpu::MsrFrames {
                        bitmap,
                        host: host_msrs,
                        guest: msr_area,
                    },
                )),
            };
            GuestVcpu::new(id as u8, vcpu)
        });
        // `vcpus` is at least 1 (checked above).
        let Some(first) = all.next() else {
            return Err(Error::InvalidArgument);
        };
        let mut vm = GuestVm {
            vm: Vm::new(name, ram_bytes),
            vcpus: VcpuSet::new(first, all.collect()),
            tables,
            ram: VmRam {
                start: ram,
                bytes: ram_bytes,
            },
            io: IoreqFrames::new(ioreq_frame, posted_frame),
            boot_info_gpa: 0,
        };
        fill(ram, ram_bytes, 0);
        *vm.io.page() = IoreqPage::new();
        Ok(vm)
    }

    /// Whether writes were posted since the ioreq task last heard.
    pub fn take_posted_news(&mut self) -> bool {
        self.io.posting.take_news()
    }

    /// The `N` bytes of guest RAM at guest-physical `gpa`, if they lie
    /// inside it and `gpa` is `N`-aligned.
    fn read_ram<const N: usize>(&self, gpa: u64) -> Option<[u8; N]> {
        let offset = gpa.checked_sub(GUEST_RAM_BASE)?;
        let end = offset.checked_add(N as u64)?;
        if end > self.vm.ram_bytes || !offset.is_multiple_of(N as u64) {
            return None;
        }
        let mut bytes = [0u8; N];
        // SAFETY: `ram + offset .. ram + end` lies inside this VM's RAM
        // (checked above): identity-mapped frames it owns, read while its
        // vCPU is out of the guest (this CPU runs the exit handler).
        unsafe {
            core::ptr::copy_nonoverlapping(
                (self.ram.start + offset) as *const u8,
                bytes.as_mut_ptr(),
                N,
            );
        }
        Some(bytes)
    }

    /// The guest-physical quadword at `gpa` (8-byte aligned, in RAM).
    pub(super) fn read_u64(&self, gpa: u64) -> Option<u64> {
        self.read_ram::<8>(gpa).map(u64::from_le_bytes)
    }

    /// The guest-physical byte at `gpa` (in RAM).
    pub(super) fn read_u8(&self, gpa: u64) -> Option<u8> {
        self.read_ram::<1>(gpa).map(|[b]| b)
    }

    /// Copies a flat guest image to `GUEST_IMAGE_OFFSET` (1 MiB).
    pub fn load_image(&mut self, image: &[u8]) -> Result<(), Error> {
        self.ram.copy_in(GUEST_IMAGE_OFFSET, image)
    }

    /// `vm_load` at `offset`: x86 guests are flat images entered at 1 MiB,
    /// so any other offset is `Error::InvalidArgument`.
    pub fn load_at(&mut self, offset: u64, image: &[u8]) -> Result<(), Error> {
        if offset != GUEST_IMAGE_OFFSET {
            return Err(Error::InvalidArgument);
        }
        self.load_image(image)
    }

    /// The `len` bytes of RAM at guest-physical `gpa` a device model reads
    /// or writes (`vm_ram_read`, `vm_ram_write`).
    pub fn dma_window(&mut self, gpa: u64, len: usize) -> Result<&mut [u8], Error> {
        self.ram.dma_window(GUEST_RAM_BASE, gpa, len)
    }

    /// `vm_write_ram`: copies `bytes` into RAM at `offset`, which must end
    /// at or below the generation-ID page.
    pub fn write_ram(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        self.ram.copy_in(offset, bytes)
    }

    /// `vm_start`: the entry must be the image's (1 MiB) and the boot-info
    /// offset the top page's (`Error::InvalidArgument` otherwise).
    pub fn start_at(&mut self, entry: u64, boot_info: u64) -> Result<(), Error> {
        if entry != GUEST_IMAGE_OFFSET || boot_info != self.ram.top_page_offset() {
            return Err(Error::InvalidArgument);
        }
        self.start();
        Ok(())
    }

    /// Copies the boot-info block (at most 4 KiB) to the top page of RAM;
    /// returns its guest-physical address.
    pub fn set_dtb(&mut self, info: &[u8]) -> Result<u64, Error> {
        self.boot_info_gpa = GUEST_RAM_BASE + self.ram.set_top_page(info)?;
        Ok(self.boot_info_gpa)
    }

    /// Writes the guest's identity tables (PML4, PDPT, one PD of 2 MiB
    /// pages for the first GiB) at `X86_GUEST_PML4`.
    fn write_identity_tables(&mut self) {
        let pml4 = X86_GUEST_PML4;
        let (pdpt, pd) = (pml4 + PAGE_SIZE, pml4 + 2 * PAGE_SIZE);
        let mut words = [0u64; 512];
        words[0] = pdpt | PRESENT_WRITABLE;
        let _ = self.ram.copy_in(pml4, words_bytes(&words));
        words[0] = pd | PRESENT_WRITABLE;
        let _ = self.ram.copy_in(pdpt, words_bytes(&words));
        for (i, w) in words.iter_mut().enumerate() {
            *w = (i as u64 * LARGE) | PRESENT_WRITABLE | PAGE_SIZE_BIT;
        }
        let _ = self.ram.copy_in(pd, words_bytes(&words));
    }

    /// Puts vCPU 0 in the entry state: 64-bit long mode, CPL 0, interrupts
    /// off, identity paging, RIP at the image, RSP at `X86_GUEST_STACK_TOP`,
    /// RDI = the boot-info block (0 without one); the other vCPUs are
    /// stopped until vCPU 0 starts them (`X86_HYPERCALL_VCPU_START`); the VM
    /// runs again.
    pub fn start(&mut self) {
        self.write_identity_tables();
        let entry = GUEST_RAM_BASE + GUEST_IMAGE_OFFSET;
        for v in self.vcpus.iter_mut() {
            v.stop();
        }
        self.vcpus.clear_wakeups();
        self.vcpus.select(0);
        *self.io.page() = IoreqPage::new();
        self.vm = self.vm.restarted();
        let entered = self
            .vcpus
            .cur
            .start(entry, X86_GUEST_STACK_TOP, self.boot_info_gpa);
        if let Err(e) = entered {
            warn!("vmx: {} cannot enter long mode: {e}", self.vm.name);
            self.vm.leave(
                VmState::Stopped(StopReason::UnhandledException {
                    code: u64::MAX,
                    value: 0,
                }),
                entry,
                crate::ticks::uptime_ms(super::timer::timer_now()),
            );
            self.vcpus.cur.stop();
        }
    }

    /// Stops every vCPU, drops any I/O request, zeroes RAM and forgets the
    /// boot-info block.
    pub fn reset(&mut self) {
        // No CPU may be in a guest of the VM while its vCPUs change; then a
        // run's posting lease comes back.
        self.quiesce();
        self.io.settle_any();
        for v in self.vcpus.iter_mut() {
            // A CPU kicked out of a run of it finds the run gone.
            v.on_cpu = None;
            v.stop();
        }
        self.vcpus.clear_wakeups();
        *self.io.page() = IoreqPage::new();
        self.ram.zero();
        self.boot_info_gpa = 0;
    }

    /// Writes the VM generation ID at the start of the generation-ID page;
    /// returns its guest-physical address.
    pub fn write_genid(&mut self, id: [u8; 16]) -> Result<u64, Error> {
        Ok(GUEST_RAM_BASE + self.ram.write_genid(id)?)
    }

    /// Copies all of `src`'s RAM over the start of this VM's;
    /// `Error::InvalidArgument` (nothing copied) if it is smaller.
    pub fn clone_ram_from(&mut self, src: &GuestVm) -> Result<(), Error> {
        self.ram.clone_from(&src.ram)
    }

    /// Returns every frame of the VM (RAM, tables, VMCB, ioreq page); its
    /// ASID goes back with its record (`crate::vm::control::destroy`).
    pub fn destroy<const W: usize>(mut self, frames: &mut FrameAllocator<W>) {
        // No CPU may be in a guest of the VM when its memory, VMCBs or
        // VMCSs and frames go.
        self.quiesce();
        for v in self.vcpus.iter_mut() {
            v.frame.vcpu.release();
        }
        frames.free_contiguous(self.ram.start, (self.vm.ram_bytes / PAGE_SIZE) as usize);
        for table in self.tables.drain(..) {
            let _ = frames.free(table);
        }
    }
}

/// The bytes of a table.
fn words_bytes(words: &[u64; 512]) -> &[u8] {
    // SAFETY: 512 u64 are 4096 initialised bytes with no padding; u8 has
    // no alignment requirement; the borrow follows `words`.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), 4096) }
}
