//! `roentgen-loadgen`: sends realistic X-Ray datagrams (about 620 bytes, unique ids) to a daemon
//! at a target rate for a bounded time, then prints what it sent:
//! `roentgen-loadgen sent=N seconds=S rate=R`.

use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use roentgen_daemon::loadgen::Template;

/// Sends synthetic segment documents over UDP at a target rate for a bounded time.
#[derive(Debug, Parser)]
#[command(name = "roentgen-loadgen", version, about)]
struct Args {
    /// The daemon's UDP address.
    #[arg(short = 't', long, default_value = "127.0.0.1:2000")]
    target: String,
    /// Documents per second; 0 sends as fast as possible.
    #[arg(short = 'r', long, default_value_t = 10_000)]
    rate: u64,
    /// How long to send, in seconds (at most 3600).
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Stop after this many documents (whichever comes first).
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Run tag written into every trace id, to tell runs apart at the collector.
    #[arg(long, default_value_t = 1)]
    run: u32,
    /// Socket send buffer, in KiB.
    #[arg(long, default_value_t = 4096)]
    send_buffer_kb: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let duration = Duration::from_secs_f64(args.duration_secs.clamp(0.0, 3600.0));
    let limit = args.count.unwrap_or(u64::MAX);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let _ = socket.set_send_buffer_size(args.send_buffer_kb * 1024);
    let local: std::net::SocketAddr = "127.0.0.1:0".parse()?;
    socket.bind(&local.into())?;
    let socket: UdpSocket = socket.into();
    socket
        .connect(&args.target)
        .with_context(|| format!("cannot reach {}", args.target))?;
    let mut template = Template::new(args.run);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut errors = 0u64;
    'outer: loop {
        let elapsed = start.elapsed();
        if elapsed >= duration || sent >= limit {
            break;
        }
        let due = if args.rate == 0 {
            sent + 256
        } else {
            ((elapsed.as_secs_f64() * args.rate as f64) as u64 + 1).min(limit)
        };
        if due <= sent {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        // At most a short burst before the clock is read again, so a sender slower than the
        // target rate still stops on time.
        let burst_end = due.min(limit).min(sent + 1024);
        while sent < burst_end {
            match socket.send(template.fill(sent)) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => {
                    // ECONNREFUSED from an earlier datagram (nobody listening): keep going.
                    errors += 1;
                    if errors > 1_000_000 {
                        break 'outer;
                    }
                }
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "roentgen-loadgen sent={sent} seconds={seconds:.3} rate={:.0} errors={errors}",
        sent as f64 / seconds.max(1e-9)
    )?;
    Ok(())
}
