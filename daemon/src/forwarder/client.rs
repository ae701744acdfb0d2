//! The daemon's one HTTP client, shared by the forwarder, the sampling proxy and telemetry:
//! rustls with the ring provider for `https://` collectors, trusting only the CAs of
//! `--ca-file` when given and the system's roots otherwise; and the full text of a failed
//! exchange (reqwest's own message hides the TLS or connection cause in its source chain).

use std::time::Duration;

use crate::config::Config;

/// Idle pooled connections are dropped after this, below the collector's default header-read
/// timeout (10 s, which also closes idle keep-alive connections), so the daemon does not
/// send on a connection the collector is closing.
pub const POOL_IDLE: Duration = Duration::from_secs(5);

/// Builds the client for `config`'s collector.
pub fn build(config: &Config) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout)
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(config.senders * 2)
        .tcp_nodelay(true);
    let https = config.endpoint.scheme() == "https";
    match &config.ca_certificates {
        Some(certificates) => {
            builder = builder.tls_built_in_root_certs(false);
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate.clone());
            }
        }
        // Loading the system's roots costs a few milliseconds and can fail on a broken
        // store: only do it when they will be used.
        None if !https => builder = builder.tls_built_in_root_certs(false),
        None => {}
    }
    builder.build()
}

/// An error and its causes, `outer: inner: innermost`, so a TLS failure such as
/// `invalid peer certificate: UnknownIssuer` shows in the log line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_once() {
        let e = Outer(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        ));
        assert_eq!(
            error_chain(&e),
            "outer: invalid peer certificate: UnknownIssuer"
        );
    }

    #[test]
    fn builds_for_http_https_and_a_private_ca() {
        let config = Config::local("http://127.0.0.1:4000").unwrap();
        build(&config).unwrap();
        let config = Config::local("https://127.0.0.1:4443").unwrap();
        build(&config).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let mut config = Config::local("https://127.0.0.1:4443").unwrap();
        config.ca_certificates = Some(vec![
            reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap(),
        ]);
        build(&config).unwrap();
    }
}
