//! Targets for the bytes other tasks hand a service: every `ipc` message
//! (postcard), the hand-encoded guest I/O messages (`devices::wire`), the
//! shared ioreq page and posted-write ring, and the console text rule.

use core::fmt::Debug;

use ipc::devices::wire::{self, Access};
use ipc::devices::{self, BatchWrite};
use ipc::ioreq_abi::page::{IoreqPage, IoreqSlot, PAGE_SIZE, SLOT_COUNT, SLOT_SIZE};
use ipc::ioreq_abi::posted::{PostedPage, PostedWrite};
use ipc::ioreq_abi::slot::{self, SlotState};
use ipc::{MAX_MESSAGE_SIZE, Space, blk, console_text, ioreq, rng, vm};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::input::Input;

/// How many message types [`ipc_messages`] picks from (its first byte).
pub const MESSAGE_TYPES: u8 = 12;

/// Decodes `bytes` as a `T`; a message that decodes must encode again into
/// at most as many bytes (postcard's canonical form is the shortest) and
/// decode to the same value.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    let Ok(message) = ipc::decode::<T>(bytes) else {
        return;
    };
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let encoded = ipc::encode(&message, &mut buf).expect("a decoded message encodes");
    assert!(
        encoded.len() <= bytes.len(),
        "{message:?} re-encodes longer ({} > {} bytes)",
        encoded.len(),
        bytes.len()
    );
    assert_eq!(ipc::decode::<T>(encoded), Ok(message));
}

/// Every postcard message of every service protocol: the first byte picks
/// the type, the rest is the message.
pub fn ipc_messages(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % MESSAGE_TYPES {
        0 => round_trip::<vm::Request>(bytes),
        1 => round_trip::<vm::Response>(bytes),
        2 => round_trip::<ioreq::Request>(bytes),
        3 => round_trip::<ioreq::Response>(bytes),
        4 => round_trip::<devices::Request>(bytes),
        5 => round_trip::<devices::Response>(bytes),
        6 => round_trip::<devices::IrqEvent>(bytes),
        7 => round_trip::<ipc::Error>(bytes),
        8 => round_trip::<rng::Request>(bytes),
        9 => round_trip::<rng::Response>(bytes),
        10 => round_trip::<blk::Request>(bytes),
        _ => round_trip::<blk::Response>(bytes),
    }
}

/// The hand-written decoders of the guest I/O hot path must agree with
/// postcard on every input an IPC buffer can hold, and their encoders
/// must write postcard's bytes.
pub fn devices_wire(data: &[u8]) {
    let access = wire::decode_access(data);
    let batch = wire::decode_write_batch(data);
    let response = wire::decode_response(data);
    if data.len() > MAX_MESSAGE_SIZE {
        // No IPC message is this long; the fast paths need only not panic.
        return;
    }
    let request = ipc::decode::<devices::Request>(data);
    match (&request, access) {
        (Ok(request), access) => assert_eq!(Access::of(request), access),
        (Err(_), None) => {}
        (Err(e), Some(access)) => {
            panic!("decode_access accepted {access:?}, postcard refused ({e:?})")
        }
    }
    match (&request, &batch) {
        (Ok(devices::Request::WriteBatch { vm, writes, then }), Some(view)) => {
            assert_eq!(view.vm, *vm);
            assert_eq!(view.then, *then);
            let walked: Vec<BatchWrite> = view.writes().collect();
            assert_eq!(walked.as_slice(), writes.as_slice());
        }
        (Ok(devices::Request::WriteBatch { .. }), None) => {
            panic!("decode_write_batch refused a batch postcard reads")
        }
        (_, Some(view)) => panic!("decode_write_batch accepted {view:?}, postcard did not"),
        (_, None) => {}
    }
    assert_eq!(response, ipc::decode::<devices::Response>(data));

    let mut ours = [0u8; MAX_MESSAGE_SIZE];
    let mut theirs = [0u8; MAX_MESSAGE_SIZE];
    if let Ok(request) = &request {
        let len = wire::encode_request(request, &mut ours).expect("a decoded request encodes");
        let expected = ipc::encode(request, &mut theirs).expect("a decoded request encodes");
        assert_eq!(&ours[..len], &expected[..]);
        if let devices::Request::WriteBatch { vm, writes, then } = request {
            let len = wire::encode_write_batch(*vm, writes, then.as_ref(), &mut ours)
                .expect("a decoded batch encodes");
            assert_eq!(&ours[..len], &expected[..]);
        }
    }
    if let Ok(response) = &response {
        let len = wire::encode_response(response, &mut ours).expect("a decoded response encodes");
        let expected = ipc::encode(response, &mut theirs).expect("a decoded response encodes");
        assert_eq!(&ours[..len], &expected[..]);
    }
}

