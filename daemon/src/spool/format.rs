//! The spool file format: a fixed header that says what the file is, which version wrote it,
//! how many documents and bytes it holds and their CRC-32, then the `PutTraceSegments` body.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"RGSPOOL\n"
//!      8     4  version (u32, little-endian) = 1
//!     12     8  documents (u64 LE)
//!     20     8  body length (u64 LE)
//!     28     4  CRC-32 (IEEE) of the body (u32 LE)
//!     32     -  body
//! ```
//!
//! The checksum catches a torn or bit-rotted file that a JSON parser might still accept (a
//! flipped digit in a timestamp); the length catches a short write; the version lets a later
//! daemon read what an earlier one left.

/// Bytes before the body.
pub const HEADER_LEN: usize = 32;
const MAGIC: &[u8; 8] = b"RGSPOOL\n";
const VERSION: u32 = 1;

/// What is wrong with a spool file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// Shorter than its header says.
    #[error("truncated: {have} bytes, the header says {want}")]
    Truncated {
        /// Bytes in the file.
        have: u64,
        /// Bytes the header announces.
        want: u64,
    },
    /// Does not start with the spool magic.
    #[error("not a spool file (bad magic)")]
    BadMagic,
    /// Written by a format this daemon does not know.
    #[error("unknown format version {0}")]
    Version(u32),
    /// The body's checksum does not match the header.
    #[error("checksum mismatch: header {want:08x}, body {have:08x}")]
    Checksum {
        /// The header's CRC.
        want: u32,
        /// The body's CRC.
        have: u32,
    },
    /// The header's document count differs from the file name's.
    #[error("the header says {header} documents, the name {name}")]
    Count {
        /// The header's count.
        header: u64,
        /// The name's count.
        name: u64,
    },
    /// A first-format file whose body is not a `PutTraceSegments` request.
    #[error("not a PutTraceSegments body")]
    NotABody,
}

/// The header for a body of `documents` documents.
pub fn header(documents: u64, body: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&documents.to_le_bytes());
    h[20..28].copy_from_slice(&(body.len() as u64).to_le_bytes());
    h[28..32].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    h
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(bytes);
    u32::from_le_bytes(a)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    u64::from_le_bytes(a)
}

/// Checks a whole file against its header and name; returns the body.
pub fn check(mut file: Vec<u8>, documents: u64) -> Result<Vec<u8>, Corruption> {
    let have = file.len() as u64;
    if file.len() < HEADER_LEN {
        return Err(if MAGIC.starts_with(&file[..file.len().min(8)]) {
            Corruption::Truncated {
                have,
                want: HEADER_LEN as u64,
            }
        } else {
            Corruption::BadMagic
        });
    }
    if &file[..8] != MAGIC {
        return Err(Corruption::BadMagic);
    }
    let version = le_u32(&file[8..12]);
    if version != VERSION {
        return Err(Corruption::Version(version));
    }
    let header_documents = le_u64(&file[12..20]);
    if header_documents != documents {
        return Err(Corruption::Count {
            header: header_documents,
            name: documents,
        });
    }
    let want = (HEADER_LEN as u64).saturating_add(le_u64(&file[20..28]));
    if have != want {
        return Err(Corruption::Truncated { have, want });
    }
    let crc = le_u32(&file[28..32]);
    let body_crc = crc32fast::hash(&file[HEADER_LEN..]);
    if crc != body_crc {
        return Err(Corruption::Checksum {
            want: crc,
            have: body_crc,
        });
    }
    file.drain(..HEADER_LEN);
    Ok(file)
}

/// Checks a first-format file (a bare body): it must parse as a `PutTraceSegments` request.
pub fn check_legacy(file: Vec<u8>) -> Result<Vec<u8>, Corruption> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Body<'a> {
        #[serde(borrow)]
        #[allow(dead_code)]
        trace_segment_documents: Vec<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_slice::<Body<'_>>(&file) {
        Ok(_) => Ok(file),
        Err(_) => Err(Corruption::NotABody),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(documents: u64, body: &[u8]) -> Vec<u8> {
        let mut f = header(documents, body).to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn a_whole_file_reads_back_and_every_damage_is_named() {
        let body = br#"{"TraceSegmentDocuments":["{}"]}"#;
        assert_eq!(check(file(1, body), 1).unwrap(), body.to_vec());

        let mut flipped = file(1, body);
        flipped[HEADER_LEN + 5] ^= 0x01;
        assert!(matches!(
            check(flipped, 1),
            Err(Corruption::Checksum { .. })
        ));
        let mut short = file(1, body);
        short.truncate(short.len() - 3);
        assert!(matches!(check(short, 1), Err(Corruption::Truncated { .. })));
        assert!(matches!(
            check(file(1, body)[..10].to_vec(), 1),
            Err(Corruption::Truncated { .. })
        ));
        assert_eq!(check(b"garbage".to_vec(), 1), Err(Corruption::BadMagic));
        assert_eq!(check(body.to_vec(), 1), Err(Corruption::BadMagic));
        let mut future = file(1, body);
        future[8] = 9;
        assert_eq!(check(future, 1), Err(Corruption::Version(9)));
        assert!(matches!(
            check(file(2, body), 1),
            Err(Corruption::Count { header: 2, name: 1 })
        ));
        assert!(check(Vec::new(), 1).is_err());
    }

    #[test]
    fn first_format_bodies_are_accepted_only_when_whole() {
        let body = br#"{"TraceSegmentDocuments":["{}"]}"#;
        assert_eq!(check_legacy(body.to_vec()).unwrap(), body.to_vec());
        assert_eq!(
            check_legacy(body[..body.len() - 2].to_vec()),
            Err(Corruption::NotABody)
        );
    }
}
