//! Prints where the bytes of a data directory go: `inspect DIR [--compact]`.
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let compact = args.next().as_deref() == Some("--compact");
    let path = dir.join("minutely.redb");
    let mut db = redb::Database::open(&path).expect("open");
    let blocks: TableDefinition<(u64, u8, u32), &[u8]> = TableDefinition::new("blocks");
    {
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(blocks).unwrap();
        let mut by_res = [(0u64, 0u64); 3];
        for e in t.iter().unwrap() {
            let (k, v) = e.unwrap();
            let r = k.value().1 as usize;
            by_res[r].0 += 1;
            by_res[r].1 += v.value().len() as u64;
        }
        for (r, (n, b)) in by_res.iter().enumerate() {
            println!("resolution {r}: {n} blocks, {b} bytes");
        }
        let stats = t.stats().unwrap();
        println!(
            "blocks table: leaf bytes {}, stored {}, fragmented {}",
            stats.leaf_pages(),
            stats.stored_bytes(),
            stats.fragmented_bytes()
        );
    }
    println!("file: {} bytes", std::fs::metadata(&path).unwrap().len());
    if compact {
        db.compact().unwrap();
        println!(
            "after compact: {} bytes",
            std::fs::metadata(&path).unwrap().len()
        );
    }
}
