//! The ClickHouse credentials: a password that never prints, and a server URL split from the
//! `user:password@` it may carry, so what is stored, logged or shown in an error is the bare URL.
//! Requests carry the credentials in ClickHouse's `X-ClickHouse-User`/`X-ClickHouse-Key` headers.

/// A password; its `Debug` says only whether there is one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password (empty: none).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether there is no password.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Password(none)"
        } else {
            "Password(<redacted>)"
        })
    }
}

impl std::str::FromStr for Password {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// A server URL without its userinfo, and the user and password it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// The URL without `user:password@`.
    pub url: String,
    /// The user it named, if any.
    pub user: Option<String>,
    /// The password it carried, if any.
    pub password: Option<Password>,
}

/// Why a server URL is unusable (the message never repeats the URL, which may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not an http:// or https:// URL like http://127.0.0.1:8123 ({0})")]
pub struct UrlError(String);

impl ServerUrl {
    /// Splits `text` into the bare URL and its percent-decoded user and password.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let mut url = reqwest::Url::parse(text).map_err(|e| UrlError(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(UrlError(format!("scheme {}", url.scheme())));
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| UrlError("bad %-escape in the userinfo".to_owned()))
        };
        let user = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = match url.password() {
            None | Some("") => None,
            Some(p) => Some(Password::new(decode(p)?)),
        };
        // Only fails for URLs that cannot have userinfo, which the host check excluded.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut bare = url.to_string();
        if url.path() == "/" && url.query().is_none() && !text.ends_with('/') {
            bare.pop();
        }
        Ok(Self {
            url: bare,
            user,
            password,
        })
    }
}

/// `%XX` escapes decoded, as UTF-8; `None` for a malformed escape or text.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_userinfo_leaves_the_url() {
        let s = ServerUrl::parse("http://writer:p%40ss%3Aw0rd@ch.internal:8123").unwrap();
        assert_eq!(s.url, "http://ch.internal:8123");
        assert_eq!(s.user.as_deref(), Some("writer"));
        assert_eq!(s.password.unwrap().expose(), "p@ss:w0rd");
        let s = ServerUrl::parse("https://ch.internal:8443/").unwrap();
        assert_eq!(
            (s.url.as_str(), s.user, s.password),
            ("https://ch.internal:8443/", None, None)
        );
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        for bad in [
            "ftp://u:hunter2@h:21",
            "http://u:hunter2@h:99999",
            "http://u:hunter2%zz@h:1",
        ] {
            let e = ServerUrl::parse(bad).unwrap_err();
            assert!(!format!("{e} {e:?}").contains("hunter2"), "{e}");
        }
        let s = ServerUrl::parse("http://u:hunter2@h:1").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"), "{s:?}");
        assert_eq!(format!("{:?}", Password::default()), "Password(none)");
    }
}
