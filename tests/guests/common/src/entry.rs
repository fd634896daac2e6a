//! `_start`: a Linux RISC-V boot-protocol image header whose first word jumps
//! over it, then stack, `.bss`, a trap vector that parks the hart, and a call
//! to the guest's `mica_guest_main(a0 = hart id, a1 = DTB)`.

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .globl _start
_start:
    .option push
    .option norvc
    j       1f                  # code0: jump over the header
    nop                         # code1
    .option pop
    .dword  0x200000            # text_offset: loaded at RAM base + 2 MiB
    .dword  __image_size        # image_size, including .bss and stack
    .dword  0                   # flags: little-endian
    .word   2                   # header version 0.2
    .word   0
    .dword  0
    .ascii  "RISCV\0\0\0"       # magic
    .ascii  "RSC\x05"           # magic2
    .word   0
1:
    la      sp, __stack_top
    la      t0, __bss_start
    la      t1, __bss_end
2:
    bgeu    t0, t1, 3f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       2b
3:
    la      t0, mica_guest_park
    csrw    stvec, t0
    call    mica_guest_main     # a0, a1 are untouched so far
    j       mica_guest_park

    .balign 4
    .globl  mica_guest_park
mica_guest_park:                # also the trap vector: never returns
    wfi
    j       mica_guest_park
"#
);
