//! The system-call ABI between the kernel and user tasks: which register
//! carries what, the call numbers, and the fixed user addresses.
//!
//! RISC-V:
//! - `ecall` with the call number in `a7` and arguments in `a0`-`a5`.
//! - On return `a0` is the status: [`OK`] (0) or an [`Error::code`]; extra
//!   results are in `a1`-`a3`. Every other register is preserved.
//! - A task starts at its ELF entry with `sp` at [`STACK_TOP`] (16-byte
//!   aligned), `a0` = [`IPC_BUFFER`] and `a1` = how many times the
//!   supervisor has restarted it (0 on the first start).
//!
//! x86_64 (`syscall` instruction, Linux-like argument order):
//! - the call number in `rax`, arguments in `rdi`, `rsi`, `rdx`, `r10`,
//!   `r8`, `r9` (a0-a5 above, in that order).
//! - On return `rax` is the status and the extra results are in `rdi`,
//!   `rsi`, `rdx` (a1-a3). `rcx` and `r11` are clobbered (the instruction
//!   itself uses them); every other register is preserved.
//! - A task starts in ring 3 at its ELF entry with `rsp` at [`STACK_TOP`],
//!   `rdi` = [`IPC_BUFFER`] and `rsi` = its restart count, interrupts on.
//! - Every user address below is [`USER_BASE`] higher than on RISC-V: the
//!   kernel identity-maps low physical memory there, so tasks live in the
//!   second 512 GiB (their own top-level page-table entry).
//!
//! On both:
//! - Message bytes travel in the task's **IPC buffer**: one 4 KiB page at
//!   the fixed user address [`IPC_BUFFER`], of which the first
//!   [`MAX_MESSAGE_SIZE`] bytes are the message. `call`, `reply` and
//!   `reply_recv` send the first `len` bytes of it; a received message or a
//!   reply lands at its start. The kernel copies between the frames behind
//!   two buffers itself and never follows a user pointer into a message.

use crate::{Error, MAX_MESSAGE_SIZE};

/// Status of a call that succeeded.
pub const OK: usize = 0;

/// Where the user address layout starts: 0 on RISC-V (and on the host),
/// 512 GiB on x86_64, whose kernel identity-maps the low addresses.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub const USER_BASE: usize = 0x80_0000_0000;
/// Where the user address layout starts: 0 on RISC-V (and on the host),
/// 512 GiB on x86_64, whose kernel identity-maps the low addresses.
#[cfg(not(all(target_arch = "x86_64", target_os = "none")))]
pub const USER_BASE: usize = 0;

/// The user address of every task's IPC buffer page.
pub const IPC_BUFFER: usize = USER_BASE + 0x2000_0000;
/// Bytes in the IPC buffer page (only [`MAX_MESSAGE_SIZE`] are a message).
pub const IPC_BUFFER_SIZE: usize = 4096;
/// One past the highest byte of a task's stack.
pub const STACK_TOP: usize = USER_BASE + 0x4000_0000;
/// Bytes of stack every task gets, below [`STACK_TOP`].
pub const STACK_SIZE: usize = 64 * 1024;
/// Task images are linked at this address (`user/rt/link.ld`; the x86_64
/// build scripts pass `--defsym=MICA_IMAGE_BASE=...`).
pub const IMAGE_BASE: usize = USER_BASE + 0x1_0000;
/// Image segments must end at or below this address (below the IPC buffer).
pub const IMAGE_TOP: usize = IPC_BUFFER;

