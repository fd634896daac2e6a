//! The SBI a guest sees, served in the kernel with `rustsbi`: base (SBI
//! 2.0; the probe reports exactly the extensions below), DBCN console
//! (lines printed as `vm0 | ...`), legacy putchar, set_timer and shutdown,
//! TIME, sPI (software interrupts to any of the VM's harts), RFENCE
//! (fence.i and VS-stage TLB flushes of the VM), HSM (start, stop, status
//! and retentive or non-retentive suspend of its harts), SUSP (suspend to
//! RAM, with every other hart stopped: the VM sleeps until an interrupt and
//! resumes at the address it gave) and SRST.
//! Every hart mask is checked against the VM's harts: naming one it does
//! not have is `SBI_ERR_INVALID_PARAM`, as the spec says. Pure logic: guest memory
//! comes through [`GuestMemoryRead`] and what the call asks of the vCPU
//! (timer, interrupt, power-off) comes back as an [`SbiEffect`], so the
//! dispatch is tested on the host.

use core::cell::{Cell, RefCell};

use rustsbi::RustSBI;
use sbi_spec::binary::{HartMask, Physical, SbiRet};

use crate::vm::VmName;
use crate::vm::console::{ConsoleLine, PrefixedLine};

/// Bytes of one DBCN write copied per call (the guest loops on a short
/// count, as the spec allows).
pub const DBCN_CHUNK: usize = 256;

const EID_LEGACY_SET_TIMER: usize = 0x00;
const EID_LEGACY_PUTCHAR: usize = 0x01;
const EID_LEGACY_SHUTDOWN: usize = 0x08;

/// Guest-physical memory as the SBI implementation may read it.
pub trait GuestMemoryRead {
    /// Fills `buf` from `gpa` if the whole range is readable guest RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool;
}

/// What a call asks of the vCPU beyond its return registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbiEffect {
    /// Nothing.
    None,
    /// Raise the guest's timer interrupt at this absolute time (clears a
    /// pending one).
    SetTimer(u64),
    /// Make a supervisor software interrupt pending on the VM's harts in
    /// the mask (bit `n` = hart `n`; the caller's own bit included).
    SoftwareInterrupt(u64),
    /// The guest powered its machine off, with its SRST reset reason (0
    /// for none and for the legacy shutdown call).
    PowerOff {
        /// The SBI reset reason.
        reason: u32,
    },
    /// The guest asked for a reboot.
    Reboot {
        /// A warm reboot (a cold one otherwise).
        warm: bool,
        /// The SBI reset reason.
        reason: u32,
    },
    /// Flush the VS-stage translations of the VM's harts named by the
    /// call (`hfence.vvma` for its VMID; a flush of all of them is what a
    /// ranged request may get).
    FlushGuestTlb,
    /// Synchronize the instruction fetches of the VM's harts named by the
    /// call (`fence.i`).
    FenceI,
    /// Start hart `hart` (stopped) at `start` in S-mode with a0 = `hart`,
    /// a1 = `opaque`, satp = 0 and interrupts off (HSM `hart_start`).
    StartHart {
        /// The hart to start.
        hart: usize,
        /// Guest-physical start address.
        start: u64,
        /// The value for its a1.
        opaque: usize,
    },
    /// The calling hart stops (HSM `hart_stop`): it runs again only when
    /// another hart starts it.
    StopHart,
    /// The hart waits for an interrupt (HSM retentive suspend), as `wfi`.
    Suspend,
    /// The hart waits for an interrupt, then resumes in S-mode at `resume`
    /// with a0 = hart id, a1 = `opaque`, satp = 0 and interrupts off (HSM
    /// default non-retentive suspend).
    HartSuspend {
        /// Guest-physical resume address.
        resume: u64,
        /// The value for a1.
        opaque: usize,
    },
    /// The system sleeps until an interrupt, then the hart resumes in
    /// S-mode at `resume` with a0 = hart id, a1 = `opaque`, satp = 0 and
    /// interrupts off (SUSP suspend to RAM).
    SystemSuspend {
        /// Guest-physical resume address.
        resume: u64,
        /// The value for a1.
        opaque: usize,
    },
}

