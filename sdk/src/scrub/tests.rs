//! Unit tests of the scrubber: detectors on single strings, actions, rules, configuration errors.

use serde_json::json;

use super::*;

/// `text` scrubbed as free text.
pub(super) fn scrub_text(scrubber: &Scrubber, text: &str) -> String {
    let mut s = text.to_owned();
    scrubber.scrub_text(&mut s);
    s
}

/// Checks each `(input, expected)` pair of free text.
fn assert_rewrites(scrubber: &Scrubber, cases: &[(&str, &str)]) {
    for (input, expected) in cases {
        assert_eq!(&scrub_text(scrubber, input), expected, "input: {input:?}");
    }
}

/// Checks that each text comes out as it went in.
fn assert_untouched(scrubber: &Scrubber, texts: &[&str]) {
    for text in texts {
        assert_eq!(&scrub_text(scrubber, text), text, "false positive");
    }
}

#[test]
fn each_built_in_detector_rewrites_its_kind() {
    let s = Scrubber::default();
    let cases = [
        ("mail jane.doe@example.com now", "mail [email] now"),
        ("card 4111 1111 1111 1111.", "card [card]."),
        ("amex 3782-822463-10005", "amex [card]"),
        ("ssn 123-45-6789", "ssn [ssn]"),
        ("rrn 900101-1234567", "rrn [kr_rrn]"),
        ("call +1 (555) 123-4567", "call [phone]"),
        ("call 010-1234-5678", "call [phone]"),
        ("call (555) 123-4567", "call [phone]"),
        ("from 203.0.113.7:443", "from [ipv4]:443"),
        ("from 2001:db8::8a2e:370:7334 ok", "from [ipv6] ok"),
        ("key AKIAIOSFODNN7EXAMPLE", "key [aws_access_key]"),
        (
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "[aws_secret_key]",
        ),
        (
            "t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
            "t [jwt]",
        ),
        (
            "Authorization: Bearer abc123def456",
            "Authorization: [secret]",
        ),
        ("sent Bearer abc123def456", "sent Bearer [bearer]"),
        (
            "/login?user=bob&password=hunter2&x=1",
            "/login?user=bob&password=[secret]&x=1",
        ),
        (
            "postgres://app:s3cret@db:5432/x",
            "postgres://[url_userinfo]@db:5432/x",
        ),
        (
            "Server=db;Uid=sa;Pwd=p@ss;",
            "Server=db;Uid=sa;Pwd=[secret];",
        ),
    ];
    assert_rewrites(&s, &cases);
}

#[test]
fn look_alikes_are_left_alone() {
    let s = Scrubber::default();
    assert_untouched(
        &s,
        &[
            "order ORD-2024-000123 shipped",
            "550e8400-e29b-41d4-a716-446655440000",
            "5b7b903722d5dd88",
            "version 2.15.0 and 10.0.19041.1",
            "price 1,299.99 USD",
            "1234 5678 9012 3456",
            "at 2026-11-28T23:51:29Z took 12:30:45",
            "std::vec::Vec and cafe::face",
            "1795905087532",
            "WHERE password = ? AND email = %s",
            "token_type=refresh and basic information",
            "sha 3f786850e387550fdab836ed7e6dc881de23001b",
        ],
    );
}

