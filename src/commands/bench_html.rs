//! The self-contained HTML report of `kestrel bench`: the machine, a table, each candidate's
//! verdict and three inline SVG charts (latency against quality with its Pareto frontier,
//! latency distributions, size against quality). No scripts, no external files.

use std::fmt::Write as _;

use super::bench::{fastest_acceptable, verdict, why_slower, Machine, Row, ACCEPTABLE_LOSS_PT};
use crate::cli::Workload;

const COLORS: [&str; 6] = ["#6b7280", "#0f766e", "#b45309", "#7c3aed", "#be123c", "#1d4ed8"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Horizontal box plots: whiskers p1–p99, box p25–p75, a bar at the median.
fn latency_chart(rows: &[Row]) -> String {
    let (left, width, row_h) = (260.0, 760.0, 46.0);
    let height = 50.0 + row_h * rows.len() as f64;
    let max = rows.iter().flat_map(|r| r.latencies_ms.iter().copied()).fold(0.0, f64::max).max(1e-3) * 1.05;
    let x = |v: f64| left + (width - left - 130.0) * v / max;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="latency distributions">"#
    );
    for i in 0..=5 {
        let v = max * f64::from(i) / 5.0;
        let _ = write!(
            s,
            r##"<line x1="{0:.1}" y1="20" x2="{0:.1}" y2="{1:.1}" stroke="#e5e7eb"/><text x="{0:.1}" y="{2:.1}" font-size="11" text-anchor="middle" fill="#374151">{3:.2} ms</text>"##,
            x(v),
            height - 24.0,
            height - 8.0,
            v
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let mut sorted = r.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            continue;
        }
        let y = 30.0 + row_h * i as f64;
        let mid = y + row_h / 2.0 - 6.0;
        let c = COLORS[i % COLORS.len()];
        let (p1, p25, p50, p75, p99) =
            (pct(&sorted, 1.0), pct(&sorted, 25.0), pct(&sorted, 50.0), pct(&sorted, 75.0), pct(&sorted, 99.0));
        let _ = write!(
            s,
            r##"<text x="{lx:.1}" y="{ty:.1}" font-size="12" text-anchor="end" fill="#111827">{name}</text><line x1="{a:.1}" y1="{mid:.1}" x2="{b:.1}" y2="{mid:.1}" stroke="{c}" stroke-width="2"/><rect x="{c1:.1}" y="{by:.1}" width="{bw:.1}" height="18" fill="{c}" fill-opacity="0.35" stroke="{c}"/><line x1="{m:.1}" y1="{by:.1}" x2="{m:.1}" y2="{be:.1}" stroke="{c}" stroke-width="3"/><text x="{tx:.1}" y="{ty:.1}" font-size="11" fill="#374151">p50 {p50:.3} ms</text>"##,
            lx = left - 10.0,
            ty = mid + 4.0,
            name = esc(&short(&r.model)),
            a = x(p1),
            b = x(p99),
            c1 = x(p25),
            by = mid - 9.0,
            bw = (x(p75) - x(p25)).max(1.0),
            m = x(p50),
            be = mid + 9.0,
            tx = x(p99) + 6.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// Where point labels go: each label takes the first spot around its point that overlaps no
/// point and no label placed before it (and stays inside the plot), so labels never collide.
struct Labels {
    taken: Vec<[f64; 4]>,
    bounds: [f64; 4],
}

impl Labels {
    /// Approximate width of `text` at 12 px (system-ui averages about 6.6 px a character).
    fn width(text: &str) -> f64 {
        7.0 * text.chars().count() as f64
    }

    fn overlaps(a: &[f64; 4], b: &[f64; 4]) -> bool {
        a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
    }

    /// Places a label for the point at `(px, py)`; returns its text position (start, baseline).
    fn place(&mut self, px: f64, py: f64, text: &str) -> (f64, f64) {
        let (w, h) = (Self::width(text), 14.0);
        let [left, top, right, bottom] = self.bounds;
        // Right, left, above, below the point, each further out in turn; shifted into the plot.
        let candidates = (0..4).flat_map(|step| {
            let d = 10.0 + 14.0 * f64::from(step);
            [(px + d, py - h / 2.0), (px - d - w, py - h / 2.0), (px - w / 2.0, py - d - h), (px - w / 2.0, py + d)]
                .map(|(x0, y0): (f64, f64)| {
                    let (x0, y0) = (x0.min(right - w).max(left), y0.min(bottom - h).max(top));
                    [x0, y0, x0 + w, y0 + h]
                })
        });
        let free = |b: &[f64; 4]| !self.taken.iter().any(|o| Self::overlaps(o, b));
        let first = [px + 10.0, py - h / 2.0, px + 10.0 + w, py + h / 2.0];
        let b = candidates.clone().find(free).or_else(|| candidates.clone().next()).unwrap_or(first);
        self.taken.push(b);
        (b[0], b[3] - 3.0)
    }
}

/// A scatter of quality (y) against `x_of` (x), one labeled point per model, with the Pareto
/// frontier (no other model is both further left and higher) drawn as a line. The x axis turns
/// logarithmic when the values span more than a factor of 8 (a slow candidate beside fast ones).
fn quality_chart(
    rows: &[Row],
    x_of: fn(&Row) -> f64,
    x_label: &str,
    x_format: fn(f64) -> String,
    label: &str,
) -> String {
    let (w, h, l, b) = (760.0, 380.0, 70.0, 50.0);
    let points: Vec<(f64, f64, usize)> =
        rows.iter().enumerate().filter_map(|(i, r)| r.quality.map(|q| (x_of(r).max(1e-9), q * 100.0, i))).collect();
    let mut s =
        format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{label}">"#);
    if points.is_empty() {
        s.push_str(
            r##"<text x="20" y="30" font-size="13" fill="#374151">no quality measure in this run</text></svg>"##,
        );
        return s;
    }
    let hi = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let lo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let log = hi / lo > 8.0;
    let (x0, x1) = if log { ((lo / 1.5).log10(), (hi * 1.5).log10()) } else { (0.0, hi * 1.15) };
    let axis = |v: f64| if log { v.log10() } else { v };
    let min_y = (points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) - 2.0).floor().max(0.0);
    let max_y = (points.iter().map(|p| p.1).fold(0.0, f64::max) + 1.0).ceil().min(100.0).max(min_y + 1.0);
    let x = |v: f64| l + (w - l - 30.0) * (axis(v) - x0) / (x1 - x0);
    let y = |v: f64| (h - b) - (h - b - 20.0) * (v - min_y) / (max_y - min_y);
    let x_label = if log { format!("{x_label}, log scale") } else { x_label.to_string() };
    let _ = write!(
        s,
        r##"<line x1="{l}" y1="{0}" x2="{1}" y2="{0}" stroke="#111827"/><line x1="{l}" y1="20" x2="{l}" y2="{0}" stroke="#111827"/><text x="{2}" y="{3}" font-size="12" text-anchor="middle" fill="#111827">{x_label}</text><text x="16" y="{4}" font-size="12" fill="#111827" transform="rotate(-90 16 {4})" text-anchor="middle">{5}</text>"##,
        h - b,
        w - 20.0,
        (l + w) / 2.0,
        h - 10.0,
        (h - b) / 2.0,
        esc(&format!("{} (%)", rows[0].quality_kind)),
    );
    for i in 0..=4 {
        let t = x0 + (x1 - x0) * f64::from(i) / 4.0;
        let vx = if log { 10f64.powf(t) } else { t };
        let vy = min_y + (max_y - min_y) * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#374151">{}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#374151">{:.1}</text>"##,
            x(vx),
            h - b + 16.0,
            x_format(vx),
            l - 6.0,
            y(vy) + 4.0,
            vy
        );
    }
    // The frontier: sorted by x, each point better than every point to its left.
    let mut by_x = points.clone();
    by_x.sort_by(|a, c| a.0.total_cmp(&c.0).then(c.1.total_cmp(&a.1)));
    let mut frontier = Vec::new();
    for p in &by_x {
        if frontier.last().is_none_or(|f: &(f64, f64, usize)| p.1 > f.1) {
            frontier.push(*p);
        }
    }
    let path: Vec<String> = frontier.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1))).collect();
    let _ = write!(
        s,
        r##"<polyline class="frontier" points="{}" fill="none" stroke="#9ca3af" stroke-width="2" stroke-dasharray="6 4"/>"##,
        path.join(" ")
    );
    let mut labels = Labels {
        taken: points.iter().map(|p| [x(p.0) - 8.0, y(p.1) - 8.0, x(p.0) + 8.0, y(p.1) + 8.0]).collect(),
        bounds: [l + 2.0, 2.0, w - 2.0, h - b - 2.0],
    };
    for (px, py, i) in &points {
        let c = COLORS[i % COLORS.len()];
        let r = &rows[*i];
        let text = format!("{} on {} ({:.2}%)", short(&r.model), r.backend, py);
        let (tx, ty) = labels.place(x(*px), y(*py), &text);
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="7" fill="{c}"/><text class="label" x="{tx:.1}" y="{ty:.1}" font-size="12" fill="#111827">{}</text>"##,
            x(*px),
            y(*py),
            esc(&text),
        );
    }
    s.push_str("</svg>");
    s
}