/// The slots of a page, as a vCPU number.
const SLOTS: u8 = SLOT_COUNT.to_le_bytes()[0];
const _: () = assert!(SLOT_COUNT < 0xf0);

/// One ioreq slot as the guest's vCPU, the kernel and the ioreq service
/// share it: any 256 bytes are a slot image that reads back unchanged, a
/// request that decodes is valid and refills to itself, and the state
/// machine's steps on a page of arbitrary bytes are errors, never panics.
pub fn ioreq_slot(data: &[u8]) {
    let mut input = Input::new(data);
    let image: [u8; SLOT_SIZE] = input.array();
    let vcpu = input.below(SLOTS);
    let slot = IoreqSlot::from_bytes(&image);
    assert_eq!(slot.to_bytes(), image, "a slot image reads back changed");
    if let Ok(request) = slot::decode(&slot, vcpu) {
        assert_eq!(slot::validate(&request), Ok(()), "{request:?}");
        assert_eq!(
            request.value,
            slot::mask_to_size(request.value, request.size)
        );
        let mut page = IoreqPage::new();
        slot::fill(&mut page, &request).expect("a valid request fills a FREE slot");
        assert_eq!(slot::state(&page, vcpu), Ok(SlotState::Pending));
        let refilled = page
            .slot(usize::from(vcpu))
            .expect("vcpu is below SLOT_COUNT");
        assert_eq!(slot::decode(refilled, vcpu), Ok(request));
    }

    // A whole page of the rest, then state-machine steps on it.
    let mut page_image = [0u8; PAGE_SIZE];
    page_image[..SLOT_SIZE].copy_from_slice(&image);
    let rest = input.rest();
    let (page_bytes, steps) = rest.split_at(rest.len().min(PAGE_SIZE - SLOT_SIZE));
    page_image[SLOT_SIZE..SLOT_SIZE + page_bytes.len()].copy_from_slice(page_bytes);
    let mut page = IoreqPage::from_bytes(&page_image);
    assert_eq!(
        page.to_bytes(),
        page_image,
        "a page image reads back changed"
    );
    let mut steps = Input::new(steps);
    let mut taken = None;
    while !steps.is_empty() {
        // Slot numbers past the page are asked for too: they are errors.
        let vcpu = steps.below(SLOTS + 2);
        match steps.below(5) {
            0 => {
                if let Ok(request) = slot::begin_processing(&mut page, vcpu) {
                    assert_eq!(slot::state(&page, vcpu), Ok(SlotState::Processing));
                    taken = Some(request);
                }
            }
            1 => {
                if let Some(request) = taken.take() {
                    let value = steps.u64();
                    if slot::finish(&mut page, &request, value).is_ok() {
                        assert_eq!(slot::state(&page, request.vcpu), Ok(SlotState::Complete));
                    }
                }
            }
            2 => {
                if slot::abandon(&mut page, vcpu).is_ok() {
                    assert_eq!(slot::state(&page, vcpu), Ok(SlotState::Complete));
                }
            }
            3 => {
                if slot::take_completion(&mut page, vcpu).is_ok() {
                    assert_eq!(slot::state(&page, vcpu), Ok(SlotState::Free));
                }
            }
            _ => {
                let _ = slot::state(&page, vcpu);
            }
        }
    }
}

