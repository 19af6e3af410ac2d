//! The series index, kept whole in memory: which series exist, their ids,
//! the kind of each metric name per app, and series counts per app.

use super::head::SidHasher;
use super::record::SeriesDef;
use crate::{MetricInfo, SeriesId, SeriesInfo};
use hashbrown::HashTable;
use minutely_core::{Kind, Tags};
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

pub struct SeriesMeta {
    pub def: SeriesDef,
    /// The lookup key ([`series_key`]) of the series.
    key: Box<str>,
    /// Set once the definition is in a synced log frame or in redb; until
    /// then every record that uses the series carries its definition.
    pub durable: AtomicBool,
    /// Newest minute with data in redb, or replayed from the log at start
    /// (`i64::MIN` when none); the head knows newer ones. Not kept by the
    /// push: a store to this line for every point cost more than the
    /// lookups of a catalogue.
    pub last_seen: AtomicI64,
    /// Set when its key was defined again under a newer id, which the key
    /// then finds.
    superseded: AtomicBool,
}

/// The identity of a series as a point names it.
#[derive(Clone, Copy)]
pub struct SeriesRef<'a> {
    pub app: &'a str,
    pub env: &'a str,
    pub name: &'a str,
    pub kind: Kind,
    pub tags: &'a Tags,
}

#[derive(Default)]
pub struct SeriesIndex {
    /// Series ids by the hash of their key. Only ids, 8 bytes a slot, so
    /// the table a push probes once for every point stays in the cache;
    /// the key it compares is in the series' own record.
    by_key: HashTable<SeriesId>,
    key_hasher: RandomState,
    /// Each series by id. Ids are handed out densely from 0, and series
    /// that arrive together get neighbouring ids, so a push reads this in
    /// order.
    series: Held,
    count: usize,
    /// The tags of the series added last: the next one, often the same
    /// host's next metric, shares them instead of keeping a copy.
    last_tags: Tags,
    kinds: HashMap<(String, String), Kind>,
    per_app: HashMap<String, usize>,
    by_metric: HashMap<(String, String, String), Vec<SeriesId>>,
    /// Series ids by the hash of (app, env, name, tag key, tag value): an
    /// exact tag filter reads one list instead of every series of the
    /// metric. A hash that collides only adds ids the filter then drops;
    /// the hash is keyed per process, so tag values cannot aim at one.
    by_pair: HashMap<u64, Vec<SeriesId>, std::hash::BuildHasherDefault<SidHasher>>,
    pair_hasher: RandomState,
    next_id: SeriesId,
}

/// The series by id: a vector indexed by id, and, for an id far beyond
/// its end (only a damaged definition gives one: ids are handed out in
/// turn), an ordered map, so such an id cannot make the vector take all
/// the memory.
#[derive(Default)]
struct Held {
    dense: Vec<Option<Arc<SeriesMeta>>>,
    sparse: BTreeMap<SeriesId, Arc<SeriesMeta>>,
}

/// How far past the vector's end an id may grow it (8 MB of slots).
const MAX_ID_GAP: u64 = 1 << 20;

impl Held {
    fn get(&self, id: SeriesId) -> Option<&Arc<SeriesMeta>> {
        let dense = usize::try_from(id).ok().and_then(|i| self.dense.get(i));
        match dense {
            Some(Some(meta)) => Some(meta),
            _ if self.sparse.is_empty() => None,
            _ => self.sparse.get(&id),
        }
    }

    fn put(&mut self, id: SeriesId, meta: Arc<SeriesMeta>) {
        match usize::try_from(id) {
            Ok(slot) if id < self.dense.len() as u64 + MAX_ID_GAP => {
                if slot >= self.dense.len() {
                    self.dense.resize(slot + 1, None);
                }
                self.dense[slot] = Some(meta);
            }
            _ => {
                self.sparse.insert(id, meta);
            }
        }
    }

    /// Every series, by id.
    fn iter(&self) -> impl Iterator<Item = &Arc<SeriesMeta>> {
        self.dense.iter().flatten().chain(self.sparse.values())
    }
}