/// How many VMs the kernel can hold (VM numbers are `0..MAX_VMS`).
pub const MAX_VMS: usize = 16;
/// Most vCPUs one VM may have (`vm_create`'s `vcpus` is `1..=MAX_VCPUS`;
/// each has its own ioreq slot, PLIC context and hart id `0..vcpus`).
pub const MAX_VCPUS: usize = 8;
/// Where guest RAM starts in every RISC-V VM (QEMU virt's RAM base).
pub const RISCV_GUEST_RAM_BASE: u64 = 0x8000_0000;
/// Where a RISC-V guest image is loaded, from the start of RAM (Linux boot
/// protocol: 2 MiB).
pub const RISCV_GUEST_IMAGE_OFFSET: u64 = 0x20_0000;
/// x86 guests have RAM from guest-physical 0.
pub const X86_GUEST_RAM_BASE: u64 = 0;
/// Where an x86 guest's flat image is loaded and entered (1 MiB, clear of
/// the real-mode area).
///
/// x86 guest entry state (SVM): 64-bit long mode at CPL 0 with RFLAGS.IF
/// clear, RIP = 1 MiB (the image's first byte), RSP = [`X86_GUEST_STACK_TOP`],
/// RDI = the guest-physical address of the boot-info block (`MICA`, name
/// length u32, RAM bytes u64, vCPU count u32, name; in the top page of RAM;
/// 0 without one), other general registers 0. CR3 = [`X86_GUEST_PML4`]:
/// tables the kernel writes into guest RAM at start (PML4, PDPT and one PD
/// at 0x1000..0x4000) identity-map the first GiB with 2 MiB writable,
/// executable pages; CS is a flat 64-bit code segment, the data segments
/// flat, no GDT or IDT in guest memory (an exception is a triple fault,
/// which stops the VM). Every port is intercepted (served through the
/// ioreq slot as `Space::Pio`; a word or dword that runs past port 0xffff
/// is answered by the kernel: all-ones, or dropped); HLT sleeps until the
/// next host tick; CPUID answers the host's leaves without SVM; VMMCALL
/// (VMCALL on VMX) is a hypercall numbered by `rax`:
/// [`X86_HYPERCALL_NULL`] returns at once
/// (RIP advanced, registers unchanged); the vCPU calls
/// ([`X86_HYPERCALL_VCPU_START`], `_STOP`, `_STATUS`, `_ID`) and
/// [`X86_HYPERCALL_SEND_IPI`] are the multi-vCPU ABI (HLT with an
/// interrupt pending returns at once); any other number is
/// [`X86_HYPERCALL_POWER_OFF`].
pub const X86_GUEST_IMAGE_OFFSET: u64 = 0x10_0000;
/// x86 hypercall numbers (`rax` at VMMCALL/VMCALL), documented with the
/// guest entry state at [`X86_GUEST_IMAGE_OFFSET`].
/// The null hypercall ("MICA" then 1): the kernel's exit handler advances
/// RIP and re-enters the guest at once (for measuring the exit round trip).
pub const X86_HYPERCALL_NULL: u64 = 0x4d49_4341_0000_0001;
/// Power the VM off: this number, and every number not listed here.
pub const X86_HYPERCALL_POWER_OFF: u64 = 0;
/// Start vCPU `rdi`, which is stopped, at RIP `rsi` with RSP `rdx` and
/// RDI `r8`, in vCPU 0's entry state otherwise (64-bit long mode, CPL 0,
/// RFLAGS.IF clear, CR3 = [`X86_GUEST_PML4`], other registers 0, FP state
/// at reset, no IDT loaded). Every vCPU but 0 starts stopped. `rax` on
/// return: [`X86_HC_OK`], [`X86_HC_INVALID`] (no such vCPU) or
/// [`X86_HC_ALREADY_STARTED`].
pub const X86_HYPERCALL_VCPU_START: u64 = 0x4d49_4341_0000_0002;
/// The calling vCPU stops: it runs again only when a sibling starts it,
/// at the entry that start names. Its pending interrupts are dropped.
pub const X86_HYPERCALL_VCPU_STOP: u64 = 0x4d49_4341_0000_0003;
/// `rax` = [`X86_VCPU_STARTED`] or [`X86_VCPU_STOPPED`] for vCPU `rdi`,
/// or [`X86_HC_INVALID`] when the VM has no such vCPU.
pub const X86_HYPERCALL_VCPU_STATUS: u64 = 0x4d49_4341_0000_0004;
/// Sends interrupt vector `rsi` (32..=255) to every vCPU of mask `rdi`
/// (bit n = vCPU n; the caller may be one): each takes it through its IDT
/// once its RFLAGS.IF is set (no interrupt controller, no EOI; the guest
/// loads its own IDT, and a GDT that backs the selectors it runs on, CS
/// 0x08 and SS 0x10, which delivery and IRETQ load), and a
/// vCPU in HLT wakes at once. A vector sent again before it was taken is
/// taken once; pending vectors go highest first. `rax`: [`X86_HC_OK`], or
/// [`X86_HC_INVALID`] (a vector below 32, or a bit past the VM's vCPUs:
/// nothing is sent). A stopped vCPU in the mask gets nothing.
pub const X86_HYPERCALL_SEND_IPI: u64 = 0x4d49_4341_0000_0005;
/// `rax` = the calling vCPU's number.
pub const X86_HYPERCALL_VCPU_ID: u64 = 0x4d49_4341_0000_0006;
/// A hypercall's success.
pub const X86_HC_OK: u64 = 0;
/// A hypercall's argument is out of range (SBI's INVALID_PARAM, -3).
pub const X86_HC_INVALID: u64 = -3i64 as u64;
/// The vCPU to start is running already (SBI's ALREADY_STARTED, -7).
pub const X86_HC_ALREADY_STARTED: u64 = -7i64 as u64;
/// [`X86_HYPERCALL_VCPU_STATUS`]: the vCPU runs (or waits in HLT, or for
/// I/O).
pub const X86_VCPU_STARTED: u64 = 0;
/// [`X86_HYPERCALL_VCPU_STATUS`]: the vCPU is stopped.
pub const X86_VCPU_STOPPED: u64 = 1;

/// Where the kernel writes an x86 guest's identity page tables (PML4; the
/// PDPT and PD follow in the next two pages).
pub const X86_GUEST_PML4: u64 = 0x1000;
/// An x86 guest's initial RSP: the stack grows down from 1 MiB, below the
/// image, toward the page tables.
pub const X86_GUEST_STACK_TOP: u64 = 0x10_0000;
/// Where guest RAM starts in every VM of this kernel.
#[cfg(not(all(target_arch = "x86_64", target_os = "none")))]
pub const GUEST_RAM_BASE: u64 = RISCV_GUEST_RAM_BASE;
/// Where guest RAM starts in every VM of this kernel.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub const GUEST_RAM_BASE: u64 = X86_GUEST_RAM_BASE;
/// Where a guest image is loaded, from the start of RAM.
#[cfg(not(all(target_arch = "x86_64", target_os = "none")))]
pub const GUEST_IMAGE_OFFSET: u64 = RISCV_GUEST_IMAGE_OFFSET;
/// Where a guest image is loaded, from the start of RAM.
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub const GUEST_IMAGE_OFFSET: u64 = X86_GUEST_IMAGE_OFFSET;
/// The user address of the ioreq task's window of ioreq pages, one 4 KiB
/// page per VM number.
pub const IOREQ_PAGES: usize = USER_BASE + 0x3000_0000;
/// Where `ioreq_attach` maps VM `n`'s posted-write ring (`+ n * 4096`),
/// just after the ioreq pages of [`MAX_VMS`] VMs.
pub const POSTED_PAGES: usize = IOREQ_PAGES + MAX_VMS * 4096;
/// Most postable ranges per VM (`ioreq_post`).
pub const MAX_POSTED_RANGES: usize = 4;
/// The badge `recv` reports when it returns for pending ioreq work rather
/// than a message (a3 then holds the bit set of VMs with I/O pending).
pub const IOREQ_BADGE: usize = usize::MAX;

/// Capability slots every task finds at start (filled from the boot-image
/// manifest by the kernel).
pub mod slots {
    /// The receive right on the endpoint the task serves (if it serves one).
    pub const SERVE: usize = 0;
    /// The supervisor's notification of task deaths (bit = task slot).
    pub const DEATHS: usize = 1;
    /// The call right to endpoint `n` is in slot `CALL_BASE + n`.
    pub const CALL_BASE: usize = 16;
    /// The slot of the call right to endpoint `n`.
    pub const fn call(endpoint: usize) -> usize {
        CALL_BASE + endpoint
    }
}

