//! Filter expressions as `GetTraceSummaries` and the dashboard receive them: whatever parses
//! nests at most `MAX_NESTING` deep, prints as a text that parses back the same, evaluates and
//! yields its pushdown; and resolving it with every group named as the input itself (cycles
//! included) stays within the same bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roentgen_web::assembly::TraceSummary;
use roentgen_web::filter::{MAX_NESTING, matches, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse(text) else {
        return;
    };
    assert!(expr.nesting() <= MAX_NESTING, "{text:?}");
    let printed = expr.to_string();
    assert_eq!(
        parse(&printed).as_ref(),
        Ok(&expr),
        "{text:?} printed as {printed:?}"
    );
    let _ = expr.pushdown();
    let _ = matches(&expr, &TraceSummary::default());
    let lookup = |_: &str| Some(Some(text.to_owned()));
    if let Ok(resolved) = expr.resolve_groups(&lookup) {
        assert!(resolved.nesting() <= MAX_NESTING, "{text:?}");
        let _ = matches(&resolved, &TraceSummary::default());
    }
});
