//! The hand-written codec against postcard: same bytes out, same values
//! in, the same bytes refused, and no panic on anything.

extern crate std;

use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::devices::ConsoleChunk;
use crate::{MAX_MESSAGE_SIZE, decode, encode};

fn postcard_bytes<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    encode(msg, &mut buf).expect("fits").to_vec()
}

/// What postcard makes of `bytes`, as far as it is a guest access.
fn postcard_access(bytes: &[u8]) -> Option<Access> {
    decode::<Request>(bytes)
        .ok()
        .and_then(|request| Access::of(&request))
}

fn space() -> impl Strategy<Value = Space> {
    prop_oneof![Just(Space::Mmio), Just(Space::Pio), Just(Space::PciConfig)]
}

/// Values of every varint length, not just the (mostly 10-byte) uniform ones.
fn wide() -> impl Strategy<Value = u64> {
    (any::<u64>(), 0u32..64).prop_map(|(value, shift)| value >> shift)
}

fn access() -> impl Strategy<Value = Access> {
    (
        any::<u16>(),
        space(),
        wide(),
        any::<u8>(),
        proptest::option::of(wide()),
    )
        .prop_map(|(vm, space, addr, size, write)| Access {
            vm: VmId(vm),
            space,
            addr,
            size,
            write,
        })
}

fn encoded(access: &Access) -> Vec<u8> {
    let mut buf = [0u8; MAX_ACCESS_LEN];
    let len = encode_access(access, &mut buf).expect("fits");
    buf[..len].to_vec()
}

fn console_chunk(bytes: &[u8]) -> ConsoleChunk {
    ConsoleChunk {
        next: 9,
        lost: 300,
        bytes: heapless::Vec::from_slice(bytes).expect("fits"),
    }
}

#[test]
fn a_uart_status_read_is_nine_bytes() {
    let read = Access {
        vm: VmId(0),
        space: Space::Mmio,
        addr: 0x1000_0005,
        size: 1,
        write: None,
    };
    let bytes = encoded(&read);
    assert_eq!(bytes, [2, 0, 0, 0x85, 0x80, 0x80, 0x80, 0x01, 1]);
    assert_eq!(decode_access(&bytes), Some(read));
    assert_eq!(read.request(), decode::<Request>(&bytes).expect("postcard"));
}

#[test]
fn overlong_varints_are_taken_as_postcard_takes_them() {
    // Variant index 3 and VM 0 as two bytes each, space 1 and address 5
    // as three: postcard accepts them all.
    let bytes = [
        0x83, 0x00, 0x80, 0x00, 0x81, 0x80, 0x00, 0x85, 0x80, 0x00, 4, 0x7f,
    ];
    let expected = Access {
        vm: VmId(0),
        space: Space::Pio,
        addr: 5,
        size: 4,
        write: Some(0x7f),
    };
    assert_eq!(postcard_access(&bytes), Some(expected));
    assert_eq!(decode_access(&bytes), Some(expected));
}

#[test]
fn malformed_accesses_are_refused_never_guessed() {
    let cases: [&[u8]; 9] = [
        &[],
        &[2],
        // Space 3 does not exist.
        &[2, 0, 3, 5, 1],
        // VM number past u16: third byte carries more than two bits.
        &[2, 0xff, 0xff, 0x04, 0, 5, 1],
        // An address varint that never ends.
        &[
            2, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1,
        ],
        // Ten bytes, but the last one carries more than bit 63.
        &[
            2, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 1,
        ],
        // A trailing byte.
        &[2, 0, 0, 5, 1, 0],
        // A write without its value.
        &[3, 0, 0, 5, 1],
        // Another request entirely (RemoveVm).
        &[1, 0],
    ];
    for bytes in cases {
        assert_eq!(decode_access(bytes), None, "{bytes:x?}");
        assert_eq!(postcard_access(bytes), None, "{bytes:x?}");
    }
    // The largest values do decode, at the largest length.
    let largest = Access {
        vm: VmId(u16::MAX),
        space: Space::PciConfig,
        addr: u64::MAX,
        size: u8::MAX,
        write: Some(u64::MAX),
    };
    let bytes = encoded(&largest);
    assert_eq!(bytes.len(), MAX_ACCESS_LEN);
    assert_eq!(decode_access(&bytes), Some(largest));
}

#[test]
fn a_buffer_too_short_is_refused() {
    let write = Access {
        vm: VmId(300),
        space: Space::Mmio,
        addr: 0x1000_0000,
        size: 1,
        write: Some(b'h'.into()),
    };
    let full = encoded(&write);
    for len in 0..full.len() {
        let mut buf = std::vec![0u8; len];
        assert_eq!(
            encode_access(&write, &mut buf),
            Err(Error::MessageTooLarge),
            "{len}"
        );
    }
    let mut empty = [0u8; 0];
    assert_eq!(
        encode_response(&Response::Value(1), &mut empty),
        Err(Error::MessageTooLarge)
    );
    assert_eq!(
        encode_response(&Response::Ok, &mut empty),
        Err(Error::MessageTooLarge)
    );
}

