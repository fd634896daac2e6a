//! The ioreq slot state machine (FREE -> PENDING -> PROCESSING -> COMPLETE ->
//! FREE) and the validated decoding of a slot into an [`IoRequest`].
//!
//! FREE and COMPLETE slots belong to the kernel, PENDING and PROCESSING ones
//! to the ioreq service. The page is shared memory, so every function here
//! reads the state word, checks it against [`next_state`] and refuses with a
//! [`SlotError`] (leaving the slot untouched) when the other side left the
//! slot in a state that does not allow the step, or wrote a request that
//! makes no sense. Callers count the refusals (the ioreq service's
//! `counters`).
//!
//! # Concurrency: the ownership rule
//!
//! The kernel and the service may run on different harts at the same time.
//! The state word is atomic; the request type and payload are plain memory,
//! race-free because only the owner of the slot's current state touches
//! them, and ownership passes only through the state word:
//!
//! - The kernel writes the request into a FREE slot, then publishes PENDING
//!   with a release store ([`fill`]).
//! - The service claims a PENDING slot with a compare-exchange PENDING ->
//!   PROCESSING (acquire: it sees the kernel's request) *before* it reads
//!   the request ([`begin_processing`]). The kernel may take a PENDING slot
//!   back with a compare-exchange PENDING -> FREE ([`withdraw`]); of the
//!   two compare-exchanges exactly one succeeds, and the loser touches
//!   nothing. [`abandon`] (PENDING -> COMPLETE) is a compare-exchange too.
//! - The service writes the result into its PROCESSING slot, then publishes
//!   COMPLETE with a release store ([`finish`], [`give_up`]). The kernel
//!   never writes a PROCESSING slot.
//! - The kernel reads the state word with acquire ordering and reads the
//!   payload only once it saw COMPLETE ([`take_matching`],
//!   [`take_completion`]), then publishes FREE (release).
//! - A restarted service re-reads a PROCESSING slot that its dead
//!   predecessor claimed ([`adopt`]): it saw the predecessor's claim (an
//!   acquire load of a release) and starts after the kernel reaped the
//!   predecessor, so the predecessor's accesses happen before its own.
//! - [`reset`] empties a slot the kernel owns (FREE, COMPLETE) or whose
//!   state word the service scribbled, the state word last.
//!
//! A service that breaks the rule (writes a slot it does not own) can only
//! make the kernel read garbage, which every decode refuses. The rule is
//! checked by exploring every interleaving of both sides with a
//! happens-before race detector (`slot/model_tests.rs`).

use core::sync::atomic::Ordering;

use crate::Space;

use super::page::{
    DIRECTION_READ, DIRECTION_WRITE, IoreqPage, IoreqSlot, MmioFields, PciFields, PioFields,
    RequestPayload, STATE_COMPLETE, STATE_FREE, STATE_LOAD, STATE_PENDING, STATE_PROCESSING,
    TYPE_MMIO, TYPE_PCI_CONFIG, TYPE_PIO,
};

/// How a compare-exchange that moves a slot out of a state the other side
/// may also move succeeds: it acquires what the state's writer published
/// and publishes what its caller wrote before.
pub(crate) const CLAIM: Ordering = Ordering::AcqRel;

/// The state of one slot, decoded from its `processed` word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// A request waits for the service.
    Pending,
    /// The request is done; the kernel resumes the vCPU and frees the slot.
    Complete,
    /// A client is emulating the request.
    Processing,
    /// Empty.
    Free,
}

/// Who may change a slot in a given state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The kernel (FREE and COMPLETE slots).
    Kernel,
    /// The ioreq service (PENDING and PROCESSING slots).
    Service,
}

