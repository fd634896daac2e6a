//! Attaching to a VM's console over the vm-manager protocol (the host
//! `mica console NAME`): the requests that type bytes and read output,
//! where the output continues, where the typed bytes end at the escape
//! byte, and what a refusal means for the user.

use core::fmt;

use ipc::devices::ConsoleChunk;
use ipc::vm::{CONSOLE_INPUT_CHUNK, ConsolePort, Request, Response};
use vm_manager::VmName;

use crate::command::{CONSOLE_ESCAPE, ReplyError};

/// One attachment to a VM's console: the VM, the console typed bytes go
/// to and the number of the next output byte to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    name: VmName,
    port: ConsolePort,
    next: u64,
}

impl ConsoleSession {
    /// A session that reads `name`'s output from the oldest byte the
    /// hypervisor still holds (so what the guest printed before the attach,
    /// a prompt, shows) and types at its serial console.
    pub fn new(name: VmName) -> Self {
        ConsoleSession::on_port(name, ConsolePort::Serial)
    }

    /// Like [`ConsoleSession::new`], typing at console `port`
    /// (`mica console NAME --hvc`: the virtio console).
    pub fn on_port(name: VmName, port: ConsolePort) -> Self {
        ConsoleSession {
            name,
            port,
            next: 0,
        }
    }

    /// The VM.
    pub fn name(&self) -> &VmName {
        &self.name
    }

    /// The console typed bytes go to.
    pub fn port(&self) -> ConsolePort {
        self.port
    }

    /// The request that types `bytes` (at most [`CONSOLE_INPUT_CHUNK`];
    /// longer input is cut: send it in [`input_chunks`]).
    pub fn input_request(&self, bytes: &[u8]) -> Request {
        let bytes = bytes.get(..CONSOLE_INPUT_CHUNK).unwrap_or(bytes);
        Request::ConsoleInput {
            name: self.name.to_wire(),
            port: self.port,
            // Cut to the capacity above: cannot fail.
            bytes: heapless::Vec::from_slice(bytes).unwrap_or_default(),
        }
    }

    /// Checks the answer to an [`input_request`](Self::input_request).
    pub fn accept_input(&self, response: Response) -> Result<(), ReplyError> {
        match response {
            Response::Ok => Ok(()),
            Response::Err(error) => Err(ReplyError::Refused(error)),
            Response::Ended(exit) => Err(ReplyError::Ended(exit)),
            _ => Err(ReplyError::Unexpected),
        }
    }

    /// The request for the output not read yet.
    pub fn output_request(&self) -> Request {
        Request::ConsoleOutput {
            name: self.name.to_wire(),
            from: self.next,
        }
    }

    /// Takes the answer to an [`output_request`](Self::output_request): the
    /// new output (with how many bytes were lost before it); the next
    /// request continues after it. A `next` below ours means the console's
    /// numbering restarted (the device service was restarted): reading
    /// continues from there.
    pub fn accept_output(&mut self, response: Response) -> Result<ConsoleChunk, ReplyError> {
        match response {
            Response::ConsoleOutput(chunk) => {
                let from = self.next;
                let expected = from
                    .saturating_add(chunk.lost)
                    .saturating_add(chunk.bytes.len() as u64);
                if chunk.next < from && !chunk.bytes.is_empty() || chunk.next > expected {
                    return Err(ReplyError::Unexpected);
                }
                self.next = chunk.next;
                Ok(chunk)
            }
            Response::Err(error) => Err(ReplyError::Refused(error)),
            Response::Ended(exit) => Err(ReplyError::Ended(exit)),
            _ => Err(ReplyError::Unexpected),
        }
    }
}

/// `bytes` in pieces of at most [`CONSOLE_INPUT_CHUNK`].
pub fn input_chunks(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.chunks(CONSOLE_INPUT_CHUNK)
}

/// The typed bytes to send, up to the escape byte (Ctrl-]), and whether
/// the escape byte came (the user detaches; what follows it is dropped).
pub fn until_escape(typed: &[u8]) -> (&[u8], bool) {
    match typed.iter().position(|&byte| byte == CONSOLE_ESCAPE) {
        Some(at) => (typed.get(..at).unwrap_or_default(), true),
        None => (typed, false),
    }
}

/// The message (without `error: `) for a refused console request.
pub struct ConsoleErrorMessage<'a> {
    /// The VM.
    pub name: &'a VmName,
    /// The console typed at.
    pub port: ConsolePort,
    /// How it failed.
    pub error: ReplyError,
}

