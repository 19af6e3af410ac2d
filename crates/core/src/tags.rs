//! Tags: string keys to string values, kept sorted by key so that the same
//! set always names the same series.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Sorted, de-duplicated tag pairs, kept in two allocations whatever
/// their number: every point of a push builds one, so a string per key and
/// per value would be most of its allocations. Shared, not copied, by a
/// clone: the points of one push that carry the same tags (the metrics of
/// one host) share one set, and so do the series made from them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct Tags {
    /// Keys and values one after another: key 0, value 0, key 1, ...
    text: Arc<str>,
    /// Where each key and each value ends in `text`.
    ends: Arc<[usize]>,
}

impl Tags {
    pub fn new() -> Self {
        Tags::default()
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Tags::from(map)
    }

    /// Whether these are exactly `pairs`, in order.
    pub fn is(&self, pairs: &[(&str, &str)]) -> bool {
        self.len() == pairs.len() && self.iter().eq(pairs.iter().copied())
    }

    /// Tags from pairs already sorted by key with no key twice (what a
    /// parser that sorted them itself has); `None` when they are not.
    pub fn from_sorted(pairs: &[(&str, &str)]) -> Option<Self> {
        pairs
            .windows(2)
            .all(|w| w[0].0 < w[1].0)
            .then(|| Tags::build(pairs.iter().copied()))
    }

    /// From sorted, unique pairs.
    fn build<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let len = pairs.clone().map(|(k, v)| k.len() + v.len()).sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(2 * pairs.clone().count());
        for (k, v) in pairs {
            text.push_str(k);
            ends.push(text.len());
            text.push_str(v);
            ends.push(text.len());
        }
        Tags {
            text: text.into(),
            ends: ends.into(),
        }
    }

    /// The text of key (even `i`) or value (odd `i`) number `i / 2`.
    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    fn pair(&self, i: usize) -> (&str, &str) {
        (self.part(2 * i), self.part(2 * i + 1))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.part(2 * mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.part(2 * mid + 1)),
            }
        }
        None
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        (0..self.len()).map(|i| self.pair(i))
    }

    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The subset of these tags whose keys are in `keys` (for group-by).
    /// A key the series lacks is left out, so such series form their own group.
    pub fn project(&self, keys: &[String]) -> Tags {
        Tags::build(self.iter().filter(|(k, _)| keys.iter().any(|g| g == k)))
    }
}

/// Pair by pair, as a sorted list of pairs compares.
impl Ord for Tags {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Tags {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// As a list of pairs hashes, so a hash is what it was before tags were
/// packed.
impl std::hash::Hash for Tags {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for pair in self.iter() {
            pair.hash(state);
        }
    }
}

impl std::fmt::Debug for Tags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Tags")
            .field(&self.iter().collect::<Vec<_>>())
            .finish()
    }
}

