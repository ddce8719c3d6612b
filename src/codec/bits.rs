//! A big-endian bit reader for the bit-packed syntax of H.264 (ITU-T H.264
//! 7.2, including Exp-Golomb codes, 9.1) and AAC (ISO/IEC 14496-3 1.6.2.1).

use super::CodecError;

pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    fn ended(&self) -> CodecError {
        CodecError::BitstreamEnded { what: self.what }
    }

    pub(crate) fn bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self.data.get(self.pos / 8).ok_or_else(|| self.ended())?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Up to 32 bits, most significant first.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        let mut v: u32 = 0;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    pub(crate) fn u8(&mut self, n: u32) -> Result<u8, CodecError> {
        debug_assert!(n <= 8);
        // Cannot truncate: n <= 8 bits were read.
        Ok(self.bits(n)? as u8)
    }

    /// ue(v), H.264 9.1. A valid code has at most 31 leading zeros (the
    /// value fits in 32 bits); more means garbage, not a bigger number.
    pub(crate) fn ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(super::invalid(
                    self.what,
                    "Exp-Golomb code longer than 32 bits",
                ));
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = u64::from(self.bits(zeros)?);
        let v = (1u64 << zeros) - 1 + rest;
        u32::try_from(v).map_err(|_| super::invalid(self.what, "Exp-Golomb value overflows u32"))
    }

    /// se(v), H.264 9.1.1: 0, 1, -1, 2, -2, ...
    pub(crate) fn se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v)
            .map_err(|_| super::invalid(self.what, "signed Exp-Golomb value overflows i32"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_table() {
        // (bits as a string, ue value) from H.264 Table 9-2.
        let cases: &[(&str, u32)] = &[
            ("1", 0),
            ("010", 1),
            ("011", 2),
            ("00100", 3),
            ("00111", 6),
            ("0001000", 7),
        ];
        for (bits, want) in cases {
            let mut bytes = vec![0u8; 2];
            for (i, c) in bits.chars().enumerate() {
                if c == '1' {
                    bytes[i / 8] |= 0x80 >> (i % 8);
                }
            }
            assert_eq!(BitReader::new(&bytes, "t").ue().unwrap(), *want, "{bits}");
        }
    }

    #[test]
    fn long_codes_are_errors_not_panics() {
        assert!(BitReader::new(&[0u8; 8], "t").ue().is_err());
        assert!(BitReader::new(&[], "t").bit().is_err());
        assert!(BitReader::new(&[0, 0, 0, 0, 1], "t").ue().is_err());
    }
}
