//! PNG images of the explanations: the digit grids drawn pixel by pixel with the `image`
//! crate, and the dataset-scale figures (titles, labels, colour scale) with `plotters`.
//!
//! Each digit is drawn as three tiles: the input (dark strokes on white), its influence map
//! (the layer's channels summed, brought to the input's 8×8 grid; red where the layer's
//! activation raises the explained class, blue where it lowers it, white for none, scaled to
//! the digit's largest absolute value) and the map laid over the input.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::DigitsError;
use crate::data::{PIXELS, SIDE};

/// An influence map on a `side × side` grid brought to the input's 8×8 grid (each cell of a
/// coarser grid covers `8 / side` input pixels).
pub fn upsample(map: &[f32], side: usize) -> [f32; PIXELS] {
    let f = SIDE / side;
    let mut out = [0f32; PIXELS];
    for (p, v) in out.iter_mut().enumerate() {
        *v = map[(p / SIDE / f) * side + (p % SIDE) / f];
    }
    out
}

fn gray(pixel: f32) -> Rgb<u8> {
    let g = (255.0 * (1.0 - pixel.clamp(0.0, 1.0))).round() as u8;
    Rgb([g, g, g])
}

/// Diverging colour of `v` in [-1, 1]: blue, white, red.
fn heat(v: f32) -> Rgb<u8> {
    let v = v.clamp(-1.0, 1.0);
    let fade = (255.0 * (1.0 - v.abs())).round() as u8;
    if v >= 0.0 {
        Rgb([255, fade, fade])
    } else {
        Rgb([fade, fade, 255])
    }
}

fn blend(a: Rgb<u8>, b: Rgb<u8>, alpha: f32) -> Rgb<u8> {
    Rgb(core::array::from_fn(|i| {
        (a.0[i] as f32 * (1.0 - alpha) + b.0[i] as f32 * alpha).round() as u8
    }))
}

/// The three tiles of one digit: input, influence map, overlay. The map is shown relative to
/// its own largest magnitude (the colour bar's −1 … 1).
fn tiles(pixels: &[f32; PIXELS], map: &[f32; PIXELS]) -> [[Rgb<u8>; PIXELS]; 3] {
    let scale = map
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let input = pixels.map(gray);
    let influence = map.map(|v| heat(v / scale));
    let overlay =
        core::array::from_fn(|p| blend(input[p], influence[p], 0.65 * (map[p] / scale).abs()));
    [input, influence, overlay]
}

