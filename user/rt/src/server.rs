//! IPC on top of the raw calls: a typed `call` for clients and the server
//! loop every service task runs.

use ipc::server::{Service, answer, encode_reply};
use ipc::{Error, MAX_MESSAGE_SIZE, decode, encode};
use serde::{Serialize, de::DeserializeOwned};

use crate::sys;

/// Encodes `request`, calls endpoint slot `ep` and decodes the answer.
pub fn call_message<Req: Serialize, Resp: DeserializeOwned>(
    ep: usize,
    request: &Req,
) -> Result<Resp, Error> {
    let len = sys::with_buffer(|buf| encode(request, buf).map(|b| b.len()))?;
    let n = sys::call(ep, len)?.min(MAX_MESSAGE_SIZE);
    // Decoded straight from the IPC buffer: the answer is an owned value,
    // so nothing of the buffer is kept once `decode` returns.
    sys::with_buffer(|buf| decode(&buf[..n]))
}

/// Serves `service` on endpoint slot `ep` forever: each request is decoded,
/// handled and answered with `reply_recv` (bad bytes get an error reply).
/// The request is decoded from the IPC buffer and the reply encoded into
/// it, with no copies in between; the service may itself make calls
/// meanwhile (the buffer is not borrowed while it runs).
pub fn serve_forever<S: Service>(ep: usize, service: &mut S) -> ! {
    let mut reply_len = 0;
    loop {
        match sys::reply_recv(ep, reply_len) {
            Ok(sys::Received::Message { len, badge: _ }) => {
                let len = len.min(MAX_MESSAGE_SIZE);
                let response = sys::with_buffer(|buf| answer(service, &buf[..len]));
                reply_len = match sys::with_buffer(|buf| encode_reply::<S>(&response, buf)) {
                    Ok(n) => n,
                    Err(e) => {
                        log::warn!("cannot answer: {e}");
                        0
                    }
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
