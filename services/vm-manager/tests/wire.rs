//! The vm-manager behind the server step: requests arrive as bytes from
//! another task; malformed bytes are answered with an error and change
//! nothing.

mod common;

use common::*;
use ipc::server::serve;
use ipc::vm::{Request, Response, VmState};
use ipc::{Error, MAX_MESSAGE_SIZE, decode, encode};

fn call(m: &mut Manager, bytes: &[u8]) -> Response {
    let mut reply = [0u8; MAX_MESSAGE_SIZE];
    let len = serve(m, bytes, &mut reply).expect("a reply always fits");
    decode(&reply[..len]).expect("the reply decodes")
}

#[test]
fn a_create_sent_as_bytes_creates_the_vm() {
    let mut m = manager();
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let bytes = encode(&create("guest1"), &mut buf).unwrap().to_vec();
    match call(&mut m, &bytes) {
        Response::Info(info) => assert_eq!(info.state, VmState::Created),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn malformed_bytes_are_refused_and_change_nothing() {
    let mut m = manager();
    let mut buf = [0u8; MAX_MESSAGE_SIZE];
    let good = encode(&create("guest1"), &mut buf).unwrap().to_vec();
    let before = m.handle(Request::List { from: 0 });
    for cut in 0..good.len() {
        assert_eq!(call(&mut m, &good[..cut]), Response::Err(Error::Malformed));
    }
    assert_eq!(call(&mut m, &[0xff, 0xff]), Response::Err(Error::Malformed));
    assert_eq!(m.handle(Request::List { from: 0 }), before);
}