/// A step of the slot state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotEvent {
    /// Kernel: a trapped access is written into a FREE slot (-> PENDING).
    Fill,
    /// Service: a PENDING request is taken for emulation (-> PROCESSING).
    Dispatch,
    /// Service: the emulation finished (PROCESSING -> COMPLETE).
    Complete,
    /// Kernel: the vCPU consumed the result (COMPLETE -> FREE).
    Reclaim,
    /// Kernel: a request the service has not claimed is taken back
    /// (PENDING -> FREE, by compare-exchange; see [`withdraw`]).
    Withdraw,
    /// Service: a request handed to a client that did not answer it
    /// plainly goes back to be dispatched again (PROCESSING -> PENDING;
    /// the kernel does it for a client the service forwarded the request
    /// to, see [`hand_back`]).
    HandBack,
}

impl SlotState {
    /// Decodes a raw `processed` word.
    #[inline]
    pub fn from_raw(raw: u32) -> Result<Self, SlotError> {
        match raw {
            STATE_PENDING => Ok(Self::Pending),
            STATE_COMPLETE => Ok(Self::Complete),
            STATE_PROCESSING => Ok(Self::Processing),
            STATE_FREE => Ok(Self::Free),
            other => Err(SlotError::UnknownState(other)),
        }
    }

    /// The raw `processed` word of this state.
    #[inline]
    pub const fn raw(self) -> u32 {
        match self {
            Self::Pending => STATE_PENDING,
            Self::Complete => STATE_COMPLETE,
            Self::Processing => STATE_PROCESSING,
            Self::Free => STATE_FREE,
        }
    }

    /// Who may move a slot out of this state (the kernel may also
    /// [`withdraw`] a PENDING one, by compare-exchange).
    pub const fn owner(self) -> Owner {
        match self {
            Self::Free | Self::Complete => Owner::Kernel,
            Self::Pending | Self::Processing => Owner::Service,
        }
    }
}

impl SlotEvent {
    /// Who performs this step.
    pub const fn actor(self) -> Owner {
        match self {
            Self::Fill | Self::Reclaim | Self::Withdraw => Owner::Kernel,
            Self::Dispatch | Self::Complete | Self::HandBack => Owner::Service,
        }
    }
}

/// The whole transition table: the six legal steps, every other pair is
/// [`SlotError::IllegalTransition`].
#[inline]
pub fn next_state(from: SlotState, event: SlotEvent) -> Result<SlotState, SlotError> {
    match (from, event) {
        (SlotState::Free, SlotEvent::Fill) => Ok(SlotState::Pending),
        (SlotState::Pending, SlotEvent::Dispatch) => Ok(SlotState::Processing),
        (SlotState::Processing, SlotEvent::Complete) => Ok(SlotState::Complete),
        (SlotState::Complete, SlotEvent::Reclaim) => Ok(SlotState::Free),
        (SlotState::Pending, SlotEvent::Withdraw) => Ok(SlotState::Free),
        (SlotState::Processing, SlotEvent::HandBack) => Ok(SlotState::Pending),
        (found, event) => Err(SlotError::IllegalTransition { found, event }),
    }
}

/// Why a slot operation was refused. The slot is left as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// There is no slot for this vCPU (index 16 or more, or beyond the VM's
    /// vCPU count).
    NoSuchSlot(u8),
    /// The state word holds no known state (the other side scribbled).
    UnknownState(u32),
    /// The slot's state does not allow this step.
    IllegalTransition {
        /// The state the slot was in.
        found: SlotState,
        /// The step that was attempted.
        event: SlotEvent,
    },
    /// The request type is not PIO, MMIO or PCI config.
    UnknownType(u32),
    /// The access width is not allowed for the request type (MMIO: 1, 2, 4
    /// or 8 bytes; PIO and PCI config: 1, 2 or 4, their value is 32 bits).
    BadSize(u64),
    /// The direction is neither read nor write.
    BadDirection(u32),
    /// The accessed bytes leave the address space: an MMIO access wraps
    /// past 2^64, a port access goes past port 0xffff, or a PCI access names
    /// a bus > 255, device > 31, function > 7 or goes past register 0xfff.
    BadAddress,
    /// `Complete` of a PROCESSING slot that this service never dispatched
    /// (someone else moved it out of PENDING, or the service restarted).
    NotDispatched,
    /// A COMPLETE slot that holds another access than the one submitted
    /// (its space, address, width or direction changed meanwhile).
    Mismatch,
}

