//! The paper's figures as standalone SVG, written by hand (no plotting dependency):
//! box plot of per-node sensitivity (figure 1), violin plot of SAD for metastatic vs non-metastatic
//! nodes (figure 3), scatter of SAD vs sensitivity with a line at 10 mm (figure 5), and the FROC
//! curve.
//!
//! Box plots follow matplotlib's defaults: quartiles by linear interpolation, whiskers to the most
//! extreme point within 1.5 IQR of the box, points beyond drawn as outliers. Violins are Gaussian
//! kernel density estimates with Scott's bandwidth (`scipy.stats.gaussian_kde`'s default, which
//! seaborn also uses), cut at the data range.
use crate::cohort::{CohortResult, FrocPoint};
use crate::stats::percentile_sorted;
use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const GREEN: &str = "#2ca02c";
const RED: &str = "#d62728";
const BLUE: &str = "#1f77b4";
const GREY: &str = "#7f7f7f";

/// "Nice" tick positions covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut out = Vec::new();
    let mut t = first;
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn fmt_tick(t: f64) -> String {
    let s = format!("{t:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// An SVG canvas with one plotting area and linear axes.
struct Canvas {
    svg: String,
    x: (f64, f64),
    y: (f64, f64),
}

impl Canvas {
    fn new(title: &str, x: (f64, f64), y: (f64, f64)) -> Self {
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="14">
<rect width="{W}" height="{H}" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="17">{}</text>
"#,
            W / 2.0,
            esc(title)
        );
        Canvas { svg, x, y }
    }
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x.0) / (self.x.1 - self.x.0) * (W - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        H - BOTTOM - (y - self.y.0) / (self.y.1 - self.y.0) * (H - TOP - BOTTOM)
    }
    /// Frame, y ticks and labels; numeric x ticks unless `x_categories` is given.
    fn axes(&mut self, x_label: &str, y_label: &str, x_categories: Option<&[(f64, String)]>) {
        let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
        let _ = writeln!(
            self.svg,
            r#"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            x1 - x0,
            y0 - y1
        );
        for t in ticks(self.y.0, self.y.1) {
            let y = self.py(t);
            let _ = writeln!(
                self.svg,
                r#"<line x1="{}" y1="{y}" x2="{x0}" y2="{y}" stroke="black"/><text x="{}" y="{}" text-anchor="end">{}</text><line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="{GREY}" stroke-opacity="0.2"/>"#,
                x0 - 5.0,
                x0 - 8.0,
                y + 4.0,
                fmt_tick(t)
            );
        }
        match x_categories {
            Some(cats) => {
                for (x, name) in cats {
                    let px = self.px(*x);
                    let _ = writeln!(
                        self.svg,
                        r#"<text x="{px}" y="{}" text-anchor="middle">{}</text>"#,
                        y0 + 18.0,
                        esc(name)
                    );
                }
            }
            None => {
                for t in ticks(self.x.0, self.x.1) {
                    let x = self.px(t);
                    let _ = writeln!(
                        self.svg,
                        r#"<line x1="{x}" y1="{y0}" x2="{x}" y2="{}" stroke="black"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"#,
                        y0 + 5.0,
                        y0 + 18.0,
                        fmt_tick(t)
                    );
                }
            }
        }
        let _ = writeln!(
            self.svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            H - 18.0,
            esc(x_label),
            (y0 + y1) / 2.0,
            esc(y_label)
        );
    }
    fn finish(mut self) -> String {
        self.svg.push_str("</svg>\n");
        self.svg
    }
}

/// A note centred in the plot (used when there is nothing to draw).
fn empty_note(c: &mut Canvas, note: &str) {
    let _ = writeln!(
        c.svg,
        r#"<text x="{}" y="{}" text-anchor="middle" fill="{GREY}">{}</text>"#,
        W / 2.0,
        H / 2.0,
        esc(note)
    );
}

