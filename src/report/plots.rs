//! PNG figures drawn with plotters on a bitmap, with the DejaVu Sans font compiled in (no system
//! fonts needed).

use super::ReportError;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled DejaVu Sans font is valid"));
    });
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Plot { path: path.to_path_buf(), reason: e.to_string() }
}

/// One scatter panel.
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<(f64, f64)>,
    /// Draw y = x.
    pub one_to_one: bool,
    /// Vertical dashed line (the [Fe/H] = −1 split).
    pub vline: Option<f64>,
    /// Horizontal line (zero residual).
    pub hline: Option<f64>,
    /// Fixed ranges; else the points' 0.5–99.5 % range.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
}

fn robust_range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut v: Vec<f64> = v.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    let (lo, hi) = (q(0.005), q(0.995));
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// Panels on a grid of `cols` columns, `cell` pixels each.
pub fn scatter_grid(path: &Path, panels: &[Panel], cols: usize, cell: (u32, u32)) -> Result<(), ReportError> {
    register_font();
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let root = BitMapBackend::new(path, (cell.0 * cols as u32, cell.1 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let areas = root.split_evenly((rows, cols));
    for (panel, area) in panels.iter().zip(areas) {
        let (x0, x1) = panel.x_range.unwrap_or_else(|| robust_range(panel.points.iter().map(|p| p.0)));
        let (y0, y1) = panel.y_range.unwrap_or_else(|| robust_range(panel.points.iter().map(|p| p.1)));
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| plot_error(path, e))?;
        let decimals = |span: f64| if span > 50.0 { 0 } else { 1 };
        let (dx, dy) = (decimals(x1 - x0), decimals(y1 - y0));
        chart
            .configure_mesh()
            .x_label_formatter(&|v| format!("{v:.dx$}"))
            .y_label_formatter(&|v| format!("{v:.dy$}"))
            .x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 12))
            .x_labels(5)
            .y_labels(5)
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| plot_error(path, e))?;
        let inside = |&&(x, y): &&(f64, f64)| x >= x0 && x <= x1 && y >= y0 && y <= y1;
        chart
            .draw_series(
                panel.points.iter().filter(inside).map(|&(x, y)| Circle::new((x, y), 2, BLUE.mix(0.35).filled())),
            )
            .map_err(|e| plot_error(path, e))?;
        if panel.one_to_one {
            let (a, b) = (x0.max(y0), x1.min(y1));
            chart
                .draw_series(LineSeries::new([(a, a), (b, b)], BLACK.stroke_width(1)))
                .map_err(|e| plot_error(path, e))?;
        }
        if let Some(y) = panel.hline {
            chart
                .draw_series(LineSeries::new([(x0, y), (x1, y)], BLACK.stroke_width(1)))
                .map_err(|e| plot_error(path, e))?;
        }
        if let Some(x) = panel.vline.filter(|x| *x > x0 && *x < x1) {
            // Dashes by hand: short segments every 1/40 of the axis.
            let step = (y1 - y0) / 40.0;
            let dashes = (0..40).step_by(2).map(|k| {
                let a = y0 + k as f64 * step;
                PathElement::new(vec![(x, a), (x, a + step)], RED.stroke_width(2))
            });
            chart.draw_series(dashes).map_err(|e| plot_error(path, e))?;
        }
    }
    root.present().map_err(|e| plot_error(path, e))
}

/// A perceptually ordered colour ramp (viridis anchors), t in 0..1.
pub fn ramp(t: f64) -> RGBColor {
    const A: [(u8, u8, u8); 5] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)];
    let t = t.clamp(0.0, 1.0) * (A.len() - 1) as f64;
    let i = (t.floor() as usize).min(A.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    RGBColor(mix(A[i].0, A[i + 1].0), mix(A[i].1, A[i + 1].1), mix(A[i].2, A[i + 1].2))
}

