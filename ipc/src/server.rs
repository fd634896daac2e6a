//! The one server step every service task runs: decode a request from
//! untrusted bytes, let the service handle it, encode the reply. Malformed
//! bytes get an error reply and never reach the service. A service may take
//! its hottest requests on a fast path ([`Service::answer_fast`]) that reads
//! and writes the message buffer itself.

use serde::{Serialize, de::DeserializeOwned};

use crate::{Error, decode, encode};

/// A service that answers one protocol's requests.
pub trait Service {
    /// The protocol's request type.
    type Request: DeserializeOwned;
    /// The protocol's response type.
    type Response: Serialize;

    /// Handles one well-formed request.
    fn handle(&mut self, request: Self::Request) -> Self::Response;

    /// The response that reports `error` without doing anything.
    fn refusal(error: Error) -> Self::Response;

    /// The message about to be answered came through a capability with
    /// `badge` (`ipc::syscall::SUPERVISOR_BADGE` for the supervisor's,
    /// else the caller's task slot). By default it is not looked at.
    fn caller(&mut self, _badge: u64) {}

    /// The kernel woke the server with a set of VM bits instead of a
    /// message (the ioreq upcall: VMs with I/O pending for the ioreq
    /// service, VMs that ended for the vm-manager that made them). Nothing
    /// is owed to anyone; by default the bits are ignored.
    fn kernel_upcall(&mut self, _vms: u64) {}

    /// The fast path for the protocol's hottest requests: reads the
    /// request from `message` with a hand-written decoder, handles it and
    /// writes the reply, all without building `Request` or `Response`
    /// values. Returns the reply's length (or the error that left no reply
    /// to send), or `None`, having written nothing, for a message it does
    /// not take: that one goes the general way (decode, [`handle`], encode).
    /// Both ways must give the same answer and the same effects.
    ///
    /// By default no message is taken.
    ///
    /// [`handle`]: Service::handle
    fn answer_fast(&mut self, _message: &mut impl MessageBuffer) -> Option<Result<usize, Error>> {
        None
    }
}

/// A message buffer as [`Service::answer_fast`] sees it: each method
/// borrows the buffer only while its closure runs, so the service may make
/// system calls between reading the request and writing the reply.
pub trait MessageBuffer {
    /// Runs `f` on the request's bytes.
    fn request<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R;
    /// Runs `f` on the buffer the reply is written to (from its start).
    fn reply<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R;
}

/// A request and a reply buffer apart (the host's and [`serve`]'s case).
struct Split<'a, 'b> {
    request: &'a [u8],
    reply: &'b mut [u8],
}

impl MessageBuffer for Split<'_, '_> {
    fn request<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self.request)
    }

    fn reply<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> R {
        f(self.reply)
    }
}

/// Serves one request: decodes `request`, calls [`Service::handle`] and
/// encodes the answer into `reply`, returning the reply's length. A request
/// the service takes on its fast path ([`Service::answer_fast`]) is
/// answered there.
///
/// Undecodable bytes are answered with `refusal(Malformed)`; a response too
/// large for `reply` is replaced by `refusal(MessageTooLarge)`. Only when
/// `reply` cannot hold even a refusal is the error returned to the caller.
pub fn serve<S: Service>(
    service: &mut S,
    request: &[u8],
    reply: &mut [u8],
) -> Result<usize, Error> {
    if let Some(answered) = service.answer_fast(&mut Split { request, reply }) {
        return answered;
    }
    let response = answer(service, request);
    encode_reply::<S>(&response, reply)
}

/// The first half of [`serve`]: decodes `request` and lets the service
/// handle it (undecodable bytes get `refusal(Malformed)`). With
/// [`encode_reply`] a task can decode from and answer into the same IPC
/// buffer without copying the message out and back.
pub fn answer<S: Service>(service: &mut S, request: &[u8]) -> S::Response {
    match decode::<S::Request>(request) {
        Ok(request) => service.handle(request),
        Err(error) => S::refusal(error),
    }
}