/// Why a point could not be given a series.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolveError {
    KindConflict { name: String, has: Kind, got: Kind },
    SeriesLimit { app: String, limit: usize },
}

impl ResolveError {
    pub fn reason(&self) -> &'static str {
        match self {
            ResolveError::KindConflict { .. } => "kind_conflict",
            ResolveError::SeriesLimit { .. } => "series_limit",
        }
    }
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::KindConflict { name, has, got } => write!(
                f,
                "metric {name:?} is a {has} in this app; a {got} point cannot be added to it (use another name)"
            ),
            ResolveError::SeriesLimit { app, limit } => write!(
                f,
                "app {app:?} has reached its limit of {limit} series; this point would start a new one (check for a tag with unbounded values, or raise max_series_per_app)"
            ),
        }
    }
}

/// Writes the lookup key of a series into `buf`. The separators are control
/// characters, which validation keeps out of apps, envs, names and tags.
pub fn series_key(buf: &mut String, app: &str, env: &str, name: &str, tags: &Tags) {
    buf.clear();
    for part in [app, env, name] {
        buf.push_str(part);
        buf.push('\0');
    }
    for (k, v) in tags.iter() {
        buf.push_str(k);
        buf.push('\u{1}');
        buf.push_str(v);
        buf.push('\0');
    }
}

/// What resolving carries from one point to the next.
#[derive(Default)]
pub struct Scratch {
    /// The key being looked up.
    key: String,
    /// The series after the last one resolved, tried before the table:
    /// clients push their series in the same order every minute (a
    /// registry walked in order), and a series gets the next id after the
    /// one pushed before it when it is created, so this is usually the one.
    /// Ids in order also read the series' records in memory order, where
    /// the table's slots are spread at random (its probe and the record
    /// were the push's two costliest cache misses).
    next: SeriesId,
}

impl SeriesIndex {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn apps(&self) -> usize {
        self.per_app.len()
    }

    pub fn next_id(&self) -> SeriesId {
        self.next_id
    }

    /// Never hands out ids below `next` (ids of series lost with a damaged
    /// log segment may still own blocks).
    pub fn reserve_ids(&mut self, next: SeriesId) {
        self.next_id = self.next_id.max(next);
    }

    pub fn get(&self, id: SeriesId) -> Option<&Arc<SeriesMeta>> {
        self.series.get(id)
    }

    /// A series the index holds, by an id taken from the index itself.
    fn meta(&self, id: SeriesId) -> &Arc<SeriesMeta> {
        self.get(id).expect("the index lists only series it holds")
    }

    pub fn kind_of(&self, app: &str, name: &str) -> Option<Kind> {
        self.kinds
            .get(&(app.to_string(), name.to_string()))
            .copied()
    }

    /// Adds a known series (from redb or the log); repeated adds are no-ops.
    pub fn insert(&mut self, mut def: SeriesDef, durable: bool) {
        if let Some(existing) = self.get(def.id) {
            if durable {
                existing.durable.store(true, Ordering::Release);
            }
            return;
        }
        let mut key = String::new();
        series_key(&mut key, &def.app, &def.env, &def.name, &def.tags);
        self.kinds
            .entry((def.app.clone(), def.name.clone()))
            .or_insert(def.kind);
        *self.per_app.entry(def.app.clone()).or_default() += 1;
        self.by_metric
            .entry((def.app.clone(), def.env.clone(), def.name.clone()))
            .or_default()
            .push(def.id);
        for (k, v) in def.tags.iter() {
            let pair = self.pair_key(&def.app, &def.env, &def.name, (k, v));
            self.by_pair.entry(pair).or_default().push(def.id);
        }
        self.next_id = self.next_id.max(def.id.saturating_add(1));
        if def.tags == self.last_tags {
            def.tags = self.last_tags.clone();
        } else {
            self.last_tags = def.tags.clone();
        }
        let id = def.id;
        let meta = Arc::new(SeriesMeta {
            def,
            key: key.into_boxed_str(),
            durable: AtomicBool::new(durable),
            last_seen: AtomicI64::new(i64::MIN),
            superseded: AtomicBool::new(false),
        });
        let hash = self.key_hasher.hash_one(&*meta.key);
        self.series.put(id, meta.clone());
        self.count += 1;
        let (series, hasher) = (&self.series, &self.key_hasher);
        let same_key = |&other: &SeriesId| series.get(other).is_some_and(|m| m.key == meta.key);
        // A key met again under a new id (its first definition lost with a
        // damaged log) now finds the new one, as later definitions win.
        match self.by_key.find_mut(hash, same_key) {
            Some(slot) => {
                if let Some(old) = series.get(*slot) {
                    old.superseded.store(true, Ordering::Relaxed);
                }
                *slot = id;
            }
            None => {
                self.by_key.insert_unique(hash, id, |&other| {
                    let other = series.get(other).expect("indexed ids are held");
                    hasher.hash_one(&*other.key)
                });
            }
        }
    }

