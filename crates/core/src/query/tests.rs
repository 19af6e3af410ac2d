use super::*;
use crate::agg::{DistAgg, GaugeAgg};

#[test]
fn grid_buckets() {
    let g = Grid::new(600, 900, 120);
    assert_eq!(g.n, 3);
    assert_eq!(g.bucket_of(599), None);
    assert_eq!(g.bucket_of(600), Some(0));
    assert_eq!(g.bucket_of(839), Some(1));
    assert_eq!(g.bucket_of(899), Some(2));
    assert_eq!(g.bucket_of(960), None);
    assert_eq!(Grid::new(0, 60, 60).n, 1);
    assert!(Grid::new(-120, 600, 60).is_one_to_one(60));
    assert!(!Grid::new(30, 600, 60).is_one_to_one(60));
    assert!(!Grid::new(0, 600, 120).is_one_to_one(60));
}

#[test]
fn counters_add_across_series_and_time() {
    let a = [(0, Agg::Counter(1.0)), (60, Agg::Counter(2.0))];
    let b = [(60, Agg::Counter(10.0)), (180, Agg::Counter(5.0))];
    let g = Grid::new(0, 240, 120);
    let v = evaluate(Kind::Counter, Field::Sum, Across::Sum, &g, &[&a, &b]);
    assert_eq!(v, vec![Some(13.0), Some(5.0)]);
    let r = evaluate(Kind::Counter, Field::Rate, Across::Sum, &g, &[&a, &b]);
    assert_eq!(r, vec![Some(13.0 / 120.0), Some(5.0 / 120.0)]);
    let g = Grid::new(0, 300, 60);
    let v = evaluate(Kind::Counter, Field::Sum, Across::Sum, &g, &[&a]);
    assert_eq!(v, vec![Some(1.0), Some(2.0), None, None, None]);
}

#[test]
fn gauges_combine_across_series() {
    let g = |v: f64, ms: i64| Agg::Gauge(GaugeAgg::single(v, ms));
    let a = [(0, g(4.0, 1)), (60, g(6.0, 61_000))];
    let b = [(0, g(10.0, 1))];
    let grid = Grid::new(0, 120, 120);
    let sum = evaluate(Kind::Gauge, Field::Last, Across::Sum, &grid, &[&a, &b]);
    assert_eq!(sum, vec![Some(16.0)]);
    let mean = evaluate(Kind::Gauge, Field::Last, Across::Mean, &grid, &[&a, &b]);
    assert_eq!(mean, vec![Some(8.0)]);
    let max = evaluate(Kind::Gauge, Field::Max, Across::Min, &grid, &[&a, &b]);
    assert_eq!(max, vec![Some(6.0)]);
    let m = evaluate(Kind::Gauge, Field::Mean, Across::Sum, &grid, &[&a]);
    assert_eq!(m, vec![Some(5.0)]);
}

#[test]
fn distributions_merge_sketches_across_series() {
    let mut x = DistAgg::single(1.0);
    x.merge(&DistAgg::single(2.0));
    let y = DistAgg::single(100.0);
    let a = [(0, Agg::Distribution(Box::new(x)))];
    let b = [(0, Agg::Distribution(Box::new(y)))];
    let grid = Grid::new(0, 60, 60);
    assert_eq!(
        evaluate(
            Kind::Distribution,
            Field::Count,
            Across::Sum,
            &grid,
            &[&a, &b]
        ),
        vec![Some(3.0)]
    );
    assert_eq!(
        evaluate(
            Kind::Distribution,
            Field::Max,
            Across::Sum,
            &grid,
            &[&a, &b]
        ),
        vec![Some(100.0)]
    );
    let p50 = evaluate(
        Kind::Distribution,
        Field::Quantile(0.5),
        Across::Sum,
        &grid,
        &[&a, &b],
    )[0]
    .unwrap();
    assert!((p50 - 2.0).abs() <= 0.02);
}

use proptest::prelude::*;