fn short(path: &str) -> String {
    let p = std::path::Path::new(path);
    let file = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = p.parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
    if dir.is_empty() {
        file
    } else {
        format!("{dir}/{file}")
    }
}

pub fn page(rows: &[Row], workload: &Workload, machine: &Machine) -> String {
    let what = workload
        .dataset
        .clone()
        .or_else(|| workload.images.as_ref().map(|p| p.display().to_string()))
        .unwrap_or_default();
    let mut table = String::from("<table><tr><th>model</th><th>backend</th><th>threads</th><th>size (KB)</th><th>parameters</th><th>MMACs</th><th>load (ms)</th><th>p50 (ms)</th><th>p90 (ms)</th><th>p99 (ms)</th><th>per second</th><th>peak memory (MB)</th><th>quality</th></tr>");
    for r in rows {
        let _ = write!(
            table,
            r#"<tr><td>{}</td><td title="{}">{}</td><td>{}</td>"#,
            esc(&r.model),
            esc(&r.backend_reason),
            esc(&r.backend),
            r.threads
        );
        for c in r.cells() {
            let _ = write!(table, "<td>{}</td>", esc(&c));
        }
        table.push_str("</tr>");
    }
    table.push_str("</table>");
    let mut verdicts = String::from("<ul>");
    if let Some(full) = rows.first() {
        for r in &rows[1..] {
            let _ = write!(verdicts, "<li>{}", esc(&verdict(r, full)));
            if r.p50_ms > full.p50_ms {
                let _ = write!(verdicts, "<br><small>slower because: {}</small>", esc(&why_slower(r)));
            }
            verdicts.push_str("</li>");
        }
    }
    verdicts.push_str("</ul>");
    let best = fastest_acceptable(rows).map_or("no model has a quality measure".into(), |r| {
        format!(
            "fastest within {ACCEPTABLE_LOSS_PT} pt of the full model's quality: {} on {} ({:.3} ms p50)",
            short(&r.model),
            r.backend,
            r.p50_ms
        )
    });
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kestrel bench</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#111827}}table{{border-collapse:collapse;margin:12px 0}}td,th{{border:1px solid #d1d5db;padding:4px 8px;text-align:right;font-size:13px}}td:first-child,th:first-child,td:nth-child(2){{text-align:left}}h2{{font-size:16px;margin-top:28px}}</style>
</head><body>
<h1>kestrel bench</h1>
<p id="machine">Machine: {machine}.</p>
<p>Workload: {what}; {runs} timed runs per model after warm-up, {threads} thread(s), batch 1; timed in {rounds} rounds in which the models take turns, each in a fresh process. Quality: {kind}.</p>
{table}
{verdicts}
<h2>Latency against quality (the dashed line is the Pareto frontier)</h2>
<p id="best">{best}.</p>
{lq}
<h2>Latency distribution (whiskers p1–p99, box p25–p75, bar p50)</h2>
{lat}
<h2>Size against quality</h2>
{sq}
</body></html>
"#,
        machine = esc(&machine.describe()),
        what = esc(&what),
        runs = workload.runs,
        rounds = super::bench::ROUNDS.min(workload.runs),
        threads = workload.threads,
        kind = esc(&rows.first().map(|r| r.quality_kind.clone()).unwrap_or_default()),
        best = esc(&best),
        lq = quality_chart(rows, |r| r.p50_ms, "p50 latency (ms)", |v| format!("{v:.3}"), "latency against quality"),
        lat = latency_chart(rows),
        sq = quality_chart(
            rows,
            |r| r.file_bytes as f64 / 1024.0,
            "file size (KB)",
            |v| format!("{v:.0}"),
            "size against quality"
        ),
        verdicts = verdicts,
    )
}