/// Bit `n` set for each hart `n` below `harts`.
fn all_harts(harts: usize) -> u64 {
    1u64.checked_shl(harts as u32)
        .map_or(u64::MAX, |bit| bit - 1)
}

/// The harts `mask` names (bit `n` = hart `n`; `base` `usize::MAX`
/// names every hart), when they are all below `harts`; `None` when it
/// names a hart the VM does not have.
fn hart_mask_of(mask: HartMask, harts: usize) -> Option<u64> {
    let (bits, base) = mask.into_inner();
    if base == usize::MAX {
        return Some(all_harts(harts));
    }
    let mut named = 0u64;
    for bit in 0..usize::BITS as usize {
        if bits & (1 << bit) == 0 {
            continue;
        }
        let hart = base.checked_add(bit)?;
        if hart >= harts {
            return None;
        }
        named |= 1 << hart;
    }
    Some(named)
}

/// The calling vCPU and its VM's console.
pub struct SbiCaller<'a> {
    /// The VM's name, for console lines.
    pub name: &'a VmName,
    /// The VM's unfinished console line.
    pub line: &'a mut ConsoleLine,
    /// Guest memory.
    pub memory: &'a dyn GuestMemoryRead,
    /// Where finished console lines go.
    pub out: &'a mut dyn FnMut(PrefixedLine<'_>),
    /// The calling vCPU's hart id.
    pub hart: usize,
    /// How many harts (vCPUs) the VM has.
    pub harts: usize,
    /// The VM's stopped harts (bit `n` = hart `n`, SBI HSM).
    pub stopped: u64,
    /// The VM's harts in a retentive suspend (HSM `hart_suspend`, `wfi`).
    pub suspended: u64,
}

struct Console<'a, 'c> {
    caller: &'a RefCell<&'a mut SbiCaller<'c>>,
}

impl Console<'_, '_> {
    /// Copies the first chunk (at most [`DBCN_CHUNK`] bytes) of the guest
    /// buffer `bytes` into `buf`: its length, or `None` when the buffer is
    /// not all guest RAM (high address bits set, or a range outside RAM),
    /// which DBCN refuses with `SBI_ERR_INVALID_PARAM` for a read as for a
    /// write.
    #[inline]
    fn copy_chunk<P>(&self, bytes: &Physical<P>, buf: &mut [u8; DBCN_CHUNK]) -> Option<usize> {
        if bytes.phys_addr_hi() != 0 {
            return None;
        }
        let len = bytes.num_bytes().min(DBCN_CHUNK);
        let gpa = bytes.phys_addr_lo() as u64;
        self.caller
            .borrow()
            .memory
            .read(gpa, &mut buf[..len])
            .then_some(len)
    }

    fn push(&self, bytes: &[u8]) {
        let mut caller = self.caller.borrow_mut();
        let caller = &mut **caller;
        for &b in bytes {
            caller.line.push(caller.name, b, caller.out);
        }
    }
}

impl rustsbi::Console for Console<'_, '_> {
    fn write(&self, bytes: Physical<&[u8]>) -> SbiRet {
        let mut buf = [0u8; DBCN_CHUNK];
        match self.copy_chunk(&bytes, &mut buf) {
            Some(len) => {
                self.push(&buf[..len]);
                SbiRet::success(len)
            }
            None => SbiRet::invalid_param(),
        }
    }

    fn read(&self, bytes: Physical<&mut [u8]>) -> SbiRet {
        // No console input for guests yet: zero bytes read, into a buffer
        // that must still be the guest's RAM, as for a write.
        let mut buf = [0u8; DBCN_CHUNK];
        match self.copy_chunk(&bytes, &mut buf) {
            Some(_) => SbiRet::success(0),
            None => SbiRet::invalid_param(),
        }
    }

