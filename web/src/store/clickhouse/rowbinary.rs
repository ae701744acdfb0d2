//! A minimal writer for ClickHouse's `RowBinary` input format, so bulk inserts send compact
//! little-endian columns instead of text the server has to parse, and a reader of the same
//! format for large answers.

/// Bytes of `RowBinary` rows being built.
#[derive(Debug, Default)]
pub struct RowBinary(pub Vec<u8>);

impl RowBinary {
    fn varint(&mut self, mut n: u64) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    /// `String`.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.varint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// `Nullable(String)`.
    pub fn opt_string(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => {
                self.0.push(0);
                self.string(s)
            }
            None => {
                self.0.push(1);
                self
            }
        }
    }

    /// `UInt8` (also booleans).
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// `Date` (days since the epoch) or `UInt16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `Nullable(UInt16)`.
    pub fn opt_u16(&mut self, v: Option<u16>) -> &mut Self {
        match v {
            Some(v) => {
                self.0.push(0);
                self.u16(v)
            }
            None => {
                self.0.push(1);
                self
            }
        }
    }

    /// `Int32`.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `UInt64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `Int64`.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `Float64`.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// `Nullable(Float64)`.
    pub fn opt_f64(&mut self, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => {
                self.0.push(0);
                self.f64(v)
            }
            None => {
                self.0.push(1);
                self
            }
        }
    }

    /// `Array(String)`.
    pub fn strings<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a str>) -> &mut Self {
        self.varint(items.len() as u64);
        for s in items {
            self.string(s);
        }
        self
    }

    /// `Array(Float64)`.
    pub fn f64s(&mut self, items: impl ExactSizeIterator<Item = f64>) -> &mut Self {
        self.varint(items.len() as u64);
        for v in items {
            self.f64(v);
        }
        self
    }
}

/// Reads `RowBinary` values in order; every read checks the bytes left.
#[derive(Debug)]
pub struct RowReader<'a> {
    bytes: &'a [u8],
}

/// The answer ended inside a value or held text that is not UTF-8.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed RowBinary answer at {left} bytes from its end")]
pub struct Malformed {
    left: usize,
}

impl<'a> RowReader<'a> {
    /// A reader of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.bytes.len() {
            return Err(self.malformed());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn malformed(&self) -> Malformed {
        Malformed {
            left: self.bytes.len(),
        }
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(self.malformed())
    }

    /// `String` (UTF-8 text).
    pub fn string(&mut self) -> Result<&'a str, Malformed> {
        let len = usize::try_from(self.varint()?).map_err(|_| self.malformed())?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.malformed())
    }

    /// `UInt64`.
    pub fn u64(&mut self) -> Result<u64, Malformed> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| self.malformed())?,
        ))
    }

    /// `Float64`.
    pub fn f64(&mut self) -> Result<f64, Malformed> {
        Ok(f64::from_bits(self.u64()?))
    }
}

#[cfg(test)]
mod tests {
    use super::{RowBinary, RowReader};

    #[test]
    fn strings_are_length_prefixed_with_leb128() {
        let mut w = RowBinary::default();
        w.string(&"x".repeat(300));
        assert_eq!(&w.0[..2], &[0xac, 0x02]);
        assert_eq!(w.0.len(), 302);
        let mut w = RowBinary::default();
        w.opt_string(None).opt_f64(Some(1.0)).u16(1);
        assert_eq!(w.0[0], 1);
        assert_eq!(w.0[1], 0);
        assert_eq!(&w.0[10..], &[1, 0]);
    }

    #[test]
    fn what_is_written_reads_back_and_a_cut_answer_is_an_error() {
        let mut w = RowBinary::default();
        let long = "é".repeat(100);
        w.string("trace")
            .u64(u64::MAX - 3)
            .f64(-1.5)
            .string(&long)
            .string("");
        let mut r = RowReader::new(&w.0);
        assert_eq!(r.string(), Ok("trace"));
        assert_eq!(r.u64(), Ok(u64::MAX - 3));
        assert_eq!(r.f64(), Ok(-1.5));
        assert_eq!(r.string(), Ok(long.as_str()));
        assert_eq!(r.string(), Ok(""));
        assert!(r.is_empty());
        for cut in 0..w.0.len() - 1 {
            let mut r = RowReader::new(&w.0[..cut]);
            let all = (|| {
                r.string()?;
                r.u64()?;
                r.f64()?;
                r.string()?;
                r.string()
            })();
            assert!(all.is_err(), "cut at {cut}");
        }
        // A length past the end, and text that is not UTF-8.
        assert!(RowReader::new(&[0xff, 0xff, 0x01]).string().is_err());
        assert!(RowReader::new(&[2, 0xc3, 0x28]).string().is_err());
    }
}