impl From<SlotError> for crate::Error {
    fn from(error: SlotError) -> Self {
        match error {
            SlotError::NoSuchSlot(_) => crate::Error::InvalidArgument,
            SlotError::UnknownState(_)
            | SlotError::IllegalTransition { .. }
            | SlotError::NotDispatched
            | SlotError::Mismatch => crate::Error::BadSlotState,
            SlotError::UnknownType(_)
            | SlotError::BadSize(_)
            | SlotError::BadDirection(_)
            | SlotError::BadAddress => crate::Error::BadAccess,
        }
    }
}

/// Whether the guest reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The guest reads; the result goes back into the slot.
    Read,
    /// The guest writes `value`.
    Write,
}

/// A validated guest access, as decoded from (or filled into) a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoRequest {
    /// The vCPU (and slot index).
    pub vcpu: u8,
    /// MMIO, PIO or PCI config.
    pub space: Space,
    /// Guest-physical address, port number, or for PCI config the ECAM-style
    /// offset `bus << 20 | device << 15 | function << 12 | register`.
    pub addr: u64,
    /// Access width in bytes.
    pub size: u8,
    /// Read or write.
    pub direction: Direction,
    /// The value written, or the read result; only the low `size` bytes
    /// are ever kept.
    pub value: u64,
}

/// Largest valid port number.
const PORT_MAX: u64 = 0xffff;
/// Size of one PCI function's configuration space.
const PCI_CONFIG_BYTES: u64 = 0x1000;
/// Largest valid ECAM-style PCI config offset (bus 255, dev 31, func 7, 0xfff).
pub const PCI_CONFIG_MAX: u64 = 0x0fff_ffff;

/// `value` with only its low `size` bytes kept.
#[inline]
pub fn mask_to_size(value: u64, size: u8) -> u64 {
    match size {
        1 => value & 0xff,
        2 => value & 0xffff,
        4 => value & 0xffff_ffff,
        _ => value,
    }
}

#[inline]
fn decode_direction(raw: u32) -> Result<Direction, SlotError> {
    match raw {
        DIRECTION_READ => Ok(Direction::Read),
        DIRECTION_WRITE => Ok(Direction::Write),
        other => Err(SlotError::BadDirection(other)),
    }
}

const fn direction_raw(direction: Direction) -> u32 {
    match direction {
        Direction::Read => DIRECTION_READ,
        Direction::Write => DIRECTION_WRITE,
    }
}

/// Checks the width allowed for `space`.
#[inline]
fn checked_size(space: Space, size: u64) -> Result<u8, SlotError> {
    match (space, size) {
        (_, 1) => Ok(1),
        (_, 2) => Ok(2),
        (_, 4) => Ok(4),
        (Space::Mmio, 8) => Ok(8),
        _ => Err(SlotError::BadSize(size)),
    }
}

/// Checks that `size` bytes from `addr` stay inside `space`.
#[inline]
fn check_address(space: Space, addr: u64, size: u8) -> Result<(), SlotError> {
    let last = addr
        .checked_add(u64::from(size).saturating_sub(1))
        .ok_or(SlotError::BadAddress)?;
    let fits = match space {
        Space::Mmio => true,
        Space::Pio => last <= PORT_MAX,
        // Within one function's 4 KiB configuration space.
        Space::PciConfig => {
            last <= PCI_CONFIG_MAX && addr / PCI_CONFIG_BYTES == last / PCI_CONFIG_BYTES
        }
    };
    if fits {
        Ok(())
    } else {
        Err(SlotError::BadAddress)
    }
}

