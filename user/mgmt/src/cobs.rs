//! Consistent Overhead Byte Stuffing: turns any bytes into bytes without
//! 0x00, so that 0x00 can end a frame on a byte stream.
//!
//! The encoding is a chain of blocks. Each block starts with a code byte
//! `c` (1..=255) followed by `c - 1` non-zero data bytes; a block with
//! `c < 255` stands for its data followed by one 0x00, except the last block
//! of the frame, whose 0x00 is implied away.

use core::fmt;

/// The most bytes COBS turns `len` data bytes into (without a terminator).
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Why encoded bytes are not valid COBS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CobsError {
    /// A code byte was 0x00 (a terminator inside a frame).
    ZeroCode,
    /// A data byte was 0x00 (the frame was cut or stuffed wrongly).
    ZeroData,
    /// The last block announces more bytes than the frame holds.
    Truncated,
}

impl fmt::Display for CobsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CobsError::ZeroCode => "a block code byte is zero",
            CobsError::ZeroData => "a zero byte inside a block",
            CobsError::Truncated => "the last block is cut short",
        })
    }
}

/// Encodes `data` into `out` and returns the encoded length, or `None` when
/// `out` is too small (at most [`max_encoded_len`] bytes are needed).
pub fn encode(data: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut code_at = 0;
    let mut len = 1;
    let mut code: u8 = 1;
    for &byte in data {
        if byte == 0 {
            *out.get_mut(code_at)? = code;
            code_at = len;
            len += 1;
            code = 1;
            continue;
        }
        *out.get_mut(len)? = byte;
        len += 1;
        code += 1;
        if code == 0xff {
            *out.get_mut(code_at)? = code;
            code_at = len;
            len += 1;
            code = 1;
        }
    }
    *out.get_mut(code_at)? = code;
    Some(len)
}

/// Decodes the COBS bytes in `buf` (without the terminator) in place and
/// returns the length of the decoded data at the start of `buf`.
pub fn decode_in_place(buf: &mut [u8]) -> Result<usize, CobsError> {
    let mut read = 0;
    let mut written = 0;
    while let Some(&code) = buf.get(read) {
        if code == 0 {
            return Err(CobsError::ZeroCode);
        }
        let run = usize::from(code) - 1;
        let start = read + 1;
        let end = start + run;
        let block = buf.get(start..end).ok_or(CobsError::Truncated)?;
        if block.contains(&0) {
            return Err(CobsError::ZeroData);
        }
        // Decoded data never overtakes the encoded bytes still to be read:
        // `written <= read` holds on every iteration.
        buf.copy_within(start..end, written);
        written += run;
        read = end;
        if code != 0xff && read < buf.len() {
            // `written < read` here, so this index exists.
            if let Some(slot) = buf.get_mut(written) {
                *slot = 0;
            }
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn enc(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; max_encoded_len(data.len())];
        let len = encode(data, &mut out).unwrap();
        out.truncate(len);
        out
    }

    fn dec(encoded: &[u8]) -> Result<Vec<u8>, CobsError> {
        let mut buf = encoded.to_vec();
        let len = decode_in_place(&mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    #[test]
    fn known_vectors() {
        // The examples of Cheshire and Baker's paper (and Wikipedia).
        assert_eq!(enc(&[]), [0x01]);
        assert_eq!(enc(&[0x00]), [0x01, 0x01]);
        assert_eq!(enc(&[0x00, 0x00]), [0x01, 0x01, 0x01]);
        assert_eq!(
            enc(&[0x11, 0x22, 0x00, 0x33]),
            [0x03, 0x11, 0x22, 0x02, 0x33]
        );
        assert_eq!(
            enc(&[0x11, 0x00, 0x00, 0x00]),
            [0x02, 0x11, 0x01, 0x01, 0x01]
        );
        let run: Vec<u8> = (1..=254).collect();
        let mut expected = vec![0xff];
        expected.extend(&run);
        expected.push(0x01);
        assert_eq!(enc(&run), expected);
        let run: Vec<u8> = (1..=255).collect();
        let mut expected = vec![0xff];
        expected.extend(1..=254);
        expected.extend([0x02, 0xff]);
        assert_eq!(enc(&run), expected);
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(dec(&[0x00]), Err(CobsError::ZeroCode));
        assert_eq!(dec(&[0x03, 0x11, 0x00]), Err(CobsError::ZeroData));
        assert_eq!(dec(&[0x05, 0x11]), Err(CobsError::Truncated));
        assert_eq!(dec(&[]), Ok(vec![]));
    }

    #[test]
    fn too_small_output_is_refused() {
        let mut out = [0u8; 3];
        assert_eq!(encode(&[1, 2, 3], &mut out), None);
        assert_eq!(encode(&[1, 2], &mut out), Some(3));
        assert_eq!(encode(&[], &mut []), None);
    }

    proptest! {
        #[test]
        fn round_trip_without_zeros_within_bound(data in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let encoded = enc(&data);
            prop_assert!(!encoded.contains(&0));
            prop_assert!(encoded.len() <= max_encoded_len(data.len()));
            prop_assert_eq!(dec(&encoded).unwrap(), data);
        }

        #[test]
        fn any_bytes_decode_without_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(decoded) = dec(&data) {
                prop_assert!(decoded.len() <= data.len());
            }
        }
    }
}
