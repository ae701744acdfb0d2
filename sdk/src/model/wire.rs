//! The UDP framing between SDKs and the daemon: a JSON header line, `\n`, one JSON document.

/// The header line the official SDKs send (Python and Node spell it without spaces).
pub const DAEMON_HEADER: &str = "{\"format\":\"json\",\"version\":1}";

/// Largest document a datagram may carry (the daemon reads into a 64 KiB buffer).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Why a datagram is not in the X-Ray wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// No `\n` separates the header from the document.
    #[error("no header line (expected {{\"format\":\"json\",\"version\":1}} then a newline)")]
    NoHeader,
    /// The header is not the JSON object `{"format":"json","version":1}`.
    #[error("bad header: {0}")]
    BadHeader(String),
    /// The document after the header is empty.
    #[error("empty document after the header")]
    Empty,
    /// The datagram is larger than 64 KiB.
    #[error("datagram of {0} bytes exceeds the 64 KiB limit")]
    Oversize(usize),
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    format: Option<&'a str>,
    version: Option<u64>,
}

/// Splits a datagram into its document, checking the header line.
///
/// The header is parsed as JSON because Java and Go put spaces in it; the common spelling is
/// matched byte for byte first so the usual case costs a comparison.
pub fn split_datagram(datagram: &[u8]) -> Result<&[u8], WireError> {
    if datagram.len() > MAX_DOCUMENT_BYTES + DAEMON_HEADER.len() + 1 {
        return Err(WireError::Oversize(datagram.len()));
    }
    let newline = datagram
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(WireError::NoHeader)?;
    let (header, rest) = (&datagram[..newline], &datagram[newline + 1..]);
    if header != DAEMON_HEADER.as_bytes() {
        let parsed: Header<'_> =
            serde_json::from_slice(header).map_err(|e| WireError::BadHeader(e.to_string()))?;
        if parsed.format != Some("json") || parsed.version != Some(1) {
            return Err(WireError::BadHeader(
                "format must be \"json\" and version 1".to_owned(),
            ));
        }
    }
    let document = rest.trim_ascii();
    if document.is_empty() {
        return Err(WireError::Empty);
    }
    Ok(document)
}

/// Frames a serialized document as a datagram, refusing one over 64 KiB.
pub fn encode_datagram(document: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(WireError::Oversize(document.len()));
    }
    out.clear();
    out.reserve(DAEMON_HEADER.len() + 1 + document.len());
    out.extend_from_slice(DAEMON_HEADER.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(document);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_header_spellings() {
        assert_eq!(
            split_datagram(b"{\"format\":\"json\",\"version\":1}\n{\"a\":1}").unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            split_datagram(b"{\"format\": \"json\", \"version\": 1}\n{\"a\":1}\n").unwrap(),
            b"{\"a\":1}"
        );
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(split_datagram(b"{\"a\":1}"), Err(WireError::NoHeader));
        assert!(matches!(
            split_datagram(b"{\"format\":\"xml\",\"version\":1}\n{}"),
            Err(WireError::BadHeader(_))
        ));
        assert!(matches!(
            split_datagram(b"garbage\n{}"),
            Err(WireError::BadHeader(_))
        ));
        assert_eq!(
            split_datagram(b"{\"format\":\"json\",\"version\":1}\n  "),
            Err(WireError::Empty)
        );
        let big = vec![b' '; 70 * 1024];
        assert!(matches!(split_datagram(&big), Err(WireError::Oversize(_))));
    }
}
