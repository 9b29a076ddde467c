//! A report's charts, drawn with plotters as PNG and SVG: the study's three bar
//! charts (accuracy, train time, CO₂ per model/configuration, with 95 % interval
//! whiskers), accuracy against CO₂ with the Pareto front, and per-epoch accuracy
//! and cumulative energy curves.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (`coordinator/assets/`),
//! registered with plotters' `ab_glyph` font table as "sans-serif": charts render on a
//! machine without system fonts (PITFALLS.md, plotters). The input types here are
//! plain data, independent of the report model: the report fills them.

use std::error::Error as StdError;
use std::ops::Range;
use std::sync::OnceLock;

use image::ImageEncoder as _;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

#[cfg(test)]
mod tests;

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The font family every chart asks for; [`register_fonts`] maps it to [`FONT`].
const FAMILY: &str = "sans-serif";

/// Default chart width in pixels.
pub const WIDTH: u32 = 1000;
/// Default chart height in pixels (bar charts grow with their number of bars).
pub const HEIGHT: u32 = 600;

/// A mean with its 95 % interval, in the chart's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The mean over the runs.
    pub mean: f64,
    /// Lower end of the 95 % interval (equal to `mean` for a single run).
    pub low: f64,
    /// Upper end of the 95 % interval (equal to `mean` for a single run).
    pub high: f64,
}

impl Estimate {
    /// A mean and its 95 % interval `[low, high]`.
    pub fn new(mean: f64, low: f64, high: f64) -> Self {
        Self { mean, low, high }
    }

    /// A value without an interval (one run).
    pub fn exact(value: f64) -> Self {
        Self::new(value, value, value)
    }

    /// The interval's ends in order, widened to contain the mean.
    fn bounds(&self) -> (f64, f64) {
        let low = self.low.min(self.high).min(self.mean);
        let high = self.low.max(self.high).max(self.mean);
        (low, high)
    }
}

/// One bar: a model/configuration and its value, `None` when it has none (no
/// successful run), which is drawn as "–", never as 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The model/configuration, e.g. `cnn lr=0.01 batch=64`.
    pub label: String,
    /// The value with its interval, or `None` when absent.
    pub value: Option<Estimate>,
}

/// How a value axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// Logarithmic when the positive values span two orders of magnitude or more.
    #[default]
    Auto,
    /// Linear.
    Linear,
    /// Logarithmic (base 10); values ≤ 0 are drawn at the axis' lower end.
    Log,
}

/// Horizontal bars with 95 % interval whiskers, one per model/configuration, in the
/// order given (the first at the top).
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// The chart's title.
    pub title: String,
    /// The value axis' label with its unit, e.g. `train time (s)`.
    pub axis: String,
    /// The bars, top to bottom.
    pub bars: Vec<Bar>,
    /// The value axis' scale.
    pub scale: Scale,
}

impl BarChart {
    /// The study's accuracy figure: test accuracy per model/configuration, linear.
    pub fn accuracy(bars: Vec<Bar>) -> Self {
        Self {
            title: "Test accuracy per model (mean, 95 % interval)".into(),
            axis: "test accuracy (fraction correct)".into(),
            bars,
            scale: Scale::Linear,
        }
    }

    /// The study's train time figure, in seconds.
    pub fn train_time(bars: Vec<Bar>) -> Self {
        Self {
            title: "Train time per model (mean, 95 % interval)".into(),
            axis: "train time (s)".into(),
            bars,
            scale: Scale::Auto,
        }
    }

    /// The study's CO₂ figure, in kg CO₂e.
    pub fn co2(bars: Vec<Bar>) -> Self {
        Self {
            title: "Emissions per model (mean, 95 % interval)".into(),
            axis: "emissions (kg CO₂e)".into(),
            bars,
            scale: Scale::Auto,
        }
    }
}

/// One model/configuration in the accuracy–CO₂ scatter.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPoint {
    /// The model/configuration.
    pub label: String,
    /// Horizontal value (e.g. kg CO₂e) with its interval.
    pub x: Estimate,
    /// Vertical value (e.g. test accuracy) with its interval.
    pub y: Estimate,
    /// Whether the point is on the Pareto front: highlighted and joined by a line.
    pub pareto: bool,
}