/// Endpoint numbers of the services (the manifest's `serves`).
pub mod endpoints {
    /// The vm-manager: `ipc::vm` protocol.
    pub const VM_MANAGER: usize = 1;
    /// The ioreq service: `ipc::ioreq` protocol.
    pub const IOREQ: usize = 2;
    /// The device service: `ipc::devices` protocol.
    pub const DEVICES: usize = 3;
    /// The rng service: `ipc::rng` protocol, random bytes from the host's
    /// virtio-rng (RISC-V boot images only; endpoint 4 is the test
    /// crasher's).
    pub const RNG: usize = 5;
    /// The block service: `ipc::blk` protocol, the host's virtio-blk disks
    /// (RISC-V boot images only).
    pub const BLK: usize = 6;
}

/// The longest line `debug_write` accepts in one call.
pub const MAX_DEBUG_WRITE: usize = 256;

/// The badge every call of the supervisor (init) carries, so a server can
/// tell its requests apart; any other caller's badge is its task slot.
pub const SUPERVISOR_BADGE: u64 = u64::MAX - 1;

/// `restart`'s `serves` value for a task that serves no endpoint.
pub const SERVES_NOTHING: usize = usize::MAX;

/// The call numbers (`a7`). Pinned by a test: never renumber, only append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Sysno {
    /// `debug_write(ptr, len)`: prints `len` (at most [`MAX_DEBUG_WRITE`])
    /// bytes at `ptr` in the task's memory as console lines prefixed with
    /// the task's name: each `\n` starts a new prefixed line, control bytes
    /// and invalid UTF-8 are shown as escapes ([`crate::console_text`]).
    /// The range must be readable user memory of the task.
    DebugWrite = 0,
    /// `exit(status)`: ends the task; the supervisor is notified. No return.
    Exit = 1,
    /// `yield()`: lets other tasks of the same priority run.
    Yield = 2,
    /// `call(ep_slot, len) -> (reply_len)`: sends `len` bytes of the IPC
    /// buffer through the endpoint capability in `ep_slot` and waits for the
    /// reply, which overwrites the buffer. `Error::ServerDied` if the server
    /// died while it held the request.
    Call = 3,
    /// `recv(ep_slot) -> (len, badge)`: waits for a message on the endpoint
    /// capability in `ep_slot`; the message lands in the IPC buffer and
    /// `badge` names the capability it was sent through.
    Recv = 4,
    /// `reply(len)`: answers the last call received with `len` bytes.
    Reply = 5,
    /// `reply_recv(ep_slot, len) -> (len, badge)`: replies with `len` bytes
    /// (if a reply is owed) and then receives, in one call.
    ReplyRecv = 6,
    /// `signal(ntf_slot)`: ORs the capability's bits into the notification
    /// in `ntf_slot`, waking its waiter.
    Signal = 7,
    /// `wait(ntf_slot) -> (bits)`: waits until the notification has bits,
    /// takes and clears them.
    Wait = 8,
    /// `poll(ntf_slot) -> (bits)`: takes the notification's bits without
    /// waiting (0 if none).
    Poll = 9,
    /// `restart(task_slot) -> (new_slot, serves, lived_ms)`: supervisor
    /// only; starts a fresh copy of the dead task in `task_slot` from its
    /// image (its `a1` counts restarts). `serves` is the endpoint number
    /// the task serves ([`SERVES_NOTHING`] if none), `lived_ms` how long
    /// the dead copy ran (a supervisor tells a crash loop from a one-off).
    Restart = 10,
    /// `console_write(ptr, len)`: prints `len` (at most [`MAX_DEBUG_WRITE`])
    /// bytes as one hypervisor-console line, without the task-name prefix
    /// (guest console output, escaped by the writer: `vm0 | hello`). A line
    /// that is not printable text is shown escaped
    /// ([`crate::console_text::Checked`]). Needs the CONSOLE kernel right;
    /// `Error::PermissionDenied` otherwise.
    ConsoleWrite = 11,
    /// `vm_create(vm, ram_mib, vcpus)`: makes VM object `vm` (the
    /// vm-manager's slot number, below [`MAX_VMS`]) with `ram_mib` MiB of
    /// zeroed guest RAM at [`GUEST_RAM_BASE`], its G-stage tables, a VMID,
    /// its ioreq page and `vcpus` (1 to [`MAX_VCPUS`]) stopped vCPUs: at
    /// `vm_start` vCPU 0 runs and the others wait for the guest to start
    /// them (RISC-V SBI HSM `hart_start`). Needs VM_CONTROL.
    /// `Error::VmExists`, `Error::OutOfMemory`, `Error::InvalidArgument`
    /// (also for more vCPUs than the architecture's backend runs).
    VmCreate = 12,
    /// `vm_load(vm, image, offset) -> (image_len)`: copies boot-image guest
    /// entry number `image` (numbered as `image_name` numbers them: the
    /// kernel knows no names, the vm-manager finds a name's number) into
    /// the VM's RAM, `offset` bytes from its start (a raw image at
    /// [`GUEST_IMAGE_OFFSET`]; a Linux kernel at its `text_offset`, an
    /// initrd where the vm-manager placed it). `Error::UnknownImage` past
    /// the last entry;
    /// `Error::OutOfMemory` if it would end above the generation-ID page
    /// (or `offset + len` overflows). On x86_64 `offset` must be
    /// [`X86_GUEST_IMAGE_OFFSET`] (`Error::InvalidArgument` otherwise).
    VmLoad = 13,
    /// `vm_set_dtb(vm, len) -> (dtb_gpa)`: copies the first `len` (at most
    /// [`IPC_BUFFER_SIZE`]) bytes of the IPC buffer page into the top page
    /// of the VM's RAM as its device tree (pass its offset to `vm_start`).
    /// A larger tree goes below the generation-ID page with `vm_write_ram`.
    VmSetDtb = 14,
    /// `vm_start(vm, entry, dtb)`: vCPU 0 starts at `GUEST_RAM_BASE +
    /// entry` with a0 = 0 (hart id), a1 = `GUEST_RAM_BASE + dtb` (the device
    /// tree the caller wrote there with `vm_set_dtb` or `vm_write_ram`),
    /// satp/vsatp = 0. Both are offsets from the start of RAM; `entry` must
    /// lie below the generation-ID page and `dtb` inside RAM, 8-byte
    /// aligned (`Error::InvalidArgument` otherwise). On x86_64 `entry` must
    /// be [`X86_GUEST_IMAGE_OFFSET`] and `dtb` the boot-info block's offset.
    VmStart = 15,
    /// `vm_pause(vm)`: holds every vCPU (an I/O request in flight stays in
    /// flight and completes when resumed).
    VmPause = 16,
    /// `vm_resume(vm)`: lets a paused VM's vCPUs run again.
    VmResume = 17,
    /// `vm_reset(vm)`: stops every vCPU, drops any I/O request in flight and
    /// zeroes guest RAM; load, set the DTB and start again afterwards.
    VmReset = 18,
    /// `vm_destroy(vm)`: tears the VM down from any state, even while a vCPU
    /// runs or waits for I/O, and returns all its memory.
    VmDestroy = 19,
    /// `ioreq_attach(vm) -> (page_addr)`: maps `vm`'s ioreq page (ACRN
    /// layout, `ipc::ioreq_abi::page`) read-write into the caller at
    /// `IOREQ_PAGES + vm * 4096`; from then on a vCPU's I/O exit wakes the
    /// caller's `recv`/`reply_recv` with badge [`IOREQ_BADGE`] and bit `vm`
    /// set in a3. Needs the IOREQ right.
    IoreqAttach = 20,
    /// `ioreq_resume(vm, vcpu)`: the request in `vcpu`'s slot is COMPLETE;
    /// the kernel validates the slot, hands a read's value to the guest,
    /// frees the slot and lets the vCPU run. `Error::BadSlotState` if the
    /// slot is not COMPLETE (nothing changes). Needs the IOREQ right.
    IoreqResume = 21,
    /// `console_read(max) -> (n, bytes0_7, bytes8_15)`: takes up to `max`
    /// (at most [`MAX_CONSOLE_READ`]) bytes typed at the hypervisor
    /// console; they come back in registers, little-endian (byte 0 in the
    /// low byte of a2). If none is pending the task waits (the kernel polls
    /// the console on its timer tick) and returns with at least one byte.
    /// Needs the CONSOLE right; `Error::KernelRefused` if another task is
    /// already waiting for input.
    ConsoleRead = 22,
    /// `halt(status)`: powers the machine off; QEMU exits 0 for status 0 and
    /// non-zero otherwise. No return. Needs the HALT right (or SUPERVISOR).
    Halt = 23,
    /// `console_put(ptr, len)`: prints `len` (at most [`MAX_DEBUG_WRITE`])
    /// raw bytes on the hypervisor console without ending the line (a
    /// prompt, echoed keys). Until a newline, the kernel keeps them as the
    /// console's partial line: other output starts on a fresh line and the
    /// partial line is shown again after it. Needs the CONSOLE right.
    ConsolePut = 24,
    /// `mem_info() -> (free_frames, total_frames)`: how many 4 KiB frames
    /// of the kernel's frame allocator are free now and how many it manages
    /// (all RAM the kernel may hand out, free or not). Any task may ask: it
    /// names two counts and no addresses.
    MemInfo = 25,
    /// `device_map(index) -> (va, size)`: maps the `index`-th virtio-mmio
    /// register window of the machine (by ascending physical address, from
    /// the device tree; at most [`MAX_DEVICE_WINDOWS`]) read-write into the
    /// caller at `DEVICE_WINDOWS + index * DEVICE_WINDOW_SIZE`, as device
    /// memory (never RAM or the kernel). Mapping one twice returns the same
    /// address. Needs the DEVICES right; `Error::InvalidArgument` for an
    /// index the machine does not have.
    DeviceMap = 26,
    /// `dma_alloc(pages) -> (va, pa)`: gives the caller `pages` zeroed,
    /// physically contiguous frames mapped read-write at the next free
    /// address of its DMA window (from [`DMA_WINDOW`]), and their physical
    /// address for a device. At most [`MAX_DMA_PAGES`] pages per task in
    /// all; `Error::OutOfMemory` beyond. The frames are returned, and every
    /// device window the task mapped is reset (virtio status 0) so no DMA
    /// continues, when the task dies. Needs the DEVICES right.
    DmaAlloc = 27,
    /// `sleep(ticks)`: waits `ticks` (1 to [`MAX_SLEEP_TICKS`]) kernel timer
    /// ticks (100 Hz) without using the CPU, for a task that polls a device.
    Sleep = 28,
    /// `vm_set_external_irq(vm, level, vcpu)`: raises (`level` 1) or
    /// lowers (`level` 0) the supervisor external interrupt of `vm`'s vCPU
    /// `vcpu` (its PLIC context `vcpu`), as the device service's PLIC model
    /// computed it; a raised interrupt wakes that vCPU if it sleeps in
    /// `wfi`. Needs the GUEST_IRQ right; `Error::UnknownVm`,
    /// `Error::InvalidArgument` for another `level` or a vCPU the VM lacks.
    VmSetExternalIrq = 29,
    /// `vm_write_genid(vm, id_lo, id_hi) -> (gpa)`: writes the VM's 128-bit
    /// generation ID, little-endian (`id_lo` = bytes 0-7, `id_hi` = bytes
    /// 8-15), at the start of its generation-ID page ([`GUEST_GENID_FROM_END`]
    /// bytes before the end of its RAM, just below the DTB's page), where
    /// the guest reads it (the `microsoft,vmgenid` node's first `reg`).
    /// `vm_reset` zeroes it like all RAM. Needs VM_CONTROL.
    VmWriteGenid = 30,
    /// `vm_clone_ram(src, dst)`: copies all of `src`'s guest RAM, page by
    /// page, over the start of `dst`'s (both created, `src` not running:
    /// paused, created or ended; `dst` at least as large, not running).
    /// Needs VM_CONTROL; `Error::UnknownVm`, `Error::InvalidArgument` for
    /// `src == dst`, a running VM or a smaller `dst`.
    VmCloneRam = 31,
    /// `image_info(image) -> (image_len)`: copies the first
    /// [`IMAGE_HEADER_BYTES`] bytes of boot-image guest entry number `image`
    /// (as `image_name` numbers them; fewer if it is shorter, the rest
    /// zeroed) to the start of the IPC buffer, so the vm-manager can read a
    /// Linux Image header and place the entry before `vm_load`. Needs
    /// VM_CONTROL; `Error::UnknownImage` past the last entry.
    ImageInfo = 32,
    /// `vm_write_ram(vm, offset, len)`: copies the first `len` (at most
    /// [`IPC_BUFFER_SIZE`]) bytes of the IPC buffer page into the VM's RAM
    /// `offset` bytes from its start; the range must end at or below the
    /// generation-ID page. For device trees larger than a page, written in
    /// chunks. Needs VM_CONTROL; `Error::UnknownVm`, `Error::OutOfMemory`
    /// for a range outside, `Error::MessageTooLarge` for `len`.
    VmWriteRam = 33,
    /// `platform_info() -> (timebase_hz, flags)`: the host's timer
    /// frequency (RISC-V: the DT's `/cpus/timebase-frequency`, which guests
    /// see too) and feature bits: [`PLATFORM_SSTC`]. Any task may ask.
    /// `Error::KernelRefused` on a kernel without a timebase (x86_64).
    PlatformInfo = 34,
    /// `vm_status(vm) -> (status)`: where VM `vm` is as the kernel sees
    /// it, one of [`vm_status`]'s values, and how it left running: a
    /// [`vm_exit::ExitRecord`] of [`vm_exit::LEN`] bytes at the start of
    /// the caller's IPC buffer (kind [`vm_exit::NONE`] while it has not
    /// ended; with when, in milliseconds since Mica booted). The
    /// vm-manager asks after the kernel woke it (as an ioreq
    /// upcall, with the VM's bit) because a VM it created ended: the
    /// guest powered off or asked for a reboot (SBI SRST, the x86
    /// power-off hypercall), or the kernel stopped it (a fault, with its
    /// cause, address and the guest's pc). Needs VM_CONTROL;
    /// `Error::UnknownVm`.
    VmStatus = 35,
    /// `vm_set_name(vm, name_len)`: the VM's name is the first `name_len`
    /// bytes of the IPC buffer (a valid VM name); the kernel's lines about
    /// the VM (`mica: web powered off`, its SBI console output `web | ...`)
    /// use it instead of `vm<slot>`. Needs VM_CONTROL; `Error::UnknownVm`,
    /// `Error::InvalidArgument` for a name that is not valid.
    VmSetName = 36,
    /// `ioreq_complete_recv(vm, vcpu, ep_slot)`: `ioreq_resume(vm, vcpu)`
    /// and then `recv(ep_slot)` in one call, the ioreq service's "complete
    /// this slot and wait for the next request". The vCPU runs at once if
    /// nothing more urgent is ready (the kernel switches straight into the
    /// guest); the caller's `recv` returns when the next request, ioreq
    /// wake-up or message arrives, as `reply_recv` with nothing owed would.
    /// If the resume is refused its error returns at once and the caller
    /// does not receive. Needs the IOREQ right.
    IoreqCompleteRecv = 37,
    /// `vm_stats(vm, group) -> (a, b, c)`: VM `vm`'s accounting since it
    /// last started, three counters per call; `group` is one of
    /// [`vm_stats`]'s, which says what lands in a1-a3. Exits are counted
    /// by kind where the kernel decides what to do with them; an I/O
    /// round trip runs from the exit that made the vCPU's ioreq slot
    /// PENDING to the resume that freed it, and its time (the services'
    /// time on the VM's request, with any wait for them to run) is summed
    /// in nanoseconds of the host timer. The three calls of a full read
    /// are not one snapshot: the guest may run between them. Needs
    /// VM_CONTROL; `Error::UnknownVm`, `Error::InvalidArgument` for
    /// another `group` (a vCPU group past the VM's last vCPU included).
    VmStats = 38,
    /// `ioreq_post(vm, space, start, len)`: writes of `vm`'s guest to
    /// `[start, start + len)` in `space` (0 MMIO, 1 port I/O) may be
    /// posted: the kernel puts them in the VM's posted-write ring
    /// (`ipc::ioreq_abi::posted`, mapped by `ioreq_attach` at
    /// [`POSTED_PAGES`]` + vm * 4096`) and the vCPU runs on; the caller
    /// drains the ring before it serves any slot of the VM. `len` 0 removes
    /// the range starting at `start`. At most [`MAX_POSTED_RANGES`] per VM
    /// (`Error::TableFull` beyond); a range may not wrap
    /// (`Error::InvalidRange`) or overlap another (`Error::RangeOverlap`).
    /// Needs the IOREQ right and the caller must serve `vm`
    /// (`ioreq_attach`; `Error::PermissionDenied` otherwise).
    IoreqPost = 39,
    /// `entropy() -> (bits)`: 64 bits from the machine's hardware random
    /// source (RISC-V: the Zkr `seed` CSR; x86_64: RDSEED, else RDRAND),
    /// fresh on every call, for generation IDs and the guests' virtio-rng.
    /// Needs the ENTROPY right; `Error::NoEntropy` when the machine has no
    /// such source (or it failed its health checks): the kernel never
    /// makes bits up.
    Entropy = 40,
    /// `vm_adopt(vm) -> (status, ram_mib, vcpus)`: takes over VM `vm` as
    /// its controller (a restarted vm-manager recovering its table: the
    /// caller is told from now on when the guest ends) and describes it:
    /// its `vm_status`, RAM and vCPU count in the registers, and in the
    /// caller's IPC buffer ([`vm_adopt`]) its generation ID and name.
    /// For a VM that ended meanwhile, `vm_status` then says how (its
    /// [`vm_exit`] record). Needs the VM_CONTROL right; `Error::UnknownVm`
    /// for a number the kernel has no VM at.
    VmAdopt = 41,
    /// `vm_set_note(vm, len)`: keeps the first `len` (at most
    /// [`vm_adopt::NOTE_MAX`]) bytes of the caller's IPC buffer with VM
    /// `vm` for whoever adopts it later (`vm_adopt`); the kernel never
    /// reads them (the vm-manager keeps a dynamic VM's configuration
    /// there). Needs the VM_CONTROL right.
    VmSetNote = 42,
    /// `call_timed(slot, len, ticks)`: [`Sysno::Call`] with a deadline
    /// `ticks` (1 to [`MAX_CALL_TICKS`]) timer ticks away: if no reply
    /// came by then (the server hangs or is too busy), the call fails with
    /// `Error::TimedOut` and a late reply is dropped. For callers that
    /// must not wait for ever on a peer (the vm-manager on the services,
    /// the shell and mgmt on the vm-manager); the I/O path keeps the
    /// plain call's fast path.
    CallTimed = 43,
    /// `wait_timed(slot, ticks)`: [`Sysno::Wait`] that gives up after
    /// `ticks` (1 to [`MAX_CALL_TICKS`]) timer ticks with `Error::TimedOut`
    /// when no bit came (a supervisor that also watches its services).
    WaitTimed = 44,
    /// `kill_server(endpoint)`: kills the live task that serves endpoint
    /// number `endpoint` (it stopped answering), as if it had faulted; it
    /// is reported, its callers get `ServerDied` and the supervisor hears
    /// of its death as of any other. Only the supervisor may call it.
    KillServer = 45,
    /// `image_name(index) -> (name_len, image_len)`: the name of the
    /// boot-image guest entry number `index` (guest entries only, in the
    /// image's order, from 0) in the first `name_len` bytes of the IPC
    /// buffer, and its length; `image_info` then reads its header and
    /// `vm_load` loads it by the same number. The vm-manager lists the
    /// images with it (`images`, and the list a `vm create` naming an
    /// unknown image answers with) and finds a name's number. Needs
    /// VM_CONTROL; `Error::UnknownImage` past the last entry.
    ImageName = 46,
    /// `vm_grant_ram(vm, endpoints)`: lets the tasks that serve the
    /// endpoints whose bits are set in `endpoints` (bit `n` = endpoint
    /// number `n`: device models, the devices service and the block
    /// service) read and write VM `vm`'s RAM with [`Sysno::VmRamRead`] and
    /// [`Sysno::VmRamWrite`], in place of any earlier grant; 0 revokes it.
    /// A grant names endpoints, not tasks, so a restarted server keeps it;
    /// it ends when the VM is reset or destroyed (the controller grants
    /// again before the next start). Needs the VM_CONTROL right;
    /// `Error::UnknownVm`.
    VmGrantRam = 47,
    /// `vm_ram_read(vm, gpa, len)`: copies `len` (at most
    /// [`IPC_BUFFER_SIZE`]) bytes of VM `vm`'s RAM from guest-physical
    /// `gpa` to the start of the caller's IPC buffer (a device model
    /// reading a virtqueue or a buffer the guest gave it). The caller must
    /// serve an endpoint `vm_grant_ram` named (`Error::PermissionDenied`
    /// otherwise, also for a VM without a grant); a range not wholly in
    /// the guest's RAM below its generation-ID page is
    /// `Error::InvalidRange`, `len` too large `Error::MessageTooLarge`.
    VmRamRead = 48,
    /// `vm_ram_write(vm, gpa, len)`: copies the first `len` bytes of the
    /// caller's IPC buffer to VM `vm`'s RAM at guest-physical `gpa` (a
    /// device model filling a buffer the guest gave it, or its used ring);
    /// checked as [`Sysno::VmRamRead`].
    VmRamWrite = 49,
    /// `vm_state_read(vm, offset, len)`: copies `len` bytes of VM `vm`'s
    /// device-state area (see [`DEVICE_STATE_BYTES`]) from `offset` to the
    /// start of the caller's IPC buffer: a restarted device model finds
    /// there the registers its predecessor kept. Checked as
    /// [`Sysno::VmRamRead`] (the caller serves an endpoint `vm_grant_ram`
    /// named); a range beyond the area is `Error::InvalidRange`.
    VmStateRead = 50,
    /// `vm_state_write(vm, offset, len)`: copies the first `len` bytes of
    /// the caller's IPC buffer into VM `vm`'s device-state area at
    /// `offset`. The kernel never reads the area: it keeps it for the
    /// VM's life across the deaths of the tasks that write it, zeroes it
    /// when the VM is created or reset, and checks it as
    /// [`Sysno::VmStateRead`].
    VmStateWrite = 51,
    /// `ioreq_forward(call_slot, len, vm, vcpu, recv_slot)`: the ioreq
    /// service hands `vm`'s vCPU `vcpu`'s PROCESSING access to a client
    /// without waiting for the answer. The first `len` bytes of the IPC
    /// buffer (the access, as `devices::wire::encode_access` writes it)
    /// go to the task waiting to receive on the endpoint capability in
    /// `call_slot`, as a `call` would send them; but the client's reply
    /// goes to the kernel, which completes the slot with it and resumes
    /// the vCPU: "reply is resume". A reply that is not the plain answer
    /// (`Response::Value` for a read, `Response::Ok` for a write), or the
    /// client's death before it replied, hands the access back: the slot
    /// is PENDING again, the service is told as of an exit, and a second
    /// `ioreq_forward` of that access is refused (the service calls the
    /// client itself and learns what went wrong). With `recv_slot` other
    /// than [`NO_RECV`] the caller then receives on it, as
    /// `ioreq_complete_recv` does; with [`NO_RECV`] it returns at once.
    /// Refused, with nothing done and nothing received, when no task waits
    /// on the endpoint (`Error::ServerDied` if none serves it,
    /// `Error::KernelRefused` if it is busy), when the slot is not
    /// PROCESSING, the vCPU waits for no access or the access was handed
    /// back once (`Error::BadSlotState`), or a client holds the access
    /// already (`Error::Forwarded`: its answer completes it). Needs the
    /// IOREQ right and to serve `vm`.
    IoreqForward = 52,
}