fn save(img: &RgbImage, path: &Path) -> Result<(), DigitsError> {
    img.save(path).map_err(|e| DigitsError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// One explained digit of a figure: its label (e.g. "#12, predicted 3"), its pixels and its
/// influence map on the input's 8×8 grid ([`upsample`]), row-major.
#[derive(Debug, Clone)]
pub struct DigitPanel {
    /// What the panel shows, above it.
    pub label: String,
    /// The digit, values in [0, 1].
    pub pixels: [f32; PIXELS],
    /// Its influence map.
    pub map: [f32; PIXELS],
}

/// The three views of each digit.
const VIEWS: [&str; 3] = ["input", "influence", "overlay"];

/// A grid with one row per digit and three columns (input, influence map, overlay), titled
/// (lines after the first in a smaller font), each panel labelled, and a colour bar
/// (`class_<c>.png`).
///
/// # Errors
/// [`DigitsError::Io`] when the figure cannot be drawn or written.
pub fn digit_grid(path: &Path, title: &str, digits: &[DigitPanel]) -> Result<(), DigitsError> {
    digit_figure(path, title, digits, true)
}

/// A grid with one column per digit and three rows (inputs, influence maps, overlays), titled,
/// each panel labelled, and a colour bar (`overview.png`).
///
/// # Errors
/// [`DigitsError::Io`] when the figure cannot be drawn or written.
pub fn overview(path: &Path, title: &str, digits: &[DigitPanel]) -> Result<(), DigitsError> {
    digit_figure(path, title, digits, false)
}

/// The figure of [`digit_grid`] (`by_rows`: one row per digit) and [`overview`] (one column
/// per digit). Each map is shown relative to its own largest magnitude, which the colour bar
/// says: red raises the explained output, blue lowers it.
fn digit_figure(
    path: &Path,
    title: &str,
    digits: &[DigitPanel],
    by_rows: bool,
) -> Result<(), DigitsError> {
    use plotters::prelude::*;
    let n = digits.len().max(1);
    let (rows, cols) = if by_rows { (n, 3) } else { (3, n) };
    let lines: Vec<&str> = title.lines().collect();
    let (cell_w, cell_h, bar_w) = (150u32, 150u32, 120u32);
    let title_h = 30 + 18 * lines.len().saturating_sub(1) as u32;
    let width = cols as u32 * cell_w + bar_w;
    let height = rows as u32 * cell_h + title_h;
    figure(path, (width, height), |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        // The first line as the title, the others smaller below it.
        let mut root = root.clone();
        for (i, line) in lines.iter().enumerate() {
            let size = if i == 0 { 15 } else { 12 };
            root = root.titled(line, ("sans-serif", size)).map_err(e)?;
        }
        let (grid, bar) = root.split_horizontally(width - bar_w);
        let cells = grid.split_evenly((rows, cols));
        for (d, digit) in digits.iter().enumerate() {
            for (v, tile) in tiles(&digit.pixels, &digit.map).iter().enumerate() {
                let cell = if by_rows { d * cols + v } else { v * cols + d };
                let caption = format!("{}: {}", digit.label, VIEWS[v]);
                pixel_tile(&cells[cell], &caption, 11, &|p| tile[p])?;
            }
        }
        colour_bar(&bar, 1.0, "influence / largest |influence| of the map")
    })
}

/// One 8×8 picture in `area`, pixel `p` (row-major, top row first) in `colour(p)`, under
/// `caption`.
fn pixel_tile<DB: plotters::backend::DrawingBackend>(
    area: &plotters::drawing::DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    font_size: u32,
    colour: &dyn Fn(usize) -> Rgb<u8>,
) -> Result<(), String> {
    use plotters::prelude::*;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", font_size))
        .margin(5)
        .build_cartesian_2d(0..SIDE as i32, 0..SIDE as i32)
        .map_err(e)?;
    chart
        .draw_series((0..PIXELS).map(|p| {
            let (x, y) = ((p % SIDE) as i32, (SIDE - 1 - p / SIDE) as i32);
            Rectangle::new([(x, y), (x + 1, y + 1)], plot_color(colour(p)).filled())
        }))
        .map_err(e)?;
    Ok(())
}

/// A vertical colour bar of [`heat`] from `-scale` to `scale`, described by `desc`.
fn colour_bar<DB: plotters::backend::DrawingBackend>(
    area: &plotters::drawing::DrawingArea<DB, plotters::coord::Shift>,
    scale: f32,
    desc: &str,
) -> Result<(), String> {
    use plotters::prelude::*;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .margin_top(40)
        .margin_bottom(40)
        .margin_right(8)
        .y_label_area_size(62)
        .build_cartesian_2d(0f32..1f32, -scale..scale)
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(7)
        .y_desc(desc)
        .y_label_formatter(&|v| {
            let digits = (2 - scale.log10().floor() as i32).clamp(0, 6) as usize;
            format!("{v:.digits$}")
        })
        .label_style(("sans-serif", 11))
        .draw()
        .map_err(e)?;
    let steps = 100;
    chart
        .draw_series((0..steps).map(|i| {
            let (a, b) = (i as f32 / steps as f32, (i + 1) as f32 / steps as f32);
            let (lo, hi) = (-scale + 2.0 * scale * a, -scale + 2.0 * scale * b);
            Rectangle::new(
                [(0.0, lo), (1.0, hi)],
                plot_color(heat((lo + hi) / (2.0 * scale))).filled(),
            )
        }))
        .map_err(e)?;
    Ok(())
}

/// The font of the figures (DejaVu Sans, Bitstream Vera licence: `assets/DejaVuSans.LICENSE`),
/// registered with plotters once.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(
            "sans-serif",
            plotters::style::FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        )
        .map_err(|_| ())
        .expect("the bundled font parses");
    });
}

/// Draws a `width × height` figure with plotters into an RGB buffer and saves it as PNG.
fn figure(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(
        &plotters::drawing::DrawingArea<
            plotters::backend::BitMapBackend<'_>,
            plotters::coord::Shift,
        >,
    ) -> Result<(), String>,
) -> Result<(), DigitsError> {
    use plotters::prelude::*;
    register_font();
    let fail = |message: String| DigitsError::Io {
        path: path.display().to_string(),
        message,
    };
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let img = RgbImage::from_raw(width, height, buf).expect("the buffer fits the image");
    save(&img, path)
}

fn plot_color(c: Rgb<u8>) -> plotters::style::RGBColor {
    plotters::style::RGBColor(c.0[0], c.0[1], c.0[2])
}

