//! Flag, environment and config-file parsing and validation.

use super::*;
use clap::CommandFactory;

#[test]
fn defaults_are_valid() {
    let c = RunArgs::default().validate().unwrap();
    assert_eq!(c.bind.to_string(), "127.0.0.1:2000");
    assert_eq!(
        c.otlp_http.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:4318")
    );
    assert_eq!(
        c.otlp_grpc.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:4317")
    );
    let off = RunArgs {
        otlp_http: Some("off".into()),
        otlp_grpc: Some("OFF".into()),
        otlp_annotation_keys: Some(vec![" tenant ".into(), String::new()]),
        ..RunArgs::default()
    }
    .validate()
    .unwrap();
    assert_eq!(off.otlp_http, None);
    assert_eq!(off.otlp_grpc, None);
    assert_eq!(off.otlp_mapping.annotation_keys, ["tenant"]);
    assert_eq!(c.batch_size, 50);
    assert_eq!(c.flush_interval, Duration::from_secs(1));
    assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:4000/");
    assert!(c.scrubber.is_some());
    assert!(c.spool.is_none());
}

#[test]
fn errors_name_the_key() {
    let e = RunArgs {
        batch_size: Some(0),
        ..RunArgs::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("`batch_size`"), "{e}");
    let e = RunArgs {
        bind: Some("nonsense".into()),
        ..RunArgs::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("`bind`"), "{e}");
    let e = RunArgs {
        endpoint: Some("ftp://x".into()),
        ..RunArgs::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("`endpoint`"), "{e}");
    let e = RunArgs {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..RunArgs::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("`ca_file`"), "{e}");
}

#[test]
fn https_endpoints_and_a_ca_file_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertificateParams::new(vec!["roentgen test ca".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let path = dir.path().join("d.toml");
    std::fs::write(
        &path,
        format!(
            "endpoint = \"https://collector.example:4443\"\nca_file = {:?}\n\
             access_key_id = \"RKIAEXAMPLE\"\nsecret_access_key = \"s\"\n",
            ca_path.display().to_string()
        ),
    )
    .unwrap();
    let c = RunArgs {
        config: Some(path),
        ..RunArgs::default()
    }
    .validate()
    .unwrap();
    assert_eq!(c.endpoint.as_str(), "https://collector.example:4443/");
    assert_eq!(c.ca_certificates.map(|v| v.len()), Some(1));
    assert_eq!(c.credentials.unwrap().access_key_id, "RKIAEXAMPLE");

    std::fs::write(&ca_path, "not a certificate\n").unwrap();
    let e = RunArgs {
        ca_file: Some(ca_path),
        ..RunArgs::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
}

#[test]
fn file_fills_gaps_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.toml");
    std::fs::write(
        &path,
        "batch_size = 20\nsenders = 2\nspool_dir = \"/tmp/x\"\n[scrub]\n",
    )
    .unwrap();
    let c = RunArgs {
        config: Some(path.clone()),
        senders: Some(7),
        ..RunArgs::default()
    }
    .validate()
    .unwrap();
    assert_eq!(c.batch_size, 20);
    assert_eq!(c.senders, 7);
    assert_eq!(c.spool.unwrap().dir, PathBuf::from("/tmp/x"));

    std::fs::write(&path, "batch_sise = 20\n").unwrap();
    let e = RunArgs {
        config: Some(path),
        ..RunArgs::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("batch_sise"), "{e}");
}

#[test]
fn off_loopback_needs_insecure() {
    for (bind, bind_tcp, flag) in [
        ("0.0.0.0:2000", "127.0.0.1:2000", "--bind 0.0.0.0:2000"),
        ("127.0.0.1:2000", "[::]:2000", "--bind-tcp [::]:2000"),
    ] {
        let e = RunArgs {
            bind: Some(bind.into()),
            bind_tcp: Some(bind_tcp.into()),
            ..RunArgs::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            e.to_string().starts_with(flag) && e.to_string().contains("add --insecure"),
            "{e}"
        );
    }
    let c = Cli::parse_from(["roentgen-daemon", "-b", "0.0.0.0:2000", "--insecure"])
        .run
        .validate()
        .unwrap();
    assert!(c.insecure && c.bind.ip().is_unspecified());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.toml");
    std::fs::write(&path, "bind = \"0.0.0.0:2000\"\ninsecure = true\n").unwrap();
    let c = RunArgs {
        config: Some(path),
        ..RunArgs::default()
    }
    .validate()
    .unwrap();
    assert!(c.insecure);
}

#[test]
fn help_is_consistent() {
    Cli::command().debug_assert();
}
