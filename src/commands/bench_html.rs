//! The self-contained HTML report of `kestrel bench`: a table and two inline SVG charts
//! (latency distributions; size against quality). No scripts, no external files.

use std::fmt::Write as _;

use super::bench::Row;
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

/// File size against quality, one labeled point per model.
fn size_quality_chart(rows: &[Row]) -> String {
    let (w, h, l, b) = (760.0, 360.0, 70.0, 50.0);
    let points: Vec<(f64, f64, &Row)> =
        rows.iter().filter_map(|r| r.quality.map(|q| (r.file_bytes as f64 / 1024.0, q * 100.0, r))).collect();
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="size against quality">"#
    );
    if points.is_empty() {
        s.push_str(
            r##"<text x="20" y="30" font-size="13" fill="#374151">no quality measure in this run</text></svg>"##,
        );
        return s;
    }
    let max_x = points.iter().map(|p| p.0).fold(0.0, f64::max) * 1.15;
    let min_y = (points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) - 2.0).floor().max(0.0);
    let max_y = (points.iter().map(|p| p.1).fold(0.0, f64::max) + 1.0).ceil().min(100.0).max(min_y + 1.0);
    let x = |v: f64| l + (w - l - 30.0) * v / max_x;
    let y = |v: f64| (h - b) - (h - b - 20.0) * (v - min_y) / (max_y - min_y);
    let _ = write!(
        s,
        r##"<line x1="{l}" y1="{0}" x2="{1}" y2="{0}" stroke="#111827"/><line x1="{l}" y1="20" x2="{l}" y2="{0}" stroke="#111827"/><text x="{2}" y="{3}" font-size="12" text-anchor="middle" fill="#111827">file size (KB)</text><text x="16" y="{4}" font-size="12" fill="#111827" transform="rotate(-90 16 {4})" text-anchor="middle">{5}</text>"##,
        h - b,
        w - 20.0,
        (l + w) / 2.0,
        h - 10.0,
        (h - b) / 2.0,
        esc(&format!("{} (%)", rows[0].quality_kind)),
    );
    for i in 0..=4 {
        let vx = max_x * f64::from(i) / 4.0;
        let vy = min_y + (max_y - min_y) * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#374151">{:.0}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#374151">{:.1}</text>"##,
            x(vx),
            h - b + 16.0,
            vx,
            l - 6.0,
            y(vy) + 4.0,
            vy
        );
    }
    for (i, (px, py, r)) in points.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="7" fill="{c}"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#111827" text-anchor="{}">{} ({:.2}%)</text>"##,
            x(*px),
            y(*py),
            if x(*px) > w / 2.0 { x(*px) - 10.0 } else { x(*px) + 10.0 },
            y(*py) - 8.0,
            if x(*px) > w / 2.0 { "end" } else { "start" },
            esc(&short(&r.model)),
            py
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

pub fn page(rows: &[Row], workload: &Workload) -> String {
    let what = workload
        .dataset
        .clone()
        .or_else(|| workload.images.as_ref().map(|p| p.display().to_string()))
        .unwrap_or_default();
    let mut table = String::from("<table><tr><th>model</th><th>size (KB)</th><th>parameters</th><th>MMACs</th><th>load (ms)</th><th>p50 (ms)</th><th>p90 (ms)</th><th>p99 (ms)</th><th>per second</th><th>peak memory (MB)</th><th>quality</th></tr>");
    for r in rows {
        let _ = write!(table, "<tr><td>{}</td>", esc(&format!("{} ({})", r.model, r.backend)));
        for c in r.cells() {
            let _ = write!(table, "<td>{}</td>", esc(&c));
        }
        table.push_str("</tr>");
    }
    table.push_str("</table>");
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kestrel bench</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#111827}}table{{border-collapse:collapse;margin:12px 0}}td,th{{border:1px solid #d1d5db;padding:4px 8px;text-align:right;font-size:13px}}td:first-child,th:first-child{{text-align:left}}h2{{font-size:16px;margin-top:28px}}</style>
</head><body>
<h1>kestrel bench</h1>
<p>Workload: {what}; {runs} timed runs per model after warm-up, {threads} thread(s), batch 1; each model measured in its own process. Quality: {kind}.</p>
{table}
<h2>Latency distribution (whiskers p1–p99, box p25–p75, bar p50)</h2>
{lat}
<h2>Size against quality</h2>
{sq}
</body></html>
"#,
        what = esc(&what),
        runs = workload.runs,
        threads = workload.threads,
        kind = esc(&rows.first().map(|r| r.quality_kind.clone()).unwrap_or_default()),
        lat = latency_chart(rows),
        sq = size_quality_chart(rows),
    )
}
