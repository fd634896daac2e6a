//! The management wire: frames round-trip whatever way the bytes are split,
//! bad frames give a typed error once and the decoder resynchronises on the
//! next 0x00, and nothing panics on random bytes.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::vm::{CreateOptions, LIST_PAGE, Request, Response, VmInfo, VmKind, VmState};
use ipc::{VmId, wire_name};
use mica_mgmt::cobs::CobsError;
use mica_mgmt::frame::{self, FrameBuf, MAX_ENCODED, MAX_FRAME};
use mica_mgmt::serve::answer;
use mica_mgmt::{FrameDecoder, FrameError, VERSION};
use proptest::prelude::*;

/// Every result the decoder gives for `bytes`, payloads copied out.
fn feed(decoder: &mut FrameDecoder, bytes: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
    bytes
        .iter()
        .filter_map(|&b| decoder.push(b).map(|r| r.map(<[u8]>::to_vec)))
        .collect()
}

fn frame_of<T: serde::Serialize>(message: &T) -> Vec<u8> {
    let mut buf: FrameBuf = [0; MAX_FRAME];
    frame::encode(message, &mut buf).unwrap().to_vec()
}

fn requests(results: Vec<Result<Vec<u8>, FrameError>>) -> Vec<Result<Request, FrameError>> {
    results
        .into_iter()
        .map(|r| r.and_then(|payload| frame::decode::<Request>(&payload)))
        .collect()
}

fn big_info(slot: u16) -> VmInfo {
    VmInfo {
        name: wire_name(&"n".repeat(32)).unwrap(),
        id: VmId(slot),
        kind: VmKind::Dynamic,
        state: VmState::Paused,
        vcpus: 255,
        mem_mib: u32::MAX,
        disk: None,
        generation_id: [0xff; 16],
        generation_id_random: true,
        last_exit: Some(ipc::vm::LastExit::Stopped {
            cause: ipc::vm::StopCause::UndecodableMmio {
                gpa: u64::MAX,
                insn: u64::MAX,
            },
            pc: u64::MAX,
        }),
        last_exit_uptime_ms: Some(u64::MAX),
    }
}

#[test]
fn wire_bytes_are_pinned() {
    // Start { name: "a" }: version 9, variant 1, length 1, 'a'.
    let start = Request::Start {
        name: wire_name("a").unwrap(),
    };
    assert_eq!(VERSION, 9);
    assert_eq!(frame_of(&start), [0x05, 0x09, 0x01, 0x01, b'a', 0x00]);
    // List { from: 0 }: version 9, variant 8, from 0 -> a zero is stuffed.
    assert_eq!(
        frame_of(&Request::List { from: 0 }),
        [0x03, 0x09, 0x08, 0x01, 0x00]
    );
    assert_eq!(frame_of(&Response::Ok), [0x02, 0x09, 0x01, 0x00]);
    // Ended(Destroyed): version 9, variant 6, LastExit variant 4.
    assert_eq!(
        frame_of(&Response::Ended(ipc::vm::LastExit::Destroyed)),
        [0x04, 0x09, 0x06, 0x04, 0x00]
    );
    // Images { from: 0 }: version 9, variant 14, from 0 stuffed.
    assert_eq!(
        frame_of(&Request::Images { from: 0 }),
        [0x03, 0x09, 0x0e, 0x01, 0x00]
    );
    // Events { from: 0 }: version 9, variant 16, from 0 stuffed.
    assert_eq!(
        frame_of(&Request::Events { from: 0 }),
        [0x03, 0x09, 0x10, 0x01, 0x00]
    );
    let mut buf: FrameBuf = [0; MAX_FRAME];
    assert_eq!(frame::version_notice(&mut buf), [0x02, VERSION, 0x00]);
}