/// The posted-write ring between the kernel (pushes) and the ioreq service
/// (pops), with either side's indices scribbled over: never a panic, and
/// while nobody scribbles, what is popped is what was pushed, in order.
pub fn posted_ring(data: &[u8]) {
    let mut input = Input::new(data);
    let page = PostedPage::new();
    let mut next = 0u32;
    let mut model = std::collections::VecDeque::new();
    let mut honest = true;
    while !input.is_empty() {
        match input.below(4) {
            0 => {
                let write = PostedWrite {
                    space: if input.bool() {
                        Space::Pio
                    } else {
                        Space::Mmio
                    },
                    addr: input.u64(),
                    size: [1, 2, 4, 8][usize::from(input.below(4))],
                    value: input.u64(),
                };
                let pushed = page.push(&mut next, &write);
                if honest {
                    assert_eq!(pushed, model.len() < ipc::ioreq_abi::posted::ENTRIES);
                    if pushed {
                        model.push_back(write);
                    }
                }
            }
            1 => {
                let popped = page.pop();
                if honest {
                    assert_eq!(popped, model.pop_front().map(Ok));
                }
            }
            2 => {
                page.scribble_read(input.u32());
                honest = false;
            }
            _ => {
                let (index, meta, write) = (input.u32(), input.u64(), input.u32());
                page.scribble_entry(index, meta, write);
                honest = false;
            }
        }
    }
    // The service drains whatever is left in bounded time.
    let mut pops = 0;
    while page.pop().is_some() {
        pops += 1;
        assert!(
            pops <= ipc::ioreq_abi::posted::ENTRIES + 1,
            "the ring never drains"
        );
    }
}

/// Undoes the console rule's escapes (`\\` and `\xNN`).
fn unescape(shown: &str) -> Vec<u8> {
    let bytes = shown.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        if b != b'\\' {
            out.push(b);
            at += 1;
            continue;
        }
        match bytes.get(at + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                at += 2;
            }
            Some(b'x') => {
                let hex = shown
                    .get(at + 2..at + 4)
                    .expect("an escape has two hex digits");
                out.push(u8::from_str_radix(hex, 16).expect("escapes are hex"));
                at += 4;
            }
            other => panic!("a lone backslash before {other:?} in {shown:?}"),
        }
    }
    out
}

/// The longest line the devices service shows.
const LINE: usize = 160;

/// Guest console output shown by the console rule: the shown text is
/// printable, undoing its escapes gives back the guest's bytes, and the
/// line splitter keeps every line within its length and loses nothing but
/// the line endings.
pub fn console_text(data: &[u8]) {
    let shown = console_text::Escaped(data).to_string();
    assert!(console_text::is_printable(&shown), "{shown:?}");
    assert_eq!(unescape(&shown), data);
    let checked = console_text::Checked(data).to_string();
    assert!(console_text::is_printable(&checked), "{checked:?}");

    let mut line = console_text::EscapedLine::<LINE>::new();
    let mut lines = Vec::new();
    for &byte in data {
        line.push(byte, &mut |text: &str| lines.push(text.to_owned()));
    }
    line.flush(&mut |text: &str| lines.push(text.to_owned()));
    assert!(line.is_empty());
    let mut joined = Vec::new();
    for text in &lines {
        assert!(text.len() <= LINE, "a line of {} bytes", text.len());
        assert!(console_text::is_printable(text), "{text:?}");
        joined.extend(unescape(text));
    }
    let kept: Vec<u8> = data
        .iter()
        .copied()
        .filter(|&b| b != b'\n' && b != b'\r')
        .collect();
    assert_eq!(joined, kept);
}
