//! `TraceId` and `SegmentId`: parsed once at the boundary, so one that exists is well-formed.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid trace or segment id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string has the wrong length.
    #[error("expected {expected} characters, found {found}")]
    Length {
        /// Required length.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// A character is not a lowercase hex digit where one is required.
    #[error("character {column} must be a lowercase hex digit")]
    NotHex {
        /// 1-based column of the offending character.
        column: usize,
    },
    /// The trace id does not have the `1-XXXXXXXX-` shape.
    #[error("trace id must look like 1-5759e988-bd862e3fe1be46a994272793")]
    Shape,
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

fn parse_hex(digits: &[u8], first_column: usize) -> Result<u128, IdError> {
    let mut value: u128 = 0;
    for (i, &b) in digits.iter().enumerate() {
        let nibble = hex_value(b).ok_or(IdError::NotHex {
            column: first_column + i,
        })?;
        value = (value << 4) | u128::from(nibble);
    }
    Ok(value)
}

/// An X-Ray trace id: `1-` + 8 hex digits of the epoch second + `-` + 24 random hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId {
    epoch_seconds: u32,
    random: u128, // low 96 bits used
}

impl TraceId {
    /// Length of the textual form.
    pub const LEN: usize = 35;
    const RANDOM_MASK: u128 = (1u128 << 96) - 1;

    /// Builds a trace id from its two parts; only the low 96 bits of `random` are kept.
    pub fn from_parts(epoch_seconds: u32, random: u128) -> Self {
        Self {
            epoch_seconds,
            random: random & Self::RANDOM_MASK,
        }
    }

    /// A W3C (OpenTelemetry) trace id: the same 128 bits, the first 32 as X-Ray's time field
    /// whether or not they are one (AWS takes W3C ids this way).
    pub fn from_w3c(bytes: [u8; 16]) -> Self {
        let value = u128::from_be_bytes(bytes);
        Self::from_parts((value >> 96) as u32, value)
    }

    /// Reads either form a trace id is held in: X-Ray's `1-xxxxxxxx-…` or W3C's 32 hex digits
    /// (OpenTelemetry); both name the same 128 bits. Upper-case hex is taken too.
    pub fn parse_either(text: &str) -> Result<Self, IdError> {
        let text = text.trim().to_ascii_lowercase();
        if text.len() == 32 {
            let value = parse_hex(text.as_bytes(), 1)?;
            return Ok(Self::from_w3c(value.to_be_bytes()));
        }
        text.parse()
    }

    /// The 128 bits as a W3C (OpenTelemetry) trace id.
    pub fn to_w3c(self) -> [u8; 16] {
        ((u128::from(self.epoch_seconds) << 96) | self.random).to_be_bytes()
    }

    /// The epoch second the trace started in.
    pub fn epoch_seconds(&self) -> u32 {
        self.epoch_seconds
    }

    /// The 96 random bits.
    pub fn random_bits(&self) -> u128 {
        self.random
    }

    /// A new trace id for the current second, with 96 bits from the thread's CSPRNG
    /// (ChaCha seeded from the operating system).
    #[cfg(feature = "runtime")]
    pub fn generate() -> Self {
        use rand::Rng;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let random: u128 = rand::rng().random();
        Self::from_parts(u32::try_from(now).unwrap_or(u32::MAX), random)
    }
}

impl FromStr for TraceId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != Self::LEN {
            return Err(IdError::Length {
                expected: Self::LEN,
                found: s.chars().count(),
            });
        }
        if b[0] != b'1' || b[1] != b'-' || b[10] != b'-' {
            return Err(IdError::Shape);
        }
        let epoch = parse_hex(&b[2..10], 3)?;
        let random = parse_hex(&b[11..35], 12)?;
        Ok(Self::from_parts(epoch as u32, random))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes the low `out.len()` nibbles of `value` as lowercase hex, most significant first.