#[test]
fn the_largest_response_fits_a_frame() {
    let mut vms = heapless::Vec::new();
    for slot in 0..LIST_PAGE {
        vms.push(big_info(u16::try_from(slot).unwrap())).unwrap();
    }
    let response = Response::List {
        vms,
        next: Some(u16::MAX),
    };
    let bytes = frame_of(&response);
    assert!(bytes.len() <= MAX_FRAME);
    let mut decoder = FrameDecoder::new();
    let got = feed(&mut decoder, &bytes);
    assert_eq!(got.len(), 1);
    let payload = got[0].clone().unwrap();
    assert_eq!(frame::decode::<Response>(&payload).unwrap(), response);
}

#[test]
fn bad_frames_give_one_error_each_and_the_next_frame_still_decodes() {
    let good = Request::Info {
        name: wire_name("vm0").unwrap(),
    };
    let cases: Vec<(Vec<u8>, FrameError)> = vec![
        (
            vec![0x05, 0x11, 0x00],
            FrameError::BadStuffing(CobsError::Truncated),
        ),
        (vec![0x01, 0x00], FrameError::NoVersion),
        (
            vec![0x02, 0x0a, 0x00],
            FrameError::UnsupportedVersion { got: 10 },
        ),
        (vec![0x03, VERSION, 0x63, 0x00], FrameError::Malformed),
        (vec![0x02, VERSION, 0x00], FrameError::VersionNotice),
        (
            vec![0x41; MAX_ENCODED + 1].into_iter().chain([0]).collect(),
            FrameError::Oversize,
        ),
        (
            vec![0x7f; 10_000].into_iter().chain([0]).collect(),
            FrameError::Oversize,
        ),
    ];
    for (bad, expected) in cases {
        let mut decoder = FrameDecoder::new();
        let mut stream = bad.clone();
        stream.extend(frame_of(&good));
        let got = requests(feed(&mut decoder, &stream));
        assert_eq!(
            got,
            vec![Err(expected), Ok(good.clone())],
            "{:?}",
            &bad[..4]
        );
        assert!(!decoder.in_frame());
    }
}

#[test]
fn payloads_beyond_the_message_size_are_oversize() {
    // 515 decoded bytes: a version byte and 514 zero bytes, which stuff to
    // exactly the largest frame but exceed the 512-byte message limit.
    let mut raw = vec![VERSION];
    raw.extend([0; 514]);
    let mut stuffed = vec![0u8; MAX_ENCODED];
    let len = mica_mgmt::cobs::encode(&raw, &mut stuffed).unwrap();
    stuffed.truncate(len);
    stuffed.push(0);
    let mut decoder = FrameDecoder::new();
    assert_eq!(
        feed(&mut decoder, &stuffed),
        vec![Err(FrameError::Oversize)]
    );
}

#[test]
fn empty_frames_are_skipped_and_a_partial_frame_is_pending() {
    let mut decoder = FrameDecoder::new();
    assert!(feed(&mut decoder, &[0, 0, 0]).is_empty());
    let bytes = frame_of(&Response::Ok);
    assert!(feed(&mut decoder, &bytes[..2]).is_empty());
    assert!(decoder.in_frame());
    assert_eq!(feed(&mut decoder, &bytes[2..]).len(), 1);
    assert!(!decoder.in_frame());
}