    fn write_byte(&self, byte: u8) -> SbiRet {
        self.push(&[byte]);
        SbiRet::success(0)
    }
}

struct Effects<'a> {
    effect: &'a Cell<SbiEffect>,
    hart: usize,
    harts: usize,
    stopped: u64,
    suspended: u64,
}

impl Effects<'_> {
    /// Whether every hart but the caller is stopped: the caller is the
    /// last one running, which may suspend the system but not stop.
    #[inline]
    fn others_stopped(&self) -> bool {
        let others = all_harts(self.harts) & !(1 << self.hart);
        self.stopped & others == others
    }

    /// Checks `mask`; when it names any hart, the effect `effect` makes
    /// of the harts it names happens (an IPI to them, or a flush the vCPU
    /// layer applies to the harts that need it).
    fn to_harts(&self, mask: HartMask, effect: impl FnOnce(u64) -> SbiEffect) -> SbiRet {
        match hart_mask_of(mask, self.harts) {
            None => SbiRet::invalid_param(),
            Some(named) => {
                if named != 0 {
                    self.effect.set(effect(named));
                }
                SbiRet::success(0)
            }
        }
    }
}

/// Whether `start..start+size` is a range the spec allows (the whole
/// address space is `start = 0, size = usize::MAX`).
fn valid_range(start: usize, size: usize) -> bool {
    size == usize::MAX || start.checked_add(size).is_some()
}

impl rustsbi::Fence for Effects<'_> {
    fn remote_fence_i(&self, hart_mask: HartMask) -> SbiRet {
        self.to_harts(hart_mask, |_| SbiEffect::FenceI)
    }

    fn remote_sfence_vma(&self, hart_mask: HartMask, start: usize, size: usize) -> SbiRet {
        if !valid_range(start, size) {
            return SbiRet::invalid_address();
        }
        self.to_harts(hart_mask, |_| SbiEffect::FlushGuestTlb)
    }

    fn remote_sfence_vma_asid(
        &self,
        hart_mask: HartMask,
        start: usize,
        size: usize,
        _asid: usize,
    ) -> SbiRet {
        if !valid_range(start, size) {
            return SbiRet::invalid_address();
        }
        self.to_harts(hart_mask, |_| SbiEffect::FlushGuestTlb)
    }
}

impl rustsbi::Timer for Effects<'_> {
    fn set_timer(&self, stime_value: u64) {
        self.effect.set(SbiEffect::SetTimer(stime_value));
    }
}

impl rustsbi::Ipi for Effects<'_> {
    fn send_ipi(&self, hart_mask: HartMask) -> SbiRet {
        self.to_harts(hart_mask, SbiEffect::SoftwareInterrupt)
    }
}

impl rustsbi::Reset for Effects<'_> {
    fn system_reset(&self, reset_type: u32, reset_reason: u32) -> SbiRet {
        // A reserved reason is refused before anything happens (SBI 2.0
        // SRST: no reason, system failure, SBI- and vendor-specific).
        if let 0x2..=0xdfff_ffff = reset_reason {
            return SbiRet::invalid_param();
        }
        match reset_type {
            sbi_spec::srst::RESET_TYPE_SHUTDOWN => self.effect.set(SbiEffect::PowerOff {
                reason: reset_reason,
            }),
            sbi_spec::srst::RESET_TYPE_COLD_REBOOT | sbi_spec::srst::RESET_TYPE_WARM_REBOOT => {
                self.effect.set(SbiEffect::Reboot {
                    warm: reset_type == sbi_spec::srst::RESET_TYPE_WARM_REBOOT,
                    reason: reset_reason,
                })
            }
            // Vendor or platform-specific types: valid, not offered.
            0xf000_0000..=u32::MAX => return SbiRet::not_supported(),
            _ => return SbiRet::invalid_param(),
        }
        SbiRet::success(0)
    }
}

