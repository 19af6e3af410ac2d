//! The StatsD sockets: one receive thread per socket (UDP, and a Unix
//! datagram socket when configured) parses each datagram into the shared
//! [`Aggregator`]; a flush thread hands the aggregates to the store every
//! second. The receive threads never wait on the disk, and a large socket
//! buffer absorbs bursts while they hold the aggregator's lock.
//!
//! Durability: a value is durable once the flush after its arrival has
//! been written (at most `flush_interval` later); a `kill -9` loses at most
//! that last interval, a clean stop none.

use super::aggregate::{add_packet, Aggregator, Routing};
use crate::Shared;
use minutely_store::PushRequest;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest datagram read whole. UDP payloads stop at 65,507 bytes; a Unix
/// datagram larger than this is cut, its complete lines kept and the cut
/// counted (`truncated`).
pub const MAX_DATAGRAM: usize = 65_536;
/// Receive buffer asked of the kernel: about a second of a very busy
/// sender's packets, so a burst is queued rather than dropped. Without
/// privileges the kernel caps it at `net.core.rmem_max`.
pub const RECV_BUFFER: usize = 32 << 20;
/// How often the receive threads look at the stop flag when idle.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct StatsdConfig {
    pub udp: Option<SocketAddr>,
    pub unix: Option<PathBuf>,
    pub routing: Routing,
    pub flush_interval: Duration,
}

/// The running listeners; [`StatsdHandle::shutdown`] stops them and flushes.
pub struct StatsdHandle {
    stop: Arc<AtomicBool>,
    /// Set after the receivers are gone, so the last flush has everything.
    flush_stop: Arc<AtomicBool>,
    receivers: Vec<JoinHandle<()>>,
    flusher: Option<JoinHandle<()>>,
    pub udp_addr: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
}

enum Sock {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Sock {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Udp(s) => s.recv_from(buf).map(|(n, _)| n),
            Sock::Unix(s) => s.recv(buf),
        }
    }
}

fn big_buffer(sock: socket2::SockRef<'_>) -> usize {
    // SO_RCVBUFFORCE passes rmem_max for a privileged process; otherwise
    // ask politely and take what the kernel gives.
    use std::os::fd::AsRawFd;
    let size = RECV_BUFFER as libc::c_int;
    // SAFETY: setsockopt with a valid fd and a pointer to a c_int of the stated length.
    let forced = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        let _ = sock.set_recv_buffer_size(RECV_BUFFER);
    }
    sock.recv_buffer_size().unwrap_or(0)
}

fn bind_udp(addr: SocketAddr) -> io::Result<(UdpSocket, usize)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let buffer = big_buffer(socket2::SockRef::from(&sock));
    sock.bind(&addr.into())?;
    let udp: UdpSocket = sock.into();
    udp.set_read_timeout(Some(POLL))?;
    Ok((udp, buffer))
}

fn bind_unix(path: &PathBuf) -> io::Result<(UnixDatagram, usize)> {
    use std::os::unix::fs::FileTypeExt;
    // A socket file left by an earlier run is replaced; any other file is not.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    let sock = UnixDatagram::bind(path)?;
    let buffer = big_buffer(socket2::SockRef::from(&sock));
    sock.set_read_timeout(Some(POLL))?;
    Ok((sock, buffer))
}

/// Binds the sockets and starts the threads.
pub fn start(cfg: StatsdConfig, state: Shared) -> io::Result<StatsdHandle> {
    let agg = Arc::new(Mutex::new(Aggregator::new(
        cfg.routing.clone(),
        state.cfg.late_secs,
    )));
    let stop = Arc::new(AtomicBool::new(false));
    let mut socks = Vec::new();
    let mut udp_addr = None;
    if let Some(addr) = cfg.udp {
        let (udp, buffer) = bind_udp(addr)?;
        let local = udp.local_addr()?;
        udp_addr = Some(local);
        state.metrics.ingest.set_udp_port(local.port());
        tracing::info!("StatsD on udp://{local} (receive buffer {buffer} bytes)");
        socks.push(("minutely-statsd-udp", Sock::Udp(udp)));
    }
    if let Some(path) = &cfg.unix {
        let (unix, buffer) = bind_unix(path)?;
        tracing::info!(
            "StatsD on unix://{} (receive buffer {buffer} bytes)",
            path.display()
        );
        socks.push(("minutely-statsd-unix", Sock::Unix(unix)));
    }
    let mut receivers = Vec::new();
    for (name, sock) in socks {
        let (agg, stop, state) = (agg.clone(), stop.clone(), state.clone());
        receivers.push(
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || receive(sock, &agg, &stop, &state))?,
        );
    }
    let flush_stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (stop, state, interval) = (flush_stop.clone(), state.clone(), cfg.flush_interval);
        std::thread::Builder::new()
            .name("minutely-statsd-flush".into())
            .spawn(move || flush_loop(&agg, &stop, &state, interval))?
    };
    Ok(StatsdHandle {
        stop,
        flush_stop,
        receivers,
        flusher: Some(flusher),
        udp_addr,
        unix_path: cfg.unix,
    })
}

