//! Prints where the bytes of a data directory go: `inspect DIR [--compact]`.
use redb::{ReadableTableMetadata, TableHandle, TableStats};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let compact = args.next().as_deref() == Some("--compact");
    let path = dir.join("minutely.redb");
    let mb = |b: u64| b as f64 / 1e6;
    // Before the database is opened here: this opens it too.
    let mut by_res = [(0u64, 0u64); 3];
    for ((_, r, _), _, place) in minutely_store::embedded::stored_blocks(&dir).expect("places") {
        by_res[usize::from(r)].0 += 1;
        by_res[usize::from(r)].1 += u64::from(place.len);
    }
    for (r, (n, b)) in by_res.iter().enumerate() {
        println!("resolution {r}: {n} blocks, {b} bytes");
    }
    let mut db = redb::Database::open(&path).expect("open");
    {
        let txn = db.begin_read().unwrap();
        let show = |name: &str, s: TableStats| {
            println!(
                "table {name}: leaf pages {} ({:.1} MB), branch pages {}, stored {:.1} MB, metadata {:.1} MB, fragmented {:.1} MB",
                s.leaf_pages(),
                mb(s.leaf_pages() * 4096),
                s.branch_pages(),
                mb(s.stored_bytes()),
                mb(s.metadata_bytes()),
                mb(s.fragmented_bytes())
            )
        };
        for handle in txn.list_tables().unwrap() {
            let name = handle.name().to_string();
            match untyped_stats(&txn, &name) {
                Ok(s) => show(&name, s),
                Err(e) => println!("table {name}: {e}"),
            }
        }
    }
    {
        let txn = db.begin_write().unwrap();
        let s = txn.stats().unwrap();
        println!(
            "database: allocated pages {} ({:.1} MB), leaf {}, branch {}, stored {:.1} MB, metadata {:.1} MB, fragmented {:.1} MB",
            s.allocated_pages(),
            mb(s.allocated_pages() * s.page_size() as u64),
            s.leaf_pages(),
            s.branch_pages(),
            mb(s.stored_bytes()),
            mb(s.metadata_bytes()),
            mb(s.fragmented_bytes())
        );
        txn.abort().unwrap();
    }
    println!("file: {} bytes", std::fs::metadata(&path).unwrap().len());
    let files: Vec<u64> = std::fs::read_dir(dir.join("blocks"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .collect()
        })
        .unwrap_or_default();
    println!(
        "block files: {} holding {} bytes",
        files.len(),
        files.iter().sum::<u64>()
    );
    if compact {
        println!("compacted: {:?}", db.compact());
        println!(
            "after compact: {} bytes",
            std::fs::metadata(&path).unwrap().len()
        );
    }
}

/// Stats of a table whose key and value types this example does not name.
fn untyped_stats(txn: &redb::ReadTransaction, name: &str) -> Result<TableStats, String> {
    use redb::TableDefinition as D;
    macro_rules! try_as {
        ($k:ty, $v:ty) => {
            if let Ok(t) = txn.open_table(D::<$k, $v>::new(name)) {
                return t.stats().map_err(|e| e.to_string());
            }
        };
    }
    try_as!(u64, &[u8]);
    try_as!(u64, i64);
    try_as!(u64, (u64, u64));
    try_as!(u128, (i64, u64));
    try_as!((i64, u128), ());
    try_as!(&str, &[u8]);
    try_as!((&str, &str), &[u8]);
    try_as!((&str, &str), &str);
    try_as!(&str, u64);
    Err("unknown key and value types".into())
}