#[cfg(test)]
mod tests {
    use super::Labels;

    /// Points close together (a candidate and its pruned twin often sit a few pixels apart):
    /// every label lands clear of every point and of every other label, inside the plot.
    #[test]
    fn labels_of_crowded_points_never_overlap() {
        let points: Vec<(f64, f64)> =
            (0..6).map(|i| (300.0 + 18.0 * f64::from(i), 150.0 + 17.0 * f64::from(i % 3))).collect();
        let bounds = [70.0, 2.0, 758.0, 328.0];
        let mut labels =
            Labels { taken: points.iter().map(|&(x, y)| [x - 8.0, y - 8.0, x + 8.0, y + 8.0]).collect(), bounds };
        let n_points = labels.taken.len();
        for (i, &(x, y)) in points.iter().enumerate() {
            labels.place(x, y, &format!("fashion-cnn/model.p{i}.int8.onnx on micro (89.86%)"));
        }
        let placed = &labels.taken[n_points..];
        for (i, a) in placed.iter().enumerate() {
            assert!(a[0] >= bounds[0] && a[1] >= bounds[1] && a[2] <= bounds[2] && a[3] <= bounds[3], "{a:?} outside");
            for (j, b) in labels.taken.iter().enumerate() {
                assert!(j == n_points + i || !Labels::overlaps(a, b), "label {i} {a:?} overlaps box {j} {b:?}");
            }
        }
    }
}