fn pci_offset(fields: &PciFields) -> Result<u64, SlotError> {
    if fields.bus > 0xff || fields.dev > 0x1f || fields.func > 0x7 || fields.reg > 0xfff {
        return Err(SlotError::BadAddress);
    }
    Ok(u64::from(fields.bus) << 20
        | u64::from(fields.dev) << 15
        | u64::from(fields.func) << 12
        | u64::from(fields.reg))
}

/// Decodes and validates the request held in `slot` (whatever its state).
#[inline]
pub fn decode(slot: &IoreqSlot, vcpu: u8) -> Result<IoRequest, SlotError> {
    let (space, direction, addr, raw_size, value) = match slot.request_type {
        TYPE_MMIO => {
            let f = slot.payload.mmio();
            (Space::Mmio, f.direction, f.address, f.size, f.value)
        }
        TYPE_PIO => {
            let f = slot.payload.pio();
            (
                Space::Pio,
                f.direction,
                f.address,
                f.size,
                u64::from(f.value),
            )
        }
        TYPE_PCI_CONFIG => {
            let f = slot.payload.pci();
            let offset = pci_offset(&f)?;
            (
                Space::PciConfig,
                f.direction,
                offset,
                f.size,
                u64::from(f.value),
            )
        }
        other => return Err(SlotError::UnknownType(other)),
    };
    let direction = decode_direction(direction)?;
    let size = checked_size(space, raw_size)?;
    check_address(space, addr, size)?;
    Ok(IoRequest {
        vcpu,
        space,
        addr,
        size,
        direction,
        value: mask_to_size(value, size),
    })
}

/// Checks an access the kernel is about to write (same rules as [`decode`]).
pub fn validate(request: &IoRequest) -> Result<(), SlotError> {
    checked_size(request.space, u64::from(request.size))?;
    check_address(request.space, request.addr, request.size)
}

/// Writes `request` into `slot`'s type and payload (not its state).
fn encode(slot: &mut IoreqSlot, request: &IoRequest) {
    let direction = direction_raw(request.direction);
    let size = u64::from(request.size);
    let value = mask_to_size(request.value, request.size);
    let value32 = u32::try_from(value & 0xffff_ffff).unwrap_or(u32::MAX);
    match request.space {
        Space::Mmio => {
            slot.request_type = TYPE_MMIO;
            slot.payload.set_mmio(&MmioFields {
                direction,
                address: request.addr,
                size,
                value,
            });
        }
        Space::Pio => {
            slot.request_type = TYPE_PIO;
            slot.payload.set_pio(&PioFields {
                direction,
                address: request.addr,
                size,
                value: value32,
            });
        }
        Space::PciConfig => {
            let field = |shift: u32, mask: u64| {
                u32::try_from((request.addr >> shift) & mask).unwrap_or(u32::MAX)
            };
            slot.request_type = TYPE_PCI_CONFIG;
            slot.payload.set_pci(&PciFields {
                direction,
                size,
                value: value32,
                bus: field(20, 0xff),
                dev: field(15, 0x1f),
                func: field(12, 0x7),
                reg: field(0, 0xfff),
            });
        }
    }
}

#[inline]
fn slot_in(page: &mut IoreqPage, vcpu: u8) -> Result<&mut IoreqSlot, SlotError> {
    page.slot_mut(usize::from(vcpu))
        .ok_or(SlotError::NoSuchSlot(vcpu))
}

/// Reads the state word of `slot` (acquire) and checks that `event` may
/// leave it: the state `event` leads to, or the refusal.
#[inline]
fn step(slot: &IoreqSlot, event: SlotEvent) -> Result<SlotState, SlotError> {
    next_state(SlotState::from_raw(slot.state_word())?, event)
}

