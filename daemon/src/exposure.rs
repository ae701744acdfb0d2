//! The one rule every listening address of Roentgen's binaries goes through (the daemon's and
//! the collector's, embedded daemon included): off loopback, a listener that does not
//! authenticate its clients needs the operator's explicit opt-in.

use std::net::SocketAddr;

/// A listening address that would accept unauthenticated clients from the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{flag} {addr} is not a loopback address and nothing authenticates its clients there: {remedy}"
)]
pub struct Exposed {
    /// The flag that set the address.
    pub flag: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// What to pass to start anyway (names the opt-in flag).
    pub remedy: &'static str,
}

/// One listening address and whether its clients are authenticated there.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// The flag that set the address (named in the error).
    pub flag: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// Whether every request on it is authenticated (e.g. SigV4 with `--auth-keys`).
    pub authenticated: bool,
}

impl Listening {
    /// Accepts a loopback address, an authenticated listener, or an explicit opt-in
    /// (`insecure`); otherwise an error naming the flag and `remedy` (how to opt in).
    pub fn check(self, insecure: bool, remedy: &'static str) -> Result<(), Exposed> {
        if self.addr.ip().is_loopback() || self.authenticated || insecure {
            Ok(())
        } else {
            Err(Exposed {
                flag: self.flag,
                addr: self.addr,
                remedy,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addr: &str, authenticated: bool) -> Listening {
        Listening {
            flag: "--bind",
            addr: addr.parse().unwrap(),
            authenticated,
        }
    }

    #[test]
    fn loopback_authenticated_or_opted_in_only() {
        assert!(at("127.0.0.1:2000", false).check(false, "x").is_ok());
        assert!(at("[::1]:2000", false).check(false, "x").is_ok());
        assert!(at("0.0.0.0:2000", true).check(false, "x").is_ok());
        assert!(at("0.0.0.0:2000", false).check(true, "x").is_ok());
        for addr in ["0.0.0.0:2000", "[::]:2000", "10.1.2.3:2000"] {
            let e = at(addr, false).check(false, "pass --insecure").unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with("--bind ") && text.ends_with("pass --insecure"),
                "{text}"
            );
        }
    }
}
