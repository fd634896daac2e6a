//! The management wire: versioned, COBS-framed `ipc::vm` messages on a byte
//! stream (a UART, a QEMU chardev socket).
//!
//! A frame is `COBS(VERSION, postcard message) 0x00`: one version byte, then
//! at most [`ipc::MAX_MESSAGE_SIZE`] bytes of an `ipc::vm::Request` (client
//! to hypervisor) or `ipc::vm::Response` (hypervisor to client), stuffed so
//! that the only 0x00 is the terminator. A frame that carries only the
//! version byte is a *version notice*: a server sends one, in its own
//! version, when it receives a frame of a version it does not speak.
//! Empty frames (0x00 0x00) are skipped, so a sender may start with a 0x00
//! to end whatever partial frame the line held before.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::cobs::{self, CobsError};

/// The management protocol version this crate speaks.
/// (3: `VmInfo` carries how the VM last left running, `Response::Ended`
/// answers about a dynamic VM that ended, a `List` page holds 4 VMs.
/// 4: `Request::Images` / `Response::Images` list the guest images,
/// `Error::NoImageGiven` refuses a create with nothing to boot.
/// 5: `Request::ConsoleFocus` holds the other VMs' console lines,
/// `Request::Events` / `Response::Events` read the VMs' state changes.
/// 6: `CreateOptions::disk` gives a dynamic VM a host disk, `VmInfo::disk`
/// shows it, `Request::ConsoleInput` names the console port.
/// 7: `VmStats::net` carries the network card's frame counts.
/// 8: `VmStats::vcpus` carries each vCPU's state, exits and round trips.
/// 9: `VcpuInfo::cpu`, the host CPU a vCPU is on.)
pub const VERSION: u8 = 9;

/// The largest message a frame carries.
pub const MAX_PAYLOAD: usize = ipc::MAX_MESSAGE_SIZE;

/// The largest stuffed frame, without its terminator.
pub const MAX_ENCODED: usize = cobs::max_encoded_len(1 + MAX_PAYLOAD);

/// The largest frame on the wire, terminator included.
pub const MAX_FRAME: usize = MAX_ENCODED + 1;

/// Why a frame was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes than [`MAX_ENCODED`] before the terminator; they were
    /// dropped up to the next 0x00.
    Oversize,
    /// The bytes between two 0x00 are not valid COBS.
    BadStuffing(CobsError),
    /// The frame decodes to nothing: not even a version byte.
    NoVersion,
    /// The peer speaks another version of the management protocol.
    UnsupportedVersion {
        /// The version byte the peer sent.
        got: u8,
    },
    /// The frame is a version notice: the peer speaks this version and
    /// could not read what we sent.
    VersionNotice,
    /// The message inside the frame does not decode.
    Malformed,
    /// A message to send does not fit in [`MAX_PAYLOAD`] bytes.
    TooLarge,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Oversize => write!(f, "frame longer than {MAX_ENCODED} bytes"),
            FrameError::BadStuffing(why) => write!(f, "badly stuffed frame: {why}"),
            FrameError::NoVersion => f.write_str("frame without a version byte"),
            FrameError::UnsupportedVersion { got } => write!(
                f,
                "the peer speaks management protocol version {got}, this side speaks version {VERSION}"
            ),
            FrameError::VersionNotice => {
                f.write_str("the peer could not read our frame (it sent a version notice)")
            }
            FrameError::Malformed => f.write_str("the message in the frame does not decode"),
            FrameError::TooLarge => write!(f, "message longer than {MAX_PAYLOAD} bytes"),
        }
    }
}

/// A buffer that holds one encoded frame.
pub type FrameBuf = [u8; MAX_FRAME];

/// Encodes `message` as a frame into `out`; returns the frame, terminator
/// included.
pub fn encode<'o, T: Serialize>(
    message: &T,
    out: &'o mut FrameBuf,
) -> Result<&'o [u8], FrameError> {
    let len = encode_len(message, out)?;
    Ok(&out[..len])
}

/// Encodes `message` as a frame at the start of `out`; returns the frame's
/// length, terminator included.
pub fn encode_len<T: Serialize>(message: &T, out: &mut FrameBuf) -> Result<usize, FrameError> {
    let mut raw = [0u8; 1 + MAX_PAYLOAD];
    raw[0] = VERSION;
    let payload_len = ipc::encode(message, &mut raw[1..])
        .map_err(|_| FrameError::TooLarge)?
        .len();
    stuff(&raw[..1 + payload_len], out)
}

/// The version notice: a frame of only the version byte.
pub fn version_notice(out: &mut FrameBuf) -> &[u8] {
    // Two bytes always fit in a frame buffer.
    let len = stuff(&[VERSION], out).unwrap_or(0);
    &out[..len]
}

fn stuff(raw: &[u8], out: &mut FrameBuf) -> Result<usize, FrameError> {
    let len = cobs::encode(raw, &mut out[..MAX_ENCODED]).ok_or(FrameError::TooLarge)?;
    out[len] = 0;
    Ok(len + 1)
}

/// Decodes the message of a frame's payload (what [`FrameDecoder::push`]
/// hands out).
pub fn decode<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, FrameError> {
    if payload.is_empty() {
        return Err(FrameError::VersionNotice);
    }
    ipc::decode(payload).map_err(|_| FrameError::Malformed)
}

/// Cuts a byte stream into frames. Bytes may arrive split anywhere; garbage,
/// oversize and wrong-version frames give an error once and the decoder
/// starts afresh after the next 0x00. It never panics and holds at most
/// [`MAX_ENCODED`] bytes.
pub struct FrameDecoder {
    buf: [u8; MAX_ENCODED],
    len: usize,
    overflowed: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder at the start of a frame.
    pub const fn new() -> Self {
        FrameDecoder {
            buf: [0; MAX_ENCODED],
            len: 0,
            overflowed: false,
        }
    }

    /// Whether part of a frame has arrived and waits for its terminator.
    pub fn in_frame(&self) -> bool {
        self.len > 0 || self.overflowed
    }

    /// Takes one byte. At a terminator that ends a non-empty frame, returns
    /// the frame's payload (the message bytes after the version byte; empty
    /// for a version notice) or why the frame is bad.
    pub fn push(&mut self, byte: u8) -> Option<Result<&[u8], FrameError>> {
        if byte != 0 {
            match self.buf.get_mut(self.len) {
                Some(slot) if !self.overflowed => {
                    *slot = byte;
                    self.len += 1;
                }
                _ => self.overflowed = true,
            }
            return None;
        }
        let len = core::mem::take(&mut self.len);
        if core::mem::take(&mut self.overflowed) {
            return Some(Err(FrameError::Oversize));
        }
        if len == 0 {
            return None;
        }
        Some(self.unstuff(len))
    }

    fn unstuff(&mut self, len: usize) -> Result<&[u8], FrameError> {
        let frame = &mut self.buf[..len];
        let decoded = cobs::decode_in_place(frame).map_err(FrameError::BadStuffing)?;
        let (&version, payload) = frame[..decoded]
            .split_first()
            .ok_or(FrameError::NoVersion)?;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion { got: version });
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::Oversize);
        }
        Ok(payload)
    }
}
