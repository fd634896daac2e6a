//! The management channel's pure part: bytes that arrive from the host's
//! management socket go through a [`FrameDecoder`]; every complete frame is
//! answered with `mica_mgmt::serve::answer` (the vm-manager's response to a
//! request, an error to a bad frame, a version notice to another version),
//! and the reply frame goes back. The task (`main.rs`) adds the virtio
//! console underneath and the vm-manager behind.
//!
//! Layer: user task (`cargo xtask check-layers`): it links only `ipc`, the user
//! runtime and `mica-mgmt`, never a service library.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use ipc::vm::{Request, Response};
use mica_mgmt::frame::{FrameBuf, FrameDecoder, MAX_FRAME};
use mica_mgmt::serve::answer;

/// One management connection's decoding state and reply buffer.
pub struct Channel {
    decoder: FrameDecoder,
    out: FrameBuf,
}

impl Default for Channel {
    fn default() -> Self {
        Self::new()
    }
}

impl Channel {
    /// A channel at the start of a frame.
    pub const fn new() -> Self {
        Channel {
            decoder: FrameDecoder::new(),
            out: [0; MAX_FRAME],
        }
    }

    /// Takes `bytes` from the host; each frame they complete is answered
    /// through `handle`, and each reply frame is passed to `send`.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut handle: impl FnMut(Request) -> Response,
        mut send: impl FnMut(&[u8]),
    ) {
        let Channel { decoder, out } = self;
        for &byte in bytes {
            if let Some(received) = decoder.push(byte)
                && let Some(reply) = answer(received, &mut handle, out)
            {
                send(reply);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mica_mgmt::frame::{self, FrameBuf, FrameDecoder, MAX_FRAME};
    use mica_mgmt::testing::manager;

    fn frame_of(request: &Request) -> Vec<u8> {
        let mut buf: FrameBuf = [0; MAX_FRAME];
        frame::encode(request, &mut buf).unwrap().to_vec()
    }

    fn responses(sent: &[u8]) -> Vec<Response> {
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        for &b in sent {
            if let Some(payload) = decoder.push(b) {
                out.push(frame::decode::<Response>(payload.unwrap()).unwrap());
            }
        }
        out
    }

    #[test]
    fn requests_split_anywhere_get_one_reply_each_in_order() {
        let mut vms = manager();
        let mut channel = Channel::new();
        let mut bytes = frame_of(&Request::List { from: 0 });
        bytes.extend(frame_of(&Request::Pause {
            name: ipc::WireName::try_from("nosuchvm").unwrap(),
        }));
        let mut sent = Vec::new();
        for chunk in bytes.chunks(3) {
            channel.feed(chunk, |r| vms.handle(r), |f| sent.extend_from_slice(f));
        }
        let replies = responses(&sent);
        assert_eq!(replies.len(), 2);
        assert!(matches!(replies[0], Response::List { .. }), "{replies:?}");
        assert_eq!(replies[1], Response::Err(ipc::Error::UnknownVm));
    }

    #[test]
    fn garbage_gets_an_error_and_the_next_frame_is_served() {
        let mut vms = manager();
        let mut channel = Channel::new();
        let mut bytes = vec![0x05, 0xff, 0x13, 0x00];
        bytes.extend(frame_of(&Request::List { from: 0 }));
        let mut sent = Vec::new();
        channel.feed(&bytes, |r| vms.handle(r), |f| sent.extend_from_slice(f));
        let replies = responses(&sent);
        assert_eq!(replies.len(), 2);
        assert!(matches!(replies[0], Response::Err(_)), "{replies:?}");
        assert!(matches!(replies[1], Response::List { .. }), "{replies:?}");
    }
}
