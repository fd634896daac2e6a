//! Test guest `misbehave`: sends the operator's terminal control sequences
//! (a screen clear, an OSC 52 clipboard write, a C1 CSI, BEL, an invalid
//! byte) through its UART and through the SBI debug console, which Mica
//! must show escaped; then announces itself, stores to an address outside
//! its RAM and outside every device, and if it is still running jumps to a
//! wild address. It prints nothing after the announcement: a hypervisor
//! test checks that the fault was contained (Mica injects a store access
//! fault, which this guest's trap vector takes by parking the hart).
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::OUTSIDE_RAM;
    use mica_guest_common::uart::Uart;
    use mica_guest_common::{println, sbi};

    /// Terminal control sequences and bytes that are not UTF-8, after a
    /// label and before UTF-8 text that must come through as it is.
    const HOSTILE: &[u8] = b"\x1b[2J\x1b]52;c;bWljYQ==\x07\xc2\x9b31m caf\xc3\xa9 \\ \xff\r\n";
    /// SBI DBCN's `write` function.
    const DBCN_WRITE: usize = 0;

    /// An address with no code: far above RAM.
    const WILD_JUMP: usize = 0x7_dead_0000;

    mica_guest_common::entry!(main);

    /// Writes `bytes` with SBI DBCN `write` (the kernel's own console path).
    fn sbi_write(bytes: &[u8]) {
        // SAFETY: an SBI DBCN write of `bytes` (in guest RAM: the MMU is off,
        // so its address is guest-physical) only reads them; a0/a1 return
        // the error and the count.
        unsafe {
            sbi::ecall(
                sbi::EID_DBCN,
                DBCN_WRITE,
                [bytes.len(), bytes.as_ptr() as usize, 0, 0, 0, 0],
            )
        };
    }

    fn main(_hart: usize, _dtb: usize) -> ! {
        let mut uart = Uart;
        for &b in b"misbehave: ".iter().chain(HOSTILE) {
            uart.put(b);
        }
        sbi_write(b"misbehave (SBI): ");
        sbi_write(HOSTILE);
        println!("misbehave: about to write outside RAM");
        // SAFETY: deliberately unsound for the guest: this store targets
        // unbacked guest-physical memory, which faults.
        // It does not alias anything Rust owns.
        unsafe { (OUTSIDE_RAM as *mut u64).write_volatile(0xbad0_bad0_bad0_bad0) };
        // SAFETY: deliberately wild: a jump to an address with no code, the
        // second fault the hypervisor must contain. Nothing runs after it.
        unsafe { core::arch::asm!("jr {0}", in(reg) WILD_JUMP, options(noreturn)) }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-misbehave is a bare-metal guest: build it with --target riscv64gc-unknown-none-elf"
    );
}
