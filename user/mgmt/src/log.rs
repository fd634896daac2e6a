//! `vm log NAME` (shell) and `mica log NAME` (CLI): a VM's recent console
//! output read back from the ring the device service keeps for it (the
//! last `devices::console_ring::CONSOLE_RING` bytes), a chunk at a time
//! with `ConsoleOutput`, and shown as lines by `ipc::console_text`'s rule
//! (a guest cannot reach the terminal through its log either).
//!
//! Reading stops at the first chunk shorter than a full one (the output
//! as it was when the reader caught up) or after [`LOG_MAX`] bytes, so a
//! guest that prints without pause cannot keep the reader going.

use ipc::console_text::EscapedLine;
use ipc::devices::OUTPUT_CHUNK;
use ipc::vm::{Request, Response};
use vm_manager::VmName;

use crate::command::ReplyError;
use crate::console::ConsoleSession;

/// The most bytes one log shows: twice what a VM's ring holds, so the
/// whole ring is read even while the guest keeps printing.
pub const LOG_MAX: u64 = 8192;

/// The longest shown line (after escaping) printed in one piece; a longer
/// one goes on as the next line.
pub const LOG_LINE: usize = 160;

/// What a log shows, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogPart<'a> {
    /// This many bytes of the VM's earliest output are no longer kept (the
    /// ring wrapped): the first line may be the end of a longer one.
    Lost(u64),
    /// One line of output, shown by the console-text rule, without its
    /// line ending.
    Line(&'a str),
}

/// Reads one VM's log: send [`LogReader::next_request`], give the answer to
/// [`LogReader::accept`], until `next_request` is `None`.
#[derive(Clone, Debug)]
pub struct LogReader {
    session: ConsoleSession,
    line: EscapedLine<LOG_LINE>,
    read: u64,
    done: bool,
}

impl LogReader {
    /// A reader of `name`'s output from the oldest byte kept.
    pub fn new(name: VmName) -> Self {
        LogReader {
            session: ConsoleSession::new(name),
            line: EscapedLine::new(),
            read: 0,
            done: false,
        }
    }

    /// The VM.
    pub fn name(&self) -> &VmName {
        self.session.name()
    }

    /// The next chunk's request, or `None` when the log is complete.
    pub fn next_request(&self) -> Option<Request> {
        (!self.done).then(|| self.session.output_request())
    }

    /// Takes the answer to the last request and calls `show` with what it
    /// adds to the log; at the end, a line without its newline is shown
    /// too. The reader is finished after any error.
    pub fn accept(
        &mut self,
        response: Response,
        show: &mut dyn FnMut(LogPart<'_>),
    ) -> Result<(), ReplyError> {
        let first = self.read == 0;
        let chunk = match self.session.accept_output(response) {
            Ok(chunk) => chunk,
            Err(error) => {
                self.done = true;
                return Err(error);
            }
        };
        if chunk.lost > 0 && first {
            show(LogPart::Lost(chunk.lost));
        }
        let mut emit = |text: &str| show(LogPart::Line(text));
        for &byte in &chunk.bytes {
            self.line.push(byte, &mut emit);
        }
        self.read = self.read.saturating_add(chunk.bytes.len() as u64);
        if chunk.bytes.len() < OUTPUT_CHUNK || self.read >= LOG_MAX {
            self.done = true;
            if !self.line.is_empty() {
                self.line.flush(&mut emit);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use ipc::devices::ConsoleChunk;

    use super::*;

    fn chunk(next: u64, lost: u64, bytes: &[u8]) -> Response {
        Response::ConsoleOutput(ConsoleChunk {
            next,
            lost,
            bytes: heapless::Vec::from_slice(bytes).unwrap(),
        })
    }

    fn shown(reader: &mut LogReader, response: Response) -> Result<Vec<String>, ReplyError> {
        let mut parts = Vec::new();
        reader.accept(response, &mut |part| {
            parts.push(match part {
                LogPart::Lost(n) => std::format!("[lost {n}]"),
                LogPart::Line(text) => text.to_string(),
            })
        })?;
        Ok(parts)
    }

    fn vm0() -> VmName {
        VmName::parse("vm0").unwrap()
    }

    #[test]
    fn the_log_is_read_from_the_oldest_byte_until_a_short_chunk() {
        let mut reader = LogReader::new(vm0());
        assert_eq!(
            reader.next_request(),
            Some(Request::ConsoleOutput {
                name: vm0().to_wire(),
                from: 0
            })
        );
        let full: Vec<u8> = b"hello from vm0\r\nvm0: tick 1\nvm0: tick 2\nvm0: tick 3\nvm0: t"
            .iter()
            .copied()
            .chain(core::iter::repeat_n(b'i', OUTPUT_CHUNK))
            .take(OUTPUT_CHUNK)
            .collect();
        let lines = shown(&mut reader, chunk(OUTPUT_CHUNK as u64, 0, &full)).unwrap();
        assert_eq!(
            lines,
            [
                "hello from vm0",
                "vm0: tick 1",
                "vm0: tick 2",
                "vm0: tick 3"
            ]
        );
        assert_eq!(
            reader.next_request(),
            Some(Request::ConsoleOutput {
                name: vm0().to_wire(),
                from: OUTPUT_CHUNK as u64
            })
        );
        // The last chunk ends the log; its unfinished line is shown too.
        let lines = shown(&mut reader, chunk(70, 0, b"ck 4\n$ ")).unwrap();
        assert_eq!(lines[0], "vm0: tiiiiiick 4");
        assert_eq!(lines[1], "$ ");
        assert_eq!(reader.next_request(), None);
    }

    #[test]
    fn output_no_longer_kept_is_said_once_and_control_bytes_are_escaped() {
        let mut reader = LogReader::new(vm0());
        let lines = shown(&mut reader, chunk(4100, 4096, b"ick 9\n\x1b[2Jbad\n")).unwrap();
        assert_eq!(lines, ["[lost 4096]", "ick 9", "\\x1b[2Jbad"]);
        assert_eq!(reader.next_request(), None);
    }

    #[test]
    fn an_empty_log_shows_nothing() {
        let mut reader = LogReader::new(vm0());
        assert_eq!(
            shown(&mut reader, chunk(0, 0, b"")).unwrap(),
            [] as [&str; 0]
        );
        assert_eq!(reader.next_request(), None);
    }

    #[test]
    fn a_guest_that_never_stops_printing_ends_the_log_at_its_bound() {
        let mut reader = LogReader::new(vm0());
        let full = [b'x'; OUTPUT_CHUNK];
        let mut chunks = 0u64;
        while reader.next_request().is_some() {
            chunks += 1;
            let next = chunks * OUTPUT_CHUNK as u64;
            shown(&mut reader, chunk(next, 0, &full)).unwrap();
        }
        assert_eq!(chunks, LOG_MAX / OUTPUT_CHUNK as u64);
    }

    #[test]
    fn a_refusal_ends_the_reader() {
        let mut reader = LogReader::new(vm0());
        let refused = shown(&mut reader, Response::Err(ipc::Error::UnknownVm));
        assert_eq!(refused, Err(ReplyError::Refused(ipc::Error::UnknownVm)));
        assert_eq!(reader.next_request(), None);
        let mut reader = LogReader::new(vm0());
        assert_eq!(
            shown(&mut reader, Response::Ok),
            Err(ReplyError::Unexpected)
        );
    }
}
