//! The log writer thread: group commit. Pushes queue their records; the
//! thread writes every queued record in one write, applies them to the
//! head and answers each push. The log is synced every sync interval, or
//! before the answers when the interval is zero (a burst of pushes then
//! shares one fsync).

use super::head::{Generation, Head};
use super::record::Record;
use super::wal::Wal;
use crate::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Records written per sync at most, to bound a group's latency.
const MAX_GROUP: usize = 512;

/// A queued append: its frame, its record and who waits for it.
type Append = (Vec<u8>, Record, SyncSender<Result<(), StoreError>>);

pub enum WalMsg {
    Append {
        payload: Vec<u8>,
        record: Record,
        reply: SyncSender<Result<(), StoreError>>,
    },
    /// Seal the segment and freeze the head; answers the sealed segment.
    Rotate {
        reply: SyncSender<Result<(u64, Arc<Generation>), StoreError>>,
    },
}

/// When the writer syncs the log, and where it counts failed syncs.
pub struct SyncPolicy {
    /// Zero: before every group's answers.
    pub every: Duration,
    pub failures: Arc<AtomicU64>,
}

pub fn run(mut wal: Wal, rx: Receiver<WalMsg>, head: Arc<RwLock<Head>>, policy: SyncPolicy) {
    let SyncPolicy {
        every: sync_every,
        failures,
    } = policy;
    let every_push = sync_every.is_zero();
    let sync = |wal: &mut Wal| {
        if let Err(e) = wal.sync() {
            // The points were answered already; they are in the file, and
            // the next sync, an interval later, tries again.
            failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "syncing the write-ahead log failed");
        }
    };
    let mut pending: Vec<WalMsg> = Vec::new();
    // The sync comes one interval after the oldest unsynced write, not one
    // interval after the last sync: after a pause, the first push would
    // otherwise be followed by a sync at once, and the pushes behind it
    // would wait the disk's time (about 20 ms here) for it.
    loop {
        let first = if let Some(since) = wal.unsynced_since() {
            match rx.recv_timeout(sync_every.saturating_sub(since.elapsed())) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    sync(&mut wal);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        };
        pending.push(first);
        while pending.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(m) => pending.push(m),
                Err(_) => break,
            }
        }
        let mut appends = Vec::new();
        for msg in pending.drain(..) {
            match msg {
                WalMsg::Append {
                    payload,
                    record,
                    reply,
                } => appends.push((payload, record, reply)),
                WalMsg::Rotate { reply } => {
                    // Appends queued before the rotation belong to the old segment.
                    write_group(&mut wal, &head, std::mem::take(&mut appends), every_push);
                    let _ = reply.send(rotate(&mut wal, &head));
                }
            }
        }
        write_group(&mut wal, &head, appends, every_push);
        if wal
            .unsynced_since()
            .is_some_and(|since| since.elapsed() >= sync_every)
        {
            sync(&mut wal);
        }
    }
    // Closing: what the last pushes wrote goes to the disk too.
    sync(&mut wal);
}

fn write_group(wal: &mut Wal, head: &RwLock<Head>, appends: Vec<Append>, sync: bool) {
    if appends.is_empty() {
        return;
    }
    let payloads: Vec<&[u8]> = appends.iter().map(|a| a.0.as_slice()).collect();
    match wal.append(&payloads, sync) {
        Ok(()) => {
            let mut replies = Vec::with_capacity(appends.len());
            {
                let mut h = head.write().unwrap_or_else(|p| p.into_inner());
                for (_, record, reply) in appends {
                    h.apply(record);
                    replies.push(reply);
                }
            }
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) => {
            let text = e.to_string();
            let full = matches!(e, StoreError::DiskFull(_));
            for (_, _, reply) in appends {
                let err = if full {
                    StoreError::DiskFull(text.clone())
                } else {
                    StoreError::Engine(text.clone())
                };
                let _ = reply.send(Err(err));
            }
        }
    }
}

fn rotate(wal: &mut Wal, head: &RwLock<Head>) -> Result<(u64, Arc<Generation>), StoreError> {
    let sealed = wal.rotate()?;
    let mut h = head.write().unwrap_or_else(|p| p.into_inner());
    debug_assert!(h.frozen.is_none(), "one checkpoint at a time");
    let gen = Arc::new(std::mem::take(&mut h.active));
    h.frozen = Some(gen.clone());
    Ok((sealed, gen))
}