/// A scatter with error bars on both axes and the Pareto front drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterChart {
    /// The chart's title.
    pub title: String,
    /// Horizontal axis label with its unit.
    pub x_axis: String,
    /// Vertical axis label with its unit.
    pub y_axis: String,
    /// The points, one per model/configuration.
    pub points: Vec<ScatterPoint>,
    /// The horizontal axis' scale.
    pub x_scale: Scale,
}

impl ScatterChart {
    /// Test accuracy (y) against kg CO₂e (x).
    pub fn accuracy_vs_co2(points: Vec<ScatterPoint>) -> Self {
        Self {
            title: "Accuracy against emissions (Pareto front joined)".into(),
            x_axis: "emissions (kg CO₂e)".into(),
            y_axis: "test accuracy (fraction correct)".into(),
            points,
            x_scale: Scale::Auto,
        }
    }
}

/// One line: a model/configuration's value per epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The model/configuration.
    pub label: String,
    /// `(epoch, value)` points in epoch order.
    pub points: Vec<(f64, f64)>,
}

/// Lines over epochs, one per model/configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// The chart's title.
    pub title: String,
    /// Horizontal axis label with its unit.
    pub x_axis: String,
    /// Vertical axis label with its unit.
    pub y_axis: String,
    /// The lines.
    pub series: Vec<Series>,
    /// The vertical axis' scale.
    pub y_scale: Scale,
}

impl LineChart {
    /// Test accuracy after each epoch.
    pub fn accuracy_curves(series: Vec<Series>) -> Self {
        Self {
            title: "Test accuracy per epoch".into(),
            x_axis: "epoch".into(),
            y_axis: "test accuracy (fraction correct)".into(),
            series,
            y_scale: Scale::Linear,
        }
    }

    /// Cumulative energy after each epoch, in kWh.
    pub fn energy_curves(series: Vec<Series>) -> Self {
        Self {
            title: "Cumulative energy per epoch".into(),
            x_axis: "epoch".into(),
            y_axis: "cumulative energy (kWh)".into(),
            series,
            y_scale: Scale::Auto,
        }
    }
}

/// Every chart of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSet {
    /// Test accuracy bars.
    pub accuracy: BarChart,
    /// Train time bars.
    pub train_time: BarChart,
    /// CO₂ bars.
    pub co2: BarChart,
    /// Accuracy against CO₂ with the Pareto front.
    pub accuracy_vs_co2: ScatterChart,
    /// Per-epoch test accuracy.
    pub accuracy_curves: LineChart,
    /// Per-epoch cumulative energy.
    pub energy_curves: LineChart,
}

impl ChartSet {
    /// The charts with their file stems (`accuracy`, `train_time`, `co2`,
    /// `accuracy_vs_co2`, `accuracy_curves`, `energy_curves`), in report order.
    pub fn charts(&self) -> [(&'static str, Chart<'_>); 6] {
        [
            ("accuracy", Chart::Bars(&self.accuracy)),
            ("train_time", Chart::Bars(&self.train_time)),
            ("co2", Chart::Bars(&self.co2)),
            ("accuracy_vs_co2", Chart::Scatter(&self.accuracy_vs_co2)),
            ("accuracy_curves", Chart::Lines(&self.accuracy_curves)),
            ("energy_curves", Chart::Lines(&self.energy_curves)),
        ]
    }
}

/// Any one chart.
#[derive(Debug, Clone, Copy)]
pub enum Chart<'a> {
    /// Bars with whiskers.
    Bars(&'a BarChart),
    /// Scatter with the Pareto front.
    Scatter(&'a ScatterChart),
    /// Per-epoch lines.
    Lines(&'a LineChart),
}

impl Chart<'_> {
    /// The chart's title.
    pub fn title(&self) -> &str {
        match self {
            Chart::Bars(c) => &c.title,
            Chart::Scatter(c) => &c.title,
            Chart::Lines(c) => &c.title,
        }
    }

    /// The size the chart reads well at: [`WIDTH`] × [`HEIGHT`], taller for many bars.
    pub fn preferred_size(&self) -> (u32, u32) {
        match self {
            Chart::Bars(c) => (WIDTH, HEIGHT.max(140 + 30 * c.bars.len() as u32)),
            _ => (WIDTH, HEIGHT),
        }
    }
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The embedded font did not load (a corrupt build).
    #[error(
        "the embedded chart font (coordinator/assets/DejaVuSans.ttf) cannot be loaded; rebuild the coordinator from a clean checkout"
    )]
    Font,
    /// The requested size is too small to hold a readable chart.
    #[error("chart {chart:?}: {width}×{height} pixels is too small; ask for at least 300×200")]
    Size {
        /// The chart's title.
        chart: String,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// An input value is NaN or infinite.
    #[error(
        "chart {chart:?}: {what} is {value}, not a finite number; give an absent value as None instead"
    )]
    NotFinite {
        /// The chart's title.
        chart: String,
        /// Which value (series or bar label and field).
        what: String,
        /// The offending value.
        value: f64,
    },
    /// plotters or the PNG encoder failed.
    #[error("cannot draw chart {chart:?}: {message}")]
    Draw {
        /// The chart's title.
        chart: String,
        /// The underlying error.
        message: String,
    },
}

