//! IPC on top of the raw calls: a typed `call` for clients and the server
//! loop every service task runs.

use ipc::server::{MessageBuffer, Service, encode_reply};
use ipc::{Error, MAX_MESSAGE_SIZE, decode, encode};
use serde::{Serialize, de::DeserializeOwned};

use crate::sys;
use ipc::syscall::slots;

/// Encodes `request`, calls endpoint slot `ep` and decodes the answer.
pub fn call_message<Req: Serialize, Resp: DeserializeOwned>(
    ep: usize,
    request: &Req,
) -> Result<Resp, Error> {
    call_with(
        ep,
        |buf| encode(request, buf).map(|b| b.len()),
        |bytes| decode(bytes),
    )
}

/// [`call_message`] that gives up after `ms` milliseconds without an
/// answer (`Error::TimedOut`): for callers that must stay responsive when
/// the peer hangs.
pub fn call_message_within<Req: Serialize, Resp: DeserializeOwned>(
    ep: usize,
    request: &Req,
    ms: u64,
) -> Result<Resp, Error> {
    let len = sys::with_buffer(|buf| encode(request, buf).map(|b| b.len()))?;
    let n = sys::call_timed(ep, len, sys::ticks_for(ms))?.min(MAX_MESSAGE_SIZE);
    sys::with_buffer(|buf| decode(buf.get(..n).unwrap_or_default()))
}

/// [`call_message_within`] to the service on `endpoint` (its number: the
/// call right is in slot `slots::call(endpoint)`); an answer that does not
/// come in time names the service (`Error::ServiceHung`).
pub fn call_service<Req: Serialize, Resp: DeserializeOwned>(
    endpoint: usize,
    request: &Req,
    ms: u64,
) -> Result<Resp, Error> {
    call_message_within(slots::call(endpoint), request, ms).map_err(|error| {
        match (error, u8::try_from(endpoint)) {
            (Error::TimedOut, Ok(endpoint)) => Error::ServiceHung { endpoint },
            _ => error,
        }
    })
}

/// Calls endpoint slot `ep` with the message `encode` writes into the IPC
/// buffer (it returns the length), and gives the answer's bytes to
/// `decode`. Only the bytes the two use are touched: nothing is copied in
/// or out, and neither borrows the buffer across the call.
#[inline]
pub fn call_with<R>(
    ep: usize,
    encode: impl FnOnce(&mut [u8]) -> Result<usize, Error>,
    decode: impl FnOnce(&[u8]) -> Result<R, Error>,
) -> Result<R, Error> {
    let len = sys::with_buffer(|buf| encode(buf))?;
    let n = sys::call(ep, len)?.min(MAX_MESSAGE_SIZE);
    sys::with_buffer(|buf| decode(buf.get(..n).unwrap_or_default()))
}

/// The message of `len` bytes in the IPC buffer, for
/// [`Service::answer_fast`].
struct IpcMessage {
    len: usize,
}

impl MessageBuffer for IpcMessage {
    #[inline]
    fn request<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let len = self.len;
        sys::with_buffer(|buf| f(buf.get(..len).unwrap_or_default()))
    }

    #[inline]
    fn reply<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        sys::with_buffer(|buf| f(buf))
    }
}

/// Serves `service` on endpoint slot `ep` forever: each request is decoded,
/// handled and answered with `reply_recv` (bad bytes get an error reply).
/// The request is decoded from the IPC buffer and the reply encoded into
/// it, with no copies in between; the service may itself make calls
/// meanwhile (the buffer is not borrowed while it runs). Requests the
/// service takes on its fast path ([`Service::answer_fast`]) skip the
/// general decode and encode.
pub fn serve_forever<S: Service>(ep: usize, service: &mut S) -> ! {
    let mut reply_len = 0;
    loop {
        match sys::reply_recv(ep, reply_len) {
            Ok(sys::Received::Message { len, badge }) => {
                service.caller(badge);
                let len = len.min(MAX_MESSAGE_SIZE);
                // Each way's answer is taken where it comes from: merged
                // first, the fast one went through three stack copies.
                reply_len = match service.answer_fast(&mut IpcMessage { len }) {
                    Some(Ok(n)) => n,
                    Some(Err(e)) => cannot_answer(e),
                    None => answer_slowly(service, len).unwrap_or_else(cannot_answer),
                };
            }
            // VM bits from the kernel: nothing is owed to anyone.
            Ok(sys::Received::IoreqPending { vms }) => {
                service.kernel_upcall(vms);
                reply_len = 0;
            }
            Err(e) => {
                log::warn!("reply_recv failed: {e}");
                reply_len = 0;
            }
        }
    }
}

/// Says why no answer could be sent; the length of the reply owed, none.
#[cold]
#[inline(never)]
fn cannot_answer(e: Error) -> usize {
    log::warn!("cannot answer: {e}");
    0
}

/// The general way: decode, handle, encode (kept out of the loop so the
/// fast path does not pay for the large `Request` and `Response` values).
/// The request is decoded into an owned value first, so the buffer is not
/// borrowed while the service handles it.
#[inline(never)]
fn answer_slowly<S: Service>(service: &mut S, len: usize) -> Result<usize, Error> {
    let request = sys::with_buffer(|buf| decode::<S::Request>(buf.get(..len).unwrap_or_default()));
    let response = match request {
        Ok(request) => service.handle(request),
        Err(error) => S::refusal(error),
    };
    sys::with_buffer(|buf| encode_reply::<S>(&response, buf))
}