proptest! {
    /// Parts give the very numbers whole aggregates give, for every
    /// field with a part, any grouping of minutes and any `across`.
    #[test]
    fn parts_evaluate_like_aggregates(
        series in prop::collection::vec(
            prop::collection::btree_map(0i64..40, (-1e4f64..1e4, 0i64..5_000, 1u64..4), 0..20),
            0..5,
        ),
        step in prop_oneof![Just(60i64), Just(120), Just(300), Just(3_600)],
        across in prop_oneof![Just(Across::Sum), Just(Across::Mean), Just(Across::Min), Just(Across::Max)],
        // Grids starting on a bucket, and off one (rollups read from a
        // start off their hour).
        from in prop_oneof![Just(0i64), Just(30), Just(-90), Just(600)],
    ) {
        let grid = Grid::new(from, 40 * 60, step);
        let gauges: Vec<Vec<(i64, Agg)>> = series.iter().map(|m| m.iter().map(|(t, (v, ms, n))| {
            let mut g = GaugeAgg::single(*v, *ms);
            g.count = *n;
            g.sum = v * 3.0;
            g.min = v - 1.0;
            (t * 60, Agg::Gauge(g))
        }).collect()).collect();
        let counters: Vec<Vec<(i64, Agg)>> = series.iter().map(|m| m.iter().map(|(t, (v, _, _))| (t * 60, Agg::Counter(*v))).collect()).collect();
        let cases = [
            (Kind::Gauge, Field::Last, &gauges),
            (Kind::Gauge, Field::Mean, &gauges),
            (Kind::Gauge, Field::Min, &gauges),
            (Kind::Gauge, Field::Max, &gauges),
            (Kind::Counter, Field::Sum, &counters),
            (Kind::Counter, Field::Rate, &counters),
        ];
        for (kind, field, data) in cases {
            let part = Part::for_field(kind, field).unwrap();
            let whole: Vec<&[(i64, Agg)]> = data.iter().map(Vec::as_slice).collect();
            let slim: Vec<Vec<(i64, Slim)>> = data.iter().map(|s| s.iter().map(|(t, a)| (*t, part.of(a).unwrap())).collect()).collect();
            let slim: Vec<&[(i64, Slim)]> = slim.iter().map(Vec::as_slice).collect();
            let bits = |v: Vec<Option<f64>>| v.into_iter().map(|x| x.map(f64::to_bits)).collect::<Vec<_>>();
            prop_assert_eq!(
                bits(evaluate_parts(kind, field, part, across, (&grid, 60), &slim)),
                bits(evaluate(kind, field, across, &grid, &whole))
            );
        }
    }
}

proptest! {
    /// Parts land in the buckets `Grid::bucket_of` names, in any order
    /// and however far outside the grid.
    #[test]
    fn parts_merge_into_the_buckets_of_their_times(
        ts in prop::collection::vec(prop_oneof![-200i64..5_000, any::<i64>()], 0..60),
        sorted in any::<bool>(),
        from in prop_oneof![Just(0i64), -300i64..300, Just(i64::MAX - 100)],
        step in prop_oneof![Just(60i64), Just(7), Just(300), Just(3_600)],
    ) {
        let mut ts = ts;
        if sorted {
            ts.sort();
        }
        let grid = Grid::new(from, from.saturating_add(4_000), step);
        let buckets: Vec<(i64, Slim)> = ts.iter().enumerate().map(|(k, &t)| (t, Slim { v: k as f64, w: 1 })).collect();
        let mut got = vec![None; grid.n];
        merge_parts_into_grid(&grid, Part::Mean, &buckets, &mut got);
        let mut want: Vec<Option<Slim>> = vec![None; grid.n];
        for &(t, s) in &buckets {
            if let Some(i) = grid.bucket_of(t) {
                match &mut want[i] {
                    Some(a) => Part::Mean.merge(a, s),
                    slot => *slot = Some(s),
                }
            }
        }
        prop_assert_eq!(got, want);
    }
}

