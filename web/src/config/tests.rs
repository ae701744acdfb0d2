//! Flag parsing and validation.

use super::*;

fn args(extra: &[&str]) -> Args {
    let mut v = vec!["roentgen-web"];
    v.extend_from_slice(extra);
    Args::parse_from(v)
}

#[test]
fn defaults_are_loopback_sqlite_and_thirty_days() {
    let c = args(&[]).validate().unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:4000");
    assert_eq!(c.retention, Duration::from_secs(30 * 86_400));
    assert!(c.scrubber.is_none());
}

#[test]
fn query_and_read_bounds_are_flags_with_ranges() {
    let c = args(&[]).validate().unwrap();
    assert_eq!(c.query_limits, crate::api::QueryLimits::default());
    assert_eq!(c.sqlite_reads, crate::store::sqlite::ReadLimits::default());
    let c = args(&[
        "--max-query-window-hours",
        "6",
        "--max-page-scan",
        "5000",
        "--sqlite-readers",
        "3",
        "--sqlite-read-wait-secs",
        "2",
    ])
    .validate()
    .unwrap();
    assert_eq!(c.query_limits.max_window_secs, 6.0 * 3600.0);
    assert_eq!(c.query_limits.list_scan_budget, 5000);
    assert_eq!(c.sqlite_reads.max_connections, 3);
    assert_eq!(c.sqlite_reads.wait, Duration::from_secs(2));
    for (flag, bad) in [
        ("--max-query-window-hours", "0"),
        ("--max-page-scan", "10"),
        ("--sqlite-readers", "0"),
        ("--sqlite-read-wait-secs", "0"),
    ] {
        let e = args(&[flag, bad]).validate().unwrap_err();
        assert!(e.to_string().contains(flag), "{e}");
    }
}

#[test]
fn trace_caps_and_live_memory_are_flags_with_ranges_for_both_stores() {
    let c = args(&[]).validate().unwrap();
    assert_eq!(c.trace_limits, crate::store::TraceLimits::default());
    let flags = [
        "--max-trace-documents",
        "50",
        "--max-trace-mib",
        "2",
        "--live-documents",
        "0",
    ];
    let c = args(&flags).validate().unwrap();
    let expected = crate::store::TraceLimits {
        max_documents: 50,
        max_bytes: 2 << 20,
        live_documents: 0,
    };
    assert_eq!(c.trace_limits, expected);
    let mut clickhouse = flags.to_vec();
    clickhouse.extend([
        "--store",
        "clickhouse",
        "--clickhouse-url",
        "http://127.0.0.1:8123",
    ]);
    let c = args(&clickhouse).validate().unwrap();
    assert_eq!(c.clickhouse.map(|ch| ch.trace_limits), Some(expected));
    for (flag, bad) in [("--max-trace-documents", "0"), ("--max-trace-mib", "0")] {
        let e = args(&[flag, bad]).validate().unwrap_err();
        assert!(e.to_string().contains(flag), "{e}");
    }
}

#[test]
fn demo_implies_the_embedded_daemon() {
    let c = args(&["--demo", "--daemon-udp", "127.0.0.1:0"])
        .validate()
        .unwrap();
    assert!(c.demo);
    assert_eq!(c.daemon.unwrap().udp.to_string(), "127.0.0.1:0");
    assert!(args(&[]).validate().unwrap().daemon.is_none());
    let e = args(&["--with-daemon", "--daemon-udp", "x"])
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("--daemon-udp"), "{e}");
}

#[test]
fn clickhouse_needs_a_url_and_plain_names() {
    let e = args(&["--store", "clickhouse"]).validate().unwrap_err();
    assert!(e.to_string().contains("--clickhouse-url"), "{e}");
    let e = args(&[
        "--store",
        "clickhouse",
        "--clickhouse-url",
        "http://127.0.0.1:8123",
        "--clickhouse-database",
        "a;b",
    ])
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("--clickhouse-database"), "{e}");
    let c = args(&[
        "--store",
        "clickhouse",
        "--clickhouse-url",
        "http://127.0.0.1:8123",
        "--clickhouse-cluster",
        "shards",
    ])
    .validate()
    .unwrap()
    .clickhouse
    .unwrap();
    assert_eq!(c.database, "roentgen");
    assert_eq!(c.cluster.as_deref(), Some("shards"));
    assert!(args(&[]).validate().unwrap().clickhouse.is_none());
}

#[test]
fn the_clickhouse_password_never_shows_and_is_given_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "hunter2\n").unwrap();
    let file = file.to_str().unwrap();
    let ch = ["--store", "clickhouse", "--clickhouse-url"];
    for (extra, user) in [
        (&["http://writer:hunter2@ch:8123"][..], "writer"),
        (
            &["http://ch:8123", "--clickhouse-password", "hunter2"],
            "default",
        ),
        (
            &[
                "http://ch:8123",
                "--clickhouse-password-file",
                file,
                "--clickhouse-user",
                "w",
            ],
            "w",
        ),
    ] {
        let mut a = ch.to_vec();
        a.extend_from_slice(extra);
        let c = args(&a).validate().unwrap();
        let clickhouse = c.clickhouse.clone().unwrap();
        assert_eq!(clickhouse.url, "http://ch:8123");
        assert_eq!(clickhouse.user, user);
        assert_eq!(clickhouse.password.expose(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
    }
    let e = args(&[
        "--store",
        "clickhouse",
        "--clickhouse-url",
        "http://u:hunter2@ch:8123",
        "--clickhouse-password-file",
        file,
    ])
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("more than once"), "{e}");
    for bad in ["ftp://u:hunter2@ch", "http://u:hunter2@ch:123456"] {
        let e = args(&["--store", "clickhouse", "--clickhouse-url", bad])
            .validate()
            .unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(
            text.contains("--clickhouse-url") && !text.contains("hunter2"),
            "{text}"
        );
    }
}

