//! Test guest `genid`: finds the `microsoft,vmgenid` node in its device
//! tree (`/soc/vmgenid@10101000`: `reg` = the 16-byte ID in guest RAM, then
//! the device's registers; `interrupts` = its PLIC source), prints
//! `genid: <32 hex digits>` (the ID as a little-endian 128-bit number),
//! acknowledges any change from before boot, enables that source at the PLIC (`/soc/plic@c000000`, context 0) and
//! S-mode external interrupts, and then prints `tick N` about once a
//! second. On each vmgenid interrupt its trap handler claims the source,
//! acknowledges the device (STATUS at register offset 0x10) and completes
//! it; the main loop then re-reads the ID and prints `genid changed: <hex>`.
//!
//! Without a vmgenid node it prints `genid: no vmgenid node` and ticks.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use mica_guest_common::fdt::{self, Dtb};
    use mica_guest_common::{println, time};

    const VMGENID_NODE: [&str; 2] = ["soc", "vmgenid@10101000"];
    const PLIC_NODE: [&str; 2] = ["soc", "plic@c000000"];
    /// vmgenid register: write 1 to acknowledge a change.
    const STATUS: usize = 0x10;
    const PLIC_ENABLE: usize = 0x2000;
    const PLIC_THRESHOLD: usize = 0x20_0000;
    const PLIC_CLAIM: usize = 0x20_0004;
    /// `sie.SEIE` and `scause`'s supervisor external interrupt.
    const SEIE: usize = 1 << 9;
    const SSTATUS_SIE: usize = 1 << 1;
    const S_EXTERNAL: usize = 9;
    const INTERRUPT: usize = 1 << 63;

    /// Where the trap handler finds the devices (0 = none).
    static PLIC: AtomicUsize = AtomicUsize::new(0);
    static REGS: AtomicUsize = AtomicUsize::new(0);
    static IRQ: AtomicUsize = AtomicUsize::new(0);
    /// Set by the trap handler, taken by the main loop.
    static CHANGED: AtomicBool = AtomicBool::new(false);

    mica_guest_common::entry!(main);

    // The trap vector: `genid_trap` with the caller-saved registers saved.
    mica_guest_common::trap_vector!(genid_trap);

    fn read32(addr: usize) -> u32 {
        // SAFETY: `addr` is a PLIC register the device tree described (a
        // device window, not memory Rust owns).
        unsafe { (addr as *const u32).read_volatile() }
    }

    fn write32(addr: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { (addr as *mut u32).write_volatile(value) }
    }

    /// The trap handler: for an external interrupt, claims every pending
    /// source; the vmgenid source is acknowledged at the device and noted
    /// for the main loop; each is completed. Anything else parks the hart.
    #[unsafe(no_mangle)]
    extern "C" fn genid_trap(cause: usize, _tval: usize, epc: usize) -> usize {
        let plic = PLIC.load(Ordering::Relaxed);
        if cause != INTERRUPT | S_EXTERNAL || plic == 0 {
            loop {
                core::hint::spin_loop();
            }
        }
        loop {
            let source = read32(plic + PLIC_CLAIM);
            if source == 0 {
                break;
            }
            if source as usize == IRQ.load(Ordering::Relaxed) {
                // SAFETY: REGS is the vmgenid register window from the tree.
                unsafe { ((REGS.load(Ordering::Relaxed) + STATUS) as *mut u8).write_volatile(1) };
                CHANGED.store(true, Ordering::Release);
            }
            write32(plic + PLIC_CLAIM, source);
        }
        // An interrupt: resume where it struck.
        epc
    }

    /// The ID in guest RAM, as a little-endian 128-bit number.
    fn read_id(at: usize) -> u128 {
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            // SAFETY: `at..at + 16` is the vmgenid region of guest RAM the
            // device tree names, checked to lie in RAM; the host writes it
            // only while this vCPU does not run.
            *byte = unsafe { ((at + i) as *const u8).read_volatile() };
        }
        u128::from_le_bytes(bytes)
    }

    /// Two `<address size>` pairs of two cells each.
    fn two_regs(value: &[u8]) -> Option<[(usize, usize); 2]> {
        let cell = |i: usize| fdt::number(value.get(8 * i..8 * i + 8)?);
        let pair = |i: usize| {
            Some((
                usize::try_from(cell(i)?).ok()?,
                usize::try_from(cell(i + 1)?).ok()?,
            ))
        };
        (value.len() == 32).then_some(())?;
        Some([pair(0)?, pair(2)?])
    }

    struct Vmgenid {
        id_at: usize,
        regs: usize,
        irq: usize,
    }

    fn vmgenid(dtb: Option<Dtb<'_>>) -> Option<Vmgenid> {
        let dtb = dtb?;
        let [(id_at, id_len), (regs, _)] = two_regs(dtb.property(&VMGENID_NODE, "reg")?)?;
        let irq = usize::try_from(fdt::number(dtb.property(&VMGENID_NODE, "interrupts")?)?).ok()?;
        (id_len >= 16 && id_at >= mica_guest_common::RAM_BASE).then_some(Vmgenid {
            id_at,
            regs,
            irq,
        })
    }

    fn plic_base(dtb: Option<Dtb<'_>>) -> Option<usize> {
        let reg = dtb?.property(&PLIC_NODE, "reg")?;
        usize::try_from(fdt::number(reg.get(..8)?)?).ok()
    }

    /// Context 0 takes `irq` at priority 1, threshold 0; S-mode external
    /// interrupts on.
    fn enable_interrupts(plic: usize, genid: &Vmgenid) {
        PLIC.store(plic, Ordering::Relaxed);
        REGS.store(genid.regs, Ordering::Relaxed);
        IRQ.store(genid.irq, Ordering::Relaxed);
        let irq = genid.irq;
        write32(plic + 4 * irq, 1);
        write32(plic + PLIC_ENABLE + 4 * (irq / 32), 1 << (irq % 32));
        write32(plic + PLIC_THRESHOLD, 0);
        let vector = mica_guest_trap_vector as *const () as usize;
        // SAFETY: installs this guest's own trap vector (4-byte aligned
        // code above) and enables only the external interrupt it handles.
        unsafe {
            core::arch::asm!("csrw stvec, {0}", in(reg) vector);
            core::arch::asm!("csrs sie, {0}", in(reg) SEIE);
            core::arch::asm!("csrs sstatus, {0}", in(reg) SSTATUS_SIE);
        }
    }

    fn main(_hart: usize, dtb: usize) -> ! {
        // SAFETY: under the boot protocol a1 points at the DTB in guest RAM;
        // `boot_dtb` refuses addresses below RAM, unaligned ones and bad headers.
        let dtb = unsafe { fdt::boot_dtb(dtb) };
        let timebase = fdt::timebase_hz(dtb);
        let genid = vmgenid(dtb);
        match &genid {
            Some(genid) => {
                // A change set before boot (the host's first ID) is already
                // in what is read now: acknowledge it, as a driver's probe
                // does, so only later changes interrupt.
                // SAFETY: the vmgenid register window from the tree.
                unsafe { ((genid.regs + STATUS) as *mut u8).write_volatile(1) };
                println!("genid: {:032x}", read_id(genid.id_at));
                match plic_base(dtb) {
                    Some(plic) => enable_interrupts(plic, genid),
                    None => println!("genid: no PLIC, changes go unnoticed"),
                }
            }
            None => println!("genid: no vmgenid node"),
        }
        let mut tick: u64 = 0;
        loop {
            let start = time::now();
            while time::now().wrapping_sub(start) < timebase {
                if CHANGED.swap(false, Ordering::Acquire)
                    && let Some(genid) = &genid
                {
                    println!("genid changed: {:032x}", read_id(genid.id_at));
                }
                core::hint::spin_loop();
            }
            tick += 1;
            println!("tick {tick}");
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-genid is a bare-metal guest: build it with --target riscv64gc-unknown-none-elf"
    );
}
