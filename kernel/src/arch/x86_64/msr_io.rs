//! Reading and writing model-specific registers: the one `rdmsr` and
//! `wrmsr` every part of the x86 backend uses (EFER, the syscall MSRs,
//! the APIC base, SVM's host save area, the VMX capability MSRs).

/// Reads `msr`. Callers name only MSRs their CPU has: architectural ones
/// of x86_64 (EFER, FS/GS base, the syscall MSRs, the APIC base), or the
/// SVM and VMX ones once CPUID said the backend is there.
pub fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: reading an MSR the CPU has (the callers' condition above)
    // changes no state and touches no memory.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack));
    }
    u64::from(high) << 32 | u64::from(low)
}

/// Writes `value` to `msr`.
///
/// # Safety
/// The MSR must exist and the write must not break the running kernel
/// (what the MSR controls stays consistent with what the kernel expects).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller vouches for the MSR and value.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack));
    }
}