/// `ioreq_forward`'s `recv_slot` when the caller does not receive after.
pub const NO_RECV: usize = usize::MAX;

/// The layouts of the VM calls' answers in the IPC buffer and registers.
mod vm_layouts;
pub use vm_layouts::{vm_adopt, vm_exit, vm_stats, vm_status};

/// How many bytes of an image `image_info` copies: a RISC-V Linux Image
/// header.
pub const IMAGE_HEADER_BYTES: usize = 64;
/// `platform_info` flag: the host has Sstc, so guests get `vstimecmp`.
pub const PLATFORM_SSTC: usize = 1 << 0;

/// The generation-ID page of a VM starts this many bytes before the end of
/// its RAM: the page just below the device tree's (the last page). A guest
/// image must end below it.
pub const GUEST_GENID_FROM_END: u64 = 2 * 4096;

/// The user address of device window 0 (`device_map`); window `i` is at
/// `DEVICE_WINDOWS + i * DEVICE_WINDOW_SIZE`.
pub const DEVICE_WINDOWS: usize = USER_BASE + 0x3100_0000;
/// Bytes of a VM's device-state area (`vm_state_read`,
/// `vm_state_write`): what the device models of one VM keep beyond their
/// own task's life (their guest-visible registers).
pub const DEVICE_STATE_BYTES: usize = 2048;
/// Bytes of one device window (a virtio-mmio transport's registers).
pub const DEVICE_WINDOW_SIZE: usize = 4096;
/// How many device windows a task can map.
pub const MAX_DEVICE_WINDOWS: usize = 8;
/// The user address of a task's DMA window (`dma_alloc`).
pub const DMA_WINDOW: usize = USER_BASE + 0x3200_0000;
/// The most DMA pages one task may hold.
pub const MAX_DMA_PAGES: usize = 64;
/// The kernel's timer ticks per second (`sleep` and `call_timed` count
/// in ticks).
pub const TICK_HZ: usize = 100;
/// The longest `sleep`, in ticks (10 s at 100 Hz).
pub const MAX_SLEEP_TICKS: usize = 1000;
/// The longest deadline of a `call_timed`, in ticks (10 minutes at 100 Hz).
pub const MAX_CALL_TICKS: usize = 60_000;