/// The second half of [`serve`]: encodes `response` into `reply` (a
/// response too large is replaced by `refusal(MessageTooLarge)`) and
/// returns its length.
pub fn encode_reply<S: Service>(response: &S::Response, reply: &mut [u8]) -> Result<usize, Error> {
    match encode(response, reply) {
        Ok(bytes) => Ok(bytes.len()),
        Err(error) => encode(&S::refusal(error), reply).map(|bytes| bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::{Service, serve};
    use crate::vm::{Request, Response};
    use crate::{Error, MAX_MESSAGE_SIZE, decode, encode, wire_name};

    /// Counts the requests that reach it; answers `Info` with an error and
    /// everything else with `Ok`.
    #[derive(Default)]
    struct Counter {
        handled: usize,
    }

    impl Service for Counter {
        type Request = Request;
        type Response = Response;

        fn handle(&mut self, request: Request) -> Response {
            self.handled += 1;
            match request {
                Request::Info { .. } => Response::Err(Error::UnknownVm),
                _ => Response::Ok,
            }
        }

        fn refusal(error: Error) -> Response {
            Response::Err(error)
        }
    }

    #[test]
    fn a_well_formed_request_is_handled_and_answered() {
        let mut service = Counter::default();
        let mut request = [0u8; MAX_MESSAGE_SIZE];
        let msg = Request::Info {
            name: wire_name("vm0").unwrap(),
        };
        let len = encode(&msg, &mut request).unwrap().len();
        let mut reply = [0u8; MAX_MESSAGE_SIZE];
        let n = serve(&mut service, &request[..len], &mut reply).unwrap();
        assert_eq!(
            decode::<Response>(&reply[..n]),
            Ok(Response::Err(Error::UnknownVm))
        );
        assert_eq!(service.handled, 1);
    }

    #[test]
    fn malformed_bytes_get_an_error_reply_and_never_reach_the_service() {
        let mut service = Counter::default();
        let mut reply = [0u8; MAX_MESSAGE_SIZE];
        for bytes in [&[][..], &[250], &[9, 40, b'a'], &[1, 3, b'v', b'm']] {
            let n = serve(&mut service, bytes, &mut reply).unwrap();
            assert_eq!(
                decode::<Response>(&reply[..n]),
                Ok(Response::Err(Error::Malformed))
            );
        }
        assert_eq!(service.handled, 0);
    }

    /// Takes `List` requests on its fast path (answering `Ok` by hand) and
    /// leaves the rest to `handle`.
    #[derive(Default)]
    struct Hurried {
        fast: usize,
        slow: Counter,
    }

    impl Service for Hurried {
        type Request = Request;
        type Response = Response;

        fn handle(&mut self, request: Request) -> Response {
            self.slow.handle(request)
        }

        fn refusal(error: Error) -> Response {
            Response::Err(error)
        }

        fn answer_fast(
            &mut self,
            message: &mut impl super::MessageBuffer,
        ) -> Option<Result<usize, Error>> {
            let list = message.request(|bytes| matches!(decode(bytes), Ok(Request::List { .. })));
            if !list {
                return None;
            }
            self.fast += 1;
            Some(message.reply(|buf| encode(&Response::Ok, buf).map(|bytes| bytes.len())))
        }
    }

    #[test]
    fn serve_answers_on_the_fast_path_what_the_service_takes_there() {
        let mut service = Hurried::default();
        let mut request = [0u8; MAX_MESSAGE_SIZE];
        let mut reply = [0u8; MAX_MESSAGE_SIZE];
        let len = encode(&Request::List { from: 3 }, &mut request)
            .unwrap()
            .len();
        let n = serve(&mut service, &request[..len], &mut reply).unwrap();
        assert_eq!(decode::<Response>(&reply[..n]), Ok(Response::Ok));
        assert_eq!((service.fast, service.slow.handled), (1, 0));
        // Anything else goes the general way, malformed bytes included.
        let info = Request::Info {
            name: wire_name("vm0").unwrap(),
        };
        let len = encode(&info, &mut request).unwrap().len();
        let n = serve(&mut service, &request[..len], &mut reply).unwrap();
        assert_eq!(
            decode::<Response>(&reply[..n]),
            Ok(Response::Err(Error::UnknownVm))
        );
        let n = serve(&mut service, &[250], &mut reply).unwrap();
        assert_eq!(
            decode::<Response>(&reply[..n]),
            Ok(Response::Err(Error::Malformed))
        );
        assert_eq!((service.fast, service.slow.handled), (1, 1));
    }

    #[test]
    fn a_reply_buffer_too_small_for_the_answer_gets_a_refusal() {
        let mut service = Counter::default();
        let mut request = [0u8; MAX_MESSAGE_SIZE];
        let len = encode(&Request::List { from: 0 }, &mut request)
            .unwrap()
            .len();
        let mut reply = [0u8; 1];
        // `Ok` is one byte: it fits.
        assert_eq!(serve(&mut service, &request[..len], &mut reply), Ok(1));
        let mut none = [0u8; 0];
        assert_eq!(
            serve(&mut service, &request[..len], &mut none),
            Err(Error::MessageTooLarge)
        );
    }
}
