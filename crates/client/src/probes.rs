//! Probes: functions called once a minute (at the start of each UTC minute)
//! to measure something and record it, typically with
//! [`set_gauge`](crate::set_gauge). Each run happens on its own short-lived
//! thread, so a slow probe delays nobody; a probe still running when its
//! next run is due is skipped (and reported), and a probe that panics is
//! caught and logged while the others keep running.
//!
//! A closure keeps whatever state it needs between runs in its captures.
//!
//! ```no_run
//! use minutely_client::{probes, set_gauge};
//! probes::register("queue_depth", || {
//!     let depth = 17.0; // measure something
//!     set_gauge("queue_depth", depth, &[("queue", "mail")]);
//! });
//! ```

use crate::warn_limited;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

type ProbeFn = Box<dyn FnMut() + Send + 'static>;

struct Probe {
    name: String,
    f: Mutex<ProbeFn>,
    running: AtomicBool,
    runs: AtomicU64,
}

/// The probes of one [`Client`](crate::Client); the global ones are reached
/// through this module's free functions.
#[derive(Default)]
pub struct Probes {
    map: Mutex<BTreeMap<String, Arc<Probe>>>,
}

impl Probes {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Probe>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a probe, replacing one of the same name.
    pub fn register(&self, name: impl Into<String>, f: impl FnMut() + Send + 'static) {
        let name = name.into();
        let probe = Arc::new(Probe {
            name: name.clone(),
            f: Mutex::new(Box::new(f)),
            running: AtomicBool::new(false),
            runs: AtomicU64::new(0),
        });
        self.map().insert(name, probe);
    }

    /// Removes a probe; `true` if there was one. A run in progress finishes.
    pub fn unregister(&self, name: &str) -> bool {
        self.map().remove(name).is_some()
    }

    /// Removes every probe.
    pub fn clear(&self) {
        self.map().clear();
    }

    /// Names of the registered probes.
    pub fn names(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// Completed runs of a probe (panicked runs included).
    pub fn runs(&self, name: &str) -> Option<u64> {
        self.map().get(name).map(|p| p.runs.load(Relaxed))
    }

    /// Starts every probe that is not still running, each on its own thread.
    pub(crate) fn run_all(&self) {
        let probes: Vec<Arc<Probe>> = self.map().values().cloned().collect();
        for p in probes {
            if p.running.swap(true, Relaxed) {
                warn_limited!(
                    "minutely: probe {:?} is still running; skipped this time",
                    p.name
                );
                continue;
            }
            let runner = p.clone();
            let spawned = std::thread::Builder::new()
                .name("minutely-probe".into())
                .spawn(move || runner.run());
            if let Err(e) = spawned {
                p.running.store(false, Relaxed);
                warn_limited!(
                    "minutely: could not start a thread for probe {:?}: {e}",
                    p.name
                );
            }
        }
    }
}

impl Probe {
    fn run(&self) {
        let result = {
            let mut f = self.f.lock().unwrap_or_else(PoisonError::into_inner);
            catch_unwind(AssertUnwindSafe(|| (*f)()))
        };
        if let Err(payload) = result {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            tracing::warn!("minutely: probe {:?} panicked: {msg}", self.name);
        }
        self.runs.fetch_add(1, Relaxed);
        self.running.store(false, Relaxed);
    }
}

/// Registers a probe of the global client, replacing one of the same name.
pub fn register(name: impl Into<String>, f: impl FnMut() + Send + 'static) {
    crate::global().probes().register(name, f)
}

/// Removes a probe of the global client; `true` if there was one.
pub fn unregister(name: &str) -> bool {
    crate::global().probes().unregister(name)
}

/// Removes every probe of the global client.
pub fn clear() {
    crate::global().probes().clear()
}
