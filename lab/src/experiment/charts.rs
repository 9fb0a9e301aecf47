//! The two pictures of a run, each as SVG (for the browser and GitHub) and as
//! PNG (for Google Docs and Word, which take no SVG):
//!
//! - `timeline`: outcomes per 250 ms, stacked by KIND, under the phase names;
//! - `latency`: p50 and p99 per 250 ms on a log scale, so 1 ms and 1000 ms
//!   are both readable, with B's deadline drawn over the data.
//!
//! What a reader can rely on: bars touch (each spans its whole 250 ms, so no
//! rounding leaves a white gap between them); counts have whole-number ticks
//! and the axis ends at the tallest bar or just above it; the phase names and
//! the legend sit outside the plot, so they never push its axis up or hide
//! data; p99 is a wide pale band under a narrow p50 line, so both show even
//! where they are equal.
//!
//! Text is laid out with the Hack font the lab embeds (`epaint_default_fonts`,
//! a monospace face: even spacing at small sizes), through plotters'
//! `ab_glyph` feature: no fontconfig, no freetype, no system font, the same
//! pixels on every machine.
//! The SVG still writes text as `<text>` elements, for the browser to render.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::load::Call;
use super::outcome::colour_of;
use super::scenario::Experiment;
use super::stats::{histogram, kinds_seen, quantile_ms};

/// Width of a time bucket, in seconds.
const BUCKET_S: f64 = 0.25;
/// Pixels of each picture: wide enough for a 30 s run at 250 ms a bar
/// (about 6 px a bar), small enough to paste into a page.
const SIZE: (u32, u32) = (1000, 440);
/// The strip at the right that holds the legend, outside the plot.
const LEGEND_W: u32 = 200;
/// Room above the plot for two rows of phase names.
const PHASE_ROWS_H: u32 = 34;
/// The lowest latency the log axis shows, in ms: loopback answers take a
/// few tenths of a millisecond at best; anything faster is drawn at this.
const LATENCY_FLOOR_MS: f64 = 0.1;

const GREY: RGBColor = RGBColor(0x55, 0x55, 0x55);
const RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const P50: RGBColor = RGBColor(0x1f, 0x3b, 0x8c);
const P99: RGBColor = RGBColor(0xff, 0xa5, 0x4d);

/// The outcome's fixed colour ([`Outcome::colour`](super::outcome::Outcome::colour)),
/// so pictures of different runs compare and the console's live view matches them.
fn colour(kind: &str) -> RGBColor {
    let (r, g, b) = colour_of(kind);
    RGBColor(r, g, b)
}

/// Makes the embedded font plotters' "sans-serif" (once per process).
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled into the binary; a
        // failure here would be a broken build, seen by the tests at once.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::HACK_REGULAR,
        );
    });
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Writes `timeline.svg`, `timeline.png`, `latency.svg` and `latency.png`
/// into `out`; returns their paths.
pub fn write(out: &Path, e: &Experiment, calls: &[Call]) -> anyhow::Result<Vec<PathBuf>> {
    register_font();
    let counts = Counts::of(e, calls);
    let lat = Latency::of(e, calls);
    let mut written = Vec::new();
    for (name, is_timeline) in [("timeline", true), ("latency", false)] {
        let svg = out.join(format!("{name}.svg"));
        let png = out.join(format!("{name}.png"));
        let draw_svg = SVGBackend::new(&svg, SIZE).into_drawing_area();
        let draw_png = BitMapBackend::new(&png, SIZE).into_drawing_area();
        if is_timeline {
            timeline(&draw_svg, e, &counts)?;
            timeline(&draw_png, e, &counts)?;
        } else {
            latency(&draw_svg, e, &lat)?;
            latency(&draw_png, e, &lat)?;
        }
        draw_svg
            .present()
            .map_err(|x| anyhow!("writing {}: {x}", svg.display()))?;
        draw_png
            .present()
            .map_err(|x| anyhow!("writing {}: {x}", png.display()))?;
        drop((draw_svg, draw_png));
        written.push(svg);
        written.push(png);
    }
    Ok(written)
}

/// Calls per 250 ms bucket (by scheduled start), per outcome.
struct Counts {
    kinds: Vec<String>,
    /// `per[bucket][kind]`.
    per: Vec<Vec<u32>>,
}

