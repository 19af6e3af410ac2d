//! Sends StatsD (or the same samples as Graphite plaintext) over UDP at a
//! paced rate, for the lines/s-without-loss benchmark. Standalone (std
//! only): `rustc -O bench/statsd/blast.rs -o target/statsd-blast`.
//!
//! Usage: statsd-blast ADDR statsd|graphite LINES RATE_LINES_PER_SEC [LINES_PER_DATAGRAM] [SERIES]
//! Prints: `sent LINES lines in SECS s = RATE lines/s`.

use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: {} ADDR statsd|graphite LINES RATE [PER_DATAGRAM] [SERIES]", a[0]);
        std::process::exit(2);
    }
    let addr = &a[1];
    let graphite = a[2] == "graphite";
    let lines: u64 = a[3].parse().expect("LINES");
    let rate: f64 = a[4].parse().expect("RATE");
    let per: u64 = a.get(5).map_or(25, |s| s.parse().expect("PER_DATAGRAM"));
    let series: u64 = a.get(6).map_or(1_000, |s| s.parse().expect("SERIES"));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(addr).unwrap();
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let start = Instant::now();
    let mut buf = String::with_capacity(4096);
    let mut sent = 0u64;
    while sent < lines {
        buf.clear();
        let n = per.min(lines - sent);
        for k in 0..n {
            let i = sent + k;
            let (m, host, v) = (i % series, i % 7, i % 100);
            if graphite {
                buf.push_str(&format!("bench.m{m};host=h{host} {v} {ts}\n"));
            } else {
                buf.push_str(&format!("bench.m{m}:{v}|c|#host:h{host}\n"));
            }
        }
        // A full socket buffer on the sender's side is retried, not lost.
        while let Err(e) = sock.send(buf.as_bytes()) {
            if e.kind() != std::io::ErrorKind::WouldBlock && e.raw_os_error() != Some(105) {
                panic!("send: {e}");
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        sent += n;
        // Pace: never ahead of `rate` lines per second.
        let due = Duration::from_secs_f64(sent as f64 / rate);
        let el = start.elapsed();
        if due > el + Duration::from_micros(200) {
            std::thread::sleep(due - el);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("sent {sent} lines in {secs:.3} s = {:.0} lines/s", sent as f64 / secs);
}
