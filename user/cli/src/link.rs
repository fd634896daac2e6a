//! The connection to the hypervisor: a Unix socket carrying management
//! frames, one request and its response at a time, with a timeout.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipc::vm::{Request, Response};
use mica_mgmt::frame::{self, FrameBuf, MAX_FRAME};
use mica_mgmt::{FrameDecoder, FrameError};

/// Why the hypervisor could not be asked.
#[derive(Debug)]
pub enum LinkError {
    /// The socket cannot be opened.
    Connect(PathBuf, io::Error),
    /// Reading or writing failed.
    Io(io::Error),
    /// No answer in time; `last_bad` is the last bad frame seen meanwhile.
    Timeout(Duration, Option<FrameError>),
    /// The hypervisor closed the connection without answering.
    Closed,
    /// The hypervisor speaks another protocol version, or could not read
    /// our frame.
    Version(FrameError),
    /// The request does not fit in a frame.
    Encode(FrameError),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Connect(path, error) if mica_cli::socket_path::is_default(path) => write!(
                f,
                "cannot reach the hypervisor at {}: {error} (the default management socket: is \
                 Mica running? cargo xtask qemu opens it there; --socket SOCKET or MICA_SOCKET \
                 names another)",
                path.display()
            ),
            LinkError::Connect(path, error) => write!(
                f,
                "cannot reach the hypervisor at {}: {error} (is it running with cargo xtask qemu --mgmt {}?)",
                path.display(),
                path.display()
            ),
            LinkError::Io(error) => write!(f, "lost the connection to the hypervisor: {error}"),
            LinkError::Timeout(after, None) => write!(
                f,
                "the hypervisor did not answer within {} s",
                after.as_secs()
            ),
            LinkError::Timeout(after, Some(bad)) => write!(
                f,
                "the hypervisor did not answer within {} s (it sent a bad frame: {bad})",
                after.as_secs()
            ),
            LinkError::Closed => {
                f.write_str("the hypervisor closed the connection without answering")
            }
            LinkError::Version(error) => write!(f, "{error}: use a matching mica"),
            LinkError::Encode(error) => write!(f, "cannot send the request: {error}"),
        }
    }
}

/// An open connection.
pub struct Link {
    stream: UnixStream,
    decoder: FrameDecoder,
    /// Bytes received after the last answer's frame.
    pending: VecDeque<u8>,
    timeout: Duration,
}

impl Link {
    /// Connects to the socket at `path`; each answer must come within
    /// `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Link, LinkError> {
        let stream =
            UnixStream::connect(path).map_err(|e| LinkError::Connect(path.to_path_buf(), e))?;
        let mut link = Link {
            stream,
            decoder: FrameDecoder::new(),
            pending: VecDeque::new(),
            timeout,
        };
        // A lone 0x00 ends whatever partial frame the line held before us.
        link.stream.write_all(&[0]).map_err(LinkError::Io)?;
        Ok(link)
    }

    /// Sends `request` and waits for its response.
    pub fn call(&mut self, request: &Request) -> Result<Response, LinkError> {
        let mut out: FrameBuf = [0; MAX_FRAME];
        let bytes = frame::encode(request, &mut out).map_err(LinkError::Encode)?;
        self.stream.write_all(bytes).map_err(LinkError::Io)?;
        let deadline = Instant::now() + self.timeout;
        let mut last_bad = None;
        loop {
            while let Some(byte) = self.pending.pop_front() {
                match self.decoder.push(byte) {
                    None => {}
                    Some(Ok(payload)) => match frame::decode::<Response>(payload) {
                        Ok(response) => return Ok(response),
                        Err(FrameError::VersionNotice) => {
                            return Err(LinkError::Version(FrameError::VersionNotice));
                        }
                        Err(error) => last_bad = Some(error),
                    },
                    Some(Err(error @ FrameError::UnsupportedVersion { .. })) => {
                        return Err(LinkError::Version(error));
                    }
                    // Anything else is noise on the line: skip to the next
                    // frame, and mention it if no answer comes.
                    Some(Err(error)) => last_bad = Some(error),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LinkError::Timeout(self.timeout, last_bad));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(LinkError::Io)?;
            let mut buf = [0u8; 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => self.pending.extend(buf.get(..n).unwrap_or_default()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(LinkError::Timeout(self.timeout, last_bad));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::Io(e)),
            }
        }
    }
}
