//! What a data directory would take on disk with its blocks outside redb:
//! `blocks_outside DIR`. Copies the database (DIR is left as it is), moves
//! every block into one append-only file (each block's bytes as stored,
//! which carry their own checksum), leaves redb a table of where each block
//! is (file, offset, length), compacts the copy, and prints the sizes beside
//! the directory's own.
use redb::{ReadableTable, TableDefinition};

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("DIR"));
    let work = tempfile::tempdir().expect("temp dir");
    let copy = work.path().join("minutely.redb");
    std::fs::copy(dir.join("minutely.redb"), &copy).expect("copy");
    let blocks: TableDefinition<(u64, u8, u32), &[u8]> = TableDefinition::new("blocks");
    let places: TableDefinition<(u64, u8, u32), (u32, u32, u32)> =
        TableDefinition::new("block_places");

    let mut db = redb::Database::open(&copy).expect("open");
    let mut segment = Vec::new();
    let txn = db.begin_write().expect("write");
    {
        let stored = txn.open_table(blocks).expect("blocks");
        let mut index = txn.open_table(places).expect("places");
        for entry in stored.iter().expect("iter") {
            let (k, v) = entry.expect("block");
            let bytes = v.value();
            let at = (0, segment.len() as u32, bytes.len() as u32);
            segment.extend_from_slice(bytes);
            index.insert(k.value(), at).expect("insert");
        }
    }
    txn.delete_table(blocks).expect("delete");
    txn.commit().expect("commit");
    // Each pass can only give back the file's free tail.
    while db.compact().expect("compact") {}
    drop(db);

    let mb = |b: u64| b as f64 / 1e6;
    let redb_now = std::fs::metadata(dir.join("minutely.redb"))
        .expect("size")
        .len();
    let redb_after = std::fs::metadata(&copy).expect("size").len();
    let seg = segment.len() as u64;
    println!("now: minutely.redb {:.2} MB", mb(redb_now));
    println!(
        "blocks outside: segment {:.2} MB + minutely.redb {:.2} MB = {:.2} MB",
        mb(seg),
        mb(redb_after),
        mb(seg + redb_after)
    );
}
