//! The first instructions: OpenSBI jumps to `_start` in S-mode with
//! a0 = hart id and a1 = the DTB's physical address. One hart wins the boot
//! lottery, checks that it has the bit-manipulation extensions the kernel
//! is compiled for, clears BSS and calls `kmain_entry(hart, dtb)` on its
//! own stack; any other hart that arrives (firmware without HSM) parks in
//! `wfi`.
//!
//! The kernel and its tasks are built for RVA23-class harts: the H
//! extension and Zba, Zbb and Zbs (which RVA23 mandates beside it; they
//! cut the guest I/O round trip by some 100 instructions, see
//! `cargo xtask bench`). Compiled code may use those instructions
//! anywhere, so the check runs first, in assembly: one instruction of
//! each with a trap vector that catches an illegal instruction. A hart
//! without them gets a line on the SBI console and a shutdown, as one
//! without H does (`check_virtualization`), instead of a trap loop.
//!
//! The boot hart later starts the others (`smp.rs`) at `__secondary_start`
//! with SBI HSM: a0 = hart id, a1 = the kernel's root page table. Each runs
//! `secondary_entry` on its own boot stack with `sscratch` = 0 (the trap
//! vector's "in the kernel" mark). The boot stacks are indexed by hart id,
//! plus a spare one for a boot hart whose id is [`MAX_HARTS`] or more (the
//! firmware's lottery may pick any hart; only harts below [`MAX_HARTS`]
//! are started as secondaries). `tp` holds the kernel's CPU number
//! (`cpus::this_cpu`): 0 from the boot entry, the started harts set
//! theirs in `secondary_entry`.

pub use super::cpus::MAX_HARTS;
/// Bytes of each hart's boot stack.
pub const STACK_SIZE: usize = 1 << STACK_SHIFT;
const STACK_SHIFT: usize = 16;

core::arch::global_asm!(
    r#"
    .section .text.entry
    .globl _start
_start:
    la      t0, __boot_lottery
    li      t1, 1
    .option push
    .option arch, +a
    amoswap.w t1, t1, (t0)
    .option pop
    bnez    t1, 9f
    /* Zba, Zbb, Zbs: t3 stays 1 if one of them traps to 4f */
    csrr    t5, stvec
    la      t0, 4f
    csrw    stvec, t0
    li      t3, 1
    .option push
    .option arch, +zba, +zbb, +zbs
    sh1add  t4, t3, t3
    andn    t4, t4, t3
    bseti   t4, t4, 1
    .option pop
    li      t3, 0
    .balign 4
4:  csrw    stvec, t5
    beqz    t3, 5f
    tail    __bitmanip_missing
5:
    /* sp = top of this hart's stack: slot (hart id), or the spare slot
       MAX_HARTS for a boot hart with a larger id */
    mv      t2, a0
    li      t0, {max_harts}
    bltu    t2, t0, 3f
    mv      t2, t0
3:  la      sp, __boot_stacks
    addi    t1, t2, 1
    slli    t1, t1, {stack_shift}
    add     sp, sp, t1
    /* clear BSS (the stacks live in .bss.stack, nothing is pushed yet) */
    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, (t0)
    addi    t0, t0, 8
    j       1b
2:  csrw    sscratch, zero
    /* tp = 0: the boot hart is CPU 0 (cpus::this_cpu) */
    mv      tp, zero
    call    kmain_entry
9:  wfi
    j       9b

    .section .text
    .balign 4
    .globl __secondary_start
__secondary_start:
    /* SBI HSM: S-mode, satp = 0, sstatus.SIE = 0, a0 = hart, a1 = root */
    li      t0, {max_harts}
    bgeu    a0, t0, 9f
    csrw    sie, zero
    la      sp, __boot_stacks
    addi    t1, a0, 1
    slli    t1, t1, {stack_shift}
    add     sp, sp, t1
    csrw    sscratch, zero
    call    secondary_entry
9:  wfi
    j       9b

    /* The hart lacks Zba, Zbb or Zbs: say so on the SBI console (DBCN,
       else the legacy putchar) and shut down (SRST, else the legacy
       call), as `kmain`'s `fail` does. No compiled code runs. */
__bitmanip_missing:
    la      s1, __bitmanip_message
    la      s2, __bitmanip_message_end
    li      a7, {eid_dbcn}
    li      a6, 0
    sub     a0, s2, s1
    mv      a1, s1
    li      a2, 0
    ecall
    beqz    a0, 2f
1:  bgeu    s1, s2, 2f
    lbu     a0, (s1)
    li      a7, 1
    ecall
    addi    s1, s1, 1
    j       1b
2:  li      a7, {eid_srst}
    li      a6, 0
    li      a0, 0
    li      a1, 1
    ecall
    li      a7, 8
    ecall
    j       9b

    .section .rodata
__bitmanip_message:
    .ascii  "mica: RISC-V Zba, Zbb and Zbs extensions not available (the kernel is built for RVA23 harts)\n"
__bitmanip_message_end:

    .section .data
    .balign 4
__boot_lottery:
    .word 0

    .section .bss.stack
    .balign 16
    .globl __boot_stacks
__boot_stacks:
    .space {stacks_bytes}
    "#,
    max_harts = const MAX_HARTS,
    eid_dbcn = const super::sbi::EID_DBCN,
    eid_srst = const super::sbi::EID_SRST,
    stack_shift = const STACK_SHIFT,
    stacks_bytes = const (MAX_HARTS + 1) * STACK_SIZE,
);