fn encode_hex(mut value: u128, out: &mut [u8]) {
    for byte in out.iter_mut().rev() {
        *byte = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

impl TraceId {
    /// The textual form in a stack buffer (ids are formatted on every document and header, so
    /// this avoids the formatting machinery).
    fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0] = b'1';
        out[1] = b'-';
        encode_hex(u128::from(self.epoch_seconds), &mut out[2..10]);
        out[10] = b'-';
        encode_hex(self.random, &mut out[11..35]);
        out
    }
}

impl SegmentId {
    fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        encode_hex(u128::from(self.0), &mut out);
        out
    }
}

/// A segment or subsegment id: 16 lowercase hex digits (64 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SegmentId(u64);

impl SegmentId {
    /// Length of the textual form.
    pub const LEN: usize = 16;

    /// Wraps a raw 64-bit value.
    pub fn from_u64(value: u64) -> Self {
        Self(value)
    }

    /// The raw 64-bit value.
    pub fn as_u64(&self) -> u64 {
        self.0
    }

    /// A new random, non-zero id from the thread's CSPRNG.
    #[cfg(feature = "runtime")]
    pub fn generate() -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        loop {
            let v: u64 = rng.random();
            if v != 0 {
                return Self(v);
            }
        }
    }
}

impl FromStr for SegmentId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != Self::LEN {
            return Err(IdError::Length {
                expected: Self::LEN,
                found: s.chars().count(),
            });
        }
        Ok(Self(parse_hex(b, 1)? as u64))
    }
}

/// Display, Debug and serde as the textual form, for both id types.
macro_rules! text_form {
    ($ty:ident, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let buf = self.encode();
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($ty))
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let buf = self.encode();
                match std::str::from_utf8(&buf) {
                    Ok(text) => serializer.serialize_str(text),
                    Err(_) => serializer.collect_str(self),
                }
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse()
                            .map_err(|e| E::custom(format_args!("invalid {}: {e}", $what)))
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}

text_form!(TraceId, "trace id");
text_form!(SegmentId, "segment id");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_example() {
        let id: TraceId = "1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
        assert_eq!(id.epoch_seconds(), 0x5759e988);
        assert_eq!(id.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
    }

    #[test]
    fn either_form_names_the_same_trace() {
        let xray = TraceId::parse_either("1-5759e988-bd862e3fe1be46a994272793").unwrap();
        let w3c = TraceId::parse_either("5759E988BD862E3FE1BE46A994272793").unwrap();
        assert_eq!(xray, w3c);
        assert!(TraceId::parse_either("5759e988bd862e3fe1be46a99427279x").is_err());
        assert!(TraceId::parse_either("5759e988").is_err());
    }

    #[test]
    fn rejects_malformed_ids_precisely() {
        assert_eq!(
            "1-5759e988-bd862e3fe1be46a99427279".parse::<TraceId>(),
            Err(IdError::Length {
                expected: 35,
                found: 34
            })
        );
        assert_eq!(
            "2-5759e988-bd862e3fe1be46a994272793".parse::<TraceId>(),
            Err(IdError::Shape)
        );
        assert_eq!(
            "1-5759e988-bd862e3fe1bE46a994272793".parse::<TraceId>(),
            Err(IdError::NotHex { column: 23 })
        );
        assert_eq!(
            "53995c3f42cd8adz".parse::<SegmentId>(),
            Err(IdError::NotHex { column: 16 })
        );
    }

    #[cfg(feature = "runtime")]
    #[test]
    fn generated_ids_are_well_formed_and_distinct() {
        let a = TraceId::generate();
        let b = TraceId::generate();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<TraceId>().unwrap(), a);
        assert_ne!(SegmentId::generate(), SegmentId::generate());
    }

    proptest! {
        #[test]
        fn trace_id_print_parse_roundtrip(epoch: u32, random: u128) {
            let id = TraceId::from_parts(epoch, random);
            prop_assert_eq!(id.to_string().parse::<TraceId>().unwrap(), id);
        }

        #[test]
        fn segment_id_print_parse_roundtrip(v: u64) {
            let id = SegmentId::from_u64(v);
            prop_assert_eq!(id.to_string().parse::<SegmentId>().unwrap(), id);
        }
    }
}
