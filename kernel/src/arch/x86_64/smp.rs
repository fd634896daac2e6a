//! Application-processor bring-up: once the boot CPU has paging, traps and
//! its timer, it copies a real-mode trampoline to [`TRAMPOLINE`] and starts
//! every other enabled processor of the ACPI MADT (numbered by
//! [`cpus::numbering`]) with INIT-SIPI-SIPI through its local APIC, waits
//! (at most [`BRING_UP_SECONDS`]) for each to announce itself in [`CPUS`],
//! names every CPU that does not, and logs how many are online.
//!
//! The trampoline goes from real mode to protected mode to long mode on the
//! entry code's boot tables (`__boot_pml4`: identity, executable, always
//! below 4 GiB, so the 32-bit CR3 load can take it; the kernel's own tables
//! map low memory no-execute), takes a start slot (its stack, GDT and TSS)
//! with a locked increment and calls [`ap_entry`], which switches to the
//! kernel's tables, loads its own GDT/TSS and the shared IDT, sets up its
//! FP control bits, local APIC and SVM, announces itself and waits for
//! [`release`]; then it enters the scheduler (`crate::userland::run_cpu`)
//! and runs services and vCPUs, its entries from ring 3 on its start stack
//! (`usermode::init_cpu`). Under VMX the
//! application processors stay idle ([`cpus::scheduling_cpus`]). The
//! kernel finds which CPU it runs on from its stack ([`this_cpu`]).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};

use log::{info, warn};
use mica_boot::MemRange;

use super::cpus::{self, CPUS, MAX_CPUS, MAX_XAPIC_ID, Summary};
use super::idt::{KICK_VECTOR, SPURIOUS_VECTOR, TIMER_VECTOR};
use super::virt::{self, Backend};
use super::{fpu, gdt, idt, lapic, paging, svm, timer, usermode};

/// How long the boot CPU waits for the started CPUs to come online.
pub const BRING_UP_SECONDS: u64 = 1;
/// The page the trampoline runs from (below 1 MiB, page-aligned: a SIPI
/// vector names it). Low memory is never handed out as frames (see
/// `firmware::LOW_MEMORY`); QEMU's Multiboot information starts at 0x9000.
pub const TRAMPOLINE: u64 = 0x8000;
/// Bytes of each application processor's stack: the kernel runs on it
/// (exits of the guests the CPU runs, the scheduler) and so do the
/// interrupts it takes in ring 0.
const AP_STACK_BYTES: usize = 64 << 10;
/// Start slots: one per CPU besides the boot CPU.
const AP_SLOTS: usize = MAX_CPUS - 1;
/// INIT to the first SIPI, and SIPI to SIPI (Intel's MP start-up sequence).
const INIT_WAIT_US: u64 = 10_000;
const SIPI_WAIT_US: u64 = 200;
/// How long an IPI may stay pending before the start is given up.
const IPI_TIMEOUT_US: u64 = 100_000;

#[repr(C, align(16))]
struct ApStack([u8; AP_STACK_BYTES]);

static mut AP_STACKS: [ApStack; AP_SLOTS] = [const { ApStack([0; AP_STACK_BYTES]) }; AP_SLOTS];

/// The kernel's page-table root, for the application processors.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

/// The CPU number of the application processor on each start slot's stack
/// (0 until it announces itself).
static SLOT_CPU: [AtomicUsize; AP_SLOTS] = [const { AtomicUsize::new(0) }; AP_SLOTS];

/// The number of the CPU running this code. The kernel runs on the boot
/// CPU's stacks (the boot stack, the ring-3 entry stack) or on an
/// application processor's start-slot stack, and never switches to
/// another: the stack pointer says which CPU this is, without a register
/// or MSR kept for it.
#[inline(always)]
pub fn this_cpu() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    let base = (&raw const AP_STACKS) as usize;
    let offset = sp.wrapping_sub(base);
    if offset >= AP_SLOTS * AP_STACK_BYTES {
        return 0;
    }
    SLOT_CPU[offset / AP_STACK_BYTES].load(Ordering::Relaxed)
}