impl From<BTreeMap<String, String>> for Tags {
    fn from(map: BTreeMap<String, String>) -> Self {
        Tags::build(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl From<Tags> for BTreeMap<String, String> {
    fn from(tags: Tags) -> Self {
        tags.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// A tag filter from a query: `key:value`, where the value may hold `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub pattern: String,
}

impl TagFilter {
    /// Parses `key:value`; the value may itself contain `:`.
    pub fn parse(s: &str) -> Result<TagFilter, String> {
        match s.split_once(':') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok(TagFilter {
                key: k.to_string(),
                pattern: v.to_string(),
            }),
            _ => Err(format!(
                "tag filter {:?} must look like key:value",
                crate::validate::clip(s)
            )),
        }
    }

    /// A filter on a key the series lacks matches only the pattern `*`:
    /// "any value of that key" includes "no value" (DESIGN section 4).
    pub fn matches(&self, tags: &Tags) -> bool {
        match tags.get(&self.key) {
            Some(v) => wildcard_match(&self.pattern, v),
            None => self.pattern == "*",
        }
    }
}

/// Glob match where `*` stands for any run of characters (also none).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_sort_and_dedupe() {
        let t = Tags::from_pairs([("b", "2"), ("a", "1"), ("b", "3")]);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "3")]);
        assert_eq!(t.get("b"), Some("3"));
        assert_eq!(t.get("c"), None);
    }

    proptest::proptest! {
        /// Built from any pairs, tags hold, find and order them as a sorted
        /// list of pairs does.
        #[test]
        fn tags_behave_as_sorted_pairs(
            a in proptest::collection::vec(("[a-c]{0,3}", ".{0,3}"), 0..6),
            b in proptest::collection::vec(("[a-c]{0,3}", ".{0,3}"), 0..6),
        ) {
            let sorted = |p: &Vec<(String, String)>| -> Vec<(String, String)> {
                p.iter().cloned().collect::<BTreeMap<_, _>>().into_iter().collect()
            };
            let (sa, sb) = (sorted(&a), sorted(&b));
            let (ta, tb) = (Tags::from_pairs(a.clone()), Tags::from_pairs(b.clone()));
            let pairs = |t: &Tags| -> Vec<(String, String)> {
                t.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
            };
            proptest::prop_assert_eq!(pairs(&ta), sa.clone());
            proptest::prop_assert_eq!(ta.len(), sa.len());
            proptest::prop_assert_eq!(ta.cmp(&tb), sa.cmp(&sb));
            proptest::prop_assert_eq!(ta == tb, sa == sb);
            for (k, _) in a.iter().chain(&b) {
                let want = sa.iter().find(|(sk, _)| sk == k).map(|(_, v)| v.as_str());
                proptest::prop_assert_eq!(ta.get(k), want);
            }
            let refs: Vec<(&str, &str)> = sa.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            proptest::prop_assert_eq!(Tags::from_sorted(&refs), Some(ta.clone()));
            let keys: Vec<String> = b.iter().map(|(k, _)| k.clone()).collect();
            let projected: Vec<(String, String)> =
                sa.iter().filter(|(k, _)| keys.contains(k)).cloned().collect();
            proptest::prop_assert_eq!(pairs(&ta.project(&keys)), projected);
            let hash = |x: &dyn Fn(&mut std::hash::DefaultHasher)| {
                let mut h = std::hash::DefaultHasher::new();
                x(&mut h);
                std::hash::Hasher::finish(&h)
            };
            proptest::prop_assert_eq!(
                hash(&|h| std::hash::Hash::hash(&ta, h)),
                hash(&|h| std::hash::Hash::hash(&sa, h))
            );
            let json = serde_json::to_string(&ta).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Tags>(&json).unwrap(), ta);
        }
    }

    #[test]
    fn from_sorted_refuses_unsorted_or_repeated_keys() {
        assert!(Tags::from_sorted(&[("b", "1"), ("a", "2")]).is_none());
        assert!(Tags::from_sorted(&[("a", "1"), ("a", "2")]).is_none());
        assert_eq!(
            format!("{:?}", Tags::from_sorted(&[("a", "1")]).unwrap()),
            r#"Tags([("a", "1")])"#
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("eu-*", "eu-west"));
        assert!(!wildcard_match("eu-*", "us-east"));
        assert!(wildcard_match("*-west", "eu-west"));
        assert!(wildcard_match("e*w*t", "eu-west"));
        assert!(!wildcard_match("e*w*tx", "eu-west"));
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("exact", "exact"));
    }

    #[test]
    fn filter_on_missing_key_matches_only_star() {
        let t = Tags::from_pairs([("region", "eu")]);
        assert!(TagFilter::parse("host:*").unwrap().matches(&t));
        assert!(!TagFilter::parse("host:a").unwrap().matches(&t));
        assert!(TagFilter::parse("region:e*").unwrap().matches(&t));
        assert!(TagFilter::parse("url:http://x").unwrap().pattern == "http://x");
        assert!(TagFilter::parse("nocolon").is_err());
    }
}