/// Output format of a rendered chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// A PNG image.
    Png,
    /// An SVG document (text drawn as `<text>` elements).
    Svg,
}

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Svg => "svg",
        }
    }
}

/// Renders `chart` as `format` at `width` × `height` pixels.
pub fn render(
    chart: Chart<'_>,
    format: ImageFormat,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, ChartError> {
    match format {
        ImageFormat::Png => render_png(chart, width, height),
        ImageFormat::Svg => render_svg(chart, width, height).map(String::into_bytes),
    }
}

/// Renders `chart` as a PNG image of `width` × `height` pixels.
pub fn render_png(chart: Chart<'_>, width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    prepare(chart, width, height)?;
    let draw_err = |message: String| ChartError::Draw {
        chart: chart.title().to_string(),
        message,
    };
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&root, chart).map_err(|e| draw_err(e.to_string()))?;
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| draw_err(format!("PNG encoding: {e}")))?;
    Ok(png)
}

/// Renders `chart` as an SVG document of `width` × `height` pixels.
pub fn render_svg(chart: Chart<'_>, width: u32, height: u32) -> Result<String, ChartError> {
    prepare(chart, width, height)?;
    let draw_err = |message: String| ChartError::Draw {
        chart: chart.title().to_string(),
        message,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        draw(&root, chart).map_err(|e| draw_err(e.to_string()))?;
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    Ok(svg)
}

/// Every chart of `set` as PNG and SVG at its [`Chart::preferred_size`]: pairs of a
/// file name (`accuracy.png`, `accuracy.svg`, …) and its bytes.
pub fn all_charts(set: &ChartSet) -> Result<Vec<(String, Vec<u8>)>, ChartError> {
    let mut files = Vec::new();
    for (stem, chart) in set.charts() {
        let (width, height) = chart.preferred_size();
        for format in [ImageFormat::Png, ImageFormat::Svg] {
            let bytes = render(chart, format, width, height)?;
            files.push((format!("{stem}.{}", format.extension()), bytes));
        }
    }
    Ok(files)
}

/// Registers the embedded font (once) and checks the size and the input.
fn prepare(chart: Chart<'_>, width: u32, height: u32) -> Result<(), ChartError> {
    register_fonts()?;
    if width < 300 || height < 200 {
        return Err(ChartError::Size {
            chart: chart.title().to_string(),
            width,
            height,
        });
    }
    validate(chart)
}

/// Maps [`FAMILY`] to the embedded font in plotters' font table.
fn register_fonts() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(ChartError::Font) }
}

fn validate(chart: Chart<'_>) -> Result<(), ChartError> {
    let bad = |what: String, value: f64| ChartError::NotFinite {
        chart: chart.title().to_string(),
        what,
        value,
    };
    let check_estimate = |label: &str, axis: &str, e: &Estimate| {
        for (field, v) in [("mean", e.mean), ("low", e.low), ("high", e.high)] {
            if !v.is_finite() {
                return Err(bad(format!("{label:?} {axis}{field}"), v));
            }
        }
        Ok(())
    };
    match chart {
        Chart::Bars(c) => {
            for bar in &c.bars {
                if let Some(e) = &bar.value {
                    check_estimate(&bar.label, "", e)?;
                }
            }
        }
        Chart::Scatter(c) => {
            for p in &c.points {
                check_estimate(&p.label, "x ", &p.x)?;
                check_estimate(&p.label, "y ", &p.y)?;
            }
        }
        Chart::Lines(c) => {
            for s in &c.series {
                for &(x, y) in &s.points {
                    if !x.is_finite() || !y.is_finite() {
                        let v = if x.is_finite() { y } else { x };
                        return Err(bad(format!("{:?} point ({x}, {y})", s.label), v));
                    }
                }
            }
        }
    }
    Ok(())
}

