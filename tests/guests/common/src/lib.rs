//! What Mica's bare-metal test guests share: the boot-protocol entry (image
//! header, stack, .bss), output through the 16550 UART, the `rdtime` clock
//! and a bounded walk over the device tree the guest is handed.
//!
//! A guest binary calls [`entry!`] with a `fn(hart: usize, dtb: usize) -> !`.
//! The entry code builds for `riscv64` and (module `x86`, 1 MiB flat
//! images) bare-metal `x86_64`; [`fdt`] and [`boot_info`] also build on the
//! host so their bounds checks are unit-tested there.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![no_std]

pub mod boot_info;
pub mod fdt;
pub mod steady;

#[cfg(target_arch = "riscv64")]
mod entry;
#[cfg(target_arch = "riscv64")]
pub mod sbi;
#[cfg(target_arch = "riscv64")]
pub mod time;
#[cfg(target_arch = "riscv64")]
pub mod uart;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod x86;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub mod x86_idt;

/// Where the QEMU-virt-like board (Mica's and QEMU's) puts guest RAM.
pub const RAM_BASE: usize = 0x8000_0000;

/// Neither RAM nor a device for any test guest, RISC-V or x86 (nor anything
/// on QEMU virt's board): 640 MiB, inside an x86 guest's 1 GiB identity
/// map. A guest's access there is its own fault.
pub const OUTSIDE_RAM: usize = 0x2800_0000;

/// Declares the guest's Rust entry point: `$main(hart_id, dtb_address)`,
/// called once on the boot hart with a stack and a zeroed `.bss`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called by the common crate's `_start` with the boot protocol's
        /// a0 (hart id) and a1 (DTB address).
        #[unsafe(no_mangle)]
        extern "C" fn mica_guest_main(hart: usize, dtb: usize) -> ! {
            let main: fn(usize, usize) -> ! = $main;
            main(hart, dtb)
        }
    };
}

/// Stops on a panic without printing: a test guest's output is its contract.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Defines the guest's S-mode trap vector, `mica_guest_trap_vector`
/// (4-aligned, for `stvec` in direct mode): it saves the caller-saved
/// registers on the interrupted code's stack, calls
/// `$handler(scause, stval, sepc) -> usize` and resumes at the pc the
/// handler returns (`sepc` itself to retry, past the instruction to skip
/// it). Use the address of `mica_guest_trap_vector` (declared by the
/// macro in the caller's module) for `stvec`.
#[macro_export]
macro_rules! trap_vector {
    ($handler:path) => {
        core::arch::global_asm!(
            r#"
            .section .text
            .balign 4
            .globl mica_guest_trap_vector
        mica_guest_trap_vector:
            addi    sp, sp, -128
            sd      ra, 0(sp)
            sd      t0, 8(sp)
            sd      t1, 16(sp)
            sd      t2, 24(sp)
            sd      t3, 32(sp)
            sd      t4, 40(sp)
            sd      t5, 48(sp)
            sd      t6, 56(sp)
            sd      a0, 64(sp)
            sd      a1, 72(sp)
            sd      a2, 80(sp)
            sd      a3, 88(sp)
            sd      a4, 96(sp)
            sd      a5, 104(sp)
            sd      a6, 112(sp)
            sd      a7, 120(sp)
            csrr    a0, scause
            csrr    a1, stval
            csrr    a2, sepc
            call    {handler}
            csrw    sepc, a0
            ld      ra, 0(sp)
            ld      t0, 8(sp)
            ld      t1, 16(sp)
            ld      t2, 24(sp)
            ld      t3, 32(sp)
            ld      t4, 40(sp)
            ld      t5, 48(sp)
            ld      t6, 56(sp)
            ld      a0, 64(sp)
            ld      a1, 72(sp)
            ld      a2, 80(sp)
            ld      a3, 88(sp)
            ld      a4, 96(sp)
            ld      a5, 104(sp)
            ld      a6, 112(sp)
            ld      a7, 120(sp)
            addi    sp, sp, 128
            sret
            "#,
            handler = sym $handler,
        );

        unsafe extern "C" {
            fn mica_guest_trap_vector();
        }
    };
}

/// The 32 instructions `$op fN, 8*N({p})` for N = 0..32 (`fld` or `fsd` of
/// every FP register at its slot of a `[u64; 32]`), as one `asm!` template.
#[macro_export]
macro_rules! each_fp_register {
    ($op:literal) => {
        concat!(
            $op,
            " f0, 0({p})\n",
            $op,
            " f1, 8({p})\n",
            $op,
            " f2, 16({p})\n",
            $op,
            " f3, 24({p})\n",
            $op,
            " f4, 32({p})\n",
            $op,
            " f5, 40({p})\n",
            $op,
            " f6, 48({p})\n",
            $op,
            " f7, 56({p})\n",
            $op,
            " f8, 64({p})\n",
            $op,
            " f9, 72({p})\n",
            $op,
            " f10, 80({p})\n",
            $op,
            " f11, 88({p})\n",
            $op,
            " f12, 96({p})\n",
            $op,
            " f13, 104({p})\n",
            $op,
            " f14, 112({p})\n",
            $op,
            " f15, 120({p})\n",
            $op,
            " f16, 128({p})\n",
            $op,
            " f17, 136({p})\n",
            $op,
            " f18, 144({p})\n",
            $op,
            " f19, 152({p})\n",
            $op,
            " f20, 160({p})\n",
            $op,
            " f21, 168({p})\n",
            $op,
            " f22, 176({p})\n",
            $op,
            " f23, 184({p})\n",
            $op,
            " f24, 192({p})\n",
            $op,
            " f25, 200({p})\n",
            $op,
            " f26, 208({p})\n",
            $op,
            " f27, 216({p})\n",
            $op,
            " f28, 224({p})\n",
            $op,
            " f29, 232({p})\n",
            $op,
            " f30, 240({p})\n",
            $op,
            " f31, 248({p})\n",
        )
    };
}
