//! The two pictures of a run: `timeline.svg` (outcomes per 250 ms, stacked by
//! KIND, with the phase boundaries) and `latency.svg` (p50 and p99 per 250 ms,
//! with B's timeout as a line).
//!
//! plotters' SVG backend only, with no font feature: text is written as SVG
//! `<text>` that the browser (or GitHub) renders with its own sans-serif, so
//! nothing here needs fontconfig or freetype, and the files hold no script and
//! no web font.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use super::load::Call;
use super::report::{histogram, kinds_seen, quantile_ms};
use super::scenario::Experiment;

/// Width of a time bucket, in seconds.
const BUCKET_S: f64 = 0.25;

/// One fixed colour per outcome, so pictures of different runs compare
/// (and the console's live view matches them).
pub(crate) fn colour(kind: &str) -> RGBColor {
    match kind {
        "ok" => RGBColor(0x2c, 0xa0, 0x2c),
        "timeout" => RGBColor(0xff, 0x7f, 0x0e),
        "connection_refused" => RGBColor(0xd6, 0x27, 0x28),
        "connection_reset" => RGBColor(0x94, 0x67, 0xbd),
        "upstream_status" => RGBColor(0x8c, 0x56, 0x4b),
        "bad_response" => RGBColor(0xe3, 0x77, 0xc2),
        "unreachable" => RGBColor(0x7f, 0x7f, 0x7f),
        "circuit_open" => RGBColor(0xbc, 0xbd, 0x22),
        "b_overloaded" => RGBColor(0x17, 0xbe, 0xcf),
        _ => RGBColor(0, 0, 0),
    }
}

fn buckets(e: &Experiment) -> usize {
    (e.total_seconds() / BUCKET_S).ceil().max(1.0) as usize
}

fn bucket_of(call: &Call, n: usize) -> usize {
    ((call.scheduled_ms / 1000.0 / BUCKET_S) as usize).min(n - 1)
}

/// Vertical lines at the phase boundaries, with the phase names on top.
fn draw_phases<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    e: &Experiment,
    top: f64,
) -> anyhow::Result<()> {
    let grey = RGBColor(0x55, 0x55, 0x55);
    for (start, phase) in e.phase_starts().into_iter().zip(&e.phases) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(start, 0.0), (start, top)],
                grey.stroke_width(1),
            )))
            .map_err(|err| anyhow!("drawing a phase boundary: {err}"))?;
        chart
            .draw_series(std::iter::once(Text::new(
                phase.name.clone(),
                (start + 0.05, top * 0.98),
                ("sans-serif", 13).into_font().color(&grey),
            )))
            .map_err(|err| anyhow!("drawing a phase name: {err}"))?;
    }
    Ok(())
}

/// `timeline.svg`: calls per 250 ms by their scheduled start, stacked by outcome.
pub fn timeline(path: &Path, e: &Experiment, calls: &[Call]) -> anyhow::Result<()> {
    let n = buckets(e);
    let kinds = kinds_seen(calls);
    let mut counts = vec![vec![0u32; kinds.len()]; n];
    for c in calls {
        if let Some(k) = kinds.iter().position(|k| *k == c.kind) {
            counts[bucket_of(c, n)][k] += 1;
        }
    }
    let most = counts
        .iter()
        .map(|b| b.iter().sum::<u32>())
        .max()
        .unwrap_or(1)
        .max(1);
    // Head room above the bars for the phase names and the legend.
    let top = f64::from(most) * 1.7;
    let total = e.total_seconds();

    let root = SVGBackend::new(path, (1000, 440)).into_drawing_area();
    let title = format!("{}: outcomes per 250 ms", e.title);
    let mut chart = frame(&root, title, (total, top), "calls per 250 ms")?;
    for (k, kind) in kinds.iter().enumerate() {
        let c = colour(kind);
        let rects: Vec<_> = counts
            .iter()
            .enumerate()
            .filter(|(_, b)| b[k] > 0)
            .map(|(i, b)| {
                let below: u32 = b[..k].iter().sum();
                let x0 = i as f64 * BUCKET_S;
                Rectangle::new(
                    [
                        (x0, f64::from(below)),
                        (x0 + BUCKET_S * 0.9, f64::from(below + b[k])),
                    ],
                    c.filled(),
                )
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(|err| anyhow!("{err}"))?
            .label(kind.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    finish(chart, e, top, &root, path)
}

/// A chart as both files draw one: white, titled, seconds across from 0 to
/// `total`, `y_desc` up from 0 to `top`.
type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The frame both charts share (see [`Chart`]).
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: String,
    (total, top): (f64, f64),
    y_desc: &str,
) -> anyhow::Result<Chart<'a, 'b>> {
    root.fill(&WHITE).map_err(|err| anyhow!("{err}"))?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..total, 0f64..top)
        .map_err(|err| anyhow!("{err}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("seconds since the start of the run")
        .y_desc(y_desc)
        .draw()
        .map_err(|err| anyhow!("{err}"))?;
    Ok(chart)
}

/// What both charts end with: the phase boundaries, the legend below the
/// phase names at the right, and the file written.
fn finish<'a, 'b>(
    mut chart: Chart<'a, 'b>,
    e: &Experiment,
    top: f64,
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    path: &Path,
) -> anyhow::Result<()> {
    draw_phases(&mut chart, e, top)?;
    let (w, _) = chart.plotting_area().dim_in_pixel();
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::Coordinate(w as i32 - 200, 26))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|err| anyhow!("{err}"))?;
    root.present()
        .map_err(|err| anyhow!("writing {}: {err}", path.display()))
}

/// `latency.svg`: p50 and p99 per 250 ms, and B's deadline.
pub fn latency(path: &Path, e: &Experiment, calls: &[Call]) -> anyhow::Result<()> {
    let n = buckets(e);
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); n];
    for c in calls {
        per[bucket_of(c, n)].push(c.latency_ms);
    }
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for (i, values) in per.iter().enumerate() {
        if values.is_empty() {
            continue;
        }
        let Some(h) = histogram(values.iter().copied()) else {
            continue;
        };
        let x = (i as f64 + 0.5) * BUCKET_S;
        p50.push((x, quantile_ms(&h, 0.5)));
        p99.push((x, quantile_ms(&h, 0.99)));
    }
    let timeout = e.timeout_ms as f64;
    let highest = p99.iter().map(|p| p.1).fold(timeout, f64::max);
    let top = highest * 1.5;
    let total = e.total_seconds();

    let root = SVGBackend::new(path, (1000, 440)).into_drawing_area();
    let title = format!("{}: latency per 250 ms (from the scheduled start)", e.title);
    let mut chart = frame(&root, title, (total, top), "ms")?;
    let red = RGBColor(0xd6, 0x27, 0x28);
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, timeout), (total, timeout)],
            red.stroke_width(1),
        ))
        .map_err(|err| anyhow!("{err}"))?
        .label(format!("B's timeout ({} ms)", e.timeout_ms))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], red.stroke_width(1)));
    for (name, points, c) in [
        ("p50", p50, RGBColor(0x1f, 0x77, 0xb4)),
        ("p99", p99, RGBColor(0xff, 0x7f, 0x0e)),
    ] {
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(|err| anyhow!("{err}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2)));
    }
    finish(chart, e, top, &root, path)
}