#[test]
fn the_server_answers_every_kind_of_frame() {
    let mut out: FrameBuf = [0; MAX_FRAME];
    let decode_reply = |bytes: &[u8]| {
        let mut decoder = FrameDecoder::new();
        let got = feed(&mut decoder, bytes);
        assert_eq!(got.len(), 1);
        got[0]
            .clone()
            .and_then(|payload| frame::decode::<Response>(&payload))
    };
    let request = Request::Pause {
        name: wire_name("vm0").unwrap(),
    };
    let mut payload = [0u8; 64];
    let payload = ipc::encode(&request, &mut payload).unwrap();
    let reply = answer(
        Ok(&payload[..payload.len() - 1]),
        |_| unreachable!("a payload cut short is not a request"),
        &mut out,
    );
    assert_eq!(
        decode_reply(reply.unwrap()),
        Ok(Response::Err(ipc::Error::Malformed))
    );
    let reply = answer(
        Ok(payload),
        |got| {
            assert_eq!(got, request);
            Response::Err(ipc::Error::UnknownVm)
        },
        &mut out,
    );
    assert_eq!(
        decode_reply(reply.unwrap()),
        Ok(Response::Err(ipc::Error::UnknownVm))
    );
    for (error, response) in [
        (
            FrameError::Oversize,
            Response::Err(ipc::Error::MessageTooLarge),
        ),
        (FrameError::NoVersion, Response::Err(ipc::Error::Malformed)),
        (
            FrameError::BadStuffing(CobsError::ZeroData),
            Response::Err(ipc::Error::Malformed),
        ),
    ] {
        let reply = answer(Err(error), |_| unreachable!(), &mut out);
        assert_eq!(decode_reply(reply.unwrap()), Ok(response));
    }
    let reply = answer(
        Err(FrameError::UnsupportedVersion { got: 9 }),
        |_| unreachable!(),
        &mut out,
    );
    assert_eq!(reply.unwrap(), [0x02, VERSION, 0x00]);
    assert_eq!(
        answer(Err(FrameError::VersionNotice), |_| unreachable!(), &mut out),
        None
    );
}

#[test]
fn errors_read_as_one_line() {
    let lines = [
        (FrameError::Oversize, "frame longer than 516 bytes"),
        (
            FrameError::UnsupportedVersion { got: 2 },
            "the peer speaks management protocol version 2, this side speaks version 9",
        ),
        (
            FrameError::BadStuffing(CobsError::ZeroCode),
            "badly stuffed frame: a block code byte is zero",
        ),
        (FrameError::TooLarge, "message longer than 512 bytes"),
    ];
    for (error, line) in lines {
        assert_eq!(error.to_string(), line);
    }
}

fn request() -> impl Strategy<Value = Request> {
    let name = "[A-Za-z0-9._-]{1,32}".prop_map(|s| wire_name(&s).unwrap());
    prop_oneof![
        (name.clone(), proptest::option::of(any::<u32>())).prop_map(|(name, mem_mib)| {
            Request::Create {
                name,
                options: CreateOptions {
                    mem_mib,
                    ..CreateOptions::default()
                },
            }
        }),
        name.clone().prop_map(|name| Request::Start { name }),
        (name.clone(), any::<bool>()).prop_map(|(name, new_generation_id)| Request::Reset {
            name,
            new_generation_id
        }),
        any::<u16>().prop_map(|from| Request::List { from }),
        any::<u64>().prop_map(|from| Request::Events { from }),
        (name.clone(), name).prop_map(|(source, name)| Request::Clone { source, name }),
    ]
}

proptest! {
    #[test]
    fn frames_survive_any_split(
        messages in proptest::collection::vec(request(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream: Vec<u8> = messages.iter().flat_map(frame_of).collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            got.extend(requests(feed(&mut decoder, &stream[start..cut])));
            start = cut;
        }
        let expected: Vec<_> = messages.into_iter().map(Ok).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn random_bytes_never_panic_and_a_good_frame_after_a_zero_decodes(
        noise in proptest::collection::vec(any::<u8>(), 0..2000),
        message in request(),
    ) {
        let mut decoder = FrameDecoder::new();
        for payload in feed(&mut decoder, &noise).into_iter().flatten() {
            prop_assert!(payload.len() <= ipc::MAX_MESSAGE_SIZE);
            let _ = frame::decode::<Request>(&payload);
            let _ = frame::decode::<Response>(&payload);
        }
        let mut stream = vec![0];
        stream.extend(frame_of(&message));
        let got = requests(feed(&mut decoder, &stream));
        prop_assert_eq!(got.last(), Some(&Ok(message)));
    }
}
