//! The rng protocol on the wire: pinned discriminants, the largest answer
//! fits a message, and untrusted bytes decode to a message or an error,
//! never a panic (more bytes than `MAX_FILL` included).
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::rng::{MAX_FILL, Request, Response};
use ipc::{Error, MAX_MESSAGE_SIZE, decode, encode};
use proptest::prelude::*;

fn encoded<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    encode(msg, &mut buf).unwrap().to_vec()
}

fn full() -> heapless::Vec<u8, MAX_FILL> {
    let mut bytes = heapless::Vec::new();
    while bytes.push(0xa5).is_ok() {}
    bytes
}

#[test]
fn discriminants_and_bytes_are_pinned() {
    assert_eq!(encoded(&Request::Fill { len: 16 }), [0, 16]);
    assert_eq!(encoded(&Request::Fill { len: 256 }), [0, 0x80, 0x02]);
    let bytes = heapless::Vec::from_slice(&[1, 2, 3]).unwrap();
    assert_eq!(encoded(&Response::Bytes(bytes)), [0, 3, 1, 2, 3]);
    assert_eq!(encoded(&Response::Err(Error::NoEntropy)), [1, 23]);
}

#[test]
fn the_largest_answer_fits_a_message_and_round_trips() {
    for response in [
        Response::Bytes(full()),
        Response::Err(Error::NoFreeSlot { max: u16::MAX }),
    ] {
        let bytes = encoded(&response);
        assert!(bytes.len() <= MAX_MESSAGE_SIZE);
        assert_eq!(decode::<Response>(&bytes), Ok(response));
    }
    let request = Request::Fill { len: u16::MAX };
    assert_eq!(decode::<Request>(&encoded(&request)), Ok(request));
}

#[test]
fn more_bytes_than_a_fill_holds_are_malformed() {
    // Bytes with a length of MAX_FILL + 1 (varint 0x81 0x02).
    let mut bytes = vec![0u8, 0x81, 0x02];
    bytes.extend(std::iter::repeat_n(7u8, MAX_FILL + 1));
    assert_eq!(decode::<Response>(&bytes), Err(Error::Malformed));
}

#[test]
fn truncated_trailing_and_unknown_bytes_are_malformed() {
    assert_eq!(decode::<Request>(&[]), Err(Error::Malformed));
    assert_eq!(decode::<Request>(&[0]), Err(Error::Malformed));
    assert_eq!(decode::<Request>(&[0, 16, 0]), Err(Error::Malformed));
    assert_eq!(decode::<Request>(&[1, 16]), Err(Error::Malformed));
    assert_eq!(decode::<Response>(&[0, 3, 1, 2]), Err(Error::Malformed));
    assert_eq!(decode::<Response>(&[2]), Err(Error::Malformed));
}

proptest! {
    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode::<Request>(&bytes);
        if let Ok(response) = decode::<Response>(&bytes) {
            let again = encoded(&response);
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(decode::<Response>(&again), Ok(response));
        }
    }

    #[test]
    fn every_fill_round_trips(data in proptest::collection::vec(any::<u8>(), 0..=MAX_FILL)) {
        let response = Response::Bytes(heapless::Vec::from_slice(&data).unwrap());
        prop_assert_eq!(decode::<Response>(&encoded(&response)), Ok(response));
    }
}