impl StatsdHandle {
    /// Stops receiving, writes what was received, and removes the Unix socket file.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for r in self.receivers.drain(..) {
            let _ = r.join();
        }
        self.flush_stop.store(true, Ordering::SeqCst);
        if let Some(f) = self.flusher.take() {
            let _ = f.join();
        }
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn receive(sock: Sock, agg: &Mutex<Aggregator>, stop: &AtomicBool, state: &Shared) {
    let m = &state.metrics.ingest;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut counts = super::super::LineCounts::default();
    while !stop.load(Ordering::Relaxed) {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("StatsD receive failed: {e}");
                m.statsd_drop("receive_error", 1);
                std::thread::sleep(POLL);
                continue;
            }
        };
        let mut packet = &buf[..n];
        if n > MAX_DATAGRAM {
            // Cut: keep the complete lines, count the cut.
            let end = packet.iter().rposition(|&b| b == b'\n').unwrap_or(0);
            packet = &packet[..end];
            counts.drop("truncated");
        }
        let now = (state.clock)();
        {
            let mut a = agg.lock().unwrap_or_else(|p| p.into_inner());
            add_packet(&mut a, packet, now, |o| counts.add(o));
        }
        counts.packets += 1;
        counts.bytes += n as u64;
        counts.publish_statsd(m);
    }
}

fn flush_loop(agg: &Mutex<Aggregator>, stop: &AtomicBool, state: &Shared, interval: Duration) {
    let mut next = Instant::now() + interval;
    let mut last_error_log: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        if !stopping {
            std::thread::sleep(next.saturating_duration_since(Instant::now()).min(POLL));
            if Instant::now() < next {
                continue;
            }
            next += interval;
        }
        let reqs = agg
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush((state.clock)());
        // Tags may name apps; as over the push API, only existing ones take points.
        let apps = if reqs.is_empty() {
            Vec::new()
        } else {
            state
                .store
                .apps()
                .map(|a| a.into_iter().map(|a| a.name).collect())
                .unwrap_or_default()
        };
        // Pushes no larger than the push API's, so one flush of many series
        // is several log records of bounded size.
        let limit = state.cfg.max_points_per_batch.max(1);
        let reqs = reqs.into_iter().flat_map(|mut r| {
            let mut parts = Vec::new();
            while r.points.len() > limit {
                let rest = r.points.split_off(limit);
                parts.push(PushRequest {
                    app: r.app.clone(),
                    env: r.env.clone(),
                    batch: None,
                    points: std::mem::replace(&mut r.points, rest),
                });
            }
            parts.push(r);
            parts
        });
        for req in reqs {
            let n = req.points.len();
            if !apps.contains(&req.app) {
                state.metrics.ingest.statsd_drop("unknown_app", n as u64);
                continue;
            }
            match state.store.push(req) {
                Ok(outcome) => {
                    let m = &state.metrics.ingest;
                    m.statsd_stored(outcome.accepted as u64);
                    for r in &outcome.rejected {
                        m.statsd_drop(r.reason, 1);
                    }
                }
                Err(e) => {
                    state.metrics.ingest.statsd_drop("store_error", n as u64);
                    if !matches!(last_error_log, Some(t) if t.elapsed() <= Duration::from_secs(10))
                    {
                        tracing::error!("StatsD flush of {n} points failed: {e}");
                        last_error_log = Some(Instant::now());
                    }
                }
            }
        }
        if stopping {
            return;
        }
    }
}