/// Box plot of per-node sensitivity: all nodes, non-metastatic, metastatic.
pub fn sensitivity_boxplot(r: &CohortResult) -> String {
    let nodes: Vec<_> = r.scans.iter().flat_map(|s| s.result.nodes.iter()).collect();
    let groups: Vec<(String, Vec<f64>, &str)> = vec![
        ("all".into(), nodes.iter().map(|n| n.sensitivity).collect(), BLUE),
        (
            "non-metastatic".into(),
            nodes.iter().filter(|n| n.metastatic == Some(false)).map(|n| n.sensitivity).collect(),
            GREEN,
        ),
        (
            "metastatic".into(),
            nodes.iter().filter(|n| n.metastatic == Some(true)).map(|n| n.sensitivity).collect(),
            RED,
        ),
    ];
    let mut c = Canvas::new("Per-node sensitivity", (0.0, 3.0), (0.0, 1.05));
    let cats: Vec<(f64, String)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (i as f64 + 0.5, format!("{} (n={})", g.0, g.1.len())))
        .collect();
    c.axes("", "sensitivity", Some(&cats));
    for (i, (_, v, color)) in groups.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        let (q1, med, q3) =
            (percentile_sorted(&s, 25.0), percentile_sorted(&s, 50.0), percentile_sorted(&s, 75.0));
        let iqr = q3 - q1;
        let lo = s.iter().copied().find(|&x| x >= q1 - 1.5 * iqr).unwrap_or(q1);
        let hi = s.iter().rev().copied().find(|&x| x <= q3 + 1.5 * iqr).unwrap_or(q3);
        let xc = c.px(i as f64 + 0.5);
        let half = 0.18 * (c.px(1.0) - c.px(0.0));
        let _ = writeln!(
            c.svg,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{color}" fill-opacity="0.35" stroke="black"/><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="black" stroke-width="2"/>"#,
            xc - half,
            c.py(q3),
            2.0 * half,
            (c.py(q1) - c.py(q3)).max(0.5),
            xc - half,
            c.py(med),
            xc + half,
            c.py(med)
        );
        for (a, b) in [(q3, hi), (q1, lo)] {
            let _ = writeln!(
                c.svg,
                r#"<line x1="{xc}" y1="{}" x2="{xc}" y2="{}" stroke="black"/><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
                c.py(a),
                c.py(b),
                xc - half / 2.0,
                c.py(b),
                xc + half / 2.0,
                c.py(b)
            );
        }
        for &x in s.iter().filter(|&&x| x < lo || x > hi) {
            let _ =
                writeln!(c.svg, r#"<circle cx="{xc}" cy="{}" r="2.5" fill="none" stroke="black"/>"#, c.py(x));
        }
    }
    if nodes.is_empty() {
        empty_note(&mut c, "no ground-truth nodes");
    }
    c.finish()
}

/// Gaussian KDE with Scott's bandwidth, evaluated at `xs`; `None` when the bandwidth is zero.
fn kde(data: &[f64], xs: &[f64]) -> Option<Vec<f64>> {
    let n = data.len() as f64;
    if data.len() < 2 {
        return None;
    }
    let mean = data.iter().sum::<f64>() / n;
    let var = data.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let bw = var.sqrt() * n.powf(-0.2);
    if bw <= 0.0 || !bw.is_finite() {
        return None;
    }
    let norm = 1.0 / (n * bw * (2.0 * std::f64::consts::PI).sqrt());
    Some(
        xs.iter()
            .map(|&x| data.iter().map(|&d| (-0.5 * ((x - d) / bw).powi(2)).exp()).sum::<f64>() * norm)
            .collect(),
    )
}

/// Violin plot of SAD: non-metastatic vs metastatic nodes.
pub fn sad_violin(r: &CohortResult) -> String {
    let nodes: Vec<_> = r.scans.iter().flat_map(|s| s.result.nodes.iter()).collect();
    let groups: Vec<(&str, Vec<f64>, &str)> = vec![
        (
            "non-metastatic",
            nodes.iter().filter(|n| n.metastatic == Some(false)).map(|n| n.sad_mm).collect(),
            GREEN,
        ),
        ("metastatic", nodes.iter().filter(|n| n.metastatic == Some(true)).map(|n| n.sad_mm).collect(), RED),
    ];
    let ymax = nodes.iter().map(|n| n.sad_mm).fold(0.0f64, f64::max).max(1.0) * 1.05;
    let mut c = Canvas::new("Short-axis diameter by nodal status", (0.0, 2.0), (0.0, ymax));
    let cats: Vec<(f64, String)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (i as f64 + 0.5, format!("{} (n={})", g.0, g.1.len())))
        .collect();
    c.axes("", "SAD (mm)", Some(&cats));
    for (i, (_, v, color)) in groups.iter().enumerate() {
        if v.is_empty() {
            continue;
        }
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        let (lo, hi) = (s[0], s[s.len() - 1]);
        let xc = c.px(i as f64 + 0.5);
        let half = 0.4 * (c.px(1.0) - c.px(0.0));
        let xs: Vec<f64> = (0..=100).map(|t| lo + (hi - lo) * t as f64 / 100.0).collect();
        match kde(&s, &xs) {
            Some(d) => {
                let dmax = d.iter().copied().fold(0.0f64, f64::max);
                let mut pts = String::new();
                for (x, y) in xs.iter().zip(&d) {
                    let _ = write!(pts, "{},{} ", xc + half * y / dmax, c.py(*x));
                }
                for (x, y) in xs.iter().zip(&d).rev() {
                    let _ = write!(pts, "{},{} ", xc - half * y / dmax, c.py(*x));
                }
                let _ = writeln!(
                    c.svg,
                    r#"<polygon points="{pts}" fill="{color}" fill-opacity="0.4" stroke="black"/>"#
                );
            }
            None => {
                let _ = writeln!(
                    c.svg,
                    r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="3"/>"#,
                    xc - half,
                    c.py(lo),
                    xc + half,
                    c.py(lo)
                );
            }
        }
        let (q1, med, q3) =
            (percentile_sorted(&s, 25.0), percentile_sorted(&s, 50.0), percentile_sorted(&s, 75.0));
        let _ = writeln!(
            c.svg,
            r#"<line x1="{xc}" y1="{}" x2="{xc}" y2="{}" stroke="black" stroke-width="4"/><circle cx="{xc}" cy="{}" r="3" fill="white"/>"#,
            c.py(q1),
            c.py(q3),
            c.py(med)
        );
    }
    if groups.iter().all(|g| g.1.is_empty()) {
        empty_note(&mut c, "no nodes with known metastatic status");
    }
    c.finish()
}

