//! x86 test guest `x86-smp`: brings up its VM's other vCPUs with Mica's
//! multi-vCPU hypercalls. vCPU 0 prints `hello from <name> (N vcpus)` (N
//! from the boot-info block, 1 without one), builds an IDT whose one gate
//! (vector 0x40) counts IPIs per vCPU, then checks that Mica refuses a
//! start of vCPU N and of itself, an IPI below vector 32, and reports
//! vCPU 1 stopped. It starts vCPUs 1 to N-1 (`vcpu 0: started vcpu k`,
//! `vcpu 0: vcpu k is started`), each on its own 16 KiB stack; each says
//! `vcpu k: up` and waits in HLT with interrupts on. vCPU 0 sends them
//! vector 0x40 at once (`vcpu 0: sent ipi 0x40 to N-1 vcpus`), each says
//! `vcpu k: ipi received`, and vCPU 0 `vcpu 0: every vcpu took its ipi`.
//! Then the last vCPU L stops itself on vCPU 0's word (`vcpu L: stopping`);
//! vCPU 0 sees it stopped (`vcpu 0: vcpu L stopped`) and starts it again
//! at a second entry (`vcpu 0: started vcpu L again`, `vcpu L: up
//! again`). Finally (`vcpu 0: all vcpus busy`) every vCPU spins and prints
//! `vcpu k: progress P` every [`PROGRESS_CYCLES`] TSC cycles, forever.
//!
//! Lines of different vCPUs are serialized with a spinlock in guest
//! memory, so each comes out whole. Any answer from Mica other than the
//! expected one, or a wait of vCPU 0 that runs out ([`WAIT_CYCLES`]), is a
//! line with `UNEXPECTED` in it, and the guest carries on.
//!
//! Layer: test guest (`cargo xtask check-layers`): standalone, it links only
//! the test guests' common crate; nothing but test guests depends on it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod idt;

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use mica_guest_common::boot_info;
    use mica_guest_common::x86::{self, rdtsc};
    use mica_guest_common::x86_println;

    use crate::idt;

    /// Most vCPUs a Mica VM has (`ipc::syscall::MAX_VCPUS`); the guest
    /// runs at most this many, whatever the boot-info block says.
    pub const MAX_VCPUS: usize = 8;
    /// Bytes of each application processor's stack.
    const STACK_BYTES: usize = 16 * 1024;
    /// TSC cycles between two progress lines of a vCPU.
    const PROGRESS_CYCLES: u64 = 200_000_000;
    /// How long vCPU 0 waits for the others (TSC cycles: 30 s at 1 GHz,
    /// about 10 s at QEMU's host rate) before it says `UNEXPECTED timeout`.
    const WAIT_CYCLES: u64 = 30_000_000_000;
    /// A vector below 32, which an IPI may not carry.
    const BAD_VECTOR: u64 = 0x10;
    /// The guest's identity map ends here; the block must lie below.
    const MAPPED: usize = 1 << 30;
    /// Bytes of the block the guest reads (it fills at most a page).
    const BLOCK: usize = 4096;

    /// One application processor's stack (16-byte aligned, as the ABI
    /// wants at a call).
    #[repr(C, align(16))]
    struct Stack([u8; STACK_BYTES]);

    /// The stacks of vCPUs 1 to `MAX_VCPUS - 1` (vCPU k uses `k - 1`);
    /// only their addresses are taken here, each vCPU writes its own.
    static mut STACKS: [Stack; MAX_VCPUS - 1] = [const { Stack([0; STACK_BYTES]) }; MAX_VCPUS - 1];

    /// Whether the CPU is Intel's (VMCALL) rather than AMD's (VMMCALL):
    /// set by vCPU 0 before it starts any other.
    static INTEL: AtomicBool = AtomicBool::new(false);
    /// Held while a vCPU writes one line to COM1.
    static CONSOLE: AtomicBool = AtomicBool::new(false);
    /// Application processors that said `up`.
    static UP: AtomicU64 = AtomicU64::new(0);
    /// Application processors that said `ipi received`.
    static RECEIVED: AtomicU64 = AtomicU64::new(0);
    /// The vCPU vCPU 0 asks to stop itself (0: none).
    static STOP: AtomicU64 = AtomicU64::new(0);
    /// Restarted vCPUs that said `up again`.
    static AGAIN: AtomicU64 = AtomicU64::new(0);
    /// Set by vCPU 0 when every vCPU may start its busy phase.
    static GO: AtomicBool = AtomicBool::new(false);
    /// Busy-loop iterations of each vCPU so far (kept for a debugger: the
    /// lines print only the progress count).
    static SPINS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

    /// Whether hypercalls are VMCALL (Intel) rather than VMMCALL.
    pub fn intel() -> bool {
        INTEL.load(Ordering::Acquire)
    }

    /// The console lock, held for one line; dropping it releases it.
    struct Line;

    impl Line {
        /// Spins until the console is free, then holds it.
        fn lock() -> Line {
            while CONSOLE
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                core::hint::spin_loop();
            }
            Line
        }
    }

    impl Drop for Line {
        fn drop(&mut self) {
            // One more LSR read (an exit Mica answers after this vCPU's
            // posted THR writes) before another vCPU may write.
            while x86::inb(x86::LSR) & x86::LSR_THRE == 0 {
                core::hint::spin_loop();
            }
            CONSOLE.store(false, Ordering::Release);
        }
    }

    /// `x86_println!` under the console lock: one whole line.
    macro_rules! say {
        ($($arg:tt)*) => {{
            let _line = Line::lock();
            x86_println!($($arg)*);
        }};
    }

    mica_guest_common::entry!(main);

    /// vCPU 0: the greeting, the IDT, the refused calls, the start of the
    /// other vCPUs, the IPI, the stop and restart, then the busy phase.
    fn main(_cpu: usize, info: usize) -> ! {
        INTEL.store(x86::is_intel(), Ordering::Release);
        let block: &[u8] = if info != 0 && info.checked_add(BLOCK).is_some_and(|e| e <= MAPPED) {
            // SAFETY: `info..info + 4096` lies in the identity-mapped first
            // GiB (checked); Mica put the block in the top page of RAM, and
            // nothing writes it while the guest reads.
            unsafe { core::slice::from_raw_parts(info as *const u8, BLOCK) }
        } else {
            &[]
        };
        let name = boot_info::vm_name(block).unwrap_or("an unnamed VM");
        let n = boot_info::vcpus(block).unwrap_or(1);
        let vcpus = usize::try_from(n).unwrap_or(MAX_VCPUS).min(MAX_VCPUS);
        let plural = if n == 1 { "" } else { "s" };
        say!("hello from {name} ({n} vcpu{plural})");
        idt::build();
        idt::load();
        refusals(vcpus);
        if vcpus > 1 {
            start_all(vcpus);
            ipis(vcpus);
            stop_and_restart(vcpus - 1);
        }
        GO.store(true, Ordering::Release);
        say!("vcpu 0: all vcpus busy");
        busy(0)
    }

    /// The calls Mica must refuse, and vCPU 1's status before its start.
    fn refusals(vcpus: usize) {
        let intel = intel();
        let past = vcpus as u64;
        match x86::vcpu_start(intel, past, address(parked), 0, past) {
            x86::HC_INVALID => say!("vcpu 0: start of vcpu {past} refused (invalid)"),
            rax => say!("vcpu 0: UNEXPECTED start of vcpu {past}: {rax:#x}"),
        }
        match x86::vcpu_start(intel, 0, address(parked), 0, 0) {
            x86::HC_ALREADY_STARTED => {
                say!("vcpu 0: start of vcpu 0 refused (already started)")
            }
            rax => say!("vcpu 0: UNEXPECTED start of vcpu 0: {rax:#x}"),
        }
        // To vCPU 0 itself, which never sets IF: a vector that got through
        // would never be taken.
        match x86::send_ipi(intel, 1, BAD_VECTOR) {
            x86::HC_INVALID => say!("vcpu 0: ipi vector {BAD_VECTOR:#x} refused (invalid)"),
            rax => say!("vcpu 0: UNEXPECTED ipi vector {BAD_VECTOR:#x}: {rax:#x}"),
        }
        if vcpus > 1 {
            match x86::vcpu_status(intel, 1) {
                x86::VCPU_STOPPED => say!("vcpu 0: vcpu 1 is stopped"),
                rax => say!("vcpu 0: UNEXPECTED status of vcpu 1: {rax:#x}"),
            }
        }
    }

    /// Starts vCPUs 1 to `vcpus - 1` at [`ap_main`], then waits until each
    /// said `up`.
    fn start_all(vcpus: usize) {
        let intel = intel();
        for k in 1..vcpus {
            let id = k as u64;
            match x86::vcpu_start(intel, id, address(ap_main), stack_top(k), id) {
                x86::HC_OK => say!("vcpu 0: started vcpu {k}"),
                rax => say!("vcpu 0: UNEXPECTED start of vcpu {k}: {rax:#x}"),
            }
            match x86::vcpu_status(intel, id) {
                x86::VCPU_STARTED => say!("vcpu 0: vcpu {k} is started"),
                rax => say!("vcpu 0: UNEXPECTED status of vcpu {k}: {rax:#x}"),
            }
        }
        let others = vcpus as u64 - 1;
        wait_for("every vcpu up", || UP.load(Ordering::Acquire) >= others);
    }

    /// Sends the IPI to vCPUs 1 to `vcpus - 1` at once and waits until each
    /// took it.
    fn ipis(vcpus: usize) {
        let others = vcpus as u64 - 1;
        let mask = ((1u64 << vcpus) - 1) & !1;
        match x86::send_ipi(intel(), mask, u64::from(idt::IPI_VECTOR)) {
            x86::HC_OK => say!("vcpu 0: sent ipi {:#x} to {others} vcpus", idt::IPI_VECTOR),
            rax => say!("vcpu 0: UNEXPECTED ipi to mask {mask:#x}: {rax:#x}"),
        }
        if wait_for("the ipis", || RECEIVED.load(Ordering::Acquire) >= others) {
            say!("vcpu 0: every vcpu took its ipi");
        }
    }

    /// Asks vCPU `last` to stop itself, waits until Mica reports it
    /// stopped, starts it again at [`ap_again`] and waits until it said so.
    fn stop_and_restart(last: usize) {
        let intel = intel();
        let id = last as u64;
        STOP.store(id, Ordering::Release);
        if wait_for("the stop", || {
            x86::vcpu_status(intel, id) == x86::VCPU_STOPPED
        }) {
            say!("vcpu 0: vcpu {last} stopped");
        }
        match x86::vcpu_start(intel, id, address(ap_again), stack_top(last), id) {
            x86::HC_OK => say!("vcpu 0: started vcpu {last} again"),
            rax => say!("vcpu 0: UNEXPECTED restart of vcpu {last}: {rax:#x}"),
        }
        wait_for("the restart", || AGAIN.load(Ordering::Acquire) >= 1);
    }

    /// Spins (PAUSE) until `done` holds, for at most [`WAIT_CYCLES`];
    /// says `UNEXPECTED timeout waiting for <what>` if it never did.
    fn wait_for(what: &str, done: impl Fn() -> bool) -> bool {
        let start = rdtsc();
        while !done() {
            if rdtsc().wrapping_sub(start) > WAIT_CYCLES {
                say!("vcpu 0: UNEXPECTED timeout waiting for {what}");
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }

    /// The guest-physical (identity-mapped) address of a vCPU entry.
    fn address(entry: extern "C" fn(u64) -> !) -> u64 {
        entry as usize as u64
    }

    /// The stack pointer vCPU `k` (1 or more) starts with: the top of its
    /// stack less the 8 bytes of a return address, as at any function's
    /// entry.
    fn stack_top(k: usize) -> u64 {
        let index = k.saturating_sub(1).min(MAX_VCPUS - 2);
        let base = (&raw mut STACKS) as usize;
        (base + (index + 1) * STACK_BYTES - 8) as u64
    }

    /// An application processor's first entry (RDI = its number): loads
    /// the IDT, checks its number, says `up`, waits in HLT for the IPI,
    /// then for vCPU 0's word (stop, or go busy).
    extern "C" fn ap_main(id: u64) -> ! {
        idt::load();
        let intel = intel();
        let own = x86::vcpu_id(intel);
        if own != id {
            say!("vcpu {id}: UNEXPECTED vcpu id {own}");
        }
        say!("vcpu {id}: up");
        UP.fetch_add(1, Ordering::Release);
        let k = usize::try_from(id).unwrap_or(0);
        while idt::taken(k) == 0 {
            // SAFETY: the IDT holds the IPI gate; STI's one-instruction
            // shadow keeps the IPI from landing between it and HLT, which
            // it then ends; CLI before the next check. Not `nomem`: the
            // handler writes the counter read above (no red zone on this
            // target, so its frame below RSP harms nothing).
            unsafe { core::arch::asm!("sti", "hlt", "cli", options(nostack)) };
        }
        say!("vcpu {id}: ipi received");
        RECEIVED.fetch_add(1, Ordering::Release);
        loop {
            if STOP.load(Ordering::Acquire) == id {
                say!("vcpu {id}: stopping");
                let rax = x86::vcpu_stop(intel);
                say!("vcpu {id}: UNEXPECTED stop returned {rax:#x}");
                STOP.store(0, Ordering::Release);
            }
            if GO.load(Ordering::Acquire) {
                busy(k)
            }
            core::hint::spin_loop();
        }
    }

    /// The entry vCPU 0 starts a stopped vCPU at again (RDI = its number):
    /// says `up again`, waits for the busy phase and joins it.
    extern "C" fn ap_again(id: u64) -> ! {
        idt::load();
        say!("vcpu {id}: up again");
        AGAIN.fetch_add(1, Ordering::Release);
        while !GO.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        busy(usize::try_from(id).unwrap_or(0))
    }

    /// The busy phase of vCPU `k`: a tight counting loop, with a line
    /// `vcpu k: progress P` every [`PROGRESS_CYCLES`], forever.
    fn busy(k: usize) -> ! {
        let mut progress = 0u64;
        loop {
            let start = rdtsc();
            let mut spins = 0u64;
            while rdtsc().wrapping_sub(start) < PROGRESS_CYCLES {
                spins += 1;
            }
            if let Some(total) = SPINS.get(k) {
                total.fetch_add(spins, Ordering::Relaxed);
            }
            progress += 1;
            say!("vcpu {k}: progress {progress}");
        }
    }

    /// Where the refused starts point: a vCPU started there by mistake
    /// halts for good.
    extern "C" fn parked(_id: u64) -> ! {
        loop {
            // SAFETY: HLT with interrupts off: the vCPU waits, no state
            // changes.
            unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "mica-guest-x86-smp is a bare-metal guest: build it with --target x86_64-unknown-none"
    );
}