/// Whether a hart may start or resume at `gpa`: it is guest RAM the hart
/// can fetch from. Kept out of line: the common calls never need it.
#[inline(never)]
fn fetchable(caller: &RefCell<&mut SbiCaller<'_>>, gpa: u64) -> bool {
    let mut insn = [0u8; 2];
    caller.borrow().memory.read(gpa, &mut insn)
}

struct Harts<'a, 'c> {
    effects: &'a Effects<'a>,
    caller: &'a RefCell<&'a mut SbiCaller<'c>>,
}

impl rustsbi::Hsm for Harts<'_, '_> {
    fn hart_start(&self, hartid: usize, start_addr: usize, opaque: usize) -> SbiRet {
        let effects = self.effects;
        if hartid >= effects.harts {
            return SbiRet::invalid_param();
        }
        if effects.stopped & 1 << hartid == 0 {
            return SbiRet::already_available();
        }
        let start = start_addr as u64;
        if !fetchable(self.caller, start) {
            return SbiRet::invalid_address();
        }
        effects.effect.set(SbiEffect::StartHart {
            hart: hartid,
            start,
            opaque,
        });
        SbiRet::success(0)
    }

    fn hart_stop(&self) -> SbiRet {
        // The last hart that is not stopped cannot stop: nothing could
        // ever start it again (the guest powers off with SRST for that).
        let effects = self.effects;
        if effects.others_stopped() {
            return SbiRet::failed();
        }
        // No return on success: the hart runs again only when started.
        effects.effect.set(SbiEffect::StopHart);
        SbiRet::success(0)
    }

    fn hart_get_status(&self, hartid: usize) -> SbiRet {
        use sbi_spec::hsm::hart_state;
        let effects = self.effects;
        if hartid >= effects.harts {
            SbiRet::invalid_param()
        } else if effects.stopped & 1 << hartid != 0 {
            SbiRet::success(hart_state::STOPPED)
        } else if effects.suspended & 1 << hartid != 0 {
            SbiRet::success(hart_state::SUSPENDED)
        } else {
            SbiRet::success(hart_state::STARTED)
        }
    }

    fn hart_suspend(&self, suspend_type: u32, resume_addr: usize, opaque: usize) -> SbiRet {
        match suspend_type {
            sbi_spec::hsm::suspend_type::RETENTIVE => {
                self.effects.effect.set(SbiEffect::Suspend);
                SbiRet::success(0)
            }
            sbi_spec::hsm::suspend_type::NON_RETENTIVE => {
                let resume = resume_addr as u64;
                if !fetchable(self.caller, resume) {
                    return SbiRet::invalid_address();
                }
                self.effects
                    .effect
                    .set(SbiEffect::HartSuspend { resume, opaque });
                SbiRet::success(0)
            }
            // Valid types Mica does not offer: the platform-specific ones.
            0x1000_0000..=0x7fff_ffff | 0x9000_0000..=0xffff_ffff => SbiRet::not_supported(),
            _ => SbiRet::invalid_param(),
        }
    }
}

/// SUSP's sleep type "suspend to RAM" (the one every SUSP offers).
const SUSPEND_TO_RAM: u32 = 0;

struct Sleep<'a, 'c> {
    caller: &'a RefCell<&'a mut SbiCaller<'c>>,
    effects: &'a Effects<'a>,
}

impl rustsbi::Susp for Sleep<'_, '_> {
    fn system_suspend(&self, sleep_type: u32, resume_addr: usize, opaque: usize) -> SbiRet {
        match sleep_type {
            SUSPEND_TO_RAM => {}
            0x8000_0000..=u32::MAX => return SbiRet::not_supported(),
            _ => return SbiRet::invalid_param(),
        }
        // Only the last started hart may suspend the system (SBI SUSP:
        // every other hart must be stopped).
        let effects = self.effects;
        if !effects.others_stopped() {
            return SbiRet::denied();
        }
        let resume = resume_addr as u64;
        if !fetchable(self.caller, resume) {
            return SbiRet::invalid_address();
        }
        effects
            .effect
            .set(SbiEffect::SystemSuspend { resume, opaque });
        SbiRet::success(0)
    }
}

