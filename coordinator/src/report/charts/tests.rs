use super::*;

/// A report's charts with the awkward cases: an absent value, a model with one
/// point, many series, long labels, values from 1e-6 to 1e-2.
pub(crate) fn fixture() -> ChartSet {
    let labels = [
        "cnn lr=0.01 batch=64",
        "cnn lr=0.001 batch=64 pretrained=cnn-imagenet-like frozen",
        "mlp hidden=256 lr=0.01",
        "logistic C=1.0",
        "svm kernel=rbf C=10 gamma=scale",
        "random-forest trees=100",
        "mlp hidden=1024 lr=0.001",
        "knn k=5",
    ];
    let acc = [0.91, 0.93, 0.86, 0.81, 0.88, 0.85, 0.87, f64::NAN];
    let secs = [120.0, 45.0, 30.0, 2.5, 600.0, 12.0, 95.0, f64::NAN];
    let co2 = [1e-3, 4e-4, 2e-4, 1e-6, 1e-2, 5e-5, 8e-4, f64::NAN];
    let est = |v: f64, rel: f64| Estimate::new(v, v * (1.0 - rel), v * (1.0 + rel));
    let bars = |values: &[f64], rel: f64| {
        labels
            .iter()
            .zip(values)
            .enumerate()
            .map(|(i, (l, &v))| Bar {
                label: l.to_string(),
                // The last model has no successful run; the third has one run.
                value: if v.is_nan() {
                    None
                } else if i == 2 {
                    Some(Estimate::exact(v))
                } else {
                    Some(est(v, rel))
                },
            })
            .collect::<Vec<_>>()
    };
    let pareto = [false, true, true, true, false, true, false];
    let points = (0..7)
        .map(|i| ScatterPoint {
            label: labels[i].to_string(),
            x: est(co2[i], 0.3),
            y: Estimate::new(acc[i], acc[i] - 0.01, acc[i] + 0.012),
            pareto: pareto[i],
        })
        .collect();
    let curves = |f: &dyn Fn(usize, f64) -> f64| {
        (0..7)
            .map(|i| Series {
                label: labels[i].to_string(),
                // The logistic regression has one "epoch"; the others five to ten.
                points: if i == 3 {
                    vec![(1.0, f(i, 1.0))]
                } else {
                    (1..=(5 + i)).map(|e| (e as f64, f(i, e as f64))).collect()
                },
            })
            .collect()
    };
    ChartSet {
        accuracy: BarChart::accuracy(bars(&acc, 0.01)),
        train_time: BarChart::train_time(bars(&secs, 0.2)),
        co2: BarChart::co2(bars(&co2, 0.3)),
        accuracy_vs_co2: ScatterChart::accuracy_vs_co2(points),
        accuracy_curves: LineChart::accuracy_curves(curves(&|i, e| {
            acc[i] * (1.0 - (-e / 2.0).exp() * 0.5)
        })),
        energy_curves: LineChart::energy_curves(curves(&|i, e| co2[i] * 2.5 * e / 10.0)),
    }
}

fn decode(png: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .expect("a valid PNG")
        .to_rgb8()
}

fn distinct_colours(img: &image::RgbImage) -> usize {
    let mut seen = std::collections::HashSet::new();
    for p in img.pixels() {
        seen.insert(p.0);
    }
    seen.len()
}

#[test]
fn every_chart_renders_as_png_and_svg_at_the_asked_size() {
    let set = fixture();
    let out = std::env::var_os("ECOBENCH_CHARTS_OUT").map(std::path::PathBuf::from);
    for (stem, chart) in set.charts() {
        let (w, h) = chart.preferred_size();
        let png = render_png(chart, w, h).unwrap();
        let img = decode(&png);
        assert_eq!(img.dimensions(), (w, h), "{stem}");
        // Text, bars, lines and the palette give many colours; a blank or failed
        // drawing gives one or two.
        assert!(distinct_colours(&img) > 20, "{stem} looks blank");
        // Dark (text) pixels exist on the left (axis labels) and at the top (title).
        let dark = |x: u32, y: u32| img.get_pixel(x, y).0.iter().all(|&c| c < 100);
        assert!(
            (0..w).any(|x| (0..40).any(|y| dark(x, y))),
            "{stem}: no title"
        );
        let svg = render_svg(chart, w, h).unwrap();
        assert!(svg.starts_with("<svg"), "{stem}");
        assert!(svg.contains(chart.title()), "{stem}: title");
        if let Some(dir) = &out {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{stem}.png")), &png).unwrap();
            std::fs::write(dir.join(format!("{stem}.svg")), &svg).unwrap();
        }
    }
}

