//! Zig-zag varints as Kafka's record format uses them (protobuf's `sint32` /
//! `sint64` encoding): small magnitudes of either sign take few bytes.

use super::BatchError;

/// Most bytes a zig-zag encoded `i64` can take.
pub const MAX_VARLONG_LEN: usize = 10;
/// Most bytes a zig-zag encoded `i32` can take.
pub const MAX_VARINT_LEN: usize = 5;

/// Appends `value` zig-zag encoded.
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `value` zig-zag encoded.
pub fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_varlong(out, i64::from(value));
}

/// Bytes `value` takes zig-zag encoded.
pub fn varlong_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a zig-zag `i64` at `*pos`, advancing it. `what` names the field in
/// the error.
pub fn get_varlong(buf: &[u8], pos: &mut usize, what: &'static str) -> Result<i64, VarintError> {
    let mut result: u64 = 0;
    for i in 0..MAX_VARLONG_LEN {
        let Some(&b) = buf.get(*pos + i) else {
            return Err(VarintError::Truncated(what));
        };
        if i == MAX_VARLONG_LEN - 1 && b > 0x01 {
            return Err(VarintError::Overlong(what));
        }
        result |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *pos += i + 1;
            return Ok(((result >> 1) as i64) ^ -((result & 1) as i64));
        }
    }
    Err(VarintError::Overlong(what))
}

/// Reads a zig-zag `i32` at `*pos`, advancing it.
pub fn get_varint(buf: &[u8], pos: &mut usize, what: &'static str) -> Result<i32, VarintError> {
    let start = *pos;
    let v = get_varlong(buf, pos, what)?;
    if *pos - start > MAX_VARINT_LEN {
        return Err(VarintError::Overlong(what));
    }
    i32::try_from(v).map_err(|_| VarintError::Overlong(what))
}

/// Why a varint could not be read; turned into a [`BatchError`] by callers
/// that know which record it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside the varint.
    Truncated(&'static str),
    /// More continuation bytes than the type allows.
    Overlong(&'static str),
}

impl VarintError {
    /// Attaches the record index.
    pub fn at_record(self, index: u32) -> BatchError {
        match self {
            VarintError::Truncated(field) => {
                BatchError::MalformedRecord { index, reason: field, detail: "varint runs past the end of the record" }
            }
            VarintError::Overlong(field) => {
                BatchError::MalformedRecord { index, reason: field, detail: "varint is longer than its type allows" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_len(v));
            let mut pos = 0;
            prop_assert_eq!(get_varlong(&out, &mut pos, "v"), Ok(v));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn varint_round_trips(v in any::<i32>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut pos = 0;
            prop_assert_eq!(get_varint(&out, &mut pos, "v"), Ok(v));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut pos = 0;
            let _ = get_varlong(&bytes, &mut pos, "v");
            let mut pos = 0;
            let _ = get_varint(&bytes, &mut pos, "v");
        }
    }

    #[test]
    fn small_values_are_one_byte() {
        for v in -64..64 {
            assert_eq!(varlong_len(v), 1, "{v}");
        }
        assert_eq!(varlong_len(i64::MIN), 10);
    }

    #[test]
    fn truncated_and_overlong_are_errors() {
        let mut pos = 0;
        assert_eq!(get_varlong(&[0x80], &mut pos, "x"), Err(VarintError::Truncated("x")));
        let mut pos = 0;
        assert_eq!(get_varlong(&[0xff; 11], &mut pos, "x"), Err(VarintError::Overlong("x")));
        let mut out = Vec::new();
        put_varlong(&mut out, i64::from(i32::MAX) + 1);
        let mut pos = 0;
        assert_eq!(get_varint(&out, &mut pos, "x"), Err(VarintError::Overlong("x")));
    }
}
