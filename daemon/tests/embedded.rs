//! The daemon as a library, the way the all-in-one demo embeds it: bind on ephemeral ports,
//! learn the addresses, run until a shutdown future completes, and get the final report.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use roentgen_daemon::loadgen::Template;
use roentgen_daemon::loadgen::collector::{CollectorOptions, MiniCollector};
use roentgen_daemon::{Config, Daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_daemon_forwards_and_reports() {
    let collector = MiniCollector::start(CollectorOptions {
        record: true,
        ..CollectorOptions::default()
    })
    .expect("collector");
    let mut config = Config::local(&collector.url()).expect("config");
    config.flush_interval = Duration::from_millis(50);
    let daemon = Daemon::bind(config).await.expect("bind");
    let udp = daemon.udp_addr();
    assert_ne!(udp.port(), 0);
    assert_ne!(daemon.tcp_addr().port(), 0);
    let counters = daemon.counters();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(daemon.run(async {
        let _ = stopped.await;
    }));

    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let mut template = Template::new(77);
    for seq in 0..100 {
        socket.send_to(template.fill(seq), udp).expect("send");
    }
    socket.send_to(b"garbage", udp).expect("send");
    let deadline = Instant::now() + Duration::from_secs(30);
    while collector.document_count() < 100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(collector.document_count(), 100);
    assert_eq!(counters.rejected_total(), 1);

    stop.send(()).expect("stop");
    let report = running.await.expect("join").expect("run");
    assert_eq!(report.received, 101);
    assert_eq!(report.rejected, 1);
    assert_eq!(report.sent, 100);
    assert_eq!(report.dropped, 0);
    assert_eq!(report.buffered, 0);
}
