//! The figure of [`crate::explain`]: the image, the layer's influence map over it with a
//! colour bar, and the experts (the channels of largest total influence) as a bar chart,
//! drawn with plotters and the bundled DejaVu Sans of the digits example.

use std::path::Path;

use plotters::prelude::*;

use crate::ResNetError;

/// What the figure shows.
pub struct Figure<'a> {
    /// The input image's pixels in [0, 1], `[3, 224, 224]` row-major.
    pub pixels: &'a [f32],
    /// The influence per position of the layer, summed over its channels, `[side, side]`
    /// row-major, with its side (`None` for a layer without positions, such as `fc`).
    pub map: Option<(&'a [f32], usize)>,
    /// The experts: channel and total influence, largest first.
    pub experts: &'a [(usize, f32)],
    /// The title.
    pub title: String,
}

const SIDE: usize = 224;

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../influence-digits/assets/DejaVuSans.ttf"),
        )
        .map_err(|_| ())
        .expect("the bundled font parses");
    });
}

/// Diverging colour for `v` in [−1, 1]: blue (negative), white (0), red (positive).
fn heat(v: f32) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let fade = |c: f32| (255.0 * (1.0 - v.abs()) + c * v.abs()) as u8;
    if v >= 0.0 {
        RGBColor(fade(200.0), fade(30.0), fade(30.0))
    } else {
        RGBColor(fade(30.0), fade(60.0), fade(200.0))
    }
}

/// Draws the figure into `path` (PNG).
///
/// # Errors
/// [`ResNetError::Io`] when it cannot be drawn or written.
pub fn figure(path: &Path, fig: &Figure<'_>) -> Result<(), ResNetError> {
    register_font();
    let fail = |message: String| ResNetError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(message),
    };
    let (width, height) = (1180u32, 420u32);
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        draw(&root, fig).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let img = image::RgbImage::from_raw(width, height, buf).expect("the buffer fits the image");
    img.save(path).map_err(|e| fail(e.to_string()))
}

fn draw(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    fig: &Figure<'_>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(&fig.title, ("sans-serif", 17)).map_err(e)?;
    let (images, chart) = root.split_horizontally(2 * 260 + 110);
    let (left, rest) = images.split_horizontally(260);
    let (middle, bar) = rest.split_horizontally(260);
    let pixel = |x: usize, y: usize| {
        let at = |c: usize| fig.pixels[(c * SIDE + y) * SIDE + x];
        (at(0), at(1), at(2))
    };
    // The image.
    left.draw(&Text::new("input", (20, 8), ("sans-serif", 14)))
        .map_err(e)?;
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (r, g, b) = pixel(x, y);
            let c = RGBColor((r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8);
            left.draw_pixel((20 + x as i32, 30 + y as i32), &c)
                .map_err(e)?;
        }
    }
    // The influence map over the image (grey), one colour scale.
    let scale = fig
        .map
        .map(|(m, _)| m.iter().fold(0f32, |a, v| a.max(v.abs())))
        .unwrap_or(0.0)
        .max(f32::MIN_POSITIVE);
    if let Some((map, side)) = fig.map {
        middle
            .draw(&Text::new(
                "influence per position (sum over channels)",
                (0, 8),
                ("sans-serif", 12),
            ))
            .map_err(e)?;
        for y in 0..SIDE {
            for x in 0..SIDE {
                let (r, g, b) = pixel(x, y);
                let grey = 0.3 * r + 0.59 * g + 0.11 * b;
                let v = map[(y * side / SIDE) * side + x * side / SIDE] / scale;
                let RGBColor(hr, hg, hb) = heat(v);
                let mix = |h: u8| (0.65 * h as f32 + 0.35 * 255.0 * grey) as u8;
                middle
                    .draw_pixel(
                        (10 + x as i32, 30 + y as i32),
                        &RGBColor(mix(hr), mix(hg), mix(hb)),
                    )
                    .map_err(e)?;
            }
        }
        let mut cb = ChartBuilder::on(&bar)
            .margin_top(30)
            .margin_bottom(110)
            .margin_right(8)
            .y_label_area_size(70)
            .build_cartesian_2d(0f32..1f32, -scale..scale)
            .map_err(e)?;
        cb.configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(7)
            .y_desc("influence")
            .y_label_formatter(&|v| tick(*v, scale))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(e)?;
        let steps = 100;
        cb.draw_series((0..steps).map(|i| {
            let (a, b) = (i as f32 / steps as f32, (i + 1) as f32 / steps as f32);
            let (lo, hi) = (-scale + 2.0 * scale * a, -scale + 2.0 * scale * b);
            Rectangle::new(
                [(0.0, lo), (1.0, hi)],
                heat((lo + hi) / (2.0 * scale)).filled(),
            )
        }))
        .map_err(e)?;
    }
    // The experts.
    let top = fig
        .experts
        .iter()
        .fold(0f32, |m, (_, v)| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let low = fig.experts.iter().fold(0f32, |m, (_, v)| m.min(*v));
    let n = fig.experts.len();
    let mut c = ChartBuilder::on(&chart)
        .caption(
            "experts: channels of largest total influence",
            ("sans-serif", 14),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (0..n.saturating_sub(1)).into_segmented(),
            (low * 1.1)..(top * 1.1),
        )
        .map_err(e)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if *i < n => format!("#{}", fig.experts[*i].0),
            _ => String::new(),
        })
        .x_desc("channel")
        .y_desc("total influence")
        .y_label_formatter(&|v| tick(*v, top))
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(e)?;
    // Positive influence red, negative blue, as in the map's colour scale.
    for (sign, colour) in [(1f32, RGBColor(200, 60, 50)), (-1.0, RGBColor(50, 90, 200))] {
        c.draw_series(
            Histogram::vertical(&c)
                .style(colour.filled())
                .margin(6)
                .data(
                    fig.experts
                        .iter()
                        .enumerate()
                        .filter(|(_, (_, v))| v.signum() == sign)
                        .map(|(i, (_, v))| (i, *v)),
                ),
        )
        .map_err(e)?;
    }
    Ok(())
}

/// An axis label in scientific notation; a tick within rounding of 0 on an axis that reaches
/// `scale` (plotters' ticks of a symmetric range land at about 1e-17) is shown as 0.
fn tick(v: f32, scale: f32) -> String {
    if v.abs() < 1e-6 * scale {
        "0".into()
    } else {
        format!("{v:.1e}")
    }
}
