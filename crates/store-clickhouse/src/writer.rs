//! Group commit: concurrent pushes share INSERTs.
//!
//! Each push encodes its rows and queues them; one thread takes every queued
//! push, writes all their series rows, then all their point rows, then all
//! their batch keys (three INSERTs, in that order), and answers each push.
//! Fewer, larger inserts are what ClickHouse wants: every INSERT makes a
//! part on disk, and many small ones make merges fall behind.

use crate::{aggs, Inner};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

/// A group stops growing at this many bytes of rows.
const MAX_GROUP_BYTES: usize = 32 << 20;

pub struct Job {
    pub series: Vec<u8>,
    pub points: Vec<u8>,
    pub batches: Vec<u8>,
    /// `Err` carries the message of the failed insert.
    pub reply: SyncSender<Result<(), String>>,
}

impl Job {
    fn bytes(&self) -> usize {
        self.series.len() + self.points.len() + self.batches.len()
    }
}

/// Runs until every sender is gone (the store closed).
pub fn run(inner: Arc<Inner>, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut bytes = first.bytes();
        let mut jobs = vec![first];
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.bytes();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let concat = |part: fn(&Job) -> &Vec<u8>| -> Vec<u8> {
            jobs.iter().flat_map(|j| part(j).iter().copied()).collect()
        };
        let (series, points, batches) = (
            concat(|j| &j.series),
            concat(|j| &j.points),
            concat(|j| &j.batches),
        );
        let client = &inner.client;
        // Series before points (a point row never lacks its series), batch
        // keys last (a key is only stored once its points are).
        let result = client
            .insert(
                "series",
                "app, env, name, kind, sid, tag_keys, tag_values",
                &series,
            )
            .and_then(|_| {
                client.insert(
                    "points",
                    &format!("sid, minute, batch, {}", aggs::COLUMNS),
                    &points,
                )
            })
            .and_then(|_| client.insert("batches", "key, accepted, ts", &batches))
            .map_err(|e| e.to_string());
        for job in jobs {
            let _ = job.reply.send(result.clone());
        }
    }
}