impl Counts {
    fn of(e: &Experiment, calls: &[Call]) -> Self {
        let n = buckets(e);
        let kinds = kinds_seen(calls);
        let mut per = vec![vec![0u32; kinds.len()]; n];
        for c in calls {
            if let Some(k) = kinds.iter().position(|k| *k == c.kind) {
                per[bucket_of(c, n)][k] += 1;
            }
        }
        Self { kinds, per }
    }

    fn tallest(&self) -> u32 {
        self.per.iter().map(|b| b.iter().sum()).max().unwrap_or(0)
    }
}

/// p50 and p99 per bucket that had calls, at the bucket's middle.
struct Latency {
    p50: Vec<(f64, f64)>,
    p99: Vec<(f64, f64)>,
}

impl Latency {
    fn of(e: &Experiment, calls: &[Call]) -> Self {
        let n = buckets(e);
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); n];
        for c in calls {
            per[bucket_of(c, n)].push(c.latency_ms);
        }
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        for (i, values) in per.iter().enumerate() {
            let Some(h) = histogram(values.iter().copied()) else {
                continue;
            };
            let x = (i as f64 + 0.5) * BUCKET_S;
            p50.push((x, quantile_ms(&h, 0.5).max(LATENCY_FLOOR_MS)));
            p99.push((x, quantile_ms(&h, 0.99).max(LATENCY_FLOOR_MS)));
        }
        Self { p50, p99 }
    }
}

fn buckets(e: &Experiment) -> usize {
    (e.total_seconds() / BUCKET_S).ceil().max(1.0) as usize
}

fn bucket_of(call: &Call, n: usize) -> usize {
    ((call.scheduled_ms / 1000.0 / BUCKET_S) as usize).min(n - 1)
}

/// The top of the count axis: the tallest bar, rounded up to a step that
/// gives at most ten whole-number ticks.
fn count_top(tallest: u32) -> (u32, u32) {
    let tallest = tallest.max(1);
    let step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000]
        .into_iter()
        .find(|s| tallest.div_ceil(*s) <= 10)
        .unwrap_or(tallest.div_ceil(10));
    (tallest.div_ceil(step) * step, step)
}

/// The top of the latency axis: the next 1-2-5 value above the highest
/// point (or the deadline), so the deadline line never sits on the frame.
fn latency_top(highest: f64) -> f64 {
    let mut top = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if top * m > highest * 1.1 {
                return top * m;
            }
        }
        top *= 10.0;
    }
}

/// A number as a tick label: `5`, `2.5`, `0.1`; never `5.0`.
fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').to_owned()
    }
}

/// Title at the top; returns (the plot's area, the legend's strip).
fn layout<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> anyhow::Result<(DrawingArea<DB, Shift>, DrawingArea<DB, Shift>)> {
    root.fill(&WHITE).map_err(err)?;
    // The largest size, 19 px down to 11, at which the whole title fits.
    let fits = |size: u32| {
        let font: TextStyle<'_> = ("sans-serif", size).into();
        root.estimate_text_size(title, &font)
            .is_ok_and(|(w, _)| w + 20 <= SIZE.0)
    };
    let size = (11..=19).rev().find(|s| fits(*s)).unwrap_or(11);
    let body = root
        .titled(title, ("sans-serif", size).into_font().color(&BLACK))
        .map_err(err)?;
    Ok(body.split_horizontally(SIZE.0 - LEGEND_W))
}

/// The phase boundaries as lines over the plot, and their names above it
/// (on a second row where the first has no room), never inside the data.
fn phases<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    e: &Experiment,
    px: impl Fn(f64) -> (i32, i32, i32),
) -> anyhow::Result<()> {
    let font = ("sans-serif", 13).into_font().color(&GREY);
    let mut row_end = [i32::MIN; 2];
    for (start, phase) in e.phase_starts().into_iter().zip(&e.phases) {
        let (x, top, bottom) = px(start);
        area.draw(&PathElement::new(
            vec![(x, top), (x, bottom)],
            GREY.stroke_width(1),
        ))
        .map_err(err)?;
        let (w, _) = area.estimate_text_size(&phase.name, &font).map_err(err)?;
        let row = if row_end[0] < x { 0 } else { 1 };
        if row_end[row] >= x {
            continue; // no room on either row: the line still marks it
        }
        let y = top - PHASE_ROWS_H as i32 + 2 + row as i32 * 16;
        area.draw(&Text::new(phase.name.clone(), (x + 3, y), font.clone()))
            .map_err(err)?;
        row_end[row] = x + 3 + w as i32 + 6;
    }
    Ok(())
}

