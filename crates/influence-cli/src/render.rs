//! One figure per image: the input as the model saw it, the influence map (the attribution
//! summed over the layer's channels, on a red–blue scale centred at zero, with its colour bar),
//! and the layer's top channels by influence.

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;

use crate::CliError;

/// What one figure shows.
pub struct Figure<'a> {
    /// The image the model saw.
    pub image: &'a RgbImage,
    /// The title (model, method, layer, target).
    pub title: String,
    /// The attribution of this example, `[channels, height, width]` or any other shape.
    pub attribution: &'a [f32],
    /// Its shape.
    pub shape: &'a [usize],
    /// Per channel (dim 0 of `shape`), the attribution summed over the other dims.
    pub per_channel: &'a [f32],
}

/// Red for positive, blue for negative, white at zero; `v` in `[-1, 1]`.
fn diverging(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let f = |a: f64| (255.0 * (1.0 - a)).round() as u8;
    if v >= 0.0 {
        RGBColor(255, f(v), f(v))
    } else {
        RGBColor(f(-v), f(-v), 255)
    }
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans (Bitstream Vera licence: assets/DejaVuSans.LICENSE).
        let _ = plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        );
    });
}

/// Draws the figure and writes it as PNG.
///
/// # Errors
/// [`CliError::Output`] when it cannot be drawn or written.
pub fn write(path: &Path, fig: &Figure<'_>) -> Result<(), CliError> {
    register_font();
    let fail = |message: String| CliError::Output {
        path: path.display().to_string(),
        message,
    };
    let side = 256u32;
    let (width, height) = (3 * side + 200, side + 90);
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| fail(e.to_string());
        root.fill(&WHITE).map_err(e)?;
        let root = root.titled(&fig.title, ("sans-serif", 16)).map_err(e)?;
        let (panels, bar) = root.split_horizontally(3 * side + 40);
        let panels = panels.split_evenly((1, 3));

        // The input.
        let (iw, ih) = fig.image.dimensions();
        let area = panels[0].titled("input", ("sans-serif", 14)).map_err(e)?;
        let scale = (side - 20) as f64 / iw.max(ih) as f64;
        for y in 0..(ih as f64 * scale) as u32 {
            for x in 0..(iw as f64 * scale) as u32 {
                let p = fig.image.get_pixel(
                    ((x as f64 / scale) as u32).min(iw - 1),
                    ((y as f64 / scale) as u32).min(ih - 1),
                );
                area.draw_pixel(
                    (x as i32 + 10, y as i32 + 4),
                    &RGBColor(p.0[0], p.0[1], p.0[2]),
                )
                .map_err(e)?;
            }
        }

        // The influence map: channels summed, over the layer's spatial grid.
        let area = panels[1]
            .titled("influence map (channels summed)", ("sans-serif", 14))
            .map_err(e)?;
        let mut top = 0f64;
        if let [c, h, w] = fig.shape {
            let (c, h, w) = (*c, *h, *w);
            let mut map = vec![0f64; h * w];
            for channel in fig.attribution.chunks_exact(h * w).take(c) {
                for (m, v) in map.iter_mut().zip(channel) {
                    *m += *v as f64;
                }
            }
            top = map
                .iter()
                .fold(0f64, |m, v| m.max(v.abs()))
                .max(f64::MIN_POSITIVE);
            let cell = (side - 20) as f64 / h.max(w) as f64;
            for y in 0..h {
                for x in 0..w {
                    let color = diverging(map[y * w + x] / top);
                    let (x0, y0) = (
                        (10.0 + x as f64 * cell) as i32,
                        (4.0 + y as f64 * cell) as i32,
                    );
                    let (x1, y1) = (
                        (10.0 + (x + 1) as f64 * cell) as i32,
                        (4.0 + (y + 1) as f64 * cell) as i32,
                    );
                    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.filled()))
                        .map_err(e)?;
                }
            }
        } else {
            area.draw(&Text::new(
                format!(
                    "the layer's values {:?} have no [channels, height, width] grid",
                    fig.shape
                ),
                (10, 100),
                ("sans-serif", 12),
            ))
            .map_err(e)?;
        }

        // The top channels.
        let mut order: Vec<usize> = (0..fig.per_channel.len()).collect();
        order.sort_by(|&a, &b| {
            fig.per_channel[b]
                .abs()
                .total_cmp(&fig.per_channel[a].abs())
        });
        order.truncate(8);
        let lo = order
            .iter()
            .map(|&i| fig.per_channel[i] as f64)
            .fold(0f64, f64::min);
        let hi = order
            .iter()
            .map(|&i| fig.per_channel[i] as f64)
            .fold(0f64, f64::max);
        let span = (hi - lo).max(f64::MIN_POSITIVE);
        let mut chart = ChartBuilder::on(&panels[2])
            .caption("top channels", ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (0..order.len().saturating_sub(1)).into_segmented(),
                (lo - 0.05 * span)..(hi + 0.05 * span),
            )
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(order.len().max(1))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < order.len() => format!("#{}", order[*i]),
                _ => String::new(),
            })
            .x_desc("channel")
            .y_desc("influence")
            .y_label_formatter(&|v| format!("{v:.2e}"))
            .label_style(("sans-serif", 10))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(order.iter().enumerate().map(|(i, &ch)| {
                let v = fig.per_channel[ch] as f64;
                let color = if v >= 0.0 {
                    RGBColor(214, 60, 50)
                } else {
                    RGBColor(50, 90, 214)
                };
                Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), v),
                    ],
                    color.filled(),
                )
            }))
            .map_err(e)?;

        // The map's colour bar.
        if top > 0.0 {
            let bar = bar.titled("map scale", ("sans-serif", 12)).map_err(e)?;
            let mut chart = ChartBuilder::on(&bar)
                .margin(10)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..1f64, -top..top)
                .map_err(e)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .y_labels(5)
                .y_label_formatter(&|v| format!("{v:.1e}"))
                .label_style(("sans-serif", 10))
                .draw()
                .map_err(e)?;
            let steps = 64;
            chart
                .draw_series((0..steps).map(|i| {
                    let a = -top + 2.0 * top * i as f64 / steps as f64;
                    let b = -top + 2.0 * top * (i + 1) as f64 / steps as f64;
                    Rectangle::new(
                        [(0.0, a), (1.0, b)],
                        diverging((a + b) / (2.0 * top)).filled(),
                    )
                }))
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    let img = RgbImage::from_raw(width, height, buf).expect("the buffer fits the image");
    img.save(path).map_err(|e| fail(e.to_string()))
}
