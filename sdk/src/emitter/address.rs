//! `AWS_XRAY_DAEMON_ADDRESS`: `host:port`, or `tcp:host:port udp:host:port` in either order.

use std::net::{SocketAddr, ToSocketAddrs};

/// Default daemon address.
pub const DEFAULT_DAEMON_ADDRESS: &str = "127.0.0.1:2000";

/// The daemon's addresses: UDP for documents, TCP for the sampling proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonAddress {
    /// Where documents are sent.
    pub udp: SocketAddr,
    /// Where the sampling proxy listens.
    pub tcp: SocketAddr,
}

/// Why a daemon address was refused.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// Not `host:port` nor the two-address form.
    #[error("daemon address {0:?}: expected host:port or \"tcp:host:port udp:host:port\"")]
    Form(String),
    /// The host did not resolve.
    #[error("daemon address {0:?}: cannot resolve: {1}")]
    Resolve(String, std::io::Error),
}

fn resolve(text: &str) -> Result<SocketAddr, AddressError> {
    text.to_socket_addrs()
        .map_err(|e| AddressError::Resolve(text.to_owned(), e))?
        .next()
        .ok_or_else(|| AddressError::Form(text.to_owned()))
}

impl std::str::FromStr for DaemonAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let parts: Vec<&str> = s.split_whitespace().collect();
        match parts.as_slice() {
            [single] if !single.starts_with("tcp:") && !single.starts_with("udp:") => {
                let addr = resolve(single)?;
                Ok(Self {
                    udp: addr,
                    tcp: addr,
                })
            }
            [a, b] => {
                let (mut udp, mut tcp) = (None, None);
                for part in [a, b] {
                    if let Some(rest) = part.strip_prefix("udp:") {
                        udp = Some(resolve(rest)?);
                    } else if let Some(rest) = part.strip_prefix("tcp:") {
                        tcp = Some(resolve(rest)?);
                    }
                }
                match (udp, tcp) {
                    (Some(udp), Some(tcp)) => Ok(Self { udp, tcp }),
                    _ => Err(AddressError::Form(s.to_owned())),
                }
            }
            _ => Err(AddressError::Form(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        let a: DaemonAddress = "127.0.0.1:2000".parse().unwrap();
        assert_eq!(a.udp, a.tcp);
        let b: DaemonAddress = "tcp:127.0.0.1:2001 udp:127.0.0.1:2002".parse().unwrap();
        assert_eq!(b.udp.port(), 2002);
        assert_eq!(b.tcp.port(), 2001);
        let c: DaemonAddress = "udp:127.0.0.1:3 tcp:127.0.0.1:4".parse().unwrap();
        assert_eq!((c.udp.port(), c.tcp.port()), (3, 4));
        assert!("udp:127.0.0.1:3".parse::<DaemonAddress>().is_err());
        assert!("nonsense".parse::<DaemonAddress>().is_err());
    }
}
