//! The lead counts as a line chart in SVG, drawn here rather than in the browser: the console
//! embeds it as it is, no chart library travels with the page, and what the chart shows is
//! tested with the numbers it came from. Readable without colour: each date has its own line dash
//! and marker shape, and the legend names them; each point carries its bucket and value.

use crate::sql::{Bucket, DATE_COLUMNS};
use crate::stats::DateCounts;
use std::fmt::Write;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 96.0;

/// Per date column: its dash pattern and marker (a path around the point's centre).
const STYLES: [(&str, &str, &str); 5] = [
    ("#0b5cad", "", "circle"),
    ("#a40e26", "6 3", "square"),
    ("#116329", "2 3", "triangle"),
    ("#8a4600", "10 3 2 3", "diamond"),
    ("#5a32a3", "1 0", "cross"),
];

fn marker(shape: &str, x: f64, y: f64) -> String {
    match shape {
        "circle" => format!("M{:.1},{y:.1}a4,4 0 1,0 8,0a4,4 0 1,0 -8,0", x - 4.0),
        "square" => format!("M{:.1},{:.1}h8v8h-8z", x - 4.0, y - 4.0),
        "triangle" => format!("M{x:.1},{:.1}l5,9h-10z", y - 5.0),
        "diamond" => format!("M{x:.1},{:.1}l5,5l-5,5l-5,-5z", y - 5.0),
        _ => format!("M{:.1},{:.1}l8,8m0,-8l-8,8", x - 4.0, y - 4.0),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart of `rows` (ascending buckets, as `count_dates` answers them).
pub fn counts_chart(bucket: Bucket, rows: &[DateCounts]) -> String {
    let unit = match bucket {
        Bucket::Week => "week",
        Bucket::Month => "month",
    };
    let max = rows.iter().flat_map(|r| r.counts).max().unwrap_or(0).max(1) as f64;
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let step = if rows.len() > 1 { plot_width / (rows.len() - 1) as f64 } else { 0.0 };
    let x = |i: usize| if rows.len() > 1 { LEFT + step * i as f64 } else { LEFT + plot_width / 2.0 };
    let y = |v: i64| TOP + plot_height - (v as f64 / max) * plot_height;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" class="counts-chart" data-bucket="{unit}"><title id="chart-title">Lead dates per {unit}</title><desc id="chart-desc">{} {unit}(s); for each, how many leads have each of the five dates in it.</desc>"#,
        rows.len()
    );
    // Axes and a few horizontal guides with their values.
    let _ = write!(
        svg,
        r##"<g stroke="#57606a" stroke-width="1"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/></g>"##,
        TOP + plot_height,
        TOP + plot_height,
        WIDTH - RIGHT,
        TOP + plot_height
    );
    for tick in 0..=4 {
        let value = (max * f64::from(tick) / 4.0).round() as i64;
        let ty = y(value);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#d0d7de"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#1b1f24">{value}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0
        );
    }
    // Bucket labels: every one when they fit, else every n-th.
    let every = rows.len().div_ceil(24).max(1);
    for (i, row) in rows.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" transform="rotate(-45 {:.1} {:.1})" fill="#1b1f24">{}</text>"##,
            x(i),
            TOP + plot_height + 14.0,
            x(i),
            TOP + plot_height + 14.0,
            escape(&row.bucket)
        );
    }
    for (column_index, (column, (colour, dash, shape))) in DATE_COLUMNS.iter().zip(STYLES).enumerate() {
        let points: Vec<String> =
            rows.iter().enumerate().map(|(i, r)| format!("{:.1},{:.1}", x(i), y(r.counts[column_index]))).collect();
        let _ = write!(svg, r#"<g class="series" data-series="{column}">"#);
        if points.len() > 1 {
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
                points.join(" ")
            );
        }
        for (i, row) in rows.iter().enumerate() {
            let value = row.counts[column_index];
            let _ = write!(
                svg,
                r#"<path class="point" data-bucket="{bucket}" data-value="{value}" d="{d}" fill="{colour}" stroke="{colour}" stroke-width="1.5"><title>{column} {bucket}: {value}</title></path>"#,
                bucket = escape(&row.bucket),
                d = marker(shape, x(i), y(value)),
            );
        }
        svg.push_str("</g>");
    }
    // The legend: each date's marker, dash and name, below the axis labels.
    for (column_index, (column, (colour, dash, shape))) in DATE_COLUMNS.iter().zip(STYLES).enumerate() {
        let lx = LEFT + (column_index as f64) * 165.0;
        let ly = HEIGHT - 14.0;
        let _ = write!(
            svg,
            r##"<g class="legend"><line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><path d="{}" fill="{colour}" stroke="{colour}"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#1b1f24">{column}</text></g>"##,
            lx + 28.0,
            marker(shape, lx + 14.0, ly),
            lx + 34.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bucket: &str, counts: [i64; 5]) -> DateCounts {
        DateCounts { bucket: bucket.into(), counts }
    }

    #[test]
    fn one_point_per_bucket_and_date_with_its_value() {
        let rows = [row("2025-W01", [45, 32, 28, 35, 40]), row("2025-W02", [3, 0, 0, 1, 2]), row("2025-W04", [0; 5])];
        let svg = counts_chart(Bucket::Week, &rows);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="point""#).count(), rows.len() * DATE_COLUMNS.len());
        assert!(svg.contains(r#"data-bucket="2025-W02" data-value="3""#));
        for column in DATE_COLUMNS {
            assert_eq!(svg.matches(&format!(r#"data-series="{column}""#)).count(), 1, "{column}");
            assert!(svg.contains(&format!(">{column}</text>")), "{column} is named in the legend");
        }
        // The tallest value reaches the top of the plot.
        assert!(svg.contains(r#"data-value="45""#));
        assert_eq!(counts_chart(Bucket::Month, &[]).matches(r#"class="point""#).count(), 0);
    }
}