impl fmt::Display for ConsoleErrorMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name;
        let error = match self.error {
            ReplyError::Refused(error) => error,
            ReplyError::Ended(exit) => return write!(f, "no VM named {name} (it ended: {exit})"),
            ReplyError::Unexpected => return write!(f, "{}", self.error),
        };
        match error {
            ipc::Error::UnknownVm => write!(f, "no VM named {name}"),
            ipc::Error::IllegalTransition { state } => write!(
                f,
                "{name} is {state}: it has no console until it is created (mica create {name})"
            ),
            ipc::Error::NoDevice => match self.port {
                ConsolePort::Serial => write!(
                    f,
                    "{name} has no console device (no UART or virtio console) to attach to"
                ),
                ConsolePort::Virtio => write!(
                    f,
                    "{name} has no virtio console (hvc0): attach to its UART without --hvc"
                ),
            },
            ipc::Error::Malformed => f.write_str(
                "the hypervisor could not decode the request: use a matching mica and hypervisor",
            ),
            ipc::Error::ServerDied => {
                f.write_str("a service restarted while handling the console: attach again")
            }
            other => write!(f, "{other} (code {})", other.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::ToString;

    use super::*;
    use ipc::vm::VmState;

    fn session() -> ConsoleSession {
        ConsoleSession::new(VmName::parse("g").unwrap())
    }

    fn output(next: u64, lost: u64, bytes: &[u8]) -> Response {
        Response::ConsoleOutput(ConsoleChunk {
            next,
            lost,
            bytes: heapless::Vec::from_slice(bytes).unwrap(),
        })
    }

    #[test]
    fn output_is_read_on_from_where_the_last_answer_ended() {
        let mut s = session();
        assert_eq!(
            s.output_request(),
            Request::ConsoleOutput {
                name: ipc::wire_name("g").unwrap(),
                from: 0
            }
        );
        let chunk = s.accept_output(output(5, 2, b"abc")).unwrap();
        assert_eq!((&chunk.bytes[..], chunk.lost), (&b"abc"[..], 2));
        assert!(matches!(
            s.output_request(),
            Request::ConsoleOutput { from: 5, .. }
        ));
        // A restarted numbering (nothing returned, a lower `next`) is
        // followed; a peer that claims more than it sent is not.
        s.accept_output(output(1, 0, b"")).unwrap();
        assert!(matches!(
            s.output_request(),
            Request::ConsoleOutput { from: 1, .. }
        ));
        assert_eq!(
            s.accept_output(output(9, 0, b"x")),
            Err(ReplyError::Unexpected)
        );
        assert_eq!(s.accept_output(Response::Ok), Err(ReplyError::Unexpected));
        assert_eq!(
            s.accept_output(Response::Err(ipc::Error::UnknownVm)),
            Err(ReplyError::Refused(ipc::Error::UnknownVm))
        );
    }

    #[test]
    fn typed_bytes_end_at_ctrl_bracket_and_travel_in_chunks() {
        assert_eq!(until_escape(b"ls\r"), (&b"ls\r"[..], false));
        assert_eq!(until_escape(b"ls\x1dquit"), (&b"ls"[..], true));
        let long = [b'a'; CONSOLE_INPUT_CHUNK * 2 + 1];
        let sizes: std::vec::Vec<usize> = input_chunks(&long).map(<[u8]>::len).collect();
        assert_eq!(sizes, [CONSOLE_INPUT_CHUNK, CONSOLE_INPUT_CHUNK, 1]);
        let Request::ConsoleInput { bytes, .. } = session().input_request(&long) else {
            panic!("not an input request");
        };
        assert_eq!(bytes.len(), CONSOLE_INPUT_CHUNK);
        assert_eq!(session().accept_input(Response::Ok), Ok(()));
    }

    #[test]
    fn refusals_say_what_to_do() {
        let name = VmName::parse("g").unwrap();
        let message = |error| {
            ConsoleErrorMessage {
                name: &name,
                port: ConsolePort::Serial,
                error: ReplyError::Refused(error),
            }
            .to_string()
        };
        assert_eq!(message(ipc::Error::UnknownVm), "no VM named g");
        assert_eq!(
            message(ipc::Error::IllegalTransition {
                state: VmState::PoweredOff
            }),
            "g is powered-off: it has no console until it is created (mica create g)"
        );
        assert_eq!(
            message(ipc::Error::NoDevice),
            "g has no console device (no UART or virtio console) to attach to"
        );
        let hvc = ConsoleErrorMessage {
            name: &name,
            port: ConsolePort::Virtio,
            error: ReplyError::Refused(ipc::Error::NoDevice),
        };
        assert_eq!(
            hvc.to_string(),
            "g has no virtio console (hvc0): attach to its UART without --hvc"
        );
    }

    #[test]
    fn a_session_types_at_its_port() {
        let name = VmName::parse("g").unwrap();
        let hvc = ConsoleSession::on_port(name, ConsolePort::Virtio);
        let Request::ConsoleInput { port, .. } = hvc.input_request(b"x") else {
            panic!("not an input request");
        };
        assert_eq!(port, ConsolePort::Virtio);
        let Request::ConsoleInput { port, .. } = session().input_request(b"x") else {
            panic!("not an input request");
        };
        assert_eq!(port, ConsolePort::Serial);
    }
}
