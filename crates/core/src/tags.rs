//! Tags: string keys to string values, kept sorted by key so that the same
//! set always names the same series.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sorted, de-duplicated tag pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    pub fn new() -> Self {
        Tags(Vec::new())
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
        Tags(map.into_iter().collect())
    }

    /// Tags from pairs already sorted by key with no key twice (what a
    /// parser that sorted them itself has); `None` when they are not.
    pub fn from_sorted(pairs: Vec<(String, String)>) -> Option<Self> {
        pairs
            .windows(2)
            .all(|w| w[0].0 < w[1].0)
            .then_some(Tags(pairs))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The subset of these tags whose keys are in `keys` (for group-by).
    /// A key the series lacks is left out, so such series form their own group.
    pub fn project(&self, keys: &[String]) -> Tags {
        Tags(
            self.0
                .iter()
                .filter(|(k, _)| keys.iter().any(|g| g == k))
                .cloned()
                .collect(),
        )
    }
}

impl From<BTreeMap<String, String>> for Tags {
    fn from(map: BTreeMap<String, String>) -> Self {
        Tags(map.into_iter().collect())
    }
}

impl From<Tags> for BTreeMap<String, String> {
    fn from(tags: Tags) -> Self {
        tags.0.into_iter().collect()
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