type DrawResult = Result<(), Box<dyn StdError>>;
/// A plot area and its legend column.
type Split<DB> = (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>);

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: Chart<'_>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    match chart {
        Chart::Bars(c) => draw_bars(root, c),
        Chart::Scatter(c) => draw_scatter(root, c),
        Chart::Lines(c) => draw_lines(root, c),
    }
}

/// Distinguishable colours (matplotlib's tab10, on white).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const BAR_FILL: RGBColor = RGBColor(78, 121, 167);
const MUTED: RGBColor = RGBColor(110, 110, 110);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn title_style() -> TextStyle<'static> {
    (FAMILY, 24).into_font().color(&BLACK)
}
fn label_style() -> TextStyle<'static> {
    (FAMILY, 16).into_font().color(&BLACK)
}
fn desc_style() -> TextStyle<'static> {
    (FAMILY, 17).into_font().color(&BLACK)
}

/// A value axis in data units; plotted in log10 space when `log`.
#[derive(Debug, Clone, Copy)]
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    /// An axis holding `values`; from zero when `from_zero` (bars) and linear.
    fn fit(values: &[f64], scale: Scale, from_zero: bool) -> Axis {
        let positive: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
        let min_pos = positive.iter().copied().fold(f64::INFINITY, f64::min);
        let max_pos = positive.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log = match scale {
            Scale::Linear => false,
            Scale::Log => !positive.is_empty(),
            Scale::Auto => !positive.is_empty() && max_pos / min_pos >= 100.0,
        };
        if log {
            let lo = 10f64.powf(min_pos.log10().floor());
            let mut hi = 10f64.powf(max_pos.log10().ceil());
            if hi <= lo {
                hi = lo * 10.0;
            }
            return Axis { log, lo, hi };
        }
        if values.is_empty() {
            return Axis {
                log,
                lo: 0.0,
                hi: 1.0,
            };
        }
        let mut lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let mut hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if from_zero {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        let mut span = hi - lo;
        if span <= 0.0 {
            span = if hi.abs() > 0.0 { hi.abs() * 0.2 } else { 1.0 };
            if !from_zero {
                lo -= span / 2.0;
            }
            hi += span / 2.0;
        }
        if !from_zero || lo < 0.0 {
            lo -= span * 0.05;
        }
        hi += span * 0.05;
        Axis { log, lo, hi }
    }

    /// Data value → plotting coordinate (values below a log axis sit on its end).
    fn t(&self, v: f64) -> f64 {
        if self.log { v.max(self.lo).log10() } else { v }
    }

    /// The plotting range.
    fn range(&self) -> Range<f64> {
        self.t(self.lo)..self.t(self.hi)
    }

    /// The plotting range with `extra` of its span added at the top.
    fn range_with_room(&self, extra: f64) -> Range<f64> {
        let r = self.range();
        r.start..r.end + (r.end - r.start) * extra
    }

    /// A tick label for plotting coordinate `p` (on a linear axis, a tick within a
    /// millionth of the span from zero is zero: plotters' float steps leave 6.8e-21).
    fn tick(&self, p: f64) -> String {
        if self.log {
            fmt_num(10f64.powf(p))
        } else if p.abs() <= (self.hi - self.lo).abs() * 1e-6 {
            "0".into()
        } else {
            fmt_num(p)
        }
    }

    /// How many tick labels to ask plotters for: one per decade on a log axis (so
    /// that the ticks are powers of ten), `linear` otherwise.
    fn label_count(&self, linear: usize) -> usize {
        if self.log {
            (self.hi / self.lo).log10().round() as usize + 1
        } else {
            linear
        }
    }

    /// The axis description, marked when logarithmic.
    fn describe(&self, desc: &str) -> String {
        if self.log {
            format!("{desc}, log scale")
        } else {
            desc.to_string()
        }
    }
}