core::arch::global_asm!(
    r#"
    .section .rodata.mica_ap_trampoline, "a"
    .balign 16
    .globl mica_ap_trampoline
mica_ap_trampoline:
    .code16
    cli
    cld
    jmp     .Lap_real
    .balign 8
    .globl mica_ap_cr3
mica_ap_cr3:            .long 0     /* the boot tables' root (below 4 GiB) */
    .globl mica_ap_next
mica_ap_next:           .long 0     /* the next start slot */
    .globl mica_ap_stacks
mica_ap_stacks:         .quad 0     /* AP_STACKS */
    .globl mica_ap_entry_addr
mica_ap_entry_addr:     .quad 0     /* ap_entry */
    .balign 8
.Lap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
    .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
.Lap_gdt_end:
.Lap_gdt_pointer:
    .word   .Lap_gdt_end - .Lap_gdt - 1
    .long   {base} + .Lap_gdt - mica_ap_trampoline

.Lap_real:
    xorw    %ax, %ax
    movw    %ax, %ds
    lgdtl   {base} + .Lap_gdt_pointer - mica_ap_trampoline
    movl    %cr0, %eax
    orl     $1, %eax                /* PE */
    movl    %eax, %cr0
    ljmpl   $0x08, ${base} + .Lap_protected - mica_ap_trampoline

    .code32
.Lap_protected:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movl    %cr4, %eax
    orl     $(1 << 5), %eax         /* PAE */
    movl    %eax, %cr4
    movl    {base} + mica_ap_cr3 - mica_ap_trampoline, %eax
    movl    %eax, %cr3
    movl    $0xC0000080, %ecx       /* EFER */
    rdmsr
    orl     $(1 << 8), %eax         /* LME */
    wrmsr
    movl    %cr0, %eax
    andl    $0x9fffffff, %eax       /* caches on: clear CD and NW (set by INIT) */
    orl     $0x80010001, %eax       /* PG | WP | PE */
    movl    %eax, %cr0
    ljmpl   $0x18, ${base} + .Lap_long - mica_ap_trampoline

    .code64
.Lap_long:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    xorw    %ax, %ax
    movw    %ax, %fs
    movw    %ax, %gs
    movl    $1, %eax
    lock xaddl %eax, {base} + mica_ap_next - mica_ap_trampoline
    cmpl    ${slots}, %eax
    jae     .Lap_no_slot
    movl    %eax, %edi              /* arg 0: the start slot */
    leal    1(%rax), %ecx
    imull   ${stack_bytes}, %ecx
    movq    {base} + mica_ap_stacks - mica_ap_trampoline, %rsp
    addq    %rcx, %rsp
    xorl    %ebp, %ebp
    movq    {base} + mica_ap_entry_addr - mica_ap_trampoline, %rax
    callq   *%rax
.Lap_no_slot:
    cli
    hlt
    jmp     .Lap_no_slot
    .globl mica_ap_trampoline_end
mica_ap_trampoline_end:
    .text
    "#,
    base = const TRAMPOLINE,
    slots = const AP_SLOTS,
    stack_bytes = const AP_STACK_BYTES,
    options(att_syntax)
);

unsafe extern "C" {
    static mica_ap_trampoline: u8;
    static mica_ap_trampoline_end: u8;
    static mica_ap_cr3: u8;
    static mica_ap_next: u8;
    static mica_ap_stacks: u8;
    static mica_ap_entry_addr: u8;
    static __boot_pml4: u8;
}

/// Busy-waits `us` microseconds of TSC time at `tsc_hz`.
fn delay_us(tsc_hz: u64, us: u64) {
    let end = timer::timer_now().saturating_add(tsc_hz / 1_000_000 * us);
    while timer::timer_now() < end {
        core::hint::spin_loop();
    }
}