#[test]
fn other_requests_and_responses_go_through_postcard() {
    let remove = Request::RemoveVm { vm: VmId(4) };
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let len = encode_request(&remove, &mut buf).expect("fits");
    assert_eq!(buf[..len], postcard_bytes(&remove));
    for response in [
        Response::Err(Error::NoDevice),
        Response::Err(Error::NoFreeSlot { max: 900 }),
        Response::Console(console_chunk(b"hello")),
    ] {
        let len = encode_response(&response, &mut buf).expect("fits");
        assert_eq!(buf[..len], postcard_bytes(&response), "{response:?}");
        assert_eq!(decode_response(&buf[..len]), Ok(response));
    }
}

#[test]
fn bad_responses_are_malformed() {
    for bytes in [
        &[][..],
        &[0, 0],
        &[1],
        &[1, 0x80],
        &[1, 5, 5],
        &[
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ],
        &[9],
    ] {
        assert_eq!(decode_response(bytes), Err(Error::Malformed), "{bytes:x?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accesses_encode_as_postcard_and_decode_back(access in access()) {
        let bytes = encoded(&access);
        prop_assert_eq!(&bytes, &postcard_bytes(&access.request()));
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let len = encode_request(&access.request(), &mut buf).expect("fits");
        prop_assert_eq!(&buf[..len], &bytes[..]);
        prop_assert_eq!(decode_access(&bytes), Some(access));
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode_access(&bytes[..cut]), None);
        }
    }

    #[test]
    fn random_bytes_are_accesses_exactly_when_postcard_says_so(
        tag in 2u8..4,
        rest in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let mut bytes = std::vec![tag];
        bytes.extend_from_slice(&rest);
        prop_assert_eq!(decode_access(&bytes), postcard_access(&bytes));
    }

    #[test]
    fn mutated_accesses_are_accesses_exactly_when_postcard_says_so(
        access in access(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = encoded(&access);
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        prop_assert_eq!(decode_access(&bytes), postcard_access(&bytes));
        let cut = cut % (bytes.len() + 1);
        prop_assert_eq!(decode_access(&bytes[..cut]), postcard_access(&bytes[..cut]));
    }

    #[test]
    fn responses_encode_and_decode_as_postcard(value in wide(), code in 0usize..4) {
        let response = match code {
            0 => Response::Ok,
            1 => Response::Value(value),
            2 => Response::Err(Error::BadAccess),
            _ => Response::Console(console_chunk(&value.to_le_bytes())),
        };
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let len = encode_response(&response, &mut buf).expect("fits");
        prop_assert_eq!(&buf[..len], &postcard_bytes(&response)[..]);
        prop_assert_eq!(decode_response(&buf[..len]), Ok(response));
    }

    #[test]
    fn random_responses_decode_as_postcard_decodes_them(
        tag in 0u8..5,
        rest in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = std::vec![tag];
        bytes.extend_from_slice(&rest);
        prop_assert_eq!(decode_response(&bytes), decode::<Response>(&bytes));
    }

    /// `plain_response` takes exactly the `Ok` and `Value` that decode,
    /// and nothing else.
    #[test]
    fn plain_responses_are_the_ok_and_value_that_decode(
        tag in 0u8..5,
        rest in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = std::vec![tag];
        bytes.extend_from_slice(&rest);
        let plain = match decode_response(&bytes) {
            Ok(response @ (Response::Ok | Response::Value(_))) => Some(response),
            _ => None,
        };
        prop_assert_eq!(plain_response(&bytes), plain);
    }
}

fn batch_write() -> impl Strategy<Value = BatchWrite> {
    (space(), wide(), any::<u8>(), wide()).prop_map(|(space, addr, size, value)| BatchWrite {
        space,
        addr,
        size,
        value,
    })
}

fn waited() -> impl Strategy<Value = Option<WaitedAccess>> {
    prop::option::of((space(), wide(), any::<u8>(), prop::option::of(wide()))).prop_map(|then| {
        then.map(|(space, addr, size, write)| WaitedAccess {
            space,
            addr,
            size,
            write,
        })
    })
}

/// A one-byte write to `addr`.
fn batch_write_at(addr: u64) -> BatchWrite {
    BatchWrite {
        space: Space::Mmio,
        addr,
        size: 1,
        value: 0,
    }
}

type Batch = (VmId, Vec<BatchWrite>, Option<WaitedAccess>);

fn batch() -> impl Strategy<Value = Batch> {
    (
        any::<u16>().prop_map(VmId),
        prop::collection::vec(batch_write(), 0..=MAX_BATCH),
        waited(),
    )
}