    /// Finds or creates the series of a point. Lent, not shared: a push
    /// resolves a series for every point, and a reference count taken and
    /// dropped each time was two more atomic operations a point.
    pub fn resolve(
        &mut self,
        scratch: &mut Scratch,
        series: SeriesRef,
        max_series_per_app: usize,
    ) -> Result<&Arc<SeriesMeta>, ResolveError> {
        let SeriesRef {
            app,
            env,
            name,
            kind,
            tags,
        } = series;
        series_key(&mut scratch.key, app, env, name, tags);
        let key = scratch.key.as_str();
        let predicted = self
            .get(scratch.next)
            .filter(|m| *m.key == *key && !m.superseded.load(Ordering::Relaxed));
        let found = match predicted {
            Some(meta) => Some(meta.def.id),
            None => {
                let hash = self.key_hasher.hash_one(key);
                let series = &self.series;
                self.by_key
                    .find(hash, |&id| series.get(id).is_some_and(|m| *m.key == *key))
                    .copied()
            }
        };
        if let Some(id) = found {
            let meta = self.meta(id);
            if meta.def.kind != kind {
                return Err(ResolveError::KindConflict {
                    name: name.into(),
                    has: meta.def.kind,
                    got: kind,
                });
            }
            scratch.next = id.saturating_add(1);
            return Ok(meta);
        }
        if let Some(&has) = self.kinds.get(&(app.to_string(), name.to_string())) {
            if has != kind {
                return Err(ResolveError::KindConflict {
                    name: name.into(),
                    has,
                    got: kind,
                });
            }
        }
        if self.per_app.get(app).copied().unwrap_or(0) >= max_series_per_app {
            return Err(ResolveError::SeriesLimit {
                app: app.into(),
                limit: max_series_per_app,
            });
        }
        let def = SeriesDef {
            id: self.next_id,
            app: app.into(),
            env: env.into(),
            name: name.into(),
            kind,
            tags: tags.clone(),
        };
        let id = def.id;
        scratch.next = id.saturating_add(1);
        self.insert(def, false);
        Ok(self.meta(id))
    }

    pub fn series_of(&self, app: &str, env: Option<&str>, name: &str) -> Vec<SeriesInfo> {
        self.series_where(app, env, name, &|_| true)
    }

    /// [`series_of`](Self::series_of), only the series whose tags `keep`
    /// accepts: the others are never copied.
    pub fn series_where(
        &self,
        app: &str,
        env: Option<&str>,
        name: &str,
        keep: &dyn Fn(&Tags) -> bool,
    ) -> Vec<SeriesInfo> {
        let ids: Vec<SeriesId> = match env {
            Some(env) => self
                .by_metric
                .get(&(app.to_string(), env.to_string(), name.to_string()))
                .cloned()
                .unwrap_or_default(),
            None => self
                .by_metric
                .iter()
                .filter(|((a, _, n), _)| a == app && n == name)
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect(),
        };
        ids.iter()
            .map(|id| (*id, &self.meta(*id).def))
            .filter(|(_, def)| keep(&def.tags))
            .map(|(id, def)| SeriesInfo {
                id,
                env: def.env.clone(),
                tags: def.tags.clone(),
            })
            .collect()
    }

