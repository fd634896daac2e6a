//! The first instructions: the Multiboot header (a.out kludge, so QEMU's
//! `-kernel` and GRUB load the flat image at 1 MiB), then 32-bit protected
//! mode -> identity page tables for the first 4 GiB (2 MiB pages) -> long
//! mode -> `kmain_entry(magic, info)` on the boot stack.
//!
//! The loader enters `_start32` with EAX = the Multiboot magic, EBX = the
//! information structure's physical address, paging off and interrupts off;
//! there is no stack and the GDT is the loader's.

/// Multiboot header magic.
const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// Page-align modules, give memory information, use the address fields
/// (a.out kludge: the image is not ELF to the loader).
const HEADER_FLAGS: u32 = 0x0001_0003;
/// Bytes of the boot stack.
pub const STACK_SIZE: usize = 64 << 10;
/// Bytes the boot page tables cover with 2 MiB pages.
pub const BOOT_MAP_BYTES: u64 = 4 << 30;
/// Page directories for [`BOOT_MAP_BYTES`] (1 GiB each).
const BOOT_PDS: usize = 4;
/// QEMU `isa-debug-exit` port: a CPU without long mode stops the boot.
const DEBUG_EXIT_PORT: u16 = 0xf4;

core::arch::global_asm!(
    r#"
    .section .multiboot, "a"
    .balign 4
__multiboot_header:
    .long {magic}
    .long {flags}
    .long -({magic} + {flags})
    .long __multiboot_header      /* header_addr */
    .long __kernel_start          /* load_addr */
    .long __load_end              /* load_end_addr */
    .long __kernel_end            /* bss_end_addr */
    .long _start32                /* entry_addr */

    .section .text.entry, "ax"
    .code32
    .globl _start32
_start32:
    cli
    cld
    movl    %eax, %ebp              /* Multiboot magic */
    movl    %ebx, %esi              /* information structure */
    /* Zero BSS: the page tables and the stack live there. */
    movl    $__bss_start, %edi
    movl    $__bss_end, %ecx
    subl    %edi, %ecx
    shrl    $2, %ecx
    xorl    %eax, %eax
    rep stosl
    movl    $(__boot_stack + {stack_size}), %esp

    /* Long mode needs CPUID leaf 0x8000_0001 EDX bit 29. */
    movl    $0x80000000, %eax
    cpuid
    cmpl    $0x80000001, %eax
    jb      .Lno_long_mode
    movl    $0x80000001, %eax
    cpuid
    btl     $29, %edx
    jnc     .Lno_long_mode

    /* PML4[0] -> PDPT; PDPT[0..4] -> the four page directories. */
    movl    $__boot_pdpt, %eax
    orl     $3, %eax
    movl    %eax, __boot_pml4
    movl    $__boot_pd, %eax
    orl     $3, %eax
    xorl    %ecx, %ecx
1:  movl    %eax, __boot_pdpt(,%ecx,8)
    addl    $4096, %eax
    incl    %ecx
    cmpl    ${pds}, %ecx
    jb      1b
    /* Each PD entry: a present, writable 2 MiB page (PS), identity. */
    movl    $0x83, %eax
    xorl    %ecx, %ecx
2:  movl    %eax, __boot_pd(,%ecx,8)
    addl    $0x200000, %eax
    incl    %ecx
    cmpl    ${pd_entries}, %ecx
    jb      2b

    movl    %cr4, %eax
    orl     $(1 << 5), %eax         /* PAE */
    movl    %eax, %cr4
    movl    $__boot_pml4, %eax
    movl    %eax, %cr3
    movl    $0xC0000080, %ecx       /* EFER */
    rdmsr
    orl     $(1 << 8), %eax         /* LME */
    wrmsr
    movl    %cr0, %eax
    orl     $0x80010001, %eax       /* PG | WP | PE */
    movl    %eax, %cr0
    lgdt    __boot_gdt_pointer
    ljmp    $0x08, $.Llong_mode

.Lno_long_mode:
    movl    $.Lno_long_mode_text, %esi
    movw    $0x3f8, %dx
3:  lodsb
    testb   %al, %al
    jz      4f
    outb    %al, %dx
    jmp     3b
4:  movw    ${exit_port}, %dx
    movl    $1, %eax
    outl    %eax, %dx
5:  hlt
    jmp     5b

    .code64
.Llong_mode:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    xorw    %ax, %ax
    movw    %ax, %fs
    movw    %ax, %gs
    movabsq $(__boot_stack + {stack_size}), %rsp
    movl    %ebp, %edi              /* arg 0: magic, zero-extended */
    movl    %esi, %esi              /* arg 1: information structure */
    xorl    %ebp, %ebp
    call    kmain_entry
6:  hlt
    jmp     6b

    .section .rodata
    .balign 8
__boot_gdt:
    .quad 0                         /* null */
    .quad 0x00209A0000000000        /* 0x08: 64-bit code, ring 0 */
    .quad 0x0000920000000000        /* 0x10: data, ring 0 */
__boot_gdt_end:
__boot_gdt_pointer:
    .word __boot_gdt_end - __boot_gdt - 1
    .long __boot_gdt
.Lno_long_mode_text:
    .asciz "mica: this CPU has no long mode (x86_64)\r\n"

    .section .bss.pagetables, "aw", @nobits
    .balign 4096
    .globl __boot_pml4
__boot_pml4:
    .space 4096
__boot_pdpt:
    .space 4096
__boot_pd:
    .space {pd_bytes}

    .section .bss.stack, "aw", @nobits
    .balign 16
__boot_stack:
    .space {stack_size}
    "#,
    magic = const HEADER_MAGIC,
    flags = const HEADER_FLAGS,
    stack_size = const STACK_SIZE,
    pds = const BOOT_PDS,
    pd_entries = const BOOT_PDS * 512,
    pd_bytes = const BOOT_PDS * 4096,
    exit_port = const DEBUG_EXIT_PORT,
    options(att_syntax)
);