/// What a view decodes to, in owned form.
fn owned(view: WriteBatchView<'_>) -> Batch {
    (view.vm, view.writes().collect(), view.then)
}

/// What postcard makes of `bytes`, as far as it is a write batch.
fn postcard_batch(bytes: &[u8]) -> Option<Batch> {
    match decode::<Request>(bytes).ok()? {
        Request::WriteBatch { vm, writes, then } => Some((vm, writes.to_vec(), then)),
        _ => None,
    }
}

fn encoded_batch((vm, writes, then): &Batch) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let n = encode_write_batch(*vm, writes, then.as_ref(), &mut buf).unwrap();
    buf[..n].to_vec()
}

#[test]
fn a_batch_longer_than_a_message_holds_is_refused() {
    let write = BatchWrite {
        space: Space::Mmio,
        addr: 0x1000_0000,
        size: 1,
        value: 0,
    };
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let writes = [write; MAX_BATCH + 1];
    assert_eq!(
        encode_write_batch(VmId(0), &writes, None, &mut buf),
        Err(Error::MessageTooLarge)
    );
    assert_eq!(
        encode_write_batch(VmId(0), &writes[..2], None, &mut buf[..8]),
        Err(Error::MessageTooLarge)
    );
    let n = encode_write_batch(VmId(0), &writes[..2], None, &mut buf).unwrap();
    assert!(decode_write_batch(&buf[..n - 1]).is_none(), "truncated");
    let mut long = buf[..n].to_vec();
    long.push(0);
    assert!(decode_write_batch(&long).is_none(), "trailing byte");
}

/// A read of LSR after two posted bytes: the bytes postcard makes.
#[test]
fn a_batch_ending_in_a_read_is_laid_out_as_postcard_lays_it_out() {
    let write = |value| BatchWrite {
        space: Space::Mmio,
        addr: 0x1000_0000,
        size: 1,
        value,
    };
    let then = WaitedAccess {
        space: Space::Mmio,
        addr: 0x1000_0005,
        size: 1,
        write: None,
    };
    let batch = (
        VmId(1),
        std::vec![write(b'h'.into()), write(b'i'.into())],
        Some(then),
    );
    let bytes = encoded_batch(&batch);
    assert_eq!(bytes[..3], [9, 1, 2], "tag, VM, count");
    // Some, MMIO, 0x1000_0005 as a varint, size 1, no value (a read).
    let tail = [1, 0, 0x85, 0x80, 0x80, 0x80, 0x01, 1, 0];
    assert_eq!(bytes[bytes.len() - tail.len()..], tail);
    assert_eq!(owned(decode_write_batch(&bytes).unwrap()), batch);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn batches_encode_as_postcard_and_decode_back(batch in batch()) {
        let bytes = encoded_batch(&batch);
        let (vm, writes, then) = batch.clone();
        let request = Request::WriteBatch {
            vm,
            writes: heapless::Vec::from_slice(&writes).unwrap(),
            then,
        };
        prop_assert_eq!(&bytes[..], &postcard_bytes(&request)[..]);
        prop_assert_eq!(decode_write_batch(&bytes).map(owned), Some(batch));
    }

    #[test]
    fn mutated_batches_decode_exactly_when_postcard_says_so(
        batch in batch(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encoded_batch(&batch);
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        prop_assert_eq!(decode_write_batch(&bytes).map(owned), postcard_batch(&bytes));
    }

    #[test]
    fn a_batch_fits_a_buffer_exactly_when_its_bytes_do(batch in batch(), room in 0usize..400) {
        let whole = encoded_batch(&batch);
        let (vm, writes, then) = &batch;
        let mut buf = std::vec![0u8; room];
        let encoded = encode_write_batch(*vm, writes, then.as_ref(), &mut buf);
        if whole.len() <= room {
            prop_assert_eq!(encoded, Ok(whole.len()));
            prop_assert_eq!(&buf[..whole.len()], &whole[..]);
        } else {
            prop_assert_eq!(encoded, Err(Error::MessageTooLarge));
        }
    }

    #[test]
    fn a_batch_decoded_in_one_pass_is_the_batch_its_view_holds(
        batch in batch(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        let mut bytes = encoded_batch(&batch);
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        let mut writes = heapless::Vec::new();
        // Left over from an earlier batch: emptied first.
        writes.push(batch_write_at(7)).unwrap();
        let one_pass = decode_write_batch_into(&bytes, &mut writes)
            .map(|(vm, then)| (vm, writes.to_vec(), then));
        prop_assert_eq!(one_pass, decode_write_batch(&bytes).map(owned));
    }

    #[test]
    fn random_bytes_are_batches_exactly_when_postcard_says_so(
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = std::vec![REQUEST_WRITE_BATCH];
        bytes.extend(tail);
        prop_assert_eq!(decode_write_batch(&bytes).map(owned), postcard_batch(&bytes));
    }
}
