//! IPC on top of the raw calls: a typed `call` for clients and the server
//! loop every service task runs.

use ipc::server::{Service, serve};
use ipc::{Error, MAX_MESSAGE_SIZE, decode, encode};
use serde::{Serialize, de::DeserializeOwned};

use crate::sys;

/// Encodes `request`, calls endpoint slot `ep` and decodes the answer.
pub fn call_message<Req: Serialize, Resp: DeserializeOwned>(
    ep: usize,
    request: &Req,
) -> Result<Resp, Error> {
    let len = sys::with_buffer(|buf| encode(request, buf).map(|b| b.len()))?;
    let n = sys::call(ep, len)?;
    let mut reply = [0u8; MAX_MESSAGE_SIZE];
    let n = n.min(MAX_MESSAGE_SIZE);
    sys::with_buffer(|buf| reply[..n].copy_from_slice(&buf[..n]));
    decode(&reply[..n])
}

/// Serves `service` on endpoint slot `ep` forever: each request is decoded,
/// handled and answered with `reply_recv` (bad bytes get an error reply).
pub fn serve_forever<S: Service>(ep: usize, service: &mut S) -> ! {
    let mut request = [0u8; MAX_MESSAGE_SIZE];
    let mut reply = [0u8; MAX_MESSAGE_SIZE];
    let mut reply_len = 0;
    loop {
        match sys::reply_recv(ep, reply_len) {
            Ok(sys::Received::Message { len, badge: _ }) => {
                sys::with_buffer(|buf| request[..len].copy_from_slice(&buf[..len]));
                reply_len = match serve(service, &request[..len], &mut reply) {
                    Ok(n) => {
                        sys::with_buffer(|buf| buf[..n].copy_from_slice(&reply[..n]));
                        n
                    }
                    Err(e) => {
                        log::warn!("cannot answer: {e}");
                        0
                    }
                };
            }
            // Only the ioreq task attaches ioreq pages; nothing is owed.
            Ok(sys::Received::IoreqPending { .. }) => reply_len = 0,
            Err(e) => {
                log::warn!("reply_recv failed: {e}");
                reply_len = 0;
            }
        }
    }
}
