//! SVG charts of the attack experiments (plotters): measured shares with
//! their 95% intervals against the reference curves and the diagonal
//! `share = alpha` an honest participant gets.

use std::path::Path;

use plotters::prelude::*;

/// Measured points: (x, mean, low, high).
#[derive(Clone, Debug)]
pub(crate) struct Measured {
    /// Legend.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// A reference curve.
#[derive(Clone, Debug)]
pub(crate) struct Curve {
    /// Legend.
    pub name: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

type PlotResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// A white 900×600 SVG canvas.
fn canvas(
    path: &Path,
) -> Result<DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, DrawingAreaErrorKind<std::io::Error>> {
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

/// The charts' common caption, margin and label areas (`y_labels`: the
/// y label area's width).
fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    y_labels: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(y_labels);
    builder
}

/// Share against alpha: measured points with error bars, dashed reference
/// curves in the same colour (one per measured series, matched by index),
/// and the grey diagonal.
pub(crate) fn shares(path: &Path, caption: &str, measured: &[Measured], curves: &[Curve]) -> PlotResult {
    let x_max = measured
        .iter()
        .flat_map(|m| m.points.iter().map(|p| p.0))
        .fold(0.5f64, f64::max);
    let y_max = measured
        .iter()
        .flat_map(|m| m.points.iter().map(|p| p.3))
        .chain(curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)))
        .fold(x_max, f64::max)
        * 1.05;
    let root = canvas(path)?;
    let mut chart = builder(&root, caption, 60).build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("alpha: hashrate or stake share")
        .y_desc("share of canonical blocks")
        .draw()?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (x_max, x_max)], BLACK.mix(0.3)))?
        .label("share = alpha (honest)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.3)));
    for (i, c) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(DashedLineSeries::new(
                c.points.iter().copied(),
                5,
                4,
                color.stroke_width(1),
            ))?
            .label(c.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(1)));
    }
    for (i, m) in measured.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(m.points.iter().map(|(x, mean, low, high)| {
                ErrorBar::new_vertical(*x, *low, *mean, *high, color.filled(), 6)
            }))?
            .label(m.name.as_str())
            .legend(move |(x, y)| Circle::new((x + 8, y), 3, color.filled()));
        chart.draw_series(
            m.points
                .iter()
                .map(|(x, mean, _, _)| Circle::new((*x, *mean), 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()
}

/// Lines of `y` against `x` with a log x axis and a zero line (the
/// equivocation payoffs against the chance that evidence lands).
pub(crate) fn lines(path: &Path, caption: &str, x_desc: &str, y_desc: &str, curves: &[Curve]) -> PlotResult {
    let xs = || curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let ys = || curves.iter().flat_map(|c| c.points.iter().map(|p| p.1));
    let (x_min, x_max) = (xs().fold(f64::MAX, f64::min).max(1e-6), xs().fold(1e-6, f64::max));
    let (y_min, y_max) = (ys().fold(0.0, f64::min), ys().fold(0.0, f64::max));
    let pad = (y_max - y_min).max(1.0) * 0.05;
    let root = canvas(path)?;
    let mut chart = builder(&root, caption, 80)
        .build_cartesian_2d((x_min..x_max).log_scale(), y_min - pad..y_max + pad)?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw()?;
    chart.draw_series(LineSeries::new([(x_min, 0.0), (x_max, 0.0)], BLACK.mix(0.4)))?;
    for (i, c) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(c.points.iter().copied(), color.stroke_width(2)))?
            .label(c.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart.draw_series(c.points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()
}