/// Teff–log g with both axes reversed (hot and dwarf at the lower left, as astronomers draw it),
/// coloured by [Fe/H] over `feh_range`, with a colour bar.
pub fn kiel(path: &Path, title: &str, stars: &[(f64, f64, f64)], feh_range: (f64, f64)) -> Result<(), ReportError> {
    register_font();
    let root = BitMapBackend::new(path, (760, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let (main, bar) = root.split_horizontally(660);
    let (t0, t1) = (3500.0, 8500.0);
    let (g0, g1) = (-0.5, 5.5);
    // Plot −Teff and −log g so both axes run the astronomers' way; labels show the true values.
    let mut chart = ChartBuilder::on(&main)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-t1..-t0, -g1..-g0)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("Teff [K]")
        .y_desc("log g [log(cm.s**-2)]")
        .x_label_formatter(&|v| format!("{:.0}", -v + 0.0))
        .y_label_formatter(&|v| format!("{:.1}", -v + 0.0))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    let (f0, f1) = feh_range;
    let inside = |&&(t, g, _): &&(f64, f64, f64)| (t0..=t1).contains(&t) && (g0..=g1).contains(&g);
    chart
        .draw_series(
            stars
                .iter()
                .filter(inside)
                .map(|&(t, g, f)| Circle::new((-t, -g), 2, ramp((f - f0) / (f1 - f0)).mix(0.8).filled())),
        )
        .map_err(|e| plot_error(path, e))?;
    let mut cb = ChartBuilder::on(&bar)
        .margin_top(40)
        .margin_bottom(50)
        .margin_right(10)
        .y_label_area_size(45)
        .caption("[Fe/H]", ("sans-serif", 12))
        .build_cartesian_2d(0.0..1.0, f0..f1)
        .map_err(|e| plot_error(path, e))?;
    cb.configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_labels(6)
        .label_style(("sans-serif", 11))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    let steps = 60;
    cb.draw_series((0..steps).map(|k| {
        let a = f0 + (f1 - f0) * k as f64 / steps as f64;
        let b = f0 + (f1 - f0) * (k + 1) as f64 / steps as f64;
        Rectangle::new([(0.0, a), (1.0, b)], ramp(k as f64 / (steps - 1) as f64).filled())
    }))
    .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// Horizontal bars, one per label (top to bottom in the given order), value on a linear axis.
pub fn bars(path: &Path, title: &str, x_label: &str, bars: &[(String, f64)]) -> Result<(), ReportError> {
    register_font();
    let n = bars.len().max(1);
    let root = BitMapBackend::new(path, (760, 90 + 30 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let top = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1.0) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(190)
        .build_cartesian_2d(0.0..top, 0.0..n as f64)
        .map_err(|e| plot_error(path, e))?;
    // Row k (from the top) spans [n-k-1, n-k]; its label sits at the centre.
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|v| {
            let centre = (v - 0.5).round();
            let k = n as f64 - 1.0 - centre;
            if (v - 0.5 - centre).abs() < 1e-6 && k >= 0.0 {
                labels.get(k as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(x_label)
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 12))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(k, b)| {
            let y = (n - k - 1) as f64;
            Rectangle::new([(0.0, y + 0.15), (b.1, y + 0.85)], BLUE.mix(0.6).filled())
        }))
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// A histogram of `values` over `bins` equal bins in [lo, hi) on a log10 or linear axis.
pub fn histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    values: &[f64],
    (lo, hi): (f64, f64),
    bins: usize,
) -> Result<(), ReportError> {
    register_font();
    let mut counts = vec![0u64; bins];
    for &v in values.iter().filter(|v| v.is_finite() && **v >= lo && **v < hi) {
        let k = (((v - lo) / (hi - lo)) * bins as f64) as usize;
        counts[k.min(bins - 1)] += 1;
    }
    let root = BitMapBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, 0.0..top)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("spectra")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 11))
        .axis_desc_style(("sans-serif", 12))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    let w = (hi - lo) / bins as f64;
    chart
        .draw_series(counts.iter().enumerate().map(|(k, &c)| {
            let a = lo + k as f64 * w;
            Rectangle::new([(a, 0.0), (a + w, c as f64)], BLUE.mix(0.6).filled())
        }))
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}

/// What [`star_spectrum`] draws: a spectrum on its wavelengths, and the model and σ behind a fit.
pub struct SpectrumPlot<'a> {
    pub wave: &'a [f64],
    pub flux: &'a [f32],
    /// 0 = masked.
    pub ivar: &'a [f32],
    pub model: Option<&'a [f64]>,
    pub sigma: Option<&'a [f64]>,
}