    /// [`series_where`](Self::series_where) of the series that have every
    /// tag of `pairs` with that value, read from the shortest list of
    /// series of one pair, in the same order.
    pub fn series_with(
        &self,
        app: &str,
        env: Option<&str>,
        name: &str,
        pairs: &[(&str, &str)],
        keep: &dyn Fn(&Tags) -> bool,
    ) -> Vec<SeriesInfo> {
        if pairs.is_empty() {
            return self.series_where(app, env, name, keep);
        }
        // The envs in the order `series_where` visits them.
        let envs: Vec<&str> = match env {
            Some(env) => vec![env],
            None => self
                .by_metric
                .keys()
                .filter(|(a, _, n)| a == app && n == name)
                .map(|(_, e, _)| e.as_str())
                .collect(),
        };
        let mut out = Vec::new();
        for env in envs {
            let shortest = pairs
                .iter()
                .map(|&pair| {
                    self.by_pair
                        .get(&self.pair_key(app, env, name, pair))
                        .map_or(&[][..], Vec::as_slice)
                })
                .min_by_key(|ids| ids.len())
                .unwrap_or_default();
            for id in shortest {
                let def = &self.meta(*id).def;
                if def.app == app
                    && def.env == env
                    && def.name == name
                    && crate::has_pairs(&def.tags, pairs)
                    && keep(&def.tags)
                {
                    out.push(SeriesInfo {
                        id: *id,
                        env: def.env.clone(),
                        tags: def.tags.clone(),
                    });
                }
            }
        }
        out
    }

    fn pair_key(&self, app: &str, env: &str, name: &str, (k, v): (&str, &str)) -> u64 {
        self.pair_hasher.hash_one((app, env, name, k, v))
    }

