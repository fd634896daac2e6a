//! The hypervisor's side of the management wire: one decoded frame (or
//! frame error) in, one reply frame out. The management task (or a test's
//! fake hypervisor) feeds its [`FrameDecoder`](crate::frame::FrameDecoder)
//! and sends back what [`answer`] returns.

use ipc::vm::{Request, Response};

use crate::frame::{self, FrameBuf, FrameError};

/// The reply frame to one received frame: `handle`'s response to a good
/// request, `Err(Malformed)` / `Err(MessageTooLarge)` to a bad frame, a
/// version notice to a frame of another version, and nothing to a version
/// notice (answering it could make two servers talk forever).
pub fn answer<'o>(
    received: Result<&[u8], FrameError>,
    handle: impl FnOnce(Request) -> Response,
    out: &'o mut FrameBuf,
) -> Option<&'o [u8]> {
    let response = match received.and_then(frame::decode::<Request>) {
        Ok(request) => handle(request),
        Err(FrameError::UnsupportedVersion { .. }) => return Some(frame::version_notice(out)),
        Err(FrameError::VersionNotice) => return None,
        Err(FrameError::Oversize | FrameError::TooLarge) => {
            Response::Err(ipc::Error::MessageTooLarge)
        }
        Err(FrameError::BadStuffing(_) | FrameError::NoVersion | FrameError::Malformed) => {
            Response::Err(ipc::Error::Malformed)
        }
    };
    let len = match frame::encode_len(&response, out) {
        Ok(len) => len,
        // Every Response fits in a message (the ipc `fits` tests); should
        // one not, the client still learns that its request failed.
        Err(_) => frame::encode_len(&Response::Err(ipc::Error::MessageTooLarge), out).ok()?,
    };
    out.get(..len)
}