/// A bar chart per class (`experts.png`): the mean influence of the class's `top_k`
/// experts, labelled by channel, with the number of digits in the class.
///
/// # Errors
/// [`DigitsError::Io`] when the figure cannot be drawn or written.
pub fn experts_chart(
    path: &Path,
    summary: &influence_core::DatasetSummary,
    top_k: usize,
    title: &str,
) -> Result<(), DigitsError> {
    use plotters::prelude::*;
    let classes = &summary.classes;
    let cols = 5;
    let rows = classes.len().div_ceil(cols).max(1);
    let top = classes
        .iter()
        .flat_map(|c| c.experts.iter().take(top_k).map(|&e| c.mean_influence[e]))
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    let low = classes
        .iter()
        .flat_map(|c| c.experts.iter().take(top_k).map(|&e| c.mean_influence[e]))
        .fold(0f64, f64::min);
    figure(path, (cols as u32 * 260, rows as u32 * 230 + 50), |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        let root = root
            .titled(&format!("Experts per class: {title}"), ("sans-serif", 18))
            .map_err(e)?;
        for (area, class) in root.split_evenly((rows, cols)).iter().zip(classes) {
            let experts: Vec<usize> = class.experts.iter().take(top_k).copied().collect();
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("class {} ({} digits)", class.class, class.count),
                    ("sans-serif", 15),
                )
                .margin(6)
                .x_label_area_size(34)
                .y_label_area_size(52)
                // A segmented range 0..n has n + 1 segments: 0..n - 1 gives one bar per expert.
                .build_cartesian_2d(
                    (0..experts.len().saturating_sub(1)).into_segmented(),
                    (low * 1.1)..(top * 1.1),
                )
                .map_err(e)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(experts.len().max(1))
                .x_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) if *i < experts.len() => format!("#{}", experts[*i]),
                    _ => String::new(),
                })
                .x_desc("channel")
                .y_desc("mean influence")
                .y_label_formatter(&|v| format!("{v:.2}"))
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(e)?;
            chart
                .draw_series(
                    Histogram::vertical(&chart)
                        .style(plot_color(heat(0.8)).filled())
                        .margin(6)
                        .data(
                            experts
                                .iter()
                                .enumerate()
                                .map(|(i, &ch)| (i, class.mean_influence[ch])),
                        ),
                )
                .map_err(e)?;
        }
        Ok(())
    })
}

/// The experts in input space (`expert_maps.png`): one row per class with its mean digit and,
/// for each expert drawn, the Integrated Gradients of the expert's activation on the input
/// averaged over the class's digits, on one colour scale (red raises the expert's
/// activation, blue lowers it), shown in a colour bar.
///
/// # Errors
/// [`DigitsError::Io`] when the figure cannot be drawn or written.
pub fn expert_maps(
    path: &Path,
    maps: &[crate::explain::ExpertMaps],
    layer: &str,
) -> Result<(), DigitsError> {
    use plotters::prelude::*;
    let cols = maps.iter().map(|m| m.maps.len()).max().unwrap_or(0) + 1;
    let rows = maps.len().max(1);
    let scale = maps
        .iter()
        .flat_map(|m| m.maps.iter().flatten())
        .fold(0f32, |a, v| a.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let (cell_w, cell_h) = (165u32, 150u32);
    let bar_w = 110u32;
    let width = cols as u32 * cell_w + bar_w;
    let height = rows as u32 * cell_h + 60;
    figure(path, (width, height), |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        let root = root
            .titled(
                &format!(
                    "Experts of {layer} in input space: Integrated Gradients of each expert's activation"
                ),
                ("sans-serif", 15),
            )
            .map_err(e)?;
        let (grid, bar) = root.split_horizontally(width - bar_w);
        let cells = grid.split_evenly((rows, cols));
        for (r, m) in maps.iter().enumerate() {
            pixel_tile(
                &cells[r * cols],
                &format!("class {}: mean of {} digits", m.class, m.digits),
                12,
                &|p| gray(m.mean_digit[p]),
            )?;
            for (k, map) in m.maps.iter().enumerate() {
                pixel_tile(
                    &cells[r * cols + 1 + k],
                    &format!("#{} (influence {:.2})", m.experts[k], m.influence[k]),
                    12,
                    &|p| heat(map[p] / scale),
                )?;
            }
        }
        colour_bar(&bar, scale, "attribution per pixel")?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsample_repeats_cells() {
        let map: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let up = upsample(&map, 4);
        assert_eq!(&up[..8], &[0., 0., 1., 1., 2., 2., 3., 3.]);
        assert_eq!(&up[8..16], &up[..8]);
        assert_eq!(up[63], 15.0);
        let same: Vec<f32> = (0..64).map(|v| v as f32).collect();
        assert_eq!(upsample(&same, 8).to_vec(), same);
    }

    #[test]
    fn colours() {
        assert_eq!(heat(1.0), Rgb([255, 0, 0]));
        assert_eq!(heat(-1.0), Rgb([0, 0, 255]));
        assert_eq!(heat(0.0), Rgb([255, 255, 255]));
        assert_eq!(gray(1.0), Rgb([0, 0, 0]));
    }
}
