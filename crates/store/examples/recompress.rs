//! Compares deflate encoders on the blocks of a data directory:
//! `recompress DIR [gauge|counter|distribution]` inflates every stored
//! block (or every block of one kind) and times compressing all of them
//! again with miniz and with libdeflate at several levels, printing the
//! total bytes each gives.
use std::io::Read;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    // The kind byte follows the version byte (docs/format.md).
    let kind: Option<u8> = args.next().map(|k| match k.as_str() {
        "gauge" => 1,
        "counter" => 2,
        "distribution" => 3,
        other => panic!("unknown kind {other}: gauge, counter or distribution"),
    });
    let mut payloads = Vec::new();
    let mut stored = 0;
    let mut add = |b: &[u8]| {
        if kind.is_some_and(|k| b[1] != k) {
            return;
        }
        stored += b.len();
        let mut out = Vec::new();
        // Version and kind bytes first, the CRC32 last (docs/format.md).
        flate2::read::DeflateDecoder::new(&b[2..b.len() - 4])
            .read_to_end(&mut out)
            .expect("inflate");
        payloads.push(out);
    };
    for (_, path, place) in minutely_store::embedded::stored_blocks(&dir).expect("places") {
        add(&minutely_store::embedded::read_block(&path, place).expect("block file"));
    }
    let raw: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "{} blocks: {stored} bytes stored, {raw} bytes inflated",
        payloads.len()
    );
    for level in [1, 6, 9] {
        let started = Instant::now();
        let n: usize = payloads
            .iter()
            .map(|p| miniz_oxide::deflate::compress_to_vec(p, level).len())
            .sum();
        println!("miniz level {level}: {n} bytes in {:?}", started.elapsed());
    }
    for level in [1, 2, 3, 4, 5, 6, 9, 12] {
        let lvl = libdeflater::CompressionLvl::new(level).expect("level");
        let mut c = libdeflater::Compressor::new(lvl);
        let mut buf = Vec::new();
        let started = Instant::now();
        let mut n = 0;
        for p in &payloads {
            buf.resize(c.deflate_compress_bound(p.len()), 0);
            n += c.deflate_compress(p, &mut buf).expect("compress");
        }
        println!(
            "libdeflate level {level}: {n} bytes in {:?}",
            started.elapsed()
        );
    }
}
