//! Decoders take untrusted bytes: random, truncated and padded input must give
//! an error (or a valid message), never a panic, and valid messages must
//! round-trip exactly.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::ioreq::{self, ClientId};
use ipc::vm::{self, CreateOptions};
use ipc::{Error, MAX_MESSAGE_SIZE, Space, VmId, WireName, decode, devices, encode};
use proptest::prelude::*;
use serde::{Serialize, de::DeserializeOwned};

/// Runs every decoder in the crate over `bytes`.
fn decode_all(bytes: &[u8]) {
    let _ = decode::<vm::Request>(bytes);
    let _ = decode::<vm::Response>(bytes);
    let _ = decode::<ioreq::Request>(bytes);
    let _ = decode::<ioreq::Response>(bytes);
    let _ = decode::<devices::Request>(bytes);
    let _ = decode::<devices::Response>(bytes);
    let _ = decode::<devices::IrqEvent>(bytes);
    let _ = decode::<ipc::rng::Request>(bytes);
    let _ = decode::<ipc::rng::Response>(bytes);
    let _ = decode::<Error>(bytes);
}

fn name() -> impl Strategy<Value = WireName> {
    "[A-Za-z0-9._ -]{0,32}".prop_map(|s| WireName::try_from(s.as_str()).unwrap())
}

fn space() -> impl Strategy<Value = Space> {
    prop_oneof![Just(Space::Mmio), Just(Space::Pio), Just(Space::PciConfig)]
}

fn vm_request() -> impl Strategy<Value = vm::Request> {
    let options = (
        proptest::option::of(name()),
        proptest::option::of(name()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(name()),
        proptest::option::of(name()),
        proptest::option::of("[ -~]{0,256}"),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(
            |(template, image, mem_mib, vcpus, kernel, initrd, cmdline, disk)| CreateOptions {
                template,
                image,
                mem_mib,
                vcpus,
                kernel,
                initrd,
                cmdline: cmdline.map(|c| vm::WireCmdline::try_from(c.as_str()).unwrap()),
                disk,
            },
        );
    prop_oneof![
        (name(), options).prop_map(|(name, options)| vm::Request::Create { name, options }),
        name().prop_map(|name| vm::Request::Start { name }),
        name().prop_map(|name| vm::Request::Pause { name }),
        name().prop_map(|name| vm::Request::Resume { name }),
        (name(), any::<bool>()).prop_map(|(name, new_generation_id)| vm::Request::Reset {
            name,
            new_generation_id
        }),
        name().prop_map(|name| vm::Request::Shutdown { name }),
        name().prop_map(|name| vm::Request::Destroy { name }),
        (name(), name()).prop_map(|(source, name)| vm::Request::Clone { source, name }),
        any::<u16>().prop_map(|from| vm::Request::List { from }),
        name().prop_map(|name| vm::Request::Info { name }),
        (
            name(),
            proptest::collection::vec(any::<u8>(), 0..=vm::CONSOLE_INPUT_CHUNK)
        )
            .prop_map(|(name, bytes)| vm::Request::ConsoleInput {
                name,
                port: if bytes.len() % 2 == 0 {
                    vm::ConsolePort::Serial
                } else {
                    vm::ConsolePort::Virtio
                },
                bytes: heapless::Vec::from_slice(&bytes).unwrap()
            }),
        (name(), any::<u64>()).prop_map(|(name, from)| vm::Request::ConsoleOutput { name, from }),
        name().prop_map(|name| vm::Request::Stats { name }),
    ]
}

fn ioreq_request() -> impl Strategy<Value = ioreq::Request> {
    let vm = any::<u16>().prop_map(VmId);
    let client = any::<u16>().prop_map(ClientId);
    prop_oneof![
        (vm.clone(), any::<u8>()).prop_map(|(vm, vcpus)| ioreq::Request::AttachVm { vm, vcpus }),
        vm.clone().prop_map(|vm| ioreq::Request::DetachVm { vm }),
        (
            vm.clone(),
            client.clone(),
            space(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(vm, client, space, start, len)| ioreq::Request::RegisterRange {
                    vm,
                    client,
                    space,
                    start,
                    len
                }
            ),
        (vm.clone(), client.clone())
            .prop_map(|(vm, client)| ioreq::Request::UnregisterClient { vm, client }),
        (vm.clone(), client)
            .prop_map(|(vm, client)| ioreq::Request::SetDefaultClient { vm, client }),
        vm.clone().prop_map(|vm| ioreq::Request::Dispatch { vm }),
        (vm.clone(), any::<u8>(), any::<u64>())
            .prop_map(|(vm, vcpu, value)| { ioreq::Request::Complete { vm, vcpu, value } }),
        (vm, space(), any::<u64>(), any::<u64>()).prop_map(|(vm, space, start, len)| {
            ioreq::Request::PostWrites {
                vm,
                space,
                start,
                len,
            }
        }),
    ]
}

/// A waited access for some batches (picked from the VM number, so the
/// strategy stays a plain map).
fn writes_then(vm: VmId) -> Option<devices::WaitedAccess> {
    (!vm.0.is_multiple_of(3)).then_some(devices::WaitedAccess {
        space: Space::Mmio,
        addr: u64::from(vm.0) << 20,
        size: 1,
        write: (vm.0 % 3 == 2).then_some(u64::from(vm.0)),
    })
}

fn devices_request() -> impl Strategy<Value = devices::Request> {
    let vm = any::<u16>().prop_map(VmId);
    prop_oneof![
        (vm.clone(), space(), any::<u64>(), any::<u8>()).prop_map(|(vm, space, addr, size)| {
            devices::Request::Read {
                vm,
                space,
                addr,
                size,
            }
        }),
        (vm.clone(), space(), any::<u64>(), any::<u8>(), any::<u64>()).prop_map(
            |(vm, space, addr, size, value)| devices::Request::Write {
                vm,
                space,
                addr,
                size,
                value
            }
        ),
        (
            vm.clone(),
            proptest::collection::vec(any::<u8>(), 0..=devices::INPUT_CHUNK)
        )
            .prop_map(|(vm, bytes)| devices::Request::Input {
                vm,
                port: if bytes.len() % 2 == 0 {
                    devices::ConsolePort::Serial
                } else {
                    devices::ConsolePort::Virtio
                },
                bytes: heapless::Vec::from_slice(&bytes).unwrap()
            }),
        (vm.clone(), any::<u64>())
            .prop_map(|(vm, from)| devices::Request::ConsoleRead { vm, from }),
        (vm.clone(), name()).prop_map(|(vm, name)| devices::Request::AddVm { vm, name }),
        (
            vm,
            proptest::collection::vec(
                (space(), any::<u64>(), any::<u8>(), any::<u64>()),
                0..=devices::MAX_BATCH
            )
        )
            .prop_map(|(vm, writes)| devices::Request::WriteBatch {
                vm,
                writes: writes
                    .into_iter()
                    .map(|(space, addr, size, value)| devices::BatchWrite {
                        space,
                        addr,
                        size,
                        value
                    })
                    .collect(),
                then: writes_then(vm),
            }),
    ]
}

fn vm_response() -> impl Strategy<Value = vm::Response> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..=devices::OUTPUT_CHUNK),
    )
        .prop_map(|(next, lost, bytes)| {
            vm::Response::ConsoleOutput(devices::ConsoleChunk {
                next,
                lost,
                bytes: heapless::Vec::from_slice(&bytes).unwrap(),
            })
        })
}

