//! A self-contained HTML evaluation report: one file, no external assets, no scripts. Plots are drawn
//! with `plotters`' SVG backend and inlined as `<svg>` elements.

use std::fmt::Write as _;

use anyhow::Result;
use plotters::prelude::*;

/// One evaluated model (a table row and an HR@K line).
pub struct ModelRow {
    pub name: String,
    pub hr10: f64,
    pub hr20: f64,
    pub ndcg10: f64,
    pub ndcg20: f64,
    pub mrr10: f64,
    pub cases: usize,
    /// HR@K for K = 1..=hr_curve.len() (usually 50).
    pub hr_curve: Vec<f64>,
    /// HR@10 on 100 sampled negatives, papers-only protocol (None when not computed).
    pub sampled_hr10: Option<f64>,
}

/// One training run's per-epoch history.
pub struct Curve {
    pub name: String,
    /// (epoch, train loss, valid NDCG@10).
    pub epochs: Vec<(usize, f64, f64)>,
}

/// Cold-start results for one model: metrics on test cases whose target was withheld from training,
/// and on the rest.
pub struct ColdRow {
    pub name: String,
    pub cold_cases: usize,
    pub cold_hr10: f64,
    pub cold_ndcg10: f64,
    pub warm_cases: usize,
    pub warm_hr10: f64,
    pub warm_ndcg10: f64,
}

pub struct Report {
    pub title: String,
    /// Free text lines shown under the title (protocol, dataset, command line). Plain text, escaped here.
    pub notes: Vec<String>,
    pub split: String,
    pub rows: Vec<ModelRow>,
    pub curves: Vec<Curve>,
    pub cold: Vec<ColdRow>,
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
max-width:960px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{font-size:1.6em;margin-bottom:.3em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}\
h3{font-size:1.05em;margin:1.2em 0 .3em}.notes p{margin:.15em 0;color:#555;font-size:.9em}\
.notes code{white-space:pre-wrap;word-break:break-all}\
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}\
th,td{border:1px solid #ccc;padding:.3em .6em}th{background:#f4f4f4}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
svg{max-width:100%;height:auto}.pair{display:flex;flex-wrap:wrap;gap:8px}.muted{color:#777}";

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number to `digits` decimals, or an en dash when it is not finite.
fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "\u{2013}".to_string()
    }
}

/// The largest finite value, if any.
fn best(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.filter(|v| v.is_finite()).reduce(f64::max)
}

/// A numeric table cell, bold when it equals the column's best value.
fn cell(v: f64, best: Option<f64>) -> String {
    let text = num(v, 4);
    if v.is_finite() && best == Some(v) {
        format!("<td class=\"num\"><b>{text}</b></td>")
    } else {
        format!("<td class=\"num\">{text}</td>")
    }
}

/// One named series of (x, y) points for a line chart.
struct Series<'a> {
    name: &'a str,
    colour: RGBAColor,
    points: Vec<(i64, f64)>,
}

