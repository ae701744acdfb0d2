//! Group names, group ARNs and the group a request body names, as the collector reads them
//! from the network: whatever parses names exactly one group whose ARN parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roentgen_web::api::scope::{GroupScope, scope_of};
use roentgen_web::group::GroupName;

/// The operations that take a group, and one that takes none.
const PATHS: [&str; 8] = [
    "/ServiceGraph",
    "/TimeSeriesServiceStatistics",
    "/TraceSummaries",
    "/GetGroup",
    "/UpdateGroup",
    "/DeleteGroup",
    "/CreateGroup",
    "/Traces",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(name) = GroupName::from_arn(text) {
            // Only this collector's own form is accepted, so the text is that form exactly.
            assert_eq!(text, name.arn());
        }
        if let Ok(name) = GroupName::parse(text) {
            assert_eq!(GroupName::from_arn(&name.arn()), Ok(name));
        }
    }
    let path = PATHS[usize::from(selector) % PATHS.len()];
    if let Ok(GroupScope::Group(group)) = scope_of(path, body) {
        assert_ne!(path, "/Traces");
        assert_eq!(GroupName::from_arn(&group.arn()), Ok(group));
    }
});