/// Moves `slot` from `from` to `to` (the states `event` passes through)
/// with one compare-exchange, for a step the other side may race with; on
/// refusal the slot is untouched and the error names the state found.
#[inline]
fn claim(
    slot: &IoreqSlot,
    from: SlotState,
    to: SlotState,
    event: SlotEvent,
) -> Result<(), SlotError> {
    match slot
        .processed
        .compare_exchange(from.raw(), to.raw(), CLAIM, STATE_LOAD)
    {
        Ok(_) => Ok(()),
        Err(raw) => Err(match SlotState::from_raw(raw) {
            Ok(found) => SlotError::IllegalTransition { found, event },
            Err(error) => error,
        }),
    }
}

/// The state of `vcpu`'s slot, as far as it is a known state.
pub fn state(page: &IoreqPage, vcpu: u8) -> Result<SlotState, SlotError> {
    let slot = page
        .slot(usize::from(vcpu))
        .ok_or(SlotError::NoSuchSlot(vcpu))?;
    SlotState::from_raw(slot.state_word())
}

/// Kernel side: writes a trapped access into its vCPU's FREE slot and marks
/// it PENDING (the state word is written last, with release ordering).
pub fn fill(page: &mut IoreqPage, request: &IoRequest) -> Result<(), SlotError> {
    validate(request)?;
    let slot = slot_in(page, request.vcpu)?;
    let next = step(slot, SlotEvent::Fill)?;
    encode(slot, request);
    slot.set_state_word(next.raw());
    Ok(())
}

/// Kernel side: takes back `vcpu`'s PENDING request before the service
/// claimed it (PENDING -> FREE, by compare-exchange). Refused, with nothing
/// changed, once the service claimed it: the kernel then waits for
/// COMPLETE, since the service may be reading the slot.
pub fn withdraw(page: &mut IoreqPage, vcpu: u8) -> Result<(), SlotError> {
    let slot = slot_in(page, vcpu)?;
    claim(
        slot,
        SlotState::Pending,
        SlotState::Free,
        SlotEvent::Withdraw,
    )
}

/// Kernel side: empties `vcpu`'s slot, every field zero and state FREE (the
/// state word written last). Only for a slot the kernel owns (FREE,
/// COMPLETE) or whose state word the service scribbled; a PENDING request
/// is taken back with [`withdraw`] instead.
pub fn reset(page: &mut IoreqPage, vcpu: u8) -> Result<(), SlotError> {
    let slot = slot_in(page, vcpu)?;
    clear(slot);
    slot.set_state_word(STATE_FREE);
    Ok(())
}

/// Zeroes every field of `slot` but its state word: [`reset`]'s plain writes.
fn clear(slot: &mut IoreqSlot) {
    slot.request_type = 0;
    slot.completion_polling = 0;
    slot.reserved0 = [0; 14];
    slot.payload = RequestPayload::default();
    slot.reserved1 = 0;
    slot.kernel_handled = 0;
    slot.reserved2 = [0; 29];
}

/// Kernel side: takes the result out of `vcpu`'s COMPLETE slot and frees it.
///
/// The returned request's `value` is the read result for a read (the value
/// written, for a write). A slot whose request no longer decodes is refused
/// and left COMPLETE, for the kernel to decide (e.g. reset it with
/// [`reset`] and inject a fault).
pub fn take_completion(page: &mut IoreqPage, vcpu: u8) -> Result<IoRequest, SlotError> {
    decode_and_step(page, vcpu, SlotEvent::Reclaim)
}

/// Decodes `vcpu`'s request and moves its slot on by `event`; a request
/// that does not decode, or a state `event` cannot leave, changes nothing.
#[inline]
fn decode_and_step(
    page: &mut IoreqPage,
    vcpu: u8,
    event: SlotEvent,
) -> Result<IoRequest, SlotError> {
    let slot = slot_in(page, vcpu)?;
    let next = step(slot, event)?;
    let request = decode(slot, vcpu)?;
    slot.set_state_word(next.raw());
    Ok(request)
}

