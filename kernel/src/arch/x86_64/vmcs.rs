//! VMCS field encodings the VMX backend reads and writes (Intel SDM vol.
//! 3C, appendix B), the guest's entry-state values in VMCS form and the
//! EPT pointer format.

/// 16-bit fields.
pub mod f16 {
    pub const VPID: u32 = 0x0000;
    pub const GUEST_ES: u32 = 0x0800;
    pub const GUEST_CS: u32 = 0x0802;
    pub const GUEST_SS: u32 = 0x0804;
    pub const GUEST_DS: u32 = 0x0806;
    pub const GUEST_FS: u32 = 0x0808;
    pub const GUEST_GS: u32 = 0x080a;
    pub const GUEST_LDTR: u32 = 0x080c;
    pub const GUEST_TR: u32 = 0x080e;
    pub const HOST_ES: u32 = 0x0c00;
    pub const HOST_CS: u32 = 0x0c02;
    pub const HOST_SS: u32 = 0x0c04;
    pub const HOST_DS: u32 = 0x0c06;
    pub const HOST_FS: u32 = 0x0c08;
    pub const HOST_GS: u32 = 0x0c0a;
    pub const HOST_TR: u32 = 0x0c0c;
}

/// 64-bit fields.
pub mod f64 {
    pub const MSR_BITMAP: u32 = 0x2004;
    pub const EXIT_MSR_STORE_ADDR: u32 = 0x2006;
    pub const EXIT_MSR_LOAD_ADDR: u32 = 0x2008;
    pub const ENTRY_MSR_LOAD_ADDR: u32 = 0x200a;
    pub const EPT_POINTER: u32 = 0x201a;
    pub const GUEST_PHYSICAL_ADDRESS: u32 = 0x2400;
    pub const VMCS_LINK_POINTER: u32 = 0x2800;
    pub const GUEST_EFER: u32 = 0x2806;
    pub const HOST_EFER: u32 = 0x2c02;
}

/// 32-bit fields.
pub mod f32 {
    pub const PIN_CONTROLS: u32 = 0x4000;
    pub const PROC_CONTROLS: u32 = 0x4002;
    pub const EXCEPTION_BITMAP: u32 = 0x4004;
    pub const EXIT_CONTROLS: u32 = 0x400c;
    pub const EXIT_MSR_STORE_COUNT: u32 = 0x400e;
    pub const EXIT_MSR_LOAD_COUNT: u32 = 0x4010;
    pub const ENTRY_CONTROLS: u32 = 0x4012;
    pub const ENTRY_MSR_LOAD_COUNT: u32 = 0x4014;
    pub const ENTRY_INTERRUPTION_INFO: u32 = 0x4016;
    pub const ENTRY_EXCEPTION_ERROR_CODE: u32 = 0x4018;
    pub const PROC2_CONTROLS: u32 = 0x401e;
    pub const VM_INSTRUCTION_ERROR: u32 = 0x4400;
    pub const EXIT_REASON: u32 = 0x4402;
    pub const IDT_VECTORING_INFO: u32 = 0x4408;
    pub const EXIT_INSTRUCTION_LEN: u32 = 0x440c;
    pub const GUEST_ES_LIMIT: u32 = 0x4800;
    pub const GUEST_GDTR_LIMIT: u32 = 0x4810;
    pub const GUEST_IDTR_LIMIT: u32 = 0x4812;
    pub const GUEST_ES_ACCESS: u32 = 0x4814;
    pub const GUEST_INTERRUPTIBILITY: u32 = 0x4824;
    pub const GUEST_ACTIVITY: u32 = 0x4826;
    pub const GUEST_SYSENTER_CS: u32 = 0x482a;
    pub const PREEMPTION_TIMER_VALUE: u32 = 0x482e;
    pub const HOST_SYSENTER_CS: u32 = 0x4c00;
}

/// Natural-width fields.
pub mod fnat {
    pub const CR0_MASK: u32 = 0x6000;
    pub const CR4_MASK: u32 = 0x6002;
    pub const CR0_SHADOW: u32 = 0x6004;
    pub const CR4_SHADOW: u32 = 0x6006;
    pub const EXIT_QUALIFICATION: u32 = 0x6400;
    pub const GUEST_CR0: u32 = 0x6800;
    pub const GUEST_CR3: u32 = 0x6802;
    pub const GUEST_CR4: u32 = 0x6804;
    pub const GUEST_ES_BASE: u32 = 0x6806;
    pub const GUEST_GDTR_BASE: u32 = 0x6816;
    pub const GUEST_IDTR_BASE: u32 = 0x6818;
    pub const GUEST_DR7: u32 = 0x681a;
    pub const GUEST_RSP: u32 = 0x681c;
    pub const GUEST_RIP: u32 = 0x681e;
    pub const GUEST_RFLAGS: u32 = 0x6820;
    pub const GUEST_SYSENTER_ESP: u32 = 0x6824;
    pub const GUEST_SYSENTER_EIP: u32 = 0x6826;
    pub const HOST_CR0: u32 = 0x6c00;
    pub const HOST_CR3: u32 = 0x6c02;
    pub const HOST_CR4: u32 = 0x6c04;
    pub const HOST_FS_BASE: u32 = 0x6c06;
    pub const HOST_GS_BASE: u32 = 0x6c08;
    pub const HOST_TR_BASE: u32 = 0x6c0a;
    pub const HOST_GDTR_BASE: u32 = 0x6c0c;
    pub const HOST_IDTR_BASE: u32 = 0x6c0e;
    pub const HOST_SYSENTER_ESP: u32 = 0x6c10;
    pub const HOST_SYSENTER_EIP: u32 = 0x6c12;
    pub const HOST_RSP: u32 = 0x6c14;
    pub const HOST_RIP: u32 = 0x6c16;
}

/// The guest's segment registers in VMCS order (ES, CS, SS, DS, FS, GS,
/// LDTR, TR): selector, limit, access-rights and base fields are each
/// this index times 2 past the ES field.
pub const SEGMENTS: usize = 8;
/// Index of CS, LDTR and TR in that order.
pub const CS: usize = 1;
pub const LDTR: usize = 6;
pub const TR: usize = 7;

/// Access rights (type, S, DPL, P, L, D/B, G; bit 16: unusable).
pub const AR_CODE64: u32 = 0xa09b;
pub const AR_DATA: u32 = 0xc093;
pub const AR_TSS_BUSY: u32 = 0x008b;
pub const AR_UNUSABLE: u32 = 1 << 16;

/// The EPT pointer for a 4-level table at `root`, write-back.
pub fn ept_pointer(root: u64) -> u64 {
    root | 3 << 3 | 6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ept_pointer_says_four_levels_write_back() {
        assert_eq!(ept_pointer(0x5000), 0x501e);
    }
}
