//! A minimal writer for ClickHouse's `RowBinary` input format, so bulk inserts send compact
//! little-endian columns instead of text the server has to parse.

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

#[cfg(test)]
mod tests {
    use super::RowBinary;

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
}
