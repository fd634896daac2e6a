//! Bounded encoding of messages into a task's IPC buffer and fallible decoding
//! of untrusted bytes.

use serde::{Deserialize, Serialize};

use crate::Error;

/// The largest IPC payload in bytes. The kernel copies at most this many
/// bytes per message; every `Request` and `Response` in this crate fits
/// (the `fits` tests build the largest value of each and check).
pub const MAX_MESSAGE_SIZE: usize = 512;

/// Encodes `msg` into `buf` and returns the used prefix.
///
/// Fails with [`Error::MessageTooLarge`] when the message does not fit.
pub fn encode<'b, T: Serialize>(msg: &T, buf: &'b mut [u8]) -> Result<&'b mut [u8], Error> {
    let limit = buf.len().min(MAX_MESSAGE_SIZE);
    let window = buf.get_mut(..limit).ok_or(Error::MessageTooLarge)?;
    postcard::to_slice(msg, window).map_err(|_| Error::MessageTooLarge)
}

/// Decodes one message that must occupy `bytes` exactly.
///
/// Truncated, over-long, trailing or otherwise malformed input yields
/// [`Error::Malformed`]; this never panics, whatever the bytes.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(Error::MessageTooLarge);
    }
    match postcard::take_from_bytes(bytes) {
        Ok((msg, [])) => Ok(msg),
        Ok(_) | Err(_) => Err(Error::Malformed),
    }
}