/// The most bytes one `console_read` returns (two registers).
pub const MAX_CONSOLE_READ: usize = 16;

impl Sysno {
    /// The call with number `n`, if there is one.
    pub const fn from_usize(n: usize) -> Option<Sysno> {
        Some(match n {
            0 => Sysno::DebugWrite,
            1 => Sysno::Exit,
            2 => Sysno::Yield,
            3 => Sysno::Call,
            4 => Sysno::Recv,
            5 => Sysno::Reply,
            6 => Sysno::ReplyRecv,
            7 => Sysno::Signal,
            8 => Sysno::Wait,
            9 => Sysno::Poll,
            10 => Sysno::Restart,
            11 => Sysno::ConsoleWrite,
            12 => Sysno::VmCreate,
            13 => Sysno::VmLoad,
            14 => Sysno::VmSetDtb,
            15 => Sysno::VmStart,
            16 => Sysno::VmPause,
            17 => Sysno::VmResume,
            18 => Sysno::VmReset,
            19 => Sysno::VmDestroy,
            20 => Sysno::IoreqAttach,
            21 => Sysno::IoreqResume,
            22 => Sysno::ConsoleRead,
            23 => Sysno::Halt,
            24 => Sysno::ConsolePut,
            25 => Sysno::MemInfo,
            26 => Sysno::DeviceMap,
            27 => Sysno::DmaAlloc,
            28 => Sysno::Sleep,
            29 => Sysno::VmSetExternalIrq,
            30 => Sysno::VmWriteGenid,
            31 => Sysno::VmCloneRam,
            32 => Sysno::ImageInfo,
            33 => Sysno::VmWriteRam,
            34 => Sysno::PlatformInfo,
            35 => Sysno::VmStatus,
            36 => Sysno::VmSetName,
            37 => Sysno::IoreqCompleteRecv,
            38 => Sysno::VmStats,
            39 => Sysno::IoreqPost,
            40 => Sysno::Entropy,
            41 => Sysno::VmAdopt,
            42 => Sysno::VmSetNote,
            43 => Sysno::CallTimed,
            44 => Sysno::WaitTimed,
            45 => Sysno::KillServer,
            46 => Sysno::ImageName,
            47 => Sysno::VmGrantRam,
            48 => Sysno::VmRamRead,
            49 => Sysno::VmRamWrite,
            50 => Sysno::VmStateRead,
            51 => Sysno::VmStateWrite,
            52 => Sysno::IoreqForward,
            _ => return None,
        })
    }
}