/// A number with three significant digits, scientific when very small or large.
pub(crate) fn fmt_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exp}");
    }
    let digits = (2 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `text` shortened in the middle with "…" to fit `max_px` in `style`.
fn fit_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle<'_>,
    max_px: u32,
) -> String
where
    DB::ErrorType: 'static,
{
    let width = |s: &str| {
        area.estimate_text_size(s, style)
            .map(|(w, _)| w)
            .unwrap_or(0)
    };
    if width(text) <= max_px {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut keep = chars.len();
    while keep > 2 {
        keep -= 1;
        let head = keep.div_ceil(2);
        let tail = keep - head;
        let s: String = chars[..head]
            .iter()
            .chain(std::iter::once(&'…'))
            .chain(&chars[chars.len() - tail..])
            .collect();
        if width(&s) <= max_px {
            return s;
        }
    }
    "…".into()
}

fn no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, message: &str) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let style = desc_style()
        .color(&MUTED)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw_text(message, &style, (w as i32 / 2, h as i32 / 2))?;
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &BarChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let area = root.titled(&c.title, title_style())?;
    let n = c.bars.len();
    if n == 0 {
        return no_data(&area, "no model/configuration to show");
    }
    let (width, height) = area.dim_in_pixel();
    let label_style = label_style();
    let labels: Vec<String> = c
        .bars
        .iter()
        .map(|b| fit_text(&area, &b.label, &label_style, width * 2 / 5))
        .collect();
    let label_px = labels
        .iter()
        .map(|l| area.estimate_text_size(l, &label_style).map(|(w, _)| w))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .max()
        .unwrap_or(0);

    let mut values = Vec::new();
    for e in c.bars.iter().filter_map(|b| b.value.as_ref()) {
        let (low, high) = e.bounds();
        values.extend([e.mean, low, high]);
    }
    let axis = Axis::fit(&values, c.scale, true);
    let base = if axis.log {
        axis.range().start
    } else {
        axis.t(0.0)
    };

    let mut chart = ChartBuilder::on(&area)
        .margin(15)
        .margin_right(30)
        .x_label_area_size(60)
        .y_label_area_size(label_px + 40)
        .build_cartesian_2d(
            axis.range_with_room(0.12),
            (-50..n as i32 * 100 - 50).with_key_points((0..n as i32).map(|j| j * 100).collect()),
        )?;
    let tick = |p: &f64| axis.tick(*p);
    // Rows are 100 units apart (integer coordinates, so that plotters formats the
    // chosen key points); row j from the bottom shows bar n - 1 - j: the first bar
    // is at the top.
    let row_label = |v: &i32| {
        let j = v / 100;
        if v % 100 == 0 && (0..n as i32).contains(&j) {
            labels[n - 1 - j as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .x_labels(axis.label_count(8))
        .light_line_style(RGBColor(240, 240, 240))
        .x_desc(axis.describe(&c.axis))
        .y_desc("model / configuration")
        .label_style(label_style.clone())
        .axis_desc_style(desc_style())
        .x_label_formatter(&tick)
        .y_label_formatter(&row_label)
        .draw()?;

    let plot_height = height.saturating_sub(60 + 30) as f64;
    let band = (plot_height / n as f64).max(4.0);
    let value_style = label_style.pos(Pos::new(HPos::Left, VPos::Center));
    let absent_style = label_style
        .color(&MUTED)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, bar) in c.bars.iter().enumerate() {
        let j = (n - 1 - i) as i32 * 100;
        let Some(e) = &bar.value else {
            chart.draw_series(std::iter::once(
                EmptyElement::at((base, j))
                    + Text::new("– (no successful run)", (6, 0), absent_style.clone()),
            ))?;
            continue;
        };
        let (low, high) = e.bounds();
        chart.draw_series(std::iter::once(Rectangle::new(
            [(base, j - 32), (axis.t(e.mean), j + 32)],
            BAR_FILL.filled(),
        )))?;
        if high > low {
            let style = BLACK.stroke_width(2);
            let y = j;
            let (x0, x1) = (axis.t(low), axis.t(high));
            let cap = (band * 0.22).clamp(3.0, 10.0) as i32;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x0, y), (x1, y)],
                style,
            )))?;
            chart.draw_series([x0, x1].map(|x| {
                EmptyElement::at((x, y)) + PathElement::new(vec![(0, -cap), (0, cap)], style)
            }))?;
        }
        chart.draw_series(std::iter::once(
            EmptyElement::at((axis.t(high), j))
                + Text::new(fmt_num(e.mean), (8, 0), value_style.clone()),
        ))?;
    }
    Ok(())
}

/// How a legend entry's swatch looks.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    /// A line with marker `shape` (see [`marker`]).
    Line { shape: usize },
    /// A dot, ringed when on the Pareto front.
    Dot { ring: bool },
    /// A plain thick line.
    Front,
}