/// Scatter of SAD vs sensitivity: normal nodes as green dots, metastatic as red crosses, unknown
/// status as grey dots; a blue vertical line at 10 mm.
pub fn sad_vs_sensitivity(r: &CohortResult) -> String {
    let nodes: Vec<_> = r.scans.iter().flat_map(|s| s.result.nodes.iter()).collect();
    let xmax = nodes.iter().map(|n| n.sad_mm).fold(0.0f64, f64::max).max(12.0) * 1.05;
    let mut c = Canvas::new("SAD vs sensitivity", (0.0, xmax), (0.0, 1.05));
    c.axes("SAD (mm)", "sensitivity", None);
    let x10 = c.px(10.0);
    let _ = writeln!(
        c.svg,
        r#"<line x1="{x10}" y1="{TOP}" x2="{x10}" y2="{}" stroke="{BLUE}" stroke-width="1.5"/>"#,
        H - BOTTOM
    );
    for n in &nodes {
        let (x, y) = (c.px(n.sad_mm), c.py(n.sensitivity));
        match n.metastatic {
            Some(true) => {
                let _ = writeln!(
                    c.svg,
                    r#"<path d="M{} {}L{} {}M{} {}L{} {}" stroke="{RED}" stroke-width="1.5"/>"#,
                    x - 3.5,
                    y - 3.5,
                    x + 3.5,
                    y + 3.5,
                    x - 3.5,
                    y + 3.5,
                    x + 3.5,
                    y - 3.5
                );
            }
            Some(false) => {
                let _ =
                    writeln!(c.svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{GREEN}" fill-opacity="0.8"/>"#);
            }
            None => {
                let _ =
                    writeln!(c.svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{GREY}" fill-opacity="0.8"/>"#);
            }
        }
    }
    let lx = W - RIGHT - 150.0;
    let _ = writeln!(
        c.svg,
        r#"<circle cx="{}" cy="{}" r="3" fill="{GREEN}"/><text x="{}" y="{}">normal</text><path d="M{} {}l7 7m0 -7l-7 7" stroke="{RED}" stroke-width="1.5"/><text x="{}" y="{}">metastatic</text><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{BLUE}"/><text x="{}" y="{}">SAD = 10 mm</text>"#,
        lx,
        TOP + 14.0,
        lx + 10.0,
        TOP + 18.0,
        lx - 3.5,
        TOP + 28.5,
        lx + 10.0,
        TOP + 36.0,
        lx - 5.0,
        TOP + 50.0,
        lx + 5.0,
        TOP + 50.0,
        lx + 10.0,
        TOP + 54.0
    );
    if nodes.is_empty() {
        empty_note(&mut c, "no ground-truth nodes");
    }
    c.finish()
}

/// FROC curve: pooled recall against false positives per scan over the thresholds.
pub fn froc_curve(points: &[FrocPoint]) -> String {
    let xmax = points.iter().map(|p| p.fp_per_scan).fold(0.0f64, f64::max).max(1.0) * 1.05;
    let mut c = Canvas::new("FROC", (0.0, xmax), (0.0, 1.05));
    c.axes("false positives per scan", "recall", None);
    let pts: Vec<(f64, f64, f64)> =
        points.iter().filter_map(|p| p.recall.map(|r| (p.fp_per_scan, r, p.threshold))).collect();
    let mut line = String::new();
    for (x, y, _) in &pts {
        let _ = write!(line, "{},{} ", c.px(*x), c.py(*y));
    }
    let _ = writeln!(c.svg, r#"<polyline points="{line}" fill="none" stroke="{BLUE}" stroke-width="1.5"/>"#);
    for (x, y, t) in &pts {
        let _ = writeln!(
            c.svg,
            r#"<circle cx="{}" cy="{}" r="2.5" fill="{BLUE}"><title>threshold {t:.2}</title></circle>"#,
            c.px(*x),
            c.py(*y)
        );
    }
    if pts.is_empty() {
        empty_note(&mut c, "no ground-truth nodes");
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks() {
        let f = |v: Vec<f64>| v.into_iter().map(fmt_tick).collect::<Vec<_>>().join(" ");
        assert_eq!(f(ticks(0.0, 1.05)), "0 0.2 0.4 0.6 0.8 1");
        assert_eq!(f(ticks(0.0, 30.0)), "0 5 10 15 20 25 30");
    }

    #[test]
    fn kde_integrates_to_one() {
        let data = [1.0, 2.0, 2.5, 4.0, 7.0];
        let xs: Vec<f64> = (0..4000).map(|i| -20.0 + i as f64 * 0.01).collect();
        let d = kde(&data, &xs).unwrap();
        let area: f64 = d.iter().sum::<f64>() * 0.01;
        assert!((area - 1.0).abs() < 1e-3, "{area}");
        assert!(kde(&[3.0, 3.0], &xs).is_none());
    }
}