/// A spectrum with its reconstruction (upper panel; masked pixels shaded) and the residuals in
/// units of σ (lower panel), with two title lines.
pub fn star_spectrum(path: &Path, title: &str, subtitle: &str, s: &SpectrumPlot) -> Result<(), ReportError> {
    register_font();
    let root = BitMapBackend::new(path, (1100, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let root = root.titled(title, ("sans-serif", 15)).map_err(|e| plot_error(path, e))?;
    let (upper, lower) = root.split_vertically(420);
    let (lo, hi) = (s.wave.first().copied().unwrap_or(0.0), s.wave.last().copied().unwrap_or(1.0));
    let usable = |i: usize| s.ivar[i] > 0.0 && s.flux[i].is_finite();
    let (y0, y1) = robust_range((0..s.flux.len()).filter(|&i| usable(i)).map(|i| s.flux[i] as f64));
    let mut chart = ChartBuilder::on(&upper)
        .caption(subtitle, ("sans-serif", 13))
        .margin(8)
        .x_label_area_size(10)
        .y_label_area_size(55)
        .build_cartesian_2d(lo..hi, y0..y1)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .y_desc("normalised flux")
        .x_labels(0)
        .label_style(("sans-serif", 11))
        .axis_desc_style(("sans-serif", 12))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    // Masked pixels: a grey band across the panel.
    let half = |i: usize| if i + 1 < s.wave.len() { (s.wave[i + 1] - s.wave[i]) / 2.0 } else { 0.5 };
    chart
        .draw_series(
            (0..s.wave.len()).filter(|&i| !usable(i)).map(|i| {
                Rectangle::new([(s.wave[i] - half(i), y0), (s.wave[i] + half(i), y1)], BLACK.mix(0.12).filled())
            }),
        )
        .map_err(|e| plot_error(path, e))?;
    // The flux, broken at masked pixels.
    let segments = |keep: &dyn Fn(usize) -> bool, value: &dyn Fn(usize) -> f64| -> Vec<Vec<(f64, f64)>> {
        let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for i in 0..s.wave.len() {
            if keep(i) {
                out.last_mut().expect("one segment").push((s.wave[i], value(i)));
            } else if !out.last().expect("one segment").is_empty() {
                out.push(Vec::new());
            }
        }
        out
    };
    for seg in segments(&usable, &|i| s.flux[i] as f64) {
        chart.draw_series(LineSeries::new(seg, BLACK.stroke_width(1))).map_err(|e| plot_error(path, e))?;
    }
    if let Some(model) = s.model {
        for seg in segments(&|i| model[i].is_finite(), &|i| model[i]) {
            chart.draw_series(LineSeries::new(seg, RED.stroke_width(1))).map_err(|e| plot_error(path, e))?;
        }
    }
    let mut res = ChartBuilder::on(&lower)
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(lo..hi, -6.0f64..6.0)
        .map_err(|e| plot_error(path, e))?;
    res.configure_mesh()
        .x_desc("rest-frame vacuum wavelength [Å]")
        .y_desc("(flux − model) / σ")
        .label_style(("sans-serif", 11))
        .axis_desc_style(("sans-serif", 12))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for y in [-3.0, 0.0, 3.0] {
        let style = if y == 0.0 { BLACK.stroke_width(1) } else { BLUE.mix(0.5).stroke_width(1) };
        res.draw_series(LineSeries::new([(lo, y), (hi, y)], style)).map_err(|e| plot_error(path, e))?;
    }
    if let (Some(model), Some(sigma)) = (s.model, s.sigma) {
        res.draw_series((0..s.wave.len()).filter(|&i| usable(i) && sigma[i].is_finite()).map(|i| {
            Circle::new((s.wave[i], ((s.flux[i] as f64 - model[i]) / sigma[i]).clamp(-6.0, 6.0)), 1, BLACK.filled())
        }))
        .map_err(|e| plot_error(path, e))?;
    }
    root.present().map_err(|e| plot_error(path, e))
}
