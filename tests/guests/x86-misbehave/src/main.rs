//! x86 test guest `x86-misbehave`: takes over the MSRs a guest owns
//! (LSTAR, STAR, CSTAR, SFMASK, FS/GS base, KernelGSBase, SYSENTER), loads
//! a TR and an IDT of its own and SWAPGS, checks it reads back its own
//! values, touches two MSRs it may not (expecting #GP, counted by its #GP
//! handler, which skips the instruction) and reports; then announces and
//! stores to an address outside its RAM and outside every device window
//! (but inside its identity map), so Mica must stop the VM; it prints
//! nothing after that announcement.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod tables;

#[cfg(target_os = "none")]
mod guest {
    use mica_guest_common::OUTSIDE_RAM;
    use mica_guest_common::x86_println;

    use crate::tables;

    const EFER: u32 = 0xc000_0080;
    const GS_BASE: u32 = 0xc000_0101;
    const KERNEL_GS_BASE: u32 = 0xc000_0102;
    /// The host's VMRUN save area address (AMD): never a guest's to read.
    const VM_HSAVE_PA: u32 = 0xc001_0117;

    /// Guest-owned MSRs and the garbage (canonical where the CPU checks)
    /// written to each.
    const GARBAGE: [(u32, &str, u64); 10] = [
        (0xc000_0081, "STAR", 0x0033_0008_dead_beef),
        (0xc000_0082, "LSTAR", 0xffff_8000_dead_0000),
        (0xc000_0083, "CSTAR", 0xffff_8000_bad0_0000),
        (0xc000_0084, "SFMASK", 0x4700),
        (0xc000_0100, "FS_BASE", 0x0000_7fff_f000_1000),
        (GS_BASE, "GS_BASE", 0x0000_7fff_f000_2000),
        (KERNEL_GS_BASE, "KERNEL_GS_BASE", 0xffff_8000_0bad_3000),
        (0x174, "SYSENTER_CS", 0x1234),
        (0x175, "SYSENTER_ESP", 0xffff_8000_5555_0000),
        (0x176, "SYSENTER_EIP", 0xffff_8000_6666_0000),
    ];

    mica_guest_common::entry!(main);

    fn main(_cpu: usize, _info: usize) -> ! {
        tables::install();
        x86_println!("misbehave: own TR and IDT loaded; writing LSTAR, STAR, FS/GS bases");
        for (msr, _, value) in GARBAGE {
            tables::wrmsr(msr, value);
        }
        let mut own = 0;
        for (msr, name, value) in GARBAGE {
            let read = tables::rdmsr(msr);
            if read == value {
                own += 1;
            } else {
                x86_println!("misbehave: {name} reads {read:#x}, not {value:#x}");
            }
        }
        tables::swapgs();
        let swapped =
            tables::rdmsr(GS_BASE) == GARBAGE[6].2 && tables::rdmsr(KERNEL_GS_BASE) == GARBAGE[5].2;
        tables::swapgs();
        x86_println!(
            "misbehave: {own} of {} MSRs hold the guest's values, swapgs {}",
            GARBAGE.len(),
            if swapped { "swaps them" } else { "FAILED" }
        );
        let before = tables::gp_count();
        let hsave = tables::rdmsr(VM_HSAVE_PA);
        let after_read = tables::gp_count();
        // Leaving long mode from inside it: EFER.LME/LMA cleared.
        tables::wrmsr(EFER, 0);
        let after_write = tables::gp_count();
        let efer = tables::rdmsr(EFER);
        x86_println!(
            "misbehave: rdmsr VM_HSAVE_PA: {}, wrmsr EFER=0: {}, EFER {efer:#x}",
            if after_read > before { "#GP" } else { "no #GP" },
            if after_write > after_read {
                "#GP"
            } else {
                "no #GP"
            },
        );
        let _ = hsave;
        x86_println!("misbehave: about to write outside RAM");
        // SAFETY: deliberately unsound for the guest: this store targets
        // unbacked guest-physical memory so the hypervisor must stop the VM.
        // It does not alias anything Rust owns.
        unsafe { (OUTSIDE_RAM as *mut u64).write_volatile(0xbad0_bad0_bad0_bad0) };
        mica_guest_common::x86::power_off()
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-misbehave is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