#[test]
fn no_auth_off_loopback_without_insecure() {
    let e = args(&["--listen", "0.0.0.0:4000"]).validate().unwrap_err();
    assert!(e.to_string().contains("--insecure"), "{e}");
    assert!(
        args(&["--listen", "[::1]:4000"])
            .validate()
            .unwrap()
            .auth
            .is_none()
    );
    let c = args(&["--listen", "0.0.0.0:4000", "--insecure"])
        .validate()
        .unwrap();
    assert!(c.auth.is_none());
    let c = args(&["--listen", "0.0.0.0:4000", "--auth-keys", "k.json"])
        .validate()
        .unwrap();
    assert_eq!(c.auth.unwrap().max_skew, Duration::from_secs(300));
    let e = args(&["--audit-log", "a.jsonl"]).validate().unwrap_err();
    assert!(e.to_string().contains("--auth-keys"), "{e}");
}

#[test]
fn embedded_daemon_ports_off_loopback_need_insecure_even_with_auth() {
    for flag in ["--daemon-udp", "--daemon-tcp"] {
        for auth in [
            &[][..],
            &["--auth-keys", "k.json", "--daemon-access-key-id", "K"],
        ] {
            let mut a = vec!["--with-daemon", flag, "0.0.0.0:2000"];
            a.extend_from_slice(auth);
            let e = args(&a).validate().unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("{flag} 0.0.0.0:2000 "))
                    && text.contains("pass --insecure"),
                "{text}"
            );
            a.push("--insecure");
            assert!(args(&a).validate().is_ok());
        }
    }
    // Not checked when there is no embedded daemon.
    assert!(args(&["--daemon-udp", "0.0.0.0:2000"]).validate().is_ok());
}

#[test]
fn embedded_daemon_with_auth_needs_a_key_to_sign_with() {
    let e = args(&["--demo", "--auth-keys", "k.json"])
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("--daemon-access-key-id"), "{e}");
    let c = args(&[
        "--with-daemon",
        "--auth-keys",
        "k.json",
        "--daemon-access-key-id",
        "RKIAX",
    ])
    .validate()
    .unwrap();
    assert_eq!(c.daemon_access_key_id.as_deref(), Some("RKIAX"));
    for a in [
        &["--daemon-access-key-id", "RKIAX"][..],
        &["--with-daemon", "--daemon-access-key-id", "RKIAX"],
        &["--auth-keys", "k.json", "--daemon-access-key-id", "RKIAX"],
    ] {
        let e = args(a).validate().unwrap_err();
        assert!(
            e.to_string().contains("--daemon-access-key-id needs"),
            "{e}"
        );
    }
}

#[test]
fn tls_files_go_together_and_limits_have_defaults() {
    let c = args(&[]).validate().unwrap();
    assert!(c.tls.is_none());
    assert_eq!(c.limits, crate::server::Limits::default());
    let e = args(&["--tls-cert", "c.pem"]).validate().unwrap_err();
    assert!(e.to_string().contains("--tls-key"), "{e}");
    let c = args(&["--tls-cert", "c.pem", "--tls-key", "k.pem"])
        .validate()
        .unwrap();
    assert_eq!(c.tls.unwrap().key, PathBuf::from("k.pem"));
    let c = args(&["--header-timeout-secs", "3", "--max-header-kb", "8"])
        .validate()
        .unwrap();
    assert_eq!(c.limits.header_read, Duration::from_secs(3));
    assert_eq!(c.limits.max_header_bytes, 8192);
    let e = args(&["--header-timeout-secs", "0"])
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("--header-timeout-secs"), "{e}");
    assert_eq!(c.limits.max_connections, 1024);
    let c = args(&["--max-connections", "10"]).validate().unwrap();
    assert_eq!(c.limits.max_connections, 10);
    let e = args(&["--max-connections", "0"]).validate().unwrap_err();
    assert!(e.to_string().contains("--max-connections"), "{e}");
}

#[test]
fn bad_listen_address_names_the_flag() {
    let e = args(&["--listen", "nowhere"]).validate().unwrap_err();
    assert!(e.to_string().contains("--listen"), "{e}");
}

#[test]
fn the_otlp_grpc_port_is_off_unless_asked_and_guarded_off_loopback_like_listen() {
    assert_eq!(args(&[]).validate().unwrap().otlp_grpc, None);
    assert_eq!(
        args(&["--otlp-grpc", "off"]).validate().unwrap().otlp_grpc,
        None
    );
    let on = args(&["--otlp-grpc", "127.0.0.1:4317"]).validate().unwrap();
    assert_eq!(on.otlp_grpc.map(|a| a.port()), Some(4317));
    let exposed = args(&["--otlp-grpc", "0.0.0.0:4317"])
        .validate()
        .unwrap_err();
    assert!(
        exposed.to_string().contains("--otlp-grpc 0.0.0.0:4317"),
        "{exposed}"
    );
    let open = args(&["--otlp-grpc", "0.0.0.0:4317", "--insecure"]).validate();
    assert!(open.is_ok());
    let bad = args(&["--otlp-grpc", "grpc.local"]).validate().unwrap_err();
    assert!(bad.to_string().contains("127.0.0.1:4317"), "{bad}");
}
