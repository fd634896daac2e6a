//! The kernel's GDT and TSS: ring-0 code and data segments, ring-3 data and
//! code segments for tasks (in the order SYSCALL/SYSRET expect), and a
//! 64-bit TSS whose RSP0 is the stack traps from ring 3 start on and whose
//! interrupt stack table gives double faults (IST1) their own stack, so a
//! kernel stack overflow is still reported instead of resetting the
//! machine. Replaces the entry code's boot GDT.
//!
//! Each application processor gets a GDT and TSS of its own
//! ([`init_ap`]): `ltr` marks a TSS descriptor busy, so two CPUs cannot load
//! the same one, and each needs its own double-fault stack and RSP0 (the
//! CPU's start stack, which its entries from ring 3 run on).

use core::mem::size_of;

use super::cpus::MAX_CPUS;

/// Kernel code selector.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DS: u16 = 0x10;
/// TSS selector (a 16-byte system descriptor).
pub const TSS_SELECTOR: u16 = 0x18;
/// Ring-3 data selector (RPL 3).
pub const USER_SS: u16 = 0x28 | 3;
/// Ring-3 64-bit code selector (RPL 3).
pub const USER_CS: u16 = 0x30 | 3;
/// STAR's SYSRET base: SS = base + 8, CS = base + 16 (both RPL 3).
pub const SYSRET_BASE: u16 = 0x20;
/// The IST slot (1-based) double faults run on.
pub const DOUBLE_FAULT_IST: u8 = 1;
/// Bytes of the double-fault stack.
const IST_STACK_BYTES: usize = 16 << 10;

/// The 64-bit task-state segment (only the IST and I/O map base are used).
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_BYTES]);

const EMPTY_TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    // No I/O permission map: the base lies beyond the limit.
    iomap_base: size_of::<Tss>() as u16,
};

static mut TSS: Tss = EMPTY_TSS;

static mut DOUBLE_FAULT_STACK: IstStack = IstStack([0; IST_STACK_BYTES]);

/// Null, kernel code, kernel data, TSS (two slots), user data, user code.
type Gdt = [u64; 7];

const KERNEL_GDT: Gdt = [
    0,
    0x00af_9a00_0000_ffff, // 64-bit code, ring 0
    0x00cf_9200_0000_ffff, // data, ring 0
    0,
    0,
    0x00cf_f200_0000_ffff, // data, ring 3
    0x00af_fa00_0000_ffff, // 64-bit code, ring 3
];

static mut GDT: Gdt = KERNEL_GDT;

/// An application processor's GDT, TSS and double-fault stack.
#[repr(C, align(16))]
struct ApTables {
    double_fault_stack: IstStack,
    gdt: Gdt,
    tss: Tss,
}

/// The application processors' tables, by start slot (`smp.rs`).
static mut AP_TABLES: [ApTables; MAX_CPUS - 1] = [const {
    ApTables {
        double_fault_stack: IstStack([0; IST_STACK_BYTES]),
        gdt: KERNEL_GDT,
        tss: EMPTY_TSS,
    }
}; MAX_CPUS - 1];

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// The two GDT words of an available 64-bit TSS at `base`.
fn tss_descriptor(base: u64, limit: u64) -> [u64; 2] {
    let low = (limit & 0xffff)
        | (base & 0xff_ffff) << 16
        | 0x89 << 40 // present, type 9: available 64-bit TSS
        | ((limit >> 16) & 0xf) << 48
        | ((base >> 24) & 0xff) << 56;
    [low, base >> 32]
}

/// Loads the GDT and TSS and reloads every segment register. Called once,
/// on the boot CPU, before the IDT is used.
pub fn init() {
    // SAFETY: runs once on the only CPU with interrupts off, before anything
    // else refers to these statics; the pointers are to statics that live
    // forever.
    unsafe {
        let stack = (&raw const DOUBLE_FAULT_STACK) as u64 + IST_STACK_BYTES as u64;
        load(&raw mut GDT, &raw mut TSS, stack);
    }
}

/// Loads application processor `slot`'s own GDT and TSS (with its own
/// double-fault stack, and `rsp0` for traps from ring 3) and reloads every
/// segment register. Each slot is used by one CPU, once (`smp.rs` hands
/// them out); a slot past the table is ignored (`smp.rs` never starts that
/// many).
pub fn init_ap(slot: usize, rsp0: u64) {
    if slot >= MAX_CPUS - 1 {
        return;
    }
    // SAFETY: slot `slot` belongs to the calling CPU alone (the trampoline
    // hands each slot out once), interrupts are off, and nothing else
    // refers to these tables; they live forever.
    unsafe {
        let tables = &raw mut AP_TABLES[slot];
        let stack = (&raw const (*tables).double_fault_stack) as u64 + IST_STACK_BYTES as u64;
        (*tables).tss.rsp[0] = rsp0;
        load(&raw mut (*tables).gdt, &raw mut (*tables).tss, stack);
    }
}

/// Points `tss`'s double-fault IST at `stack`, writes its descriptor into
/// `gdt`, loads both and reloads the segment registers.
///
/// # Safety
/// `gdt` and `tss` live forever, belong to the calling CPU alone and are
/// not loaded by any other; interrupts are off.
unsafe fn load(gdt: *mut Gdt, tss: *mut Tss, stack: u64) {
    // SAFETY: the caller gives this CPU's own tables. The new GDT has the
    // same code and data selectors as the boot GDT, so the far return and
    // the segment reloads keep running in 64-bit ring 0, and `ltr` loads the
    // TSS descriptor written just before.
    unsafe {
        (*tss).ist[usize::from(DOUBLE_FAULT_IST) - 1] = stack;
        let [low, high] = tss_descriptor(tss as u64, size_of::<Tss>() as u64 - 1);
        (*gdt)[3] = low;
        (*gdt)[4] = high;
        let pointer = Pointer {
            limit: (size_of::<Gdt>() - 1) as u16,
            base: gdt as u64,
        };
        core::arch::asm!(
            "lgdt [{pointer}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ss, {ds:x}",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "ltr {tss:x}",
            pointer = in(reg) &pointer,
            cs = in(reg) u64::from(KERNEL_CS),
            ds = in(reg) KERNEL_DS,
            tss = in(reg) TSS_SELECTOR,
            tmp = out(reg) _,
        );
    }
}

/// Sets the stack the boot CPU switches to on an interrupt or exception
/// from ring 3 (TSS.RSP0).
pub fn set_kernel_stack(top: u64) {
    // SAFETY: one CPU, interrupts off in the kernel: nothing reads the TSS
    // while it changes; the CPU reads RSP0 only on the next trap from ring 3.
    unsafe {
        let tss = &raw mut TSS;
        (*tss).rsp[0] = top;
    }
}

/// The boot CPU's TSS address (the VMX host TR base; an application
/// processor that runs guests will need its own, see [`init_ap`]).
pub fn tss_base() -> u64 {
    (&raw const TSS) as u64
}