/// The legend, drawn as a column of swatches and labels in `area`.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor, Swatch)],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (width, height) = area.dim_in_pixel();
    let style = label_style();
    let row = 24i32;
    let top = 20i32;
    let fits = ((height as i32 - top - 10) / row).max(1) as usize;
    let shown = if entries.len() > fits {
        fits - 1
    } else {
        entries.len()
    };
    let text_style = style.pos(Pos::new(HPos::Left, VPos::Center));
    for (k, (label, colour, swatch)) in entries.iter().take(shown).enumerate() {
        let y = top + row * k as i32 + row / 2;
        match *swatch {
            Swatch::Line { shape } => {
                area.draw(&PathElement::new(
                    vec![(8, y), (38, y)],
                    colour.stroke_width(2),
                ))?;
                draw_marker(area, (23, y), shape, *colour)?;
            }
            Swatch::Dot { ring } => {
                area.draw(&Circle::new((23, y), 5, colour.filled()))?;
                if ring {
                    area.draw(&Circle::new((23, y), 9, BLACK.stroke_width(2)))?;
                }
            }
            Swatch::Front => {
                area.draw(&PathElement::new(
                    vec![(8, y), (38, y)],
                    BLACK.stroke_width(2),
                ))?;
            }
        }
        let text = fit_text(area, label, &style, width.saturating_sub(55));
        area.draw_text(&text, &text_style, (46, y))?;
    }
    if shown < entries.len() {
        let y = top + row * shown as i32 + row / 2;
        let more = format!("… and {} more", entries.len() - shown);
        area.draw_text(&more, &text_style.color(&MUTED), (46, y))?;
    }
    Ok(())
}

/// Draws marker `shape` (circle, triangle, square, diamond; cycling) at pixel `at`.
fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    shape: usize,
    colour: RGBColor,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let style = colour.filled();
    match shape % 4 {
        0 => area.draw(&Circle::new(at, 5, style))?,
        1 => area.draw(&TriangleMarker::new(at, 6, style))?,
        2 => area.draw(&Rectangle::new(
            [(at.0 - 4, at.1 - 4), (at.0 + 4, at.1 + 4)],
            style,
        ))?,
        _ => area.draw(&diamond(at, style))?,
    }
    Ok(())
}

/// A diamond marker centred on pixel `at`.
fn diamond(at: (i32, i32), style: ShapeStyle) -> Polygon<(i32, i32)> {
    let (x, y) = at;
    Polygon::new(vec![(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)], style)
}

/// Splits `root` into the titled plot area and a legend column sized for `labels`.
fn with_legend<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    labels: impl Iterator<Item = &'a str>,
) -> Result<Split<DB>, Box<dyn StdError>>
where
    DB::ErrorType: 'static,
{
    let area = root.titled(title, title_style())?;
    let (width, _) = area.dim_in_pixel();
    let style = label_style();
    let mut widest = 0;
    for label in labels {
        widest = widest.max(area.estimate_text_size(label, &style)?.0);
    }
    let legend_width = (widest + 60).min(width * 7 / 20).max(120);
    Ok(area.split_horizontally(width - legend_width))
}