#[test]
fn scrubbing_twice_changes_nothing() {
    let s = Scrubber::default();
    let once = scrub_text(
        &s,
        "jane@example.com 4111111111111111 password=[x] https://u:p@h.io/?token=abc",
    );
    let mut twice = once.clone();
    let report = s.scrub_text(&mut twice);
    assert_eq!(once, twice);
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn key_names_scrub_whole_values_and_numbers() {
    let s = Scrubber::default();
    let mut doc = json!({
        "name": "svc", "id": "0694be9a856b4345", "start_time": 1.0,
        "metadata": {"payment": {"cvv": "123", "pin_cvv": 987, "password": "hunter2",
            "customer_email": "not an address", "items": 3, "email_count": 12}}
    });
    let report = s.scrub(&mut doc);
    assert_eq!(
        doc["metadata"]["payment"],
        json!({"cvv": "[card]", "pin_cvv": "[card]", "password": "[secret]",
            "customer_email": "[email]", "items": 3, "email_count": 12})
    );
    assert_eq!(report.total(), 4);
    assert_eq!(report.count("card"), 2);
}

#[test]
fn hash_action_is_keyed_truncated_and_stable() {
    let config = ScrubConfig::from_toml_str(
        "hash_key = \"0123456789abcdef0123\"\n[detectors.email]\naction = \"hash\"\n",
    )
    .expect("config");
    let s = Scrubber::new(&config).expect("scrubber");
    let a = scrub_text(&s, "a jane@example.com b jane@example.com");
    let parts: Vec<&str> = a.split(' ').collect();
    assert_eq!(parts[1], parts[3]);
    assert!(parts[1].starts_with("[email#") && parts[1].len() == "[email#]".len() + 16);
    assert_eq!(scrub_text(&s, &a), a);
}

#[test]
fn field_rules_exempt_drop_and_whole_value() {
    let config = ScrubConfig::from_toml_str(
        r#"
exempt_fields = ["http.request.client_ip"]
[fields."metadata.debug"]
action = "drop"
[fields."user"]
whole_value = true
[fields."annotations"]
detectors = { email = "keep" }
"#,
    )
    .expect("config");
    let s = Scrubber::new(&config).expect("scrubber");
    let mut doc = json!({
        "name": "svc", "id": "0694be9a856b4345", "start_time": 1.0, "user": "user-1234",
        "http": {"request": {"client_ip": "203.0.113.7", "url": "http://x/?ip=203.0.113.7"}},
        "annotations": {"who": "jane@example.com", "ip": "203.0.113.9"},
        "metadata": {"debug": {"note": "ip 10.0.0.1", "ok": "fine"}}
    });
    s.scrub(&mut doc);
    assert_eq!(doc["http"]["request"]["client_ip"], "203.0.113.7");
    assert_eq!(doc["http"]["request"]["url"], "http://x/?ip=[ipv4]");
    assert_eq!(doc["user"], "[field]");
    assert_eq!(
        doc["annotations"],
        json!({"who": "jane@example.com", "ip": "[ipv4]"})
    );
    assert_eq!(doc["metadata"]["debug"], json!({"ok": "fine"}));
}

#[test]
fn ids_times_names_and_types_are_never_touched() {
    let s = Scrubber::default();
    let mut doc = json!({
        "name": "jane@example.com", "id": "4111111111111111", "start_time": 1.0,
        "trace_id": "1-6b0b563f-bd5f12f36c129ba2856caf10", "parent_id": "4111111111111111",
        "type": "subsegment", "namespace": "remote",
        "cause": {"exceptions": [{"id": "4111111111111111", "message": "jane@example.com"}]}
    });
    let before = doc.clone();
    s.scrub(&mut doc);
    doc["cause"]["exceptions"][0]["message"] = before["cause"]["exceptions"][0]["message"].clone();
    assert_eq!(doc, before);
}

#[test]
fn bad_configuration_names_the_key() {
    let cases = [
        (
            "[detectors.card]\naction = \"foo\"\n",
            "detectors.card.action: unknown action \"foo\"",
        ),
        ("[detectors.nope]\n", "detectors.nope: unknown detector"),
        (
            "[[custom]]\nname = \"emp\"\npattern = \"EMP-(\"\n",
            "custom[0].pattern: custom detector \"emp\": invalid regex",
        ),
        (
            "[[custom]]\nname = \"Bad Name\"\npattern = \"x\"\n",
            "custom[0].name",
        ),
        (
            "[detectors.email]\naction = \"hash\"\n",
            "hash_key: required because detectors.email.action",
        ),
        ("hash_length = 2\n", "hash_length"),
        (
            "[fields.\"user\"]\ndetectors = { nope = \"keep\" }\n",
            "fields.\"user\".detectors.nope",
        ),
        ("surprise = 1\n", "surprise"),
    ];
    for (text, expected) in cases {
        let error = ScrubConfig::from_toml_str(text)
            .expect_err(text)
            .to_string();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    }
}

#[test]
fn custom_detectors_and_disabled_built_ins() {
    let config = ScrubConfig::from_toml_str(
        "[detectors.ipv4]\nenabled = false\n[[custom]]\nname = \"employee_id\"\npattern = \"EMP-[0-9]{6}\"\n",
    )
    .expect("config");
    let s = Scrubber::new(&config).expect("scrubber");
    assert_eq!(
        scrub_text(&s, "EMP-123456 at 10.1.2.3"),
        "[employee_id] at 10.1.2.3"
    );
}

#[test]
fn clean_reports_do_not_allocate_counts() {
    let s = Scrubber::default();
    let mut text = "nothing to see here".to_owned();
    let report = s.scrub_text(&mut text);
    assert!(report.is_clean());
    assert_eq!(report.iter().count(), 0);
}

#[test]
fn a_copy_with_its_own_caches_scrubs_the_same() {
    let s = Scrubber::default();
    let copy = s.with_own_caches();
    let doc = json!({"annotations": {"who": "jane@example.com", "ip": "203.0.113.7"}});
    let (mut a, mut b) = (doc.clone(), doc);
    assert_eq!(s.scrub(&mut a), copy.scrub(&mut b));
    assert_eq!(a, b);
    assert_eq!(a["annotations"]["who"], "[email]");
}

#[test]
fn typed_fields_are_listed_in_the_order_of_their_hints() {
    for (i, field) in super::walk::Field::ALL.iter().enumerate() {
        assert_eq!(*field as usize, i, "{}", field.name());
    }
}

#[test]
fn strings_remembered_clean_scrub_as_a_fresh_scan_would() {
    let fresh = Scrubber::default();
    let copy = fresh.with_own_caches();
    // One value under a key that silences `ipv4` (clean there, never remembered) and under one
    // that does not; plain words that are remembered from their second time on.
    let docs = [
        json!({"annotations": {"app_version": "10.1.2.3", "note": "plain words"}}),
        json!({"metadata": {"default": {"ip": "10.1.2.3", "note": "plain words"}}}),
        json!({"metadata": {"default": {"app_version": "10.1.2.3", "ip": "10.1.2.3"}}}),
    ];
    for _ in 0..3 {
        for doc in &docs {
            let (mut a, mut b) = (doc.clone(), doc.clone());
            assert_eq!(fresh.scrub(&mut a), copy.scrub(&mut b));
            assert_eq!(a, b);
        }
    }
    let mut doc = docs[1].clone();
    copy.scrub(&mut doc);
    assert_eq!(doc["metadata"]["default"]["ip"], "[ipv4]");
    assert_eq!(doc["metadata"]["default"]["note"], "plain words");
}

#[test]
fn secrets_in_other_languages_and_logged_text_forms() {
    let s = Scrubber::default();
    let cases = [
        ("비밀번호: hunter2", "비밀번호: [secret]"),
        ("암호=s3cr3t!", "암호=[secret]"),
        ("토큰 ghp_a1b2c3d4e5f6", "토큰 [secret]"),
        ("비밀번호는 hunter22 입니다", "비밀번호는 [secret] 입니다"),
        ("パスワード：abc12345", "パスワード：[secret]"),
        ("Passwort: geheim", "Passwort: [secret]"),
        (
            "creds {'AccessKeyId': 'AKIAIOSFODNN7EXAMPLE', 'SessionToken': 'IQoJb3JpZ2lu'}",
            "creds {'AccessKeyId': '[aws_access_key]', 'SessionToken': '[secret]'}",
        ),
        (
            "credentials: {'SecretAccessKey': 'abc def', 'x': 1}",
            "credentials: {'SecretAccessKey': '[secret]', 'x': 1}",
        ),
        (
            "{:password=>\"hunter2\", :user=>\"bob\"}",
            "{:password=>\"[secret]\", :user=>\"bob\"}",
        ),
        ("(password=hunter2)", "(password=[secret])"),
        ("{password: hunter2}", "{password: [secret]}"),
        (
            "db:\n  password: correct horse battery\n  user: app",
            "db:\n  password: [secret]\n  user: app",
        ),
        (
            "[db]\npassword = two words\nport = 5432",
            "[db]\npassword = [secret]\nport = 5432",
        ),
        ("token=abc123&page=2", "token=[secret]&page=2"),
        (
            "\"password\": \"correct horse\"",
            "\"password\": \"[secret]\"",
        ),
    ];
    assert_rewrites(&s, &cases);
    assert_untouched(
        &s,
        &[
            "토큰 만료",
            "토큰이 만료되었습니다",
            "암호화 완료",
            "비밀번호 변경 안내",
            "Passwort vergessen",
            "credentials: {",
        ],
    );
}

#[test]
fn four_part_versions_are_not_addresses() {
    let s = Scrubber::default();
    assert_untouched(
        &s,
        &[
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0.0.0 Safari/537.36",
            "Chrome/124.0.6367.91",
            "Newtonsoft.Json, Version=13.0.0.0, Culture=neutral, PublicKeyToken=30ad4fe6b2a6aeed",
            "version: 1.2.3.4",
        ],
    );
    assert_eq!(scrub_text(&s, "from 10.1.2.3/24"), "from [ipv4]/24");
    assert_eq!(scrub_text(&s, "http://10.1.2.3/x"), "http://[ipv4]/x");
    let mut doc = json!({"annotations": {"app_version": "10.2.0.1", "peer": "10.2.0.1"}});
    s.scrub(&mut doc);
    assert_eq!(
        doc["annotations"],
        json!({"app_version": "10.2.0.1", "peer": "[ipv4]"})
    );
}

#[test]
fn percent_encoded_form_and_escaped_values_are_scrubbed_as_decoded() {
    let s = Scrubber::default();
    let cases = [
        (
            "https://x.io/find?email=jane%40example.com&page=2",
            "https://x.io/find?email=[email]&page=2",
        ),
        ("phone=%2B82%2010-1234-5678", "phone=[phone]"),
        ("q=4111%201111%201111%201111&x=1", "q=[card]&x=1"),
        ("card=4111+1111+1111+1111&x=1", "card=[card]&x=1"),
        (
            "email=jane%40example.com&password=hunter2",
            "email=[email]&password=[secret]",
        ),
        (
            "{\"email\":\"jane\\u0040example.com\"}",
            "{\"email\":\"[email]\"}",
        ),
        ("%6A%61%6E%65%40example.com", "[email]"),
    ];
    assert_rewrites(&s, &cases);
    assert_untouched(
        &s,
        &["100% of 4 items", "a+b=c", "path%2Fto%2Ffile", "caf\\u00e9"],
    );
}

#[test]
fn hashes_of_a_decoded_value_equal_those_of_the_plain_one() {
    let config = ScrubConfig::from_toml_str(
        "hash_key = \"0123456789abcdef0123\"\n[detectors.email]\naction = \"hash\"\n",
    )
    .expect("config");
    let s = Scrubber::new(&config).expect("scrubber");
    let plain = scrub_text(&s, "jane@example.com");
    assert_eq!(scrub_text(&s, "jane%40example.com"), plain);
}

#[test]
fn a_value_that_looks_like_a_placeholder_is_still_checked() {
    let s = Scrubber::default();
    let mut doc = json!({"metadata": {"d": {
        "password": "[hunter2]", "email": "[email#0123456789abcdef]", "note": "[x#4111111111111111]",
        "ok": "[secret]", "also_ok": "[email] sent"
    }}});
    let report = s.scrub(&mut doc);
    assert_eq!(
        doc["metadata"]["d"],
        json!({"password": "[secret]", "email": "[email]", "note": "[x#[card]]",
            "ok": "[secret]", "also_ok": "[email] sent"})
    );
    assert_eq!(report.total(), 3);
}

#[test]
fn rewritten_keys_stay_distinct_and_every_walk_agrees() {
    let s = Scrubber::default();
    let doc = json!({
        "name": "svc", "id": "0694be9a856b4345", "start_time": 1.0,
        "cause": "jane@example.com",
        "annotations": {"4111111111111111": "card as a key"},
        "metadata": {"visits": {"jane@example.com": 3, "bob@example.org": 4, "[email]": 5}},
        "http": {"request": {"url": "/u", "jane%40example.com": true}}
    });
    let mut value = doc.clone();
    let report = s.scrub(&mut value);
    assert_eq!(
        value["metadata"]["visits"],
        json!({"[email]": 3, "[email]~2": 4, "[email]~3": 5})
    );
    assert_eq!(value["annotations"], json!({"[card]": "card as a key"}));
    assert_eq!(value["cause"], "[email]");
    assert_eq!(
        value["http"]["request"],
        json!({"url": "/u", "[email]": true})
    );
    assert_eq!(report.count("email"), 4);

    let mut typed: crate::model::Segment = serde_json::from_value(doc.clone()).expect("typed");
    assert_eq!(s.scrub_segment(&mut typed), report);
    assert_eq!(serde_json::to_value(&typed).expect("json"), value);
    // Keys to rewrite: the text walk leaves the document to the Value walk.
    let mut out = String::new();
    assert!(s.scrub_json_text(&doc.to_string(), &mut out).is_none());

    let mut again = value.clone();
    assert!(s.scrub(&mut again).is_clean());
    assert_eq!(again, value);
}

#[test]
fn string_causes_and_non_object_items_are_scrubbed_by_every_walk() {
    let s = Scrubber::default();
    let doc = json!({
        "name": "svc", "id": "0694be9a856b4345", "start_time": 1.0,
        "cause": {"exceptions": [
            {"id": "5b7b903722d5dd88", "message": "m", "cause": "call 010-1234-5678"},
            "jane@example.com"
        ]},
        "subsegments": ["ssn 123-45-6789", {"name": "db", "id": "1b7b903722d5dd88",
            "start_time": 1.0, "metadata": {"d": {"tags": ["jane@example.com", "ok"]}}}]
    });
    let mut value = doc.clone();
    let report = s.scrub(&mut value);
    assert_eq!(value["cause"]["exceptions"][0]["cause"], "call [phone]");
    assert_eq!(value["cause"]["exceptions"][1], "[email]");
    assert_eq!(value["subsegments"][0], "ssn [ssn]");
    assert_eq!(
        value["subsegments"][1]["metadata"]["d"]["tags"],
        json!(["[email]", "ok"])
    );
    assert_eq!(report.total(), 4);
    let mut out = String::new();
    let text_report = s
        .scrub_json_text(&doc.to_string(), &mut out)
        .expect("text walk");
    assert_eq!(text_report, report);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), value);
}