/// One legend entry per series, in the strip at the right.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, ShapeStyle, bool)],
) -> anyhow::Result<()> {
    let font = ("sans-serif", 14).into_font().color(&BLACK);
    for (i, (label, style, is_box)) in entries.iter().enumerate() {
        let y = PHASE_ROWS_H as i32 + 12 + i as i32 * 22;
        if *is_box {
            area.draw(&Rectangle::new([(8, y - 6), (22, y + 6)], *style))
                .map_err(err)?;
        } else {
            area.draw(&PathElement::new(vec![(4, y), (26, y)], *style))
                .map_err(err)?;
        }
        area.draw(&Text::new(label.clone(), (32, y - 8), font.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// Outcomes per 250 ms, stacked by KIND.
fn timeline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    e: &Experiment,
    counts: &Counts,
) -> anyhow::Result<()> {
    let title = format!("{}: outcomes per 250 ms", e.title);
    let (plot, side) = layout(root, &title)?;
    let total = e.total_seconds();
    let (top, step) = count_top(counts.tallest());
    let mut chart = ChartBuilder::on(&plot)
        .margin(10)
        .margin_top(PHASE_ROWS_H)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..total, 0u32..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_labels((top / step + 1) as usize)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| v.to_string())
        .x_desc("seconds since the start of the run")
        .y_desc("calls per 250 ms")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let mut entries = Vec::new();
    for (k, kind) in counts.kinds.iter().enumerate() {
        let c = colour(kind);
        // Each bar spans its whole bucket: neighbours share an edge.
        let bars = counts
            .per
            .iter()
            .enumerate()
            .filter(|(_, b)| b[k] > 0)
            .map(|(i, b)| {
                let below: u32 = b[..k].iter().sum();
                let x0 = i as f64 * BUCKET_S;
                Rectangle::new([(x0, below), (x0 + BUCKET_S, below + b[k])], c.filled())
            });
        chart.draw_series(bars).map_err(err)?;
        entries.push((kind.clone(), c.filled(), true));
    }
    let frame = |x: f64| {
        let (px, top_px) = chart.backend_coord(&(x, top));
        let (_, bottom_px) = chart.backend_coord(&(x, 0));
        (px, top_px, bottom_px)
    };
    phases(root, e, frame)?;
    legend(&side, &entries)
}

/// p50 and p99 per 250 ms on a log scale, with B's deadline over them.
fn latency<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    e: &Experiment,
    lat: &Latency,
) -> anyhow::Result<()> {
    let title = format!(
        "{}: latency per 250 ms, from each call's scheduled start",
        e.title
    );
    let (plot, side) = layout(root, &title)?;
    let total = e.total_seconds();
    let deadline = e.timeout_ms as f64;
    let highest = lat.p99.iter().map(|p| p.1).fold(deadline, f64::max);
    let top = latency_top(highest);
    let mut chart = ChartBuilder::on(&plot)
        .margin(10)
        .margin_top(PHASE_ROWS_H)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..total, (LATENCY_FLOOR_MS..top).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .x_desc("seconds since the start of the run")
        .y_desc("ms (log scale)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    // p99 first, wide and pale; p50 over it, narrow and dark: both show.
    let p99 = P99.stroke_width(6);
    let p50 = P50.stroke_width(2);
    chart
        .draw_series(LineSeries::new(lat.p99.iter().copied(), p99))
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(lat.p50.iter().copied(), p50))
        .map_err(err)?;
    // The deadline last, over the data it bounds.
    let red = RED.stroke_width(2);
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, deadline), (total, deadline)],
            8,
            5,
            red,
        ))
        .map_err(err)?;
    let frame = |x: f64| {
        let (px, top_px) = chart.backend_coord(&(x, top));
        let (_, bottom_px) = chart.backend_coord(&(x, LATENCY_FLOOR_MS));
        (px, top_px, bottom_px)
    };
    phases(root, e, frame)?;
    legend(
        &side,
        &[
            ("p50".to_owned(), p50, false),
            ("p99".to_owned(), p99, false),
            (format!("B's timeout ({} ms)", e.timeout_ms), red, false),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::scenario::parse::parse;
    use crate::experiment::scenario::Scale;

    const SCENARIO: &str = r#"
title = "chart test"
[b.upstream]
timeout_ms = 1000
[load]
rate = 20
[[phase]]
name = "healthy"
seconds = 3
[[phase]]
name = "A slow"
seconds = 3
fault = { delay_ms = 1500 }
[[phase]]
name = "A stopped"
seconds = 2
a = "stop"
"#;

    /// Calls as a run would make them: ok in 1 ms, then timeouts at the
    /// deadline, then refused in half a millisecond.
    fn calls() -> Vec<Call> {
        (0..160u64)
            .map(|n| {
                let at = n as f64 * 50.0;
                let (kind, ms) = match at {
                    a if a < 3000.0 => ("ok", 1.0 + (n % 3) as f64),
                    a if a < 6000.0 => ("timeout", 1001.0),
                    _ => ("connection_refused", 0.5),
                };
                Call {
                    n,
                    phase: 0,
                    scheduled_ms: at,
                    sent_ms: at,
                    latency_ms: ms,
                    status: if kind == "ok" { 200 } else { 503 },
                    kind: kind.to_owned(),
                    attempts: Some(1),
                    trace_id: String::new(),
                    detail: String::new(),
                }
            })
            .collect()
    }

    /// Each chart renders to a PNG of the promised size that is not blank:
    /// the bars' colours and the deadline's red are in it.
    #[test]
    fn charts_render_to_png_not_blank() {
        let dir = tempfile::tempdir().unwrap();
        let e = parse(SCENARIO, Scale::Full).unwrap();
        let written = write(dir.path(), &e, &calls()).unwrap();
        assert_eq!(written.len(), 4);
        for (name, colours) in [
            ("timeline.png", vec![colour("ok"), colour("timeout")]),
            ("latency.png", vec![RED, P50, P99]),
        ] {
            let img = image_of(&dir.path().join(name));
            assert_eq!(img.dimensions(), SIZE, "{name}");
            let white = img.pixels().filter(|p| p.0 == [255, 255, 255]).count();
            let all = (SIZE.0 * SIZE.1) as usize;
            assert!(white < all * 97 / 100, "{name} is nearly blank");
            for c in colours {
                let n = img.pixels().filter(|p| p.0 == [c.0, c.1, c.2]).count();
                assert!(n > 50, "{name}: only {n} pixels of {c:?}");
            }
        }
    }

    /// Bars touch: along a row through the ok bars, no white pixel between
    /// the first and the last bar.
    #[test]
    fn bars_have_no_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let e = parse(SCENARIO, Scale::Full).unwrap();
        write(dir.path(), &e, &calls()).unwrap();
        let img = image_of(&dir.path().join("timeline.png"));
        let ok = colour("ok");
        let is_ok = |x: u32, y: u32| img.get_pixel(x, y).0 == [ok.0, ok.1, ok.2];
        let row = (0..SIZE.1)
            .rev()
            .find(|y| (0..SIZE.0).filter(|x| is_ok(*x, *y)).count() > 100)
            .expect("a row through the ok bars");
        let xs: Vec<u32> = (0..SIZE.0).filter(|x| is_ok(*x, row)).collect();
        let (first, last) = (xs[0], xs[xs.len() - 1]);
        assert_eq!(
            xs.len() as u32,
            last - first + 1,
            "gaps between {first} and {last} on row {row}"
        );
    }

    fn image_of(path: &Path) -> image::RgbImage {
        image::open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .to_rgb8()
    }

    /// Whole-number steps, at most ten ticks, the top at or just above the data.
    #[test]
    fn count_axis_fits() {
        assert_eq!(count_top(5), (5, 1));
        assert_eq!(count_top(0), (1, 1));
        assert_eq!(count_top(13), (14, 2));
        assert_eq!(count_top(97), (100, 10));
        assert_eq!(latency_top(1000.0), 2000.0);
        assert_eq!(latency_top(3.0), 5.0);
        assert_eq!(tick(5.0), "5");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(0.1), "0.1");
    }
}