#[test]
fn svgs_carry_their_axis_descriptions_units_and_legends() {
    let set = fixture();
    let svg = |chart| render_svg(chart, WIDTH, HEIGHT).unwrap();
    let acc = svg(Chart::Bars(&set.accuracy));
    assert!(acc.contains("test accuracy (fraction correct)"));
    assert!(acc.contains("model / configuration"));
    // The absent value is written as such, not drawn as a zero-length bar.
    assert!(acc.contains("– (no successful run)"));
    assert!(acc.contains("knn k=5"));
    // One run: a bar without a whisker, still labelled with its value.
    assert!(acc.contains("\n0.86\n"), "{acc}");

    // CO₂ from 1e-6 to 1e-2: a log axis, said so, with ticks per decade.
    let co2 = svg(Chart::Bars(&set.co2));
    assert!(co2.contains("emissions (kg CO₂e), log scale"));
    for tick in ["\n1e-6\n", "\n1e-4\n", "\n0.01\n"] {
        assert!(co2.contains(tick), "{tick} in {co2}");
    }
    let time = svg(Chart::Bars(&set.train_time));
    assert!(time.contains("train time (s), log scale"));

    let scatter = svg(Chart::Scatter(&set.accuracy_vs_co2));
    assert!(scatter.contains("emissions (kg CO₂e), log scale"));
    assert!(scatter.contains("test accuracy (fraction correct)"));
    assert!(scatter.contains("Pareto front (joined)"));
    assert!(scatter.contains("logistic C=1.0 (on the front)"));
    assert!(
        scatter.contains("<polyline"),
        "the front is drawn as a line"
    );

    let energy = svg(Chart::Lines(&set.energy_curves));
    assert!(energy.contains("cumulative energy (kWh), log scale"));
    assert!(energy.contains("\nepoch\n"));
    let curves = svg(Chart::Lines(&set.accuracy_curves));
    for label in ["cnn lr=0.01 batch=64", "knn k=5"] {
        let present = curves.contains(label);
        // knn has no curve in the fixture (7 series); the others all have one.
        assert_eq!(present, label != "knn k=5", "{label}");
    }
}

#[test]
fn a_log_axis_covers_every_decade_and_a_linear_one_starts_at_zero_for_bars() {
    let log = Axis::fit(&[1e-6, 3e-3, 1e-2], Scale::Auto, true);
    assert!(log.log);
    assert_eq!((log.lo, log.hi), (1e-6, 1e-2));
    assert_eq!(log.range(), -6.0..-2.0);
    // Below the axis (a zero or a negative interval end) sits on its end.
    assert_eq!(log.t(0.0), -6.0);
    let lin = Axis::fit(&[0.8, 0.9], Scale::Auto, true);
    assert!(!lin.log);
    assert_eq!(lin.lo, 0.0);
    assert!(lin.hi > 0.9);
    let single = Axis::fit(&[5.0], Scale::Auto, false);
    assert!(single.lo < 5.0 && single.hi > 5.0);
}

#[test]
fn numbers_are_short() {
    assert_eq!(fmt_num(0.0), "0");
    assert_eq!(fmt_num(0.873_21), "0.873");
    assert_eq!(fmt_num(120.0), "120");
    assert_eq!(fmt_num(12.345), "12.3");
    assert_eq!(fmt_num(1e-6), "1e-6");
    assert_eq!(fmt_num(3.162e-6), "3.16e-6");
    assert_eq!(fmt_num(2.5e6), "2.5e6");
}

#[test]
fn empty_charts_say_so_instead_of_failing() {
    let bars = BarChart::co2(vec![]);
    let svg = render_svg(Chart::Bars(&bars), WIDTH, HEIGHT).unwrap();
    assert!(svg.contains("no model/configuration to show"));
    let scatter = ScatterChart::accuracy_vs_co2(vec![]);
    let png = render_png(Chart::Scatter(&scatter), 400, 300).unwrap();
    assert_eq!(decode(&png).dimensions(), (400, 300));
    let lines = LineChart::energy_curves(vec![Series {
        label: "cnn".into(),
        points: vec![],
    }]);
    let svg = render_svg(Chart::Lines(&lines), WIDTH, HEIGHT).unwrap();
    assert!(svg.contains("no per-epoch values recorded"));
}

#[test]
fn bad_input_is_named() {
    let bars = BarChart::accuracy(vec![Bar {
        label: "cnn lr=0.01".into(),
        value: Some(Estimate::new(f64::NAN, 0.1, 0.2)),
    }]);
    let err = render_png(Chart::Bars(&bars), WIDTH, HEIGHT).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("\"cnn lr=0.01\" mean"), "{msg}");
    assert!(msg.contains("None"), "{msg}");
    let ok = BarChart::accuracy(vec![]);
    let err = render_svg(Chart::Bars(&ok), 100, 100).unwrap_err();
    assert!(
        matches!(
            err,
            ChartError::Size {
                width: 100,
                height: 100,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn all_charts_writes_each_chart_in_both_formats() {
    let files = all_charts(&fixture()).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "accuracy.png",
            "accuracy.svg",
            "train_time.png",
            "train_time.svg",
            "co2.png",
            "co2.svg",
            "accuracy_vs_co2.png",
            "accuracy_vs_co2.svg",
            "accuracy_curves.png",
            "accuracy_curves.svg",
            "energy_curves.png",
            "energy_curves.svg",
        ]
    );
    for (name, bytes) in &files {
        assert!(!bytes.is_empty(), "{name}");
        if name.ends_with(".png") {
            decode(bytes);
        } else {
            assert!(
                std::str::from_utf8(bytes).unwrap().contains("<svg"),
                "{name}"
            );
        }
    }
}

#[test]
fn a_single_bar_is_labelled_and_escaped() {
    let chart = BarChart::co2(vec![Bar {
        label: "cnn <lr=0.01>".into(),
        value: Some(Estimate::new(2e-4, 1e-4, 3e-4)),
    }]);
    let svg = render_svg(Chart::Bars(&chart), 800, 400).unwrap();
    if let Some(dir) = std::env::var_os("ECOBENCH_CHARTS_OUT") {
        let png = render_png(Chart::Bars(&chart), 800, 400).unwrap();
        std::fs::write(std::path::Path::new(&dir).join("one_bar.png"), png).unwrap();
    }
    assert!(svg.contains("cnn &lt;lr=0.01&gt;"), "{svg}");
    assert!(svg.contains("\n2e-4\n"), "{svg}");
}