/// Kernel side, the one read per completion: the result in the slot of
/// `submitted` (the access the kernel filled in) once the slot is COMPLETE
/// and still holds that very access (same type, address, width and
/// direction), and the slot is FREE again; `Ok(None)`, with nothing
/// changed, while it is PENDING or PROCESSING. Any other state, or a slot
/// that holds another access, is an error and the slot is left as it is.
/// Cheaper than [`take_completion`]: the kernel compares the raw words it
/// wrote instead of decoding the request again.
#[inline]
pub fn take_matching(
    page: &mut IoreqPage,
    submitted: &IoRequest,
) -> Result<Option<u64>, SlotError> {
    let slot = slot_in(page, submitted.vcpu)?;
    match slot.state_word() {
        STATE_PENDING | STATE_PROCESSING => return Ok(None),
        STATE_COMPLETE => {}
        other => {
            return Err(match SlotState::from_raw(other) {
                Ok(found) => SlotError::IllegalTransition {
                    found,
                    event: SlotEvent::Reclaim,
                },
                Err(e) => e,
            });
        }
    }
    let value = read_matching(slot, submitted).ok_or(SlotError::Mismatch)?;
    slot.set_state_word(STATE_FREE);
    Ok(Some(mask_to_size(value, submitted.size)))
}

/// The result in `slot` if it still holds the access `submitted` (same
/// type, address, width and direction): [`take_matching`]'s payload reads.
#[inline]
fn read_matching(slot: &IoreqSlot, submitted: &IoRequest) -> Option<u64> {
    let direction = direction_raw(submitted.direction);
    let size = u64::from(submitted.size);
    match (submitted.space, slot.request_type) {
        (Space::Mmio, TYPE_MMIO) => {
            let f = slot.payload.mmio();
            (f.direction == direction && f.address == submitted.addr && f.size == size)
                .then_some(f.value)
        }
        (Space::Pio, TYPE_PIO) => {
            let f = slot.payload.pio();
            (f.direction == direction && f.address == submitted.addr && f.size == size)
                .then_some(u64::from(f.value))
        }
        // PCI configuration accesses take the general decode.
        (Space::PciConfig, TYPE_PCI_CONFIG) => decode(slot, submitted.vcpu)
            .ok()
            .filter(|r| {
                (r.addr, r.size, r.direction)
                    == (submitted.addr, submitted.size, submitted.direction)
            })
            .map(|r| r.value),
        _ => None,
    }
}

/// Service side: claims `vcpu`'s PENDING slot (PROCESSING, by
/// compare-exchange, so that a kernel [`withdraw`] and this never both
/// succeed) and decodes its request; the request is read only once the
/// slot is the service's.
///
/// A PENDING slot whose request does not decode is refused and left
/// PENDING (handed back: the kernel never writes a PROCESSING slot, so
/// nothing changed meanwhile); see [`abandon`].
#[inline]
pub fn begin_processing(page: &mut IoreqPage, vcpu: u8) -> Result<IoRequest, SlotError> {
    let slot = slot_in(page, vcpu)?;
    claim(
        slot,
        SlotState::Pending,
        SlotState::Processing,
        SlotEvent::Dispatch,
    )?;
    decode(slot, vcpu).inspect_err(|_| slot.set_state_word(STATE_PENDING))
}

/// Service side: stores the result of `request` (only for a read, cut to
/// its width) into its PROCESSING slot and marks it COMPLETE.
///
/// `request` is the service's own copy taken at dispatch, so a slot whose
/// payload changed meanwhile still gets the value at the right width.
#[inline]
pub fn finish(page: &mut IoreqPage, request: &IoRequest, value: u64) -> Result<(), SlotError> {
    let slot = slot_in(page, request.vcpu)?;
    let next = step(slot, SlotEvent::Complete)?;
    write_result(slot, request, value);
    slot.set_state_word(next.raw());
    Ok(())
}

