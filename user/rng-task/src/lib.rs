//! The rng service's pure part: [`RngService`] answers `ipc::rng`
//! requests from a [`RandomDevice`] (the host's virtio-rng in the task,
//! `main.rs`; a fake in the tests), or with `Error::NoEntropy` when the
//! machine has none. It never makes a byte up: an answer holds only what
//! the device wrote.
//!
//! Layer: user task (`cargo xtask check-layers`): it links only `ipc`, the user
//! runtime and `mica-mgmt`, never a service library.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use ipc::Error;
use ipc::rng::{MAX_FILL, Request, Response};

/// A device that writes random bytes.
pub trait RandomDevice {
    /// Writes random bytes at the start of `out` and returns how many
    /// (a virtio-rng device may write fewer than offered).
    fn fill(&mut self, out: &mut [u8]) -> Result<usize, Error>;
}

/// How many times a request goes to the device before a short answer is
/// sent as it is (a device that keeps writing nothing must not hang the
/// service).
pub const MAX_DEVICE_ROUNDS: usize = 8;

/// The rng service over `D`, or over nothing.
pub struct RngService<D> {
    device: Option<D>,
}

impl<D: RandomDevice> RngService<D> {
    /// Serves `device`'s bytes; `None`: the machine has no device, every
    /// request is refused with `Error::NoEntropy`.
    pub fn new(device: Option<D>) -> Self {
        RngService { device }
    }

    /// Whether there is a device to draw on.
    pub fn has_device(&self) -> bool {
        self.device.is_some()
    }

    /// Answers one request: `len` bytes (topped up from the device up to
    /// [`MAX_DEVICE_ROUNDS`] times; fewer only if it stops giving), or an
    /// error when it gives none.
    pub fn answer(&mut self, request: Request) -> Response {
        let Request::Fill { len } = request;
        let len = usize::from(len);
        if len == 0 || len > MAX_FILL {
            return Response::Err(Error::InvalidArgument);
        }
        let Some(device) = self.device.as_mut() else {
            return Response::Err(Error::NoEntropy);
        };
        let mut buf = [0u8; MAX_FILL];
        let mut filled = 0;
        for _ in 0..MAX_DEVICE_ROUNDS {
            let Some(rest) = buf.get_mut(filled..len).filter(|r| !r.is_empty()) else {
                break;
            };
            match device.fill(rest) {
                // Never more than offered, whatever the device says.
                Ok(n) => filled += n.min(rest.len()),
                Err(e) if filled == 0 => return Response::Err(e),
                Err(_) => break,
            }
        }
        match buf.get(..filled).filter(|b| !b.is_empty()) {
            Some(bytes) => match heapless::Vec::from_slice(bytes) {
                Ok(bytes) => Response::Bytes(bytes),
                Err(_) => Response::Err(Error::MessageTooLarge),
            },
            None => Response::Err(Error::NoEntropy),
        }
    }
}

/// Served on the rng service's endpoint as it is.
impl<D: RandomDevice> ipc::server::Service for RngService<D> {
    type Request = Request;
    type Response = Response;

    fn handle(&mut self, request: Request) -> Response {
        self.answer(request)
    }

    fn refusal(error: Error) -> Response {
        Response::Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `byte`s, at most `per_call` a time; counts the calls.
    struct Fake {
        byte: u8,
        per_call: usize,
        calls: usize,
    }

    impl RandomDevice for Fake {
        fn fill(&mut self, out: &mut [u8]) -> Result<usize, Error> {
            self.calls += 1;
            let n = out.len().min(self.per_call);
            out[..n].fill(self.byte);
            Ok(n)
        }
    }

    fn fake(byte: u8, per_call: usize) -> Fake {
        Fake {
            byte,
            per_call,
            calls: 0,
        }
    }

    fn bytes(response: Response) -> Vec<u8> {
        match response {
            Response::Bytes(b) => b.to_vec(),
            Response::Err(e) => panic!("refused: {e:?}"),
        }
    }

    #[test]
    fn a_fill_gives_exactly_the_bytes_asked_for() {
        let mut service = RngService::new(Some(fake(0x42, 256)));
        assert_eq!(bytes(service.answer(Request::Fill { len: 16 })), [0x42; 16]);
        assert_eq!(
            bytes(service.answer(Request::Fill { len: 256 })),
            [0x42; 256]
        );
    }

    #[test]
    fn short_device_answers_are_topped_up() {
        let mut service = RngService::new(Some(fake(7, 5)));
        assert_eq!(bytes(service.answer(Request::Fill { len: 16 })), [7; 16]);
        assert_eq!(service.device.as_ref().unwrap().calls, 4);
    }

    #[test]
    fn a_device_that_stops_giving_yields_what_it_gave_and_never_hangs() {
        let mut service = RngService::new(Some(fake(1, 2)));
        // 2 bytes a round, MAX_DEVICE_ROUNDS rounds.
        assert_eq!(
            bytes(service.answer(Request::Fill { len: 100 })).len(),
            2 * MAX_DEVICE_ROUNDS
        );
        let mut silent = RngService::new(Some(fake(1, 0)));
        assert_eq!(
            silent.answer(Request::Fill { len: 8 }),
            Response::Err(Error::NoEntropy),
            "no byte is made up"
        );
        assert_eq!(silent.device.as_ref().unwrap().calls, MAX_DEVICE_ROUNDS);
    }

    #[test]
    fn a_device_that_claims_more_than_offered_is_cut_to_the_offer() {
        struct Liar;
        impl RandomDevice for Liar {
            fn fill(&mut self, out: &mut [u8]) -> Result<usize, Error> {
                out.fill(9);
                Ok(out.len() + 100)
            }
        }
        let mut service = RngService::new(Some(Liar));
        assert_eq!(bytes(service.answer(Request::Fill { len: 10 })), [9; 10]);
    }

    #[test]
    fn without_a_device_every_request_is_no_entropy() {
        let mut service = RngService::<Fake>::new(None);
        assert!(!service.has_device());
        assert_eq!(
            service.answer(Request::Fill { len: 16 }),
            Response::Err(Error::NoEntropy)
        );
    }

    #[test]
    fn a_length_out_of_range_is_refused_before_the_device_is_asked() {
        let mut service = RngService::new(Some(fake(1, 256)));
        for len in [0, 257, u16::MAX] {
            assert_eq!(
                service.answer(Request::Fill { len }),
                Response::Err(Error::InvalidArgument)
            );
        }
        assert_eq!(service.device.as_ref().unwrap().calls, 0);
    }

    #[test]
    fn a_failing_device_passes_its_error_on_or_what_it_gave() {
        struct Broken(usize);
        impl RandomDevice for Broken {
            fn fill(&mut self, out: &mut [u8]) -> Result<usize, Error> {
                if self.0 == 0 {
                    return Err(Error::KernelRefused);
                }
                self.0 -= 1;
                out[0] = 3;
                Ok(1)
            }
        }
        let mut broken = RngService::new(Some(Broken(0)));
        assert_eq!(
            broken.answer(Request::Fill { len: 4 }),
            Response::Err(Error::KernelRefused)
        );
        let mut partly = RngService::new(Some(Broken(2)));
        assert_eq!(bytes(partly.answer(Request::Fill { len: 4 })), [3, 3]);
    }
}
