//! How much memory this process may use (the machine's, or its cgroup's
//! limit when lower), to size the block cache and the head by it.

use std::path::Path;

/// The block cache's default: an eighth of the memory available, at least
/// 64 MiB and at most 2 GiB (or 256 MiB when the memory is unknown). A
/// wide query's blocks must all fit, or each run evicts what the next
/// needs; an eighth leaves the rest to the head, the page cache and the
/// rest of the machine.
pub fn default_block_cache_bytes(memory: Option<u64>) -> usize {
    const MIB: u64 = 1 << 20;
    match memory {
        Some(bytes) => (bytes / 8).clamp(64 * MIB, 2_048 * MIB) as usize,
        None => 256 << 20,
    }
}

/// Open series-minutes before an early checkpoint: a sixty-fourth of the
/// memory available at about 50 bytes a minute, within 1-8 million (1
/// million when the memory is unknown). A backfill's checkpoints rewrite
/// the day blocks they touch, so fewer of them push faster; the head's
/// memory and the log replayed after a crash grow with it. The 50 bytes
/// cover a minute twice (the head frozen for a checkpoint beside the one
/// filling) at the 16 bytes of a counter's minute and the 24 of a
/// one-value gauge's, with the map and the vectors' spare room.
pub fn default_open_minutes(memory: Option<u64>) -> usize {
    const MINUTE_BYTES: u64 = 50;
    match memory {
        Some(bytes) => (bytes / 64 / MINUTE_BYTES).clamp(1_000_000, 8_000_000) as usize,
        None => 1_000_000,
    }
}

/// The memory available to this process: the machine's total, or the
/// cgroup's limit (v2 or v1) when that is lower. `None` when neither can
/// be read.
pub fn available() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total(&text));
    let limit = cgroup_limit(Path::new("/sys/fs/cgroup"));
    match (total, limit) {
        (Some(t), Some(l)) => Some(t.min(l)),
        (t, l) => t.or(l),
    }
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1_024)
}

/// The memory limit of the cgroup mounted at `root`: v2's `memory.max`,
/// or v1's `memory/memory.limit_in_bytes`. "max" and v1's huge "no
/// limit" value are no limit.
fn cgroup_limit(root: &Path) -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let text = read("memory.max").or_else(|| read("memory/memory.limit_in_bytes"))?;
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < 1 << 60).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eighth_within_bounds() {
        const GIB: u64 = 1 << 30;
        assert_eq!(default_block_cache_bytes(Some(24 * GIB)), 2 << 30);
        assert_eq!(default_block_cache_bytes(Some(4 * GIB)), 512 << 20);
        assert_eq!(default_block_cache_bytes(Some(GIB / 4)), 64 << 20);
        assert_eq!(default_block_cache_bytes(None), 256 << 20);
    }

    #[test]
    fn open_minutes_a_sixty_fourth_within_bounds() {
        const GIB: u64 = 1 << 30;
        assert_eq!(default_open_minutes(Some(24 * GIB)), 8_000_000);
        assert_eq!(default_open_minutes(Some(4 * GIB)), 1_342_177);
        assert_eq!(default_open_minutes(Some(GIB)), 1_000_000);
        assert_eq!(default_open_minutes(Some(256 * GIB)), 8_000_000);
        assert_eq!(default_open_minutes(None), 1_000_000);
    }

    #[test]
    fn reads_meminfo_and_cgroup_limits() {
        let meminfo = "MemTotal:       25165824 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total(meminfo), Some(24 << 30));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);

        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_limit(dir.path()), None);
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        let v1 = dir.path().join("memory/memory.limit_in_bytes");
        std::fs::write(&v1, "9223372036854771712\n").unwrap();
        assert_eq!(cgroup_limit(dir.path()), None, "v1 without a limit");
        std::fs::write(&v1, "1073741824\n").unwrap();
        assert_eq!(cgroup_limit(dir.path()), Some(1 << 30));
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_limit(dir.path()), None, "v2 without a limit");
        std::fs::write(dir.path().join("memory.max"), "536870912\n").unwrap();
        assert_eq!(cgroup_limit(dir.path()), Some(512 << 20));
    }
}