    /// The metrics of `app` (in `env`), each last seen at the newest minute
    /// of its series that redb holds or `head_newest` gives (the minutes
    /// not yet checkpointed).
    pub fn catalogue(
        &self,
        app: &str,
        env: Option<&str>,
        head_newest: &dyn Fn(SeriesId) -> Option<i64>,
    ) -> Vec<MetricInfo> {
        let mut out: BTreeMap<(String, String), MetricInfo> = BTreeMap::new();
        for ((a, e, name), ids) in &self.by_metric {
            if a != app || env.is_some_and(|want| want != e) {
                continue;
            }
            let info = out
                .entry((name.clone(), e.clone()))
                .or_insert_with(|| MetricInfo {
                    name: name.clone(),
                    kind: self.meta(ids[0]).def.kind,
                    env: e.clone(),
                    tags: BTreeMap::new(),
                    series: 0,
                    last_seen: None,
                });
            for id in ids {
                let meta = self.meta(*id);
                info.series += 1;
                for (k, v) in meta.def.tags.iter() {
                    info.tags
                        .entry(k.to_string())
                        .or_default()
                        .insert(v.to_string());
                }
                let stored = meta.last_seen.load(Ordering::Relaxed);
                let seen = head_newest(*id).map_or(stored, |h| h.max(stored));
                if seen != i64::MIN {
                    info.last_seen = Some(info.last_seen.map_or(seen, |s| s.max(seen)));
                }
            }
        }
        out.into_values().collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<SeriesMeta>> {
        self.series.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// App, env, name and tag pairs of a series, as indexes into the lists below.
    type Def = (usize, usize, usize, Vec<(usize, usize)>);

    /// Series of two apps, envs and names, with tags from small alphabets
    /// (some series lack a key); filters that name present, absent and
    /// missing values.
    fn defs() -> impl Strategy<Value = Vec<Def>> {
        prop::collection::vec(
            (
                0..2usize,
                0..2usize,
                0..2usize,
                prop::collection::vec((0..3usize, 0..3usize), 0..4),
            ),
            0..40,
        )
    }

    const APPS: [&str; 2] = ["shop", "blog"];
    const ENVS: [&str; 2] = ["prod", "stage"];
    const NAMES: [&str; 2] = ["orders", "visits"];
    const KEYS: [&str; 3] = ["region", "host", "plan"];
    const VALUES: [&str; 3] = ["eu", "us", "eu:1"];

    proptest! {
        #[test]
        fn series_with_gives_what_series_where_gives_filtered(
            defs in defs(),
            pairs in prop::collection::vec((0..3usize, 0..3usize), 0..3),
            env in prop::option::of(0..3usize),
            app in 0..2usize,
            name in 0..2usize,
        ) {
            let mut idx = SeriesIndex::default();
            let mut seen = std::collections::HashSet::new();
            for (id, (a, e, n, tags)) in defs.into_iter().enumerate() {
                let tags = Tags::from_pairs(tags.iter().map(|&(k, v)| (KEYS[k], VALUES[v])));
                let mut key = String::new();
                series_key(&mut key, APPS[a], ENVS[e], NAMES[n], &tags);
                if !seen.insert(key) {
                    continue;
                }
                idx.insert(
                    SeriesDef {
                        id: id as u64,
                        app: APPS[a].into(),
                        env: ENVS[e].into(),
                        name: NAMES[n].into(),
                        kind: Kind::Counter,
                        tags,
                    },
                    true,
                );
            }
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|&(k, v)| (KEYS[k], VALUES[v])).collect();
            // A third env that has no series.
            let env = env.map(|e| ["prod", "stage", "dev"][e]);
            let keep = |t: &Tags| t.get("plan") != Some("us");
            let want = idx.series_where(APPS[app], env, NAMES[name], &|t| {
                crate::has_pairs(t, &pairs) && keep(t)
            });
            prop_assert_eq!(idx.series_with(APPS[app], env, NAMES[name], &pairs, &keep), want);
        }
    }

    #[test]
    fn a_key_defined_again_under_a_new_id_finds_the_new_one() {
        let mut idx = SeriesIndex::default();
        let eu = Tags::from_pairs([("region", "eu")]);
        let def = |id| SeriesDef {
            id,
            app: "shop".into(),
            env: "prod".into(),
            name: "orders".into(),
            kind: Kind::Counter,
            tags: eu.clone(),
        };
        idx.insert(def(0), true);
        idx.insert(def(5), true);
        // Repeated adds are no-ops.
        idx.insert(def(5), true);
        let series = SeriesRef {
            app: "shop",
            env: "prod",
            name: "orders",
            kind: Kind::Counter,
            tags: &eu,
        };
        let found = idx.resolve(&mut Scratch::default(), series, 10).unwrap();
        assert_eq!(found.def.id, 5);
        assert_eq!(idx.len(), 2);
        assert!(idx.get(3).is_none() && idx.get(u64::MAX).is_none());
        assert_eq!(idx.next_id(), 6);
        assert_eq!(idx.all().map(|m| m.def.id).collect::<Vec<_>>(), vec![0, 5]);
    }

    #[test]
    fn a_far_id_from_a_damaged_definition_does_not_grow_the_vector() {
        let mut idx = SeriesIndex::default();
        let def = |id, host: &str| SeriesDef {
            id,
            app: "shop".into(),
            env: "prod".into(),
            name: "orders".into(),
            kind: Kind::Counter,
            tags: Tags::from_pairs([("host", host)]),
        };
        idx.insert(def(0, "a"), true);
        idx.insert(def(1 << 50, "far"), true);
        idx.insert(def(1 << 40, "farther"), true);
        assert!(idx.series.dense.len() < 10);
        // The next id follows the far one, and is held too.
        let mut scratch = Scratch::default();
        let b = Tags::from_pairs([("host", "b")]);
        let series = |tags| SeriesRef {
            app: "shop",
            env: "prod",
            name: "orders",
            kind: Kind::Counter,
            tags,
        };
        let new = idx.resolve(&mut scratch, series(&b), 10).unwrap();
        assert_eq!(new.def.id, (1 << 50) + 1);
        let far = Tags::from_pairs([("host", "far")]);
        assert_eq!(
            idx.resolve(&mut scratch, series(&far), 10).unwrap().def.id,
            1 << 50
        );
        assert_eq!(
            idx.resolve(&mut scratch, series(&b), 10).unwrap().def.id,
            (1 << 50) + 1
        );
        assert_eq!(
            idx.all().map(|m| m.def.id).collect::<Vec<_>>(),
            vec![0, 1 << 40, 1 << 50, (1 << 50) + 1]
        );
        assert!(idx.get(1 << 40).is_some() && idx.get(5).is_none());
    }

    #[test]
    fn many_series_resolve_to_their_own_ids_after_the_table_grows() {
        let mut idx = SeriesIndex::default();
        let mut buf = Scratch::default();
        let tags: Vec<Tags> = (0..5_000)
            .map(|i| Tags::from_pairs([("host", format!("h{i}").as_str())]))
            .collect();
        let series = |t| SeriesRef {
            app: "shop",
            env: "prod",
            name: "orders",
            kind: Kind::Gauge,
            tags: t,
        };
        let ids: Vec<SeriesId> = tags
            .iter()
            .map(|t| idx.resolve(&mut buf, series(t), 10_000).unwrap().def.id)
            .collect();
        assert_eq!(ids, (0..5_000).collect::<Vec<_>>());
        // In the order they were made (the next id is the one), backwards
        // and by a stride (it never is), and with the guess off by one.
        let orders: [Vec<usize>; 3] = [
            (0..5_000).collect(),
            (0..5_000).rev().collect(),
            (0..5_000).map(|i| i * 7 % 5_000).collect(),
        ];
        for order in orders {
            for i in order {
                assert_eq!(
                    idx.resolve(&mut buf, series(&tags[i]), 10_000)
                        .unwrap()
                        .def
                        .id,
                    ids[i]
                );
            }
        }
        buf.next = 17;
        let id = idx
            .resolve(&mut buf, series(&tags[16]), 10_000)
            .unwrap()
            .def
            .id;
        assert_eq!((id, buf.next), (16, 17));
        assert_eq!(idx.len(), 5_000);
    }

    #[test]
    fn kinds_and_limits() {
        let mut idx = SeriesIndex::default();
        let mut buf = Scratch::default();
        let eu = Tags::from_pairs([("region", "eu")]);
        let us = Tags::from_pairs([("region", "us")]);
        let a = idx
            .resolve(
                &mut buf,
                SeriesRef {
                    app: "shop",
                    env: "prod",
                    name: "orders",
                    kind: Kind::Counter,
                    tags: &eu,
                },
                2,
            )
            .unwrap()
            .clone();
        let again = idx
            .resolve(
                &mut buf,
                SeriesRef {
                    app: "shop",
                    env: "prod",
                    name: "orders",
                    kind: Kind::Counter,
                    tags: &eu,
                },
                2,
            )
            .unwrap();
        assert_eq!(a.def.id, again.def.id);
        let conflict = idx.resolve(
            &mut buf,
            SeriesRef {
                app: "shop",
                env: "staging",
                name: "orders",
                kind: Kind::Gauge,
                tags: &eu,
            },
            2,
        );
        assert!(matches!(conflict, Err(ResolveError::KindConflict { .. })));
        idx.resolve(
            &mut buf,
            SeriesRef {
                app: "shop",
                env: "prod",
                name: "orders",
                kind: Kind::Counter,
                tags: &us,
            },
            2,
        )
        .unwrap();
        let over = idx.resolve(
            &mut buf,
            SeriesRef {
                app: "shop",
                env: "prod",
                name: "other",
                kind: Kind::Gauge,
                tags: &eu,
            },
            2,
        );
        assert!(matches!(over, Err(ResolveError::SeriesLimit { .. })));
        // Another app has its own kinds and its own limit.
        idx.resolve(
            &mut buf,
            SeriesRef {
                app: "blog",
                env: "prod",
                name: "orders",
                kind: Kind::Gauge,
                tags: &eu,
            },
            2,
        )
        .unwrap();
        assert_eq!(idx.series_of("shop", Some("prod"), "orders").len(), 2);
        assert_eq!(
            idx.catalogue("shop", None, &|_| None)[0].tags["region"].len(),
            2
        );
    }
}