/// Stores the result of `request` (only for a read, cut to its width) into
/// the payload's `value` word: the one payload word [`finish`] writes.
#[inline]
fn write_result(slot: &mut IoreqSlot, request: &IoRequest, value: u64) {
    if request.direction == Direction::Read {
        let value = mask_to_size(value, request.size);
        match request.space {
            Space::Mmio => slot.payload.set_value_u64(value),
            Space::Pio | Space::PciConfig => slot
                .payload
                .set_value_u32(u32::try_from(value).unwrap_or(u32::MAX)),
        }
    }
}

/// Kernel side, for a client's answer the kernel carries (see
/// [`hand_back`]): [`finish`] with `value`, then the kernel reclaims the
/// COMPLETE slot at once (FREE); returns the value as [`take_matching`]
/// would (a read's cut to its width, a write's the value stored).
/// Refused, with nothing changed, unless the slot is PROCESSING.
#[inline]
pub fn finish_and_reclaim(
    page: &mut IoreqPage,
    request: &IoRequest,
    value: u64,
) -> Result<u64, SlotError> {
    finish(page, request, value)?;
    let slot = slot_in(page, request.vcpu)?;
    let next = step(slot, SlotEvent::Reclaim)?;
    slot.set_state_word(next.raw());
    Ok(match request.direction {
        Direction::Read => mask_to_size(value, request.size),
        Direction::Write => mask_to_size(request.value, request.size),
    })
}

/// Service side, done by the kernel for the client the ioreq service
/// forwarded `vcpu`'s request to (`ipc::syscall::Sysno::IoreqForward`),
/// when that client died or answered other than plainly: the PROCESSING
/// slot is PENDING again, its request untouched, for the service to
/// dispatch it again.
pub fn hand_back(page: &mut IoreqPage, vcpu: u8) -> Result<(), SlotError> {
    let slot = slot_in(page, vcpu)?;
    let next = step(slot, SlotEvent::HandBack)?;
    slot.set_state_word(next.raw());
    Ok(())
}

/// Service side: gives up on a PENDING slot whose request does not decode,
/// stepping it PENDING -> PROCESSING -> COMPLETE without touching its
/// payload, so the kernel wakes the vCPU and sees the bad request itself.
pub fn abandon(page: &mut IoreqPage, vcpu: u8) -> Result<(), SlotError> {
    let slot = slot_in(page, vcpu)?;
    let processing = next_state(SlotState::Pending, SlotEvent::Dispatch)?;
    let complete = next_state(processing, SlotEvent::Complete)?;
    claim(slot, SlotState::Pending, complete, SlotEvent::Dispatch)
}

/// Service side, after a restart: the request of `vcpu`'s slot that a dead
/// predecessor took (PROCESSING) and never finished, decoded again so
/// that it can go to its client again. The slot stays PROCESSING.
pub fn adopt(page: &IoreqPage, vcpu: u8) -> Result<IoRequest, SlotError> {
    let slot = page
        .slot(usize::from(vcpu))
        .ok_or(SlotError::NoSuchSlot(vcpu))?;
    match SlotState::from_raw(slot.state_word())? {
        SlotState::Processing => decode(slot, vcpu),
        found => Err(SlotError::IllegalTransition {
            found,
            event: SlotEvent::Complete,
        }),
    }
}

/// Service side: gives up on a PROCESSING slot whose request does not
/// decode (see [`adopt`]), marking it COMPLETE without touching its
/// payload, so the kernel wakes the vCPU and sees the bad request itself.
pub fn give_up(page: &mut IoreqPage, vcpu: u8) -> Result<(), SlotError> {
    let slot = slot_in(page, vcpu)?;
    let next = step(slot, SlotEvent::Complete)?;
    slot.set_state_word(next.raw());
    Ok(())
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