proptest! {
    /// Distributions fold per bucket to the numbers that merging whole
    /// aggregates per bucket gives, for every field.
    #[test]
    fn distributions_fold_like_merged_aggregates(
        series in prop::collection::vec(
            prop::collection::btree_map(0i64..40, prop::collection::vec(prop_oneof![0.01f64..1e4, -50f64..50.0, Just(0.0)], 1..6), 0..20),
            0..6,
        ),
        step in prop_oneof![Just(60i64), Just(300), Just(3_600)],
    ) {
        let grid = Grid::new(0, 40 * 60, step);
        let data: Vec<Vec<(i64, Agg)>> = series.iter().map(|m| m.iter().map(|(t, vals)| {
            let mut d = DistAgg::single(vals[0]);
            vals[1..].iter().for_each(|v| d.merge(&DistAgg::single(*v)));
            (t * 60, Agg::Distribution(Box::new(d)))
        }).collect()).collect();
        for field in [Field::Count, Field::Sum, Field::Mean, Field::Min, Field::Max, Field::Quantile(0.5), Field::Quantile(0.95), Field::Quantile(0.0)] {
            let mut merged: Vec<Option<Agg>> = vec![None; grid.n];
            for s in &data {
                merge_into_grid(&grid, s, &mut merged);
            }
            let expected: Vec<Option<u64>> = merged
                .iter()
                .map(|a| a.as_ref().and_then(|a| field.value(a, grid.step)).map(f64::to_bits))
                .collect();
            let slices: Vec<&[(i64, Agg)]> = data.iter().map(Vec::as_slice).collect();
            let got: Vec<Option<u64>> = evaluate(Kind::Distribution, field, Across::Sum, &grid, &slices)
                .into_iter()
                .map(|v| v.map(f64::to_bits))
                .collect();
            prop_assert_eq!(&got, &expected);
            // Rows give the same bits, for a distribution's evaluation
            // and (as aggregates again) for a counter's.
            // Only quantiles read the sketches.
            let sketches = matches!(field, Field::Quantile(_));
            let mut e = Evaluation::new(Kind::Distribution, field, Across::Sum, grid);
            data.iter().for_each(|s| e.add_dists(&DistRows::from_buckets(s, sketches)));
            let rows: Vec<Option<u64>> = e.finish().into_iter().map(|v| v.map(f64::to_bits)).collect();
            prop_assert_eq!(&rows, &expected);
            let mut e = Evaluation::new(Kind::Counter, field, Across::Sum, grid);
            data.iter().for_each(|s| e.add_dists(&DistRows::from_buckets(s, sketches)));
            let rows: Vec<Option<u64>> = e.finish().into_iter().map(|v| v.map(f64::to_bits)).collect();
            prop_assert_eq!(rows, expected);
        }
    }
}

#[test]
fn auto_steps() {
    assert_eq!(auto_step(3_600, 1_500), 60);
    assert_eq!(auto_step(86_400, 1_500), 60);
    assert_eq!(auto_step(7 * 86_400, 1_500), 600);
    assert_eq!(auto_step(30 * 86_400, 1_500), 1_800);
    assert_eq!(auto_step(400 * 86_400, 1_500), 43_200);
    assert_eq!(auto_step(10_000 * 86_400, 1_500), 7 * 86_400);
}

#[test]
fn counters_on_grids_too_long_to_read_densely_fold_per_series() {
    // 600 output buckets of 1,000 minutes: 600,000 minute buckets per
    // series is past what is read densely, so each series is read on the
    // output grid itself; the sums are the same (whole numbers, exact in
    // any order).
    let grid = Grid::new(0, 600 * 60_000, 60_000);
    let e = PartsEvaluation::new(Kind::Counter, Field::Sum, Part::Sum, Across::Max, grid, 60);
    assert_eq!(e.read_grid(grid.start(grid.n)), grid);
    let a: Vec<(i64, Slim)> = (0..3_000)
        .map(|m| (m * 60, Slim { v: 1.0, w: 0 }))
        .collect();
    let b: Vec<(i64, Slim)> = (0..3_000)
        .step_by(2)
        .map(|m| (m * 60, Slim { v: 2.0, w: 0 }))
        .collect();
    let got = evaluate_parts(
        Kind::Counter,
        Field::Sum,
        Part::Sum,
        Across::Max,
        (&grid, 60),
        &[&a, &b],
    );
    // Added across series although `across` says max.
    let two = Some(2_000.0);
    assert_eq!(&got[..4], &[two, two, two, None]);
    // A day of minutes at 5-minute steps is read on the minutes' grid.
    let day = Grid::new(0, 86_400, 300);
    let e = PartsEvaluation::new(Kind::Counter, Field::Sum, Part::Sum, Across::Sum, day, 60);
    assert_eq!(e.read_grid(86_400), Grid::new(0, 86_400, 60));
}