/// Encodes, checks the round trip, and checks that every strict prefix and
/// the message with a trailing byte are refused.
fn check_exact<T: Serialize + DeserializeOwned + PartialEq + core::fmt::Debug>(msg: T) {
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let bytes = encode(&msg, &mut buf).unwrap().to_vec();
    assert_eq!(decode::<T>(&bytes), Ok(msg));
    for cut in 0..bytes.len() {
        assert_eq!(
            decode::<T>(&bytes[..cut]),
            Err(Error::Malformed),
            "prefix of {cut}"
        );
    }
    let mut padded = bytes.clone();
    padded.push(0);
    assert_eq!(decode::<T>(&padded), Err(Error::Malformed));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decode_all(&bytes);
    }

    #[test]
    fn vm_requests_round_trip_and_truncations_fail(msg in vm_request()) {
        check_exact(msg);
    }

    #[test]
    fn ioreq_requests_round_trip_and_truncations_fail(msg in ioreq_request()) {
        check_exact(msg);
    }

    #[test]
    fn devices_requests_round_trip_and_truncations_fail(msg in devices_request()) {
        check_exact(msg);
    }

    #[test]
    fn console_output_round_trips_and_truncations_fail(msg in vm_response()) {
        check_exact(msg);
    }

    #[test]
    fn mutated_valid_messages_never_panic(msg in vm_request(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut buf = [0u8; MAX_MESSAGE_SIZE];
        let mut bytes = encode(&msg, &mut buf).unwrap().to_vec();
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        decode_all(&bytes);
    }
}

#[test]
fn an_unknown_variant_is_malformed() {
    assert_eq!(decode::<vm::Request>(&[200]), Err(Error::Malformed));
    assert_eq!(decode::<Error>(&[99]), Err(Error::Malformed));
}

#[test]
fn a_name_longer_than_the_wire_allows_is_malformed() {
    // Info { name } with a 33-byte name: variant 9, length 33, bytes.
    let mut bytes = vec![9u8, 33];
    bytes.extend(std::iter::repeat_n(b'a', 33));
    assert_eq!(decode::<vm::Request>(&bytes), Err(Error::Malformed));
}

#[test]
fn invalid_utf8_in_a_name_is_malformed() {
    assert_eq!(
        decode::<vm::Request>(&[9, 2, 0xff, 0xfe]),
        Err(Error::Malformed)
    );
}