struct Info;

impl rustsbi::EnvInfo for Info {
    fn mvendorid(&self) -> usize {
        0
    }
    fn marchid(&self) -> usize {
        0
    }
    fn mimpid(&self) -> usize {
        0
    }
}

#[derive(RustSBI)]
struct GuestSbi<'a, 'c> {
    console: Console<'a, 'c>,
    timer: &'a Effects<'a>,
    ipi: &'a Effects<'a>,
    fence: &'a Effects<'a>,
    hsm: Harts<'a, 'c>,
    susp: Sleep<'a, 'c>,
    reset: &'a Effects<'a>,
    info: Info,
}

/// Serves the guest's `ecall` with extension `a7`, function `a6` and
/// arguments `a0..a5`: the values for `a0`/`a1` and what the vCPU must do.
/// Inlined into both callers: with the extension known, as in
/// [`base_call`], all but its arm folds away (the null SBI call is 143
/// instructions so, 255 to 272 through a call).
#[inline(always)]
pub fn handle_ecall(
    caller: &mut SbiCaller<'_>,
    a7: usize,
    a6: usize,
    args: [usize; 6],
) -> (SbiRet, SbiEffect) {
    match a7 {
        EID_LEGACY_PUTCHAR => {
            caller.line.push(caller.name, args[0] as u8, caller.out);
            return (SbiRet::success(0), SbiEffect::None);
        }
        EID_LEGACY_SHUTDOWN => return (SbiRet::success(0), SbiEffect::PowerOff { reason: 0 }),
        EID_LEGACY_SET_TIMER => {
            return (SbiRet::success(0), SbiEffect::SetTimer(args[0] as u64));
        }
        _ => {}
    }
    let effect = Cell::new(SbiEffect::None);
    let effects = Effects {
        effect: &effect,
        hart: caller.hart,
        harts: caller.harts,
        stopped: caller.stopped,
        suspended: caller.suspended,
    };
    let caller = RefCell::new(caller);
    let sbi = GuestSbi {
        console: Console { caller: &caller },
        timer: &effects,
        ipi: &effects,
        fence: &effects,
        hsm: Harts {
            effects: &effects,
            caller: &caller,
        },
        susp: Sleep {
            caller: &caller,
            effects: &effects,
        },
        reset: &effects,
        info: Info,
    };
    let ret = sbi.handle_ecall(a7, a6, args);
    (ret, effect.get())
}

/// The base extension: which SBI this is and which extensions it has.
/// Its answers depend on nothing of the VM, so the hart running a vCPU
/// serves it without the kernel lock ([`base_call`]).
pub const EID_BASE: usize = sbi_spec::base::EID_BASE;

/// Serves a base-extension call (function `a6`, arguments `args`) as
/// [`handle_ecall`] does, with nothing of the VM at hand: the same
/// dispatch, given a caller that holds nothing (no base function reads
/// it).
pub fn base_call(a6: usize, args: [usize; 6]) -> SbiRet {
    struct NoMemory;
    impl GuestMemoryRead for NoMemory {
        fn read(&self, _gpa: u64, _buf: &mut [u8]) -> bool {
            false
        }
    }
    let name = VmName::UNNAMED;
    let mut line = ConsoleLine::new();
    let mut out = |_: PrefixedLine<'_>| {};
    let mut caller = SbiCaller {
        name: &name,
        line: &mut line,
        memory: &NoMemory,
        out: &mut out,
        hart: 0,
        harts: 1,
        stopped: 0,
        suspended: 0,
    };
    handle_ecall(&mut caller, EID_BASE, a6, args).0
}

#[cfg(test)]
#[path = "guest_sbi_tests.rs"]
mod tests;
