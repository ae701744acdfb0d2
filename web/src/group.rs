//! Group names and group ARNs as requests give them, parsed once into types: a [`GroupName`]
//! that exists is well-formed, and a group's ARN is always the one [`GroupName::arn`] builds, so
//! the policy check and the handler cannot disagree about which group a request names.

use std::fmt;

/// The region in this collector's ARNs.
pub const REGION: &str = "us-east-1";
/// The account in this collector's ARNs.
pub const ACCOUNT: &str = "000000000000";
/// Longest group name, in characters (X-Ray's limit).
pub const MAX_NAME_CHARS: usize = 32;
/// Longest group ARN, in bytes (X-Ray's limit).
pub const MAX_ARN_BYTES: usize = 400;

/// Why a group name or ARN is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The name is empty, too long, or has a character other than letters, digits, `.`, `-`
    /// and `_`.
    #[error("group name {0:?} is not 1 to {MAX_NAME_CHARS} letters, digits, '.', '-' or '_'")]
    Name(String),
    /// The ARN is not of the form `arn:aws:xray:REGION:ACCOUNT:group/NAME[/ID]`.
    #[error("{0:?} is not a group ARN of the form arn:aws:xray:REGION:ACCOUNT:group/NAME[/ID]")]
    Arn(String),
    /// The ARN is well-formed but not one of this collector's.
    #[error(
        "{arn:?} is not a group of this collector: its groups are arn:aws:xray:{REGION}:{ACCOUNT}:group/NAME, without an id part"
    )]
    Foreign {
        /// The ARN given.
        arn: String,
    },
}

/// A well-formed group name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    /// Checks a name: 1 to 32 characters, each a letter, digit, `.`, `-` or `_`.
    pub fn parse(name: &str) -> Result<Self, GroupError> {
        let ok = !name.is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(GroupError::Name(name.to_owned()))
        }
    }

    /// The group an ARN names: `arn:aws:xray:REGION:ACCOUNT:group/NAME[/ID]`, exactly. This
    /// collector's groups have no id part and live in [`REGION`] and [`ACCOUNT`], so a
    /// well-formed ARN of another region, account or with an id is refused as foreign rather
    /// than read as some other group.
    pub fn from_arn(arn: &str) -> Result<Self, GroupError> {
        let bad = || GroupError::Arn(arn.to_owned());
        if arn.len() > MAX_ARN_BYTES {
            return Err(bad());
        }
        let rest = arn.strip_prefix("arn:aws:xray:").ok_or_else(bad)?;
        let mut fields = rest.splitn(3, ':');
        let (Some(region), Some(account), Some(resource)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let path = resource.strip_prefix("group/").ok_or_else(bad)?;
        let (name, id) = match path.split_once('/') {
            Some((name, id)) => (name, Some(id)),
            None => (path, None),
        };
        let id_ok =
            id.is_none_or(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !region_ok || !account_ok || !id_ok {
            return Err(bad());
        }
        let name = Self::parse(name).map_err(|_| bad())?;
        if region != REGION || account != ACCOUNT || id.is_some() {
            return Err(GroupError::Foreign {
                arn: arn.to_owned(),
            });
        }
        Ok(name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The group's ARN: what the groups API returns and what policies are checked against.
    pub fn arn(&self) -> String {
        arn_of(&self.0)
    }

    /// Whether this is X-Ray's reserved `Default` group (every trace).
    pub fn is_default(&self) -> bool {
        self.0 == "Default"
    }
}

/// The ARN of the group named `name` (for names read from the store).
pub fn arn_of(name: &str) -> String {
    format!("arn:aws:xray:{REGION}:{ACCOUNT}:group/{name}")
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_plain() {
        assert!(GroupName::parse("web").is_ok());
        assert!(GroupName::parse("a.b-c_D9").is_ok());
        assert!(GroupName::parse(&"x".repeat(32)).is_ok());
        for bad in ["", "web/billing", "a b", "web\"", &"x".repeat(33), "wéb"] {
            assert_eq!(
                GroupName::parse(bad),
                Err(GroupError::Name(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_arn_names_exactly_one_group() {
        let web = GroupName::parse("web").unwrap();
        assert_eq!(GroupName::from_arn(&web.arn()), Ok(web.clone()));
        assert_eq!(
            GroupName::from_arn("arn:aws:xray:us-east-1:000000000000:group/web"),
            Ok(web)
        );
    }

    #[test]
    fn an_id_another_region_or_account_is_foreign() {
        for arn in [
            "arn:aws:xray:us-east-1:000000000000:group/web/billing",
            "arn:aws:xray:us-east-1:000000000000:group/web/ABCDEF123",
            "arn:aws:xray:eu-west-1:000000000000:group/web",
            "arn:aws:xray:us-east-1:123456789012:group/web",
        ] {
            assert!(
                matches!(GroupName::from_arn(arn), Err(GroupError::Foreign { .. })),
                "{arn}"
            );
        }
    }

    #[test]
    fn malformed_arns_are_refused() {
        for arn in [
            "web",
            "group/web",
            "arn:aws:xray:us-east-1:000000000000:group/",
            "arn:aws:xray:us-east-1:000000000000:group//x",
            "arn:aws:xray:us-east-1:000000000000:group/web/",
            "arn:aws:xray:us-east-1:000000000000:group/web/a/b",
            "arn:aws:xray:us-east-1:000000000000:sampling-rule/web",
            "arn:aws:xray:us-east-1:0000:group/web",
            "arn:aws:xray::000000000000:group/web",
            "arn:aws:xray:US-EAST-1:000000000000:group/web",
            "arn:aws:s3:us-east-1:000000000000:group/web",
            "arn:aws:xray:us-east-1:000000000000:group/we b",
            "xarn:aws:xray:us-east-1:000000000000:group/web",
        ] {
            assert_eq!(
                GroupName::from_arn(arn),
                Err(GroupError::Arn(arn.to_owned())),
                "{arn}"
            );
        }
        let long = format!(
            "{}{}",
            "arn:aws:xray:us-east-1:000000000000:group/web/",
            "a".repeat(400)
        );
        assert!(GroupName::from_arn(&long).is_err());
    }
}