#[test]
fn skipped_members_are_skipped_only_when_they_hold_what_they_should() {
    let s = Scrubber::default();
    let doc = json!({
        "name": "jane@example.com", "id": "4111111111111111", "start_time": 1.0,
        "error": "jane@example.com", "end_time": {"by": "jane@example.com"},
        "trace_id": null,
        "precursor_ids": ["4111111111111111", {"note": "jane@example.com"}, "ssn 123-45-6789"],
        "cause": {"exceptions": [{"id": ["jane@example.com"], "message": "m"}]}
    });
    let mut value = doc.clone();
    let report = s.scrub(&mut value);
    assert_eq!(value["name"], "jane@example.com");
    assert_eq!(value["id"], "4111111111111111");
    assert_eq!(value["error"], "[email]");
    assert_eq!(value["end_time"], json!({"by": "[email]"}));
    assert_eq!(
        value["precursor_ids"],
        json!(["4111111111111111", {"note": "[email]"}, "ssn 123-45-6789"])
    );
    assert_eq!(value["cause"]["exceptions"][0]["id"], json!(["[email]"]));
    assert_eq!(report.total(), 4);
    let text = doc.to_string();
    let mut out = String::new();
    let text_report = s.scrub_json_text(&text, &mut out).expect("text walk");
    assert_eq!(text_report, report);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), value);
}