fn draw_scatter<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &ScatterChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    if c.points.is_empty() {
        let area = root.titled(&c.title, title_style())?;
        return no_data(&area, "no model/configuration with a successful run");
    }
    let front_label = "Pareto front (joined)".to_string();
    let mut entries = vec![(front_label, BLACK, Swatch::Front)];
    for (i, p) in c.points.iter().enumerate() {
        let label = if p.pareto {
            format!("{} (on the front)", p.label)
        } else {
            p.label.clone()
        };
        entries.push((label, colour(i), Swatch::Dot { ring: p.pareto }));
    }
    let (plot, legend) = with_legend(root, &c.title, entries.iter().map(|e| e.0.as_str()))?;

    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for p in &c.points {
        let (xl, xh) = p.x.bounds();
        let (yl, yh) = p.y.bounds();
        xs.extend([p.x.mean, xl, xh]);
        ys.extend([p.y.mean, yl, yh]);
    }
    let x_axis = Axis::fit(&xs, c.x_scale, false);
    let y_axis = Axis::fit(&ys, Scale::Linear, false);
    let mut chart = ChartBuilder::on(&plot)
        .margin(15)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(x_axis.range(), y_axis.range())?;
    let x_tick = |p: &f64| x_axis.tick(*p);
    let y_tick = |p: &f64| y_axis.tick(*p);
    chart
        .configure_mesh()
        .x_labels(x_axis.label_count(10))
        .x_desc(x_axis.describe(&c.x_axis))
        .y_desc(&c.y_axis)
        .label_style(label_style())
        .axis_desc_style(desc_style())
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;

    let mut front: Vec<(f64, f64)> = c
        .points
        .iter()
        .filter(|p| p.pareto)
        .map(|p| (x_axis.t(p.x.mean), p.y.mean))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    if front.len() > 1 {
        chart.draw_series(LineSeries::new(front, BLACK.stroke_width(2)))?;
    }
    for (i, p) in c.points.iter().enumerate() {
        let colour = colour(i);
        let x = x_axis.t(p.x.mean);
        let (yl, yh) = p.y.bounds();
        let (xl, xh) = p.x.bounds();
        let style = colour.stroke_width(2);
        let y = p.y.mean;
        if yh > yl {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, yl), (x, yh)],
                style,
            )))?;
            chart.draw_series([yl, yh].map(|v| {
                EmptyElement::at((x, v)) + PathElement::new(vec![(-6, 0), (6, 0)], style)
            }))?;
        }
        if xh > xl {
            let (x0, x1) = (x_axis.t(xl), x_axis.t(xh));
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x0, y), (x1, y)],
                style,
            )))?;
            chart.draw_series([x0, x1].map(|v| {
                EmptyElement::at((v, y)) + PathElement::new(vec![(0, -6), (0, 6)], style)
            }))?;
        }
    }
    for (i, p) in c.points.iter().enumerate() {
        let at = (x_axis.t(p.x.mean), p.y.mean);
        chart.draw_series(std::iter::once(Circle::new(at, 6, colour(i).filled())))?;
        if p.pareto {
            chart.draw_series(std::iter::once(Circle::new(at, 10, BLACK.stroke_width(2))))?;
        }
    }
    draw_legend(&legend, &entries)
}

fn draw_lines<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &LineChart) -> DrawResult
where
    DB::ErrorType: 'static,
{
    if c.series.iter().all(|s| s.points.is_empty()) {
        let area = root.titled(&c.title, title_style())?;
        return no_data(&area, "no per-epoch values recorded");
    }
    let entries: Vec<(String, RGBColor, Swatch)> = c
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.label.clone(), colour(i), Swatch::Line { shape: i }))
        .collect();
    let (plot, legend) = with_legend(root, &c.title, entries.iter().map(|e| e.0.as_str()))?;

    let xs: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let ys: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let x_lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let x_hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (x_lo, x_hi) = if x_hi > x_lo {
        let pad = (x_hi - x_lo) * 0.03;
        (x_lo - pad, x_hi + pad)
    } else {
        (x_lo - 1.0, x_hi + 1.0)
    };
    let y_axis = Axis::fit(&ys, c.y_scale, false);
    let mut chart = ChartBuilder::on(&plot)
        .margin(15)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(x_lo..x_hi, y_axis.range())?;
    let x_tick = |p: &f64| {
        if (p - p.round()).abs() < 1e-6 {
            format!("{}", p.round() as i64)
        } else {
            String::new()
        }
    };
    let y_tick = |p: &f64| y_axis.tick(*p);
    let span = (x_hi - x_lo).round() as usize;
    chart
        .configure_mesh()
        .x_desc(&c.x_axis)
        .y_labels(y_axis.label_count(10))
        .y_desc(y_axis.describe(&c.y_axis))
        .label_style(label_style())
        .axis_desc_style(desc_style())
        .x_labels(span.clamp(2, 12))
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for (i, s) in c.series.iter().enumerate() {
        let colour = colour(i);
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x, y_axis.t(y))).collect();
        chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
        let style = colour.filled();
        let at = |p: (f64, f64)| EmptyElement::at(p);
        match i % 4 {
            0 => chart.draw_series(
                points
                    .into_iter()
                    .map(|p| at(p) + Circle::new((0, 0), 5, style)),
            )?,
            1 => chart.draw_series(
                points
                    .into_iter()
                    .map(|p| at(p) + TriangleMarker::new((0, 0), 6, style)),
            )?,
            2 => chart.draw_series(
                points
                    .into_iter()
                    .map(|p| at(p) + Rectangle::new([(-4, -4), (4, 4)], style)),
            )?,
            _ => chart.draw_series(points.into_iter().map(|p| at(p) + diamond((0, 0), style)))?,
        };
    }
    draw_legend(&legend, &entries)
}