/// Draws a line chart as an SVG string. Non-finite y values are skipped; series with few points also get
/// markers so that a single epoch stays visible. Only charts with several series get a legend.
fn line_chart(
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    size: (u32, u32),
    series: &[Series],
    y_from_zero: bool,
) -> Result<String> {
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|p| p.1.is_finite())
    };
    let (mut x0, mut x1) = pts().fold((i64::MAX, i64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    if x0 > x1 {
        (x0, x1) = (0, 1);
    } else if x0 == x1 {
        (x0, x1) = (x0 - 1, x1 + 1);
    }
    let (mut y0, mut y1) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.1), b.max(p.1))
    });
    if y0 > y1 {
        (y0, y1) = (0.0, 1.0);
    }
    if y_from_zero {
        y0 = y0.min(0.0);
    }
    let pad = if y1 > y0 {
        (y1 - y0) * 0.05
    } else {
        y1.abs().max(1.0) * 0.1
    };
    if !y_from_zero || y0 < 0.0 {
        y0 -= pad;
    }
    y1 += pad;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(10)
            .y_labels(8)
            .y_label_formatter(&|v| format!("{v:.3}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for s in series {
            let points: Vec<(i64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|p| p.1.is_finite())
                .collect();
            let style = s.colour.stroke_width(2);
            let colour = s.colour;
            chart
                .draw_series(LineSeries::new(points.clone(), style))?
                .label(s.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            if points.len() <= 30 {
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
            }
        }
        // A single series is named by the caption; a legend would only hide part of it.
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font(("sans-serif", 13))
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// Series colour `i`: the entries of plotters' `Palette99` that stay legible on white, in a fixed order.
fn colour(i: usize) -> RGBAColor {
    const ORDER: [usize; 13] = [3, 0, 1, 4, 5, 10, 12, 7, 14, 16, 18, 19, 20];
    Palette99::pick(ORDER[i % ORDER.len()]).to_rgba()
}

fn metrics_section(out: &mut String, r: &Report) -> Result<()> {
    writeln!(out, "<h2>Metrics ({})</h2>", esc(&r.split))?;
    if r.rows.is_empty() {
        out.push_str("<p class=\"muted\">No models were evaluated.</p>\n");
        return Ok(());
    }
    let sampled = r.rows.iter().any(|m| m.sampled_hr10.is_some());
    let cols: [fn(&ModelRow) -> f64; 5] = [
        |m| m.hr10,
        |m| m.hr20,
        |m| m.ndcg10,
        |m| m.ndcg20,
        |m| m.mrr10,
    ];
    let bests: Vec<Option<f64>> = cols.iter().map(|f| best(r.rows.iter().map(f))).collect();
    let best_sampled = best(r.rows.iter().filter_map(|m| m.sampled_hr10));
    out.push_str(
        "<table>\n<tr><th>Model</th><th>Cases</th><th>HR@10</th><th>HR@20</th><th>NDCG@10</th>\
         <th>NDCG@20</th><th>MRR@10</th>",
    );
    if sampled {
        out.push_str("<th>HR@10<br><small>papers only, 100 sampled negatives</small></th>");
    }
    out.push_str("</tr>\n");
    for m in &r.rows {
        write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td>",
            esc(&m.name),
            m.cases
        )?;
        for (f, b) in cols.iter().zip(&bests) {
            out.push_str(&cell(f(m), *b));
        }
        if sampled {
            out.push_str(&cell(m.sampled_hr10.unwrap_or(f64::NAN), best_sampled));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");

    if r.rows
        .iter()
        .all(|m| m.hr_curve.iter().all(|v| !v.is_finite()))
    {
        out.push_str("<p class=\"muted\">No HR@K curves were recorded.</p>\n");
        return Ok(());
    }
    let series: Vec<Series> = r
        .rows
        .iter()
        .enumerate()
        .map(|(i, m)| Series {
            name: &m.name,
            colour: colour(i),
            points: m
                .hr_curve
                .iter()
                .enumerate()
                .map(|(k, &v)| (k as i64 + 1, v))
                .collect(),
        })
        .collect();
    let svg = line_chart(
        &format!("HR@K ({})", r.split),
        "K",
        "HR@K",
        (920, 440),
        &series,
        true,
    )?;
    out.push_str(&svg);
    Ok(())
}

fn curves_section(out: &mut String, r: &Report) -> Result<()> {
    out.push_str("<h2>Training curves</h2>\n");
    if r.curves.is_empty() {
        out.push_str("<p class=\"muted\">No training runs are included in this report.</p>\n");
        return Ok(());
    }
    for (i, c) in r.curves.iter().enumerate() {
        writeln!(out, "<h3>{}</h3>", esc(&c.name))?;
        if c.epochs.is_empty() {
            out.push_str("<p class=\"muted\">No epochs were recorded.</p>\n");
            continue;
        }
        let pick = |f: fn(&(usize, f64, f64)) -> f64| -> Vec<(i64, f64)> {
            c.epochs.iter().map(|e| (e.0 as i64, f(e))).collect()
        };
        let loss = [Series {
            name: "train loss",
            colour: colour(2 * i),
            points: pick(|e| e.1),
        }];
        let ndcg = [Series {
            name: "valid NDCG@10",
            colour: colour(2 * i + 1),
            points: pick(|e| e.2),
        }];
        out.push_str("<div class=\"pair\">\n");
        out.push_str(&line_chart(
            "Training loss",
            "epoch",
            "loss",
            (456, 280),
            &loss,
            false,
        )?);
        out.push_str(&line_chart(
            "Validation NDCG@10",
            "epoch",
            "NDCG@10",
            (456, 280),
            &ndcg,
            true,
        )?);
        out.push_str("</div>\n");
    }
    Ok(())
}

fn cold_section(out: &mut String, r: &Report) -> Result<()> {
    out.push_str("<h2>Cold start</h2>\n");
    if r.cold.is_empty() {
        out.push_str(
            "<p class=\"muted\">No cold-start evaluation is included in this report.</p>\n",
        );
        return Ok(());
    }
    out.push_str(
        "<p>Cold: test cases whose target item was withheld from training. Warm: the rest.</p>\n\
         <table>\n<tr><th>Model</th><th>Cold cases</th><th>Cold HR@10</th><th>Cold NDCG@10</th>\
         <th>Warm cases</th><th>Warm HR@10</th><th>Warm NDCG@10</th><th>Cold / warm HR@10</th></tr>\n",
    );
    for c in &r.cold {
        let ratio = if c.warm_hr10 > 0.0 {
            c.cold_hr10 / c.warm_hr10
        } else {
            f64::NAN
        };
        writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            esc(&c.name),
            c.cold_cases,
            num(c.cold_hr10, 4),
            num(c.cold_ndcg10, 4),
            c.warm_cases,
            num(c.warm_hr10, 4),
            num(c.warm_ndcg10, 4),
            num(ratio, 3),
        )?;
    }
    out.push_str("</table>\n");
    Ok(())
}

/// The report as one HTML document.
pub fn render(r: &Report) -> Result<String> {
    let mut out = String::new();
    let title = esc(&r.title);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    )?;
    if !r.notes.is_empty() {
        out.push_str("<div class=\"notes\">\n");
        for n in &r.notes {
            writeln!(out, "<p>{}</p>", esc(n))?;
        }
        out.push_str("</div>\n");
    }
    metrics_section(&mut out, r)?;
    curves_section(&mut out, r)?;
    cold_section(&mut out, r)?;
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, base: f64, sampled: Option<f64>) -> ModelRow {
        ModelRow {
            name: name.to_string(),
            hr10: base,
            hr20: base * 1.3,
            ndcg10: base * 0.5,
            ndcg20: f64::NAN,
            mrr10: base * 0.4,
            cases: 1234,
            hr_curve: (1..=50).map(|k| base * (k as f64 / 10.0).sqrt()).collect(),
            sampled_hr10: sampled,
        }
    }

    fn sample() -> Report {
        Report {
            title: "Eval <test> & more".into(),
            notes: vec![
                "protocol: leave-one-out".into(),
                "cmd: shelfwise eval --x \"a<b\"".into(),
            ],
            split: "test".into(),
            rows: vec![
                row("popularity", 0.05, None),
                row("Model <&> v2", 0.12, Some(0.61)),
                row("sasrec", 0.10, Some(0.58)),
            ],
            curves: vec![
                Curve {
                    name: "run a".into(),
                    epochs: vec![(1, 2.5, 0.02), (2, 2.1, f64::NAN), (3, 1.9, 0.05)],
                },
                Curve {
                    name: "run b".into(),
                    epochs: vec![(1, 3.0, 0.01)],
                },
            ],
            cold: vec![ColdRow {
                name: "Model <&> v2".into(),
                cold_cases: 10,
                cold_hr10: 0.03,
                cold_ndcg10: 0.01,
                warm_cases: 90,
                warm_hr10: 0.12,
                warm_ndcg10: 0.06,
            }],
        }
    }

    /// Every `http` occurrence must be the SVG namespace.
    fn only_svg_namespace_urls(html: &str) -> bool {
        html.match_indices("http")
            .all(|(i, _)| html[i..].starts_with("http://www.w3.org/2000/svg\""))
    }

    #[test]
    fn report_renders_full() {
        let html = render(&sample()).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            html.matches("<svg").count() >= 2,
            "expected at least two charts"
        );
        for name in ["popularity", "sasrec", "run a", "run b"] {
            assert!(html.contains(name), "missing {name}");
        }
        assert!(html.contains("Model &lt;&amp;&gt; v2"));
        assert!(!html.contains("Model <&>"), "unescaped name");
        assert!(html.contains("Eval &lt;test&gt; &amp; more"));
        assert!(html.contains("papers only, 100 sampled negatives"));
        assert!(html.contains("<b>0.1200</b>"), "best HR@10 in bold");
        assert!(html.contains("\u{2013}"), "NaN shown as a dash");
        assert!(html.contains("0.250"), "cold/warm ratio");
        assert!(only_svg_namespace_urls(&html));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn report_renders_empty() {
        let r = Report {
            title: String::new(),
            notes: vec![],
            split: "test".into(),
            rows: vec![],
            curves: vec![],
            cold: vec![],
        };
        let html = render(&r).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<svg"));
        assert!(html.contains("No models were evaluated."));
        assert!(html.contains("No training runs"));
        assert!(html.contains("No cold-start evaluation"));
        assert!(!html.contains("papers only"));
    }

    #[test]
    fn report_survives_degenerate_values() {
        let mut r = sample();
        r.rows[0].hr_curve = vec![f64::NAN; 3];
        r.rows[1].hr_curve.clear();
        r.rows[2].hr_curve = vec![0.0];
        r.curves[0].epochs = vec![(1, f64::NAN, f64::INFINITY)];
        r.curves[1].epochs.clear();
        r.cold[0].warm_hr10 = 0.0;
        let html = render(&r).unwrap();
        assert!(html.matches("<svg").count() >= 3);
        assert!(only_svg_namespace_urls(&html));
    }
}