/// Waits (bounded) for the last IPI to be delivered; false if it is not.
fn ipi_sent(tsc_hz: u64) -> bool {
    let end = timer::timer_now().saturating_add(tsc_hz / 1_000_000 * IPI_TIMEOUT_US);
    while lapic::ipi_pending() {
        if timer::timer_now() >= end {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// INIT, 10 ms, SIPI, 200 us, SIPI to the CPU `apic_id`; false when an IPI
/// was not delivered.
fn start_one(apic_id: u32, tsc_hz: u64) -> bool {
    let page = (TRAMPOLINE >> 12) as u8;
    lapic::send_init(apic_id);
    if !ipi_sent(tsc_hz) {
        return false;
    }
    delay_us(tsc_hz, INIT_WAIT_US);
    for _ in 0..2 {
        lapic::send_startup(apic_id, page);
        if !ipi_sent(tsc_hz) {
            return false;
        }
        delay_us(tsc_hz, SIPI_WAIT_US);
    }
    true
}

/// Where `field` (a symbol inside the trampoline) lies from its start.
fn offset(field: *const u8) -> usize {
    field as usize - (&raw const mica_ap_trampoline) as usize
}

/// Copies the trampoline to [`TRAMPOLINE`] and fills in its fields.
fn install_trampoline() {
    let start = (&raw const mica_ap_trampoline) as usize;
    let len = (&raw const mica_ap_trampoline_end) as usize - start;
    assert!(len <= 4096, "the AP trampoline outgrew its page");
    let base = TRAMPOLINE as usize;
    let boot_root = (&raw const __boot_pml4) as u64;
    // SAFETY: [TRAMPOLINE, +4 KiB) is low memory, identity-mapped writable
    // by the kernel's tables and never handed out as frames; the caller
    // checked that no loader structure the kernel still reads lies there,
    // and no other CPU runs yet. The fields are inside the copied bytes
    // (symbols of the blob), at their natural alignment (`.balign 8`).
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, base as *mut u8, len);
        let at = |field: *const u8| base + offset(field);
        core::ptr::write_volatile(at(&raw const mica_ap_cr3) as *mut u32, boot_root as u32);
        core::ptr::write_volatile(at(&raw const mica_ap_next) as *mut u32, 0);
        core::ptr::write_volatile(
            at(&raw const mica_ap_stacks) as *mut u64,
            (&raw const AP_STACKS) as u64,
        );
        core::ptr::write_volatile(
            at(&raw const mica_ap_entry_addr) as *mut u64,
            ap_entry as *const () as u64,
        );
    }
    fence(Ordering::SeqCst);
}

/// Starts the other CPUs the MADT lists (`listed`, or the MADT's error)
/// and logs the outcome. `kernel_root` is the kernel page table's root,
/// which every CPU runs on; `taken` are loader structures the kernel still
/// reads (the trampoline must not overwrite them).
pub fn start_aps(
    listed: Result<&mica_boot::acpi::CpuList, mica_boot::acpi::AcpiError>,
    kernel_root: u64,
    taken: &[MemRange],
) {
    let boot = lapic::id();
    let list: &[u32] = match listed {
        Ok(list) => {
            if list.unlisted() > 0 {
                warn!(
                    "cpus: {} enabled CPU(s) left stopped: past the first {MAX_CPUS}",
                    list.unlisted()
                );
            }
            list.apic_ids()
        }
        Err(e) => {
            warn!("cpus: {e}: the boot CPU runs alone");
            &[]
        }
    };
    let (ids, len) = cpus::numbering(boot, list);
    CPUS.number(&ids[..len]);
    // Every CPU turns SVM on as it comes up (the one that makes the first
    // VM may be any of them).
    if virt::probe() == Some(Backend::Svm) {
        svm::enable_here();
    }
    CPUS.announce(0);
    let summary = || {
        let online: [bool; MAX_CPUS] = core::array::from_fn(|cpu| CPUS.is_online(cpu));
        let svm = virt::probe() == Some(Backend::Svm);
        let scheduling = cpus::scheduling_cpus(&online, svm);
        SCHEDULING.store(scheduling, Ordering::Release);
        info!(
            "cpus: {}",
            Summary {
                online: CPUS.online_count(),
                scheduling,
            }
        )
    };
    if len == 1 {
        return summary();
    }
    let tsc_hz = timer::tsc_hz();
    let page = MemRange::new(TRAMPOLINE, 4096);
    if tsc_hz == 0 {
        warn!("cpus: no calibrated TSC to time INIT-SIPI-SIPI: the other CPUs stay stopped");
        return summary();
    }
    if let Some(r) = taken.iter().find(|r| r.size > 0 && r.overlaps(&page)) {
        warn!(
            "cpus: the loader's data at {:#x} covers the AP trampoline page {TRAMPOLINE:#x}: the other CPUs stay stopped",
            r.start
        );
        return summary();
    }
    KERNEL_ROOT.store(kernel_root, Ordering::Release);
    install_trampoline();

    let mut started = [false; MAX_CPUS];
    for (cpu, &apic_id) in ids[..len].iter().enumerate().skip(1) {
        if apic_id > MAX_XAPIC_ID {
            warn!("cpus: CPU {cpu} (APIC id {apic_id}) left stopped: past the xAPIC's 8-bit ids");
        } else if start_one(apic_id, tsc_hz) {
            started[cpu] = true;
        } else {
            warn!("cpus: CPU {cpu} (APIC id {apic_id}): INIT or SIPI was not delivered");
        }
    }

    let waiting = |started: &[bool; MAX_CPUS]| {
        started
            .iter()
            .enumerate()
            .any(|(cpu, &s)| s && !CPUS.is_online(cpu))
    };
    let deadline = timer::timer_now().saturating_add(BRING_UP_SECONDS * tsc_hz);
    while waiting(&started) && timer::timer_now() < deadline {
        core::hint::spin_loop();
    }
    for (cpu, _) in started.iter().enumerate().filter(|(_, s)| **s) {
        if !CPUS.is_online(cpu) {
            let apic_id = CPUS.apic_id(cpu).unwrap_or(0);
            warn!(
                "cpus: CPU {cpu} (APIC id {apic_id}) started but did not come online within {BRING_UP_SECONDS} s"
            );
        }
    }
    summary();
}

/// How many CPUs schedule vCPUs ([`cpus::scheduling_cpus`]), once the
/// others came up.
static SCHEDULING: AtomicUsize = AtomicUsize::new(1);

/// How many CPUs the scheduler uses: CPUs `0..n`.
pub fn cpu_count() -> usize {
    SCHEDULING.load(Ordering::Acquire)
}

/// Lets the parked CPUs go on (once the kernel's tasks are loaded): the
/// ones that schedule enter the scheduler, the rest stay halted.
pub fn release() {
    CPUS.release();
    let online = (1..MAX_CPUS).filter(|&cpu| CPUS.is_online(cpu));
    kick(online.fold(0, |mask, cpu| mask | 1 << cpu));
}

/// Interrupts the CPUs in `cpus` (bit `n` = CPU `n`; the calling one is
/// skipped) with the kick IPI: each leaves its guest, or its `hlt`, and
/// decides again.
pub fn kick(cpus: u64) {
    let mut rest = cpus & !(1 << this_cpu());
    while rest != 0 {
        let cpu = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        if let Some(apic_id) = CPUS.apic_id(cpu) {
            lapic::send_fixed(apic_id, KICK_VECTOR as u8);
        }
    }
}

/// Rust entry of an application processor (from the trampoline, on start
/// slot `slot`'s stack, on the boot tables, interrupts off): the kernel's
/// tables, its own GDT and TSS, the IDT, the FP control bits, its local
/// APIC and SVM with its own host save area; it announces itself and
/// waits for [`release`], then enters the scheduler if it is one of the
/// CPUs that run vCPUs.
extern "C" fn ap_entry(slot: u32) -> ! {
    paging::activate(KERNEL_ROOT.load(Ordering::Acquire));
    let slot = slot as usize;
    // Entries from ring 3 start at the top of the stack this code runs on
    // (the kernel never needs what is on it once the CPU enters a task).
    // SAFETY: only the address of the slot's stack is taken.
    let stack_top =
        unsafe { (&raw const AP_STACKS[slot % AP_SLOTS]) as u64 } + AP_STACK_BYTES as u64;
    gdt::init_ap(slot, stack_top);
    idt::load();
    fpu::init();
    // Timer masked, software-enabled: the kick IPI ends the wait below.
    lapic::enable(SPURIOUS_VECTOR as u8, timer::LAPIC_DIVIDE);
    let Some(cpu) = CPUS.index_of(lapic::id()) else {
        loop {
            halt();
        }
    };
    // From here on `this_cpu` names this CPU.
    SLOT_CPU[slot % AP_SLOTS].store(cpu, Ordering::Relaxed);
    usermode::init_cpu(cpu, stack_top);
    if virt::probe() == Some(Backend::Svm) {
        svm::enable_here();
    }
    CPUS.announce(cpu);
    // `sti; hlt` with the flag checked before: a kick that comes in
    // between is taken at the `hlt`.
    while !CPUS.released() {
        timer::wait_for_interrupt();
    }
    if cpu >= cpu_count() {
        loop {
            halt();
        }
    }
    lapic::one_shot(TIMER_VECTOR as u8);
    crate::userland::run_cpu()
}

fn halt() {
    // SAFETY: `cli; hlt` stops this CPU until an NMI, SMI or INIT; it
    // touches no memory.
    unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
}
