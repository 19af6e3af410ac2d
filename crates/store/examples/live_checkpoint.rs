//! Times checkpoints of live minutes on a kept data set:
//! `live_checkpoint DIR [ROUNDS]` pushes five new minutes to every series,
//! then checkpoints, ROUNDS times, printing each checkpoint's seconds.
use minutely_core::{Kind, Point, PointValue};
use minutely_store::embedded::{EmbeddedConfig, EmbeddedStore};
use minutely_store::{PushRequest, Store};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("DIR");
    let rounds: i64 = args.next().map_or(6, |r| r.parse().expect("ROUNDS"));
    let store = EmbeddedStore::open(EmbeddedConfig::new(&dir)).expect("open");
    let mut series = Vec::new();
    for app in store.apps().expect("apps") {
        for metric in store.catalogue(&app.name, None) {
            for s in store.series_of(&app.name, None, &metric.name) {
                series.push((
                    app.name.clone(),
                    s.env,
                    metric.name.clone(),
                    metric.kind,
                    s.tags,
                ));
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = now / 60 * 60 - rounds * 300;
    series.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    println!("{} series", series.len());
    let mut total = 0.0;
    for round in 0..rounds {
        for m in 0..5 {
            let ts = (start + (round * 5 + m) * 60 + 7) as f64;
            // One push per app and env, of at most 5,000 points.
            for chunk in series.chunk_by(|a, b| (&a.0, &a.1) == (&b.0, &b.1)) {
                for chunk in chunk.chunks(5_000) {
                    let (app, env) = (chunk[0].0.clone(), chunk[0].1.clone());
                    let points = chunk
                        .iter()
                        .map(|(_, _, name, kind, tags)| Point {
                            kind: *kind,
                            name: name.as_str().into(),
                            tags: tags.clone(),
                            ts,
                            value: PointValue::Single(if *kind == Kind::Gauge {
                                40.0
                            } else {
                                3.0
                            }),
                        })
                        .enumerate()
                        .collect();
                    store
                        .push(PushRequest {
                            app,
                            env,
                            batch: None,
                            points,
                        })
                        .expect("push");
                }
            }
        }
        let t = Instant::now();
        store.checkpoint().expect("checkpoint");
        let secs = t.elapsed().as_secs_f64();
        total += secs;
        println!("round {round}: checkpoint {secs:.3} s");
    }
    println!(
        "mean {:.3} s per checkpoint of 5 minutes x {} series",
        total / rounds as f64,
        series.len()
    );
}
