//! Access to the supervisor CSRs the kernel uses, one small function each.

/// Defines `read()`/`write()`/`set()`/`clear()` for a CSR in a module.
macro_rules! csr {
    ($module:ident, $name:literal) => {
        // Every CSR gets the whole accessor set; not each is used yet.
        #[allow(dead_code)]
        pub mod $module {
            //! One supervisor CSR.
            /// Reads the CSR.
            #[inline(always)]
            pub fn read() -> usize {
                let value: usize;
                // SAFETY: reading this S-mode CSR has no side effects on memory.
                unsafe { core::arch::asm!(concat!("csrr {0}, ", $name), out(reg) value, options(nomem, nostack)) };
                value
            }

            /// Writes the CSR.
            #[inline(always)]
            pub fn write(value: usize) {
                // SAFETY: the kernel owns S-mode state; callers pass values that
                // keep the machine consistent (trap vector, timer, paging).
                unsafe { core::arch::asm!(concat!("csrw ", $name, ", {0}"), in(reg) value, options(nostack)) };
            }

            /// Sets the bits of `mask`.
            #[inline(always)]
            pub fn set(mask: usize) {
                // SAFETY: as for `write`, on the named bits only.
                unsafe { core::arch::asm!(concat!("csrs ", $name, ", {0}"), in(reg) mask, options(nostack)) };
            }

            /// Clears the bits of `mask`.
            #[inline(always)]
            pub fn clear(mask: usize) {
                // SAFETY: as for `write`, on the named bits only.
                unsafe { core::arch::asm!(concat!("csrc ", $name, ", {0}"), in(reg) mask, options(nostack)) };
            }
        }
    };
}

csr!(sstatus, "sstatus");
csr!(sie, "sie");
csr!(sip, "sip");
csr!(stvec, "stvec");
csr!(sscratch, "sscratch");
csr!(sepc, "sepc");
csr!(scause, "scause");
csr!(stval, "stval");
csr!(satp, "satp");
csr!(time, "time");
// stimecmp (Sstc) by number, so the assembler needs no extension flag.
csr!(stimecmp, "0x14d");

/// `sstatus.SIE`: supervisor interrupts enabled.
pub const SSTATUS_SIE: usize = 1 << 1;
/// `sstatus.SPP`: the trap came from S-mode.
pub const SSTATUS_SPP: usize = 1 << 8;
/// `sie.STIE`: supervisor timer interrupt enabled.
pub const SIE_STIE: usize = 1 << 5;
/// `sie.SSIE`: supervisor software interrupt (a kick from another CPU)
/// enabled.
pub const SIE_SSIE: usize = 1 << 1;
/// `sip.SSIP`: a supervisor software interrupt is pending.
pub const SIP_SSIP: usize = 1 << 1;

// Hypervisor and VS CSRs (by number, so the assembler needs no H flag).
csr!(hstatus, "0x600");
csr!(hedeleg, "0x602");
csr!(hideleg, "0x603");
csr!(hie, "0x604");
csr!(htimedelta, "0x605");
csr!(hcounteren, "0x606");
csr!(henvcfg, "0x60a");
csr!(htval, "0x643");
csr!(hvip, "0x645");
csr!(htinst, "0x64a");
csr!(hgatp, "0x680");
csr!(vsstatus, "0x200");
csr!(vsie, "0x204");
csr!(vstvec, "0x205");
csr!(vsscratch, "0x240");
csr!(vsepc, "0x241");
csr!(vscause, "0x242");
csr!(vstval, "0x243");
csr!(vsatp, "0x280");
csr!(vstimecmp, "0x24d");