/// The status word a failed call returns in `a0`.
pub const fn status_of(error: Error) -> usize {
    error.code() as usize
}

/// The error a non-zero status names; `Error::KernelRefused` for a code no
/// [`Error`] has (a newer kernel), `None` for [`OK`].
pub fn error_of(status: usize) -> Option<Error> {
    if status == OK {
        return None;
    }
    Some(
        ALL_ERRORS
            .iter()
            .copied()
            .find(|e| e.code() as usize == status)
            .unwrap_or(Error::KernelRefused),
    )
}

/// The errors the kernel itself returns from system calls.
const ALL_ERRORS: [Error; 15] = [
    Error::MessageTooLarge,
    Error::ServerDied,
    Error::InvalidArgument,
    Error::PermissionDenied,
    Error::KernelRefused,
    Error::Malformed,
    Error::VmExists,
    Error::OutOfMemory,
    Error::UnknownImage,
    Error::UnknownVm,
    Error::BadSlotState,
    Error::NoEntropy,
    Error::TimedOut,
    Error::InvalidRange,
    Error::Forwarded,
];

// The user layout's regions are disjoint and a message fits its buffer.
const _: () = assert!(MAX_MESSAGE_SIZE <= IPC_BUFFER_SIZE);
const _: () = assert!(IMAGE_BASE < IMAGE_TOP && IMAGE_TOP <= IPC_BUFFER);
const _: () = assert!(IPC_BUFFER + IPC_BUFFER_SIZE <= IOREQ_PAGES);
const _: () = assert!(POSTED_PAGES + MAX_VMS * 4096 <= DEVICE_WINDOWS);
const _: () = assert!(DEVICE_WINDOWS + MAX_DEVICE_WINDOWS * DEVICE_WINDOW_SIZE <= DMA_WINDOW);
const _: () = assert!(DMA_WINDOW + MAX_DMA_PAGES * 4096 <= STACK_TOP - STACK_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_numbers_are_pinned() {
        let pinned = [
            (Sysno::DebugWrite, 0),
            (Sysno::Exit, 1),
            (Sysno::Yield, 2),
            (Sysno::Call, 3),
            (Sysno::Recv, 4),
            (Sysno::Reply, 5),
            (Sysno::ReplyRecv, 6),
            (Sysno::Signal, 7),
            (Sysno::Wait, 8),
            (Sysno::Poll, 9),
            (Sysno::Restart, 10),
            (Sysno::ConsoleWrite, 11),
            (Sysno::VmCreate, 12),
            (Sysno::VmLoad, 13),
            (Sysno::VmSetDtb, 14),
            (Sysno::VmStart, 15),
            (Sysno::VmPause, 16),
            (Sysno::VmResume, 17),
            (Sysno::VmReset, 18),
            (Sysno::VmDestroy, 19),
            (Sysno::IoreqAttach, 20),
            (Sysno::IoreqResume, 21),
            (Sysno::ConsoleRead, 22),
            (Sysno::Halt, 23),
            (Sysno::ConsolePut, 24),
            (Sysno::MemInfo, 25),
            (Sysno::DeviceMap, 26),
            (Sysno::DmaAlloc, 27),
            (Sysno::Sleep, 28),
            (Sysno::VmSetExternalIrq, 29),
            (Sysno::VmWriteGenid, 30),
            (Sysno::VmCloneRam, 31),
            (Sysno::ImageInfo, 32),
            (Sysno::VmWriteRam, 33),
            (Sysno::PlatformInfo, 34),
            (Sysno::VmStatus, 35),
            (Sysno::VmSetName, 36),
            (Sysno::IoreqCompleteRecv, 37),
            (Sysno::VmStats, 38),
            (Sysno::IoreqPost, 39),
            (Sysno::Entropy, 40),
            (Sysno::VmAdopt, 41),
            (Sysno::VmSetNote, 42),
            (Sysno::CallTimed, 43),
            (Sysno::WaitTimed, 44),
            (Sysno::KillServer, 45),
            (Sysno::ImageName, 46),
            (Sysno::VmGrantRam, 47),
            (Sysno::VmRamRead, 48),
            (Sysno::VmRamWrite, 49),
            (Sysno::VmStateRead, 50),
            (Sysno::VmStateWrite, 51),
            (Sysno::IoreqForward, 52),
        ];
        for (call, n) in pinned {
            assert_eq!(call as usize, n);
            assert_eq!(Sysno::from_usize(n), Some(call));
        }
        assert_eq!(Sysno::from_usize(53), None);
        assert_eq!(
            (
                vm_stats::EXITS,
                vm_stats::MORE_EXITS,
                vm_stats::SERVICE_TIME
            ),
            (0, 1, 2)
        );
        assert_eq!(Sysno::from_usize(usize::MAX), None);
    }

    #[test]
    fn the_exit_record_layout_is_pinned() {
        let record = vm_exit::ExitRecord {
            kind: vm_exit::GUEST_PAGE_FAULT,
            detail: 1,
            a: 0x2800_0000,
            b: 0,
            pc: 0x8020_0010,
            uptime_ms: 12_340,
        };
        let bytes = record.to_bytes();
        assert_eq!(bytes.len(), 40);
        assert_eq!(&bytes[0..8], &[3, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &0x2800_0000u64.to_le_bytes());
        assert_eq!(&bytes[24..32], &0x8020_0010u64.to_le_bytes());
        assert_eq!(&bytes[32..40], &12_340u64.to_le_bytes());
        assert_eq!(vm_exit::ExitRecord::from_bytes(&bytes), Some(record));
        assert_eq!(vm_exit::ExitRecord::from_bytes(&bytes[..39]), None);
        assert_eq!(
            [
                vm_exit::NONE,
                vm_exit::POWER_OFF,
                vm_exit::REBOOT,
                vm_exit::GUEST_PAGE_FAULT,
                vm_exit::UNDECODABLE_MMIO,
                vm_exit::VIRTUAL_INSTRUCTION,
                vm_exit::BAD_IO_COMPLETION,
                vm_exit::UNHANDLED_EXCEPTION,
                vm_exit::STOPPED_UNKNOWN,
            ],
            [0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn user_layout_is_pinned_and_disjoint() {
        assert_eq!(IPC_BUFFER, 0x2000_0000);
        assert_eq!(STACK_TOP, 0x4000_0000);
        assert_eq!(IMAGE_BASE, 0x1_0000);
        assert_eq!(DEVICE_WINDOWS, 0x3100_0000);
        assert_eq!(DMA_WINDOW, 0x3200_0000);
    }

    #[test]
    fn status_words_round_trip_the_kernel_errors() {
        assert_eq!(error_of(OK), None);
        assert_eq!(status_of(Error::ServerDied), 3);
        for e in ALL_ERRORS {
            assert_eq!(error_of(status_of(e)), Some(e));
        }
        assert_eq!(error_of(9999), Some(Error::KernelRefused));
    }
}
