//! The HTML report page in a real browser: Debian's chromium, headless, offline,
//! takes a screenshot of a page holding every chart; the screenshot must show the
//! charts (their bar colour), text and tables, not a blank or broken page.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecobench_coordinator::report::charts::{
    Bar, BarChart, ChartSet, Estimate, LineChart, ScatterChart, ScatterPoint, Series, render_svg,
};
use ecobench_coordinator::report::html::Page;

/// The longest chromium may take to start, render and exit.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);
const WINDOW: (u32, u32) = (1200, 2000);
/// The bars' fill colour in charts.rs (#4E79A7).
const BAR_FILL: [u8; 3] = [78, 121, 167];

fn chart_set() -> ChartSet {
    let models = [
        ("cnn lr=0.01 batch=64", 0.91, 120.0, 1e-3),
        ("mlp hidden=256 lr=0.01", 0.86, 30.0, 2e-5),
        ("logistic C=1.0", 0.81, 2.5, 1e-6),
    ];
    let est = |v: f64| Estimate::new(v, v * 0.9, v * 1.1);
    let bars = |f: &dyn Fn(f64, f64, f64) -> f64| {
        let mut b: Vec<Bar> = models
            .iter()
            .map(|&(label, a, s, c)| Bar {
                label: label.into(),
                value: Some(est(f(a, s, c))),
            })
            .collect();
        b.push(Bar {
            label: "knn k=5".into(),
            value: None,
        });
        b
    };
    let curves = |f: &dyn Fn(f64, f64, f64) -> f64| {
        models
            .iter()
            .map(|&(label, a, _, c)| Series {
                label: label.into(),
                points: (1..=5).map(|e| (e as f64, f(a, c, e as f64))).collect(),
            })
            .collect()
    };
    ChartSet {
        accuracy: BarChart::accuracy(bars(&|a, _, _| a)),
        train_time: BarChart::train_time(bars(&|_, s, _| s)),
        co2: BarChart::co2(bars(&|_, _, c| c)),
        accuracy_vs_co2: ScatterChart::accuracy_vs_co2(
            models
                .iter()
                .map(|&(label, a, _, c)| ScatterPoint {
                    label: label.into(),
                    x: est(c),
                    y: Estimate::new(a, a - 0.01, a + 0.01),
                    pareto: true,
                })
                .collect(),
        ),
        accuracy_curves: LineChart::accuracy_curves(curves(&|a, _, e| a * (1.0 - 0.5 / e))),
        energy_curves: LineChart::energy_curves(curves(&|_, c, e| c * 2.5 * e)),
    }
}

fn page() -> String {
    let set = chart_set();
    let mut page = Page::new("Campaign fashion-small <test>");
    page.paragraph("3 models, 12 jobs, 11 succeeded & 1 failed.")
        .table(
            "Summary",
            vec!["model".into(), "accuracy".into(), "kg CO₂e".into()],
            vec![
                vec!["cnn lr=0.01 batch=64".into(), "0.91".into(), "0.001".into()],
                vec!["knn k=5".into(), "–".into(), "–".into()],
            ],
        );
    for (_, chart) in set.charts() {
        let (w, h) = chart.preferred_size();
        let svg = render_svg(chart, w, h).unwrap();
        page.chart(chart.title(), &svg);
    }
    page.note("Estimated energy: no RAPL counter on this worker.");
    page.render()
}

/// `chromium` on the PATH, or a failure saying how to install it.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "chromium is not installed, and this test renders the HTML report in it: \
         run `apt-get update && apt-get install -y chromium` (Debian; .ci/run does)"
    );
}

pub fn screenshot(browser: &Path, page: &Path, out: &Path, profile: &Path) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish the screenshot within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed: {status}");
}

#[test]
fn the_report_page_renders_in_a_real_browser() {
    let browser = chromium();
    let tmp = tempfile::tempdir().unwrap();
    let html = page();
    for needle in ["http://", "https://", "src=", "<link", "<script"] {
        assert!(!html.contains(needle), "the page references {needle}");
    }
    assert_eq!(html.matches("<svg").count(), 6, "every chart inline");
    let page_path = tmp.path().join("report.html");
    std::fs::write(&page_path, &html).unwrap();
    let shot = tmp.path().join("shot.png");
    let profile = tmp.path().join("profile");
    screenshot(&browser, &page_path, &shot, &profile);

    assert!(shot.is_file(), "chromium wrote no screenshot");
    // To look at the page and what chromium made of it.
    if let Some(dir) = std::env::var_os("ECOBENCH_HTML_OUT") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&page_path, dir.join("report.html")).unwrap();
        std::fs::copy(&shot, dir.join("screenshot.png")).unwrap();
    }
    assert_drawn(&shot);
}

/// The screenshot decodes at the window's size and shows text and the charts' bars, not
/// a blank or broken page.
pub fn assert_drawn(shot: &Path) {
    let img = image::open(shot).expect("the screenshot decodes").to_rgb8();
    assert_eq!(img.dimensions(), WINDOW);
    let mut colours = std::collections::HashSet::new();
    let (mut dark, mut bar) = (0usize, 0usize);
    for p in img.pixels() {
        colours.insert(p.0);
        if p.0.iter().all(|&c| c < 80) {
            dark += 1;
        }
        if p.0.iter().zip(BAR_FILL).all(|(&c, b)| c.abs_diff(b) <= 4) {
            bar += 1;
        }
    }
    assert!(
        colours.len() > 50,
        "a blank page: {} colours",
        colours.len()
    );
    assert!(dark > 2_000, "no text drawn: {dark} dark pixels");
    assert!(
        bar > 5_000,
        "the inline bar charts are not drawn: {bar} bar pixels"
    );
}
