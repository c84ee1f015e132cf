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

/// The colours of the paper figures' series.
mod series {
    use plotters::style::RGBColor;
    /// The experts (and their bars).
    pub const EXPERTS: RGBColor = RGBColor(214, 39, 40);
    /// Experts ranked on another set of digits.
    pub const ALTERNATIVE: RGBColor = RGBColor(255, 127, 14);
    /// Random channels.
    pub const RANDOM: RGBColor = RGBColor(110, 110, 110);
    /// The band of the random draws.
    pub const RANDOM_BAND: RGBColor = RGBColor(215, 215, 215);
    /// The least influential channels.
    pub const BOTTOM: RGBColor = RGBColor(31, 119, 180);
    /// Channels not marked.
    pub const OTHER: RGBColor = RGBColor(170, 170, 170);
}

/// The figure's title lines: the first larger, the others smaller below it.
fn title_lines<DB: plotters::backend::DrawingBackend>(
    root: &plotters::drawing::DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
) -> Result<plotters::drawing::DrawingArea<DB, plotters::coord::Shift>, String> {
    let mut root = root.clone();
    for (i, line) in title.lines().enumerate() {
        let size = if i == 0 { 17 } else { 12 };
        root = root
            .titled(line, ("sans-serif", size))
            .map_err(|e| e.to_string())?;
    }
    Ok(root)
}

/// A bar per channel of `values` (x: channel, y: influence), the channels `marked` in the
/// experts' colour and labelled above their bar, the others grey, under `caption`.
fn channel_bars<DB: plotters::backend::DrawingBackend>(
    area: &plotters::drawing::DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    values: &[f32],
    marked: &[usize],
    y_desc: &str,
    x_desc: &str,
) -> Result<(), String> {
    use plotters::prelude::*;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let n = values.len();
    let hi = values.iter().fold(0f32, |m, &v| m.max(v));
    let lo = values.iter().fold(0f32, |m, &v| m.min(v));
    let pad = 0.18 * (hi - lo).max(f32::MIN_POSITIVE);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 13))
        .margin(4)
        .margin_right(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.6f32..(n as f32 - 0.4), (lo - 0.05 * pad)..(hi + pad))
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n / 4 + 1)
        .x_label_formatter(&|v| {
            let c = v.round();
            if (v - c).abs() < 1e-3 && c >= 0.0 {
                format!("{c:.0}")
            } else {
                String::new()
            }
        })
        .y_labels(4)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .light_line_style(WHITE)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 10))
        .axis_desc_style(("sans-serif", 11))
        .draw()
        .map_err(e)?;
    chart
        .draw_series(values.iter().enumerate().map(|(c, &v)| {
            let colour = if marked.contains(&c) {
                series::EXPERTS
            } else {
                series::OTHER
            };
            let x = c as f32;
            Rectangle::new([(x - 0.38, 0.0), (x + 0.38, v)], colour.filled())
        }))
        .map_err(e)?;
    chart
        .draw_series(marked.iter().map(|&c| {
            // Just above the bar, in pixels (the text hangs from its anchor).
            EmptyElement::at((c as f32, values[c].max(0.0)))
                + Text::new(
                    format!("#{c}"),
                    (-7, -13),
                    ("sans-serif", 10).into_font().color(&series::EXPERTS),
                )
        }))
        .map_err(e)?;
    Ok(())
}

/// The experts of each class (`paper-experts.png`, Leino et al. 2018 §3): one row per class
/// with a bar chart of the distributional influence of every channel (its top experts, those
/// of `maps`, marked and labelled), the class's mean digit, and what each marked expert
/// responds to in input space (Integrated Gradients of its activation, averaged over the
/// class's digits; one colour scale for the figure, in the colour bar).
///
/// # Errors
/// [`DigitsError::Io`] when the figure cannot be drawn or written.
pub fn paper_experts(
    path: &Path,
    title: &str,
    classes: &[crate::explain::ClassChannels],
    maps: &[crate::explain::ExpertMaps],
) -> Result<(), DigitsError> {
    let rows = classes.len().max(1);
    let cols = maps.iter().map(|m| m.maps.len()).max().unwrap_or(0) + 1;
    let scale = maps
        .iter()
        .flat_map(|m| m.maps.iter().flatten())
        .fold(0f32, |a, v| a.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let (bars_w, cell_w, row_h, bar_w) = (520u32, 118u32, 122u32, 105u32);
    let title_h = 32 + 18 * title.lines().count().saturating_sub(1) as u32;
    let width = bars_w + cols as u32 * cell_w + bar_w;
    let height = rows as u32 * row_h + title_h;
    figure(path, (width, height), |root| {
        let root = title_lines(root, title)?;
        let (bars, rest) = root.split_horizontally(bars_w);
        let (tiles, cbar) = rest.split_horizontally(cols as u32 * cell_w);
        let bar_cells = bars.split_evenly((rows, 1));
        let cells = tiles.split_evenly((rows, cols));
        for (r, class) in classes.iter().enumerate() {
            let m = maps.iter().find(|m| m.class == class.class);
            let marked = m.map(|m| m.experts.clone()).unwrap_or_default();
            channel_bars(
                &bar_cells[r],
                &format!("class {} ({} held-out digits)", class.class, class.count),
                &class.mean_influence,
                &marked,
                "influence",
                "channel",
            )?;
            if let Some(m) = m {
                pixel_tile(
                    &cells[r * cols],
                    &format!("mean {} digit", m.class),
                    11,
                    &|p| gray(m.mean_digit[p]),
                )?;
                for (k, map) in m.maps.iter().enumerate() {
                    pixel_tile(
                        &cells[r * cols + 1 + k],
                        &format!("expert #{}", m.experts[k]),
                        11,
                        &|p| heat(map[p] / scale),
                    )?;
                }
            }
        }
        colour_bar(&cbar, scale, "expert's activation: IG per pixel")
    })
}

/// Positions `0..n` of a k axis, labelled with the `ks`.
fn k_label(ks: &[usize]) -> impl Fn(&f32) -> String + '_ {
    move |v: &f32| {
        let i = v.round();
        if (v - i).abs() < 1e-3 && i >= 0.0 && (i as usize) < ks.len() {
            ks[i as usize].to_string()
        } else {
            String::new()
        }
    }
}

/// Lines over the k positions with a dot at each point.
fn k_series<DB: plotters::backend::DrawingBackend>(
    chart: &mut plotters::chart::ChartContext<
        '_,
        DB,
        plotters::coord::cartesian::Cartesian2d<
            plotters::coord::types::RangedCoordf32,
            plotters::coord::types::RangedCoordf64,
        >,
    >,
    values: &[f64],
    colour: plotters::style::RGBColor,
    label: Option<&str>,
) -> Result<(), String> {
    use plotters::prelude::*;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let points: Vec<(f32, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f32, v))
        .collect();
    let line = chart
        .draw_series(std::iter::once(PathElement::new(
            points.clone(),
            colour.stroke_width(2),
        )))
        .map_err(e)?;
    if let Some(l) = label {
        line.label(l).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
        });
    }
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
        .map_err(e)?;
    Ok(())
}

/// The essence of each class (`paper-essence.png`, §4.2): per class (and pooled over all
/// classes, first panel), the share of its held-out digits still predicted as the class with
/// only `k` channels of the layer kept, for its top experts, its experts ranked on training
/// digits, random channels (mean and min–max band of the draws) and its least influential
/// channels.
///
/// # Errors
/// [`DigitsError::Io`] when the figure cannot be drawn or written.
pub fn paper_essence(
    path: &Path,
    title: &str,
    classes: &[crate::report::ClassEssence],
    pooled: &[crate::report::EssenceRow],
) -> Result<(), DigitsError> {
    use plotters::prelude::*;
    let (rows, cols) = (3usize, 4usize);
    let title_h = 32 + 18 * title.lines().count().saturating_sub(1) as u32;
    let (cell_w, cell_h) = (300u32, 250u32);
    let all_digits: usize = classes.iter().map(|c| c.digits).sum();
    figure(
        path,
        (cols as u32 * cell_w, rows as u32 * cell_h + title_h),
        |root| {
            let e = |e: DrawingAreaErrorKind<_>| e.to_string();
            let root = title_lines(root, title)?;
            let cells = root.split_evenly((rows, cols));
            let mut panels: Vec<(String, &[crate::report::EssenceRow])> =
                vec![(format!("all classes ({all_digits} digits)"), pooled)];
            for c in classes {
                panels.push((
                    format!("class {} ({} digits)", c.class, c.digits),
                    &c.rows[..],
                ));
            }
            for (cell, (caption, data)) in cells.iter().zip(&panels) {
                let ks: Vec<usize> = data.iter().map(|r| r.k).collect();
                let n = ks.len().max(1);
                let mut chart = ChartBuilder::on(cell)
                    .caption(caption, ("sans-serif", 13))
                    .margin(6)
                    .margin_right(12)
                    .x_label_area_size(32)
                    .y_label_area_size(46)
                    .build_cartesian_2d(-0.25f32..(n as f32 - 0.75), 0f64..1.04f64)
                    .map_err(e)?;
                let label = k_label(&ks);
                chart
                    .configure_mesh()
                    .x_labels(n)
                    .x_label_formatter(&label)
                    .y_labels(6)
                    .y_label_formatter(&|v| format!("{:.0}%", 100.0 * v))
                    .x_desc("k: channels kept")
                    .y_desc("still predicted as the class")
                    .label_style(("sans-serif", 10))
                    .axis_desc_style(("sans-serif", 11))
                    .light_line_style(WHITE)
                    .draw()
                    .map_err(e)?;
                let band: Vec<(f32, f64)> = data
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (i as f32, r.random_preserved_range.1))
                    .chain(
                        data.iter()
                            .enumerate()
                            .rev()
                            .map(|(i, r)| (i as f32, r.random_preserved_range.0)),
                    )
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        band,
                        series::RANDOM_BAND.filled(),
                    )))
                    .map_err(e)?;
                let col = |f: &dyn Fn(&crate::report::EssenceRow) -> f64| -> Vec<f64> {
                    data.iter().map(f).collect()
                };
                k_series(
                    &mut chart,
                    &col(&|r| r.random.preserved),
                    series::RANDOM,
                    None,
                )?;
                k_series(
                    &mut chart,
                    &col(&|r| r.bottom.preserved),
                    series::BOTTOM,
                    None,
                )?;
                k_series(
                    &mut chart,
                    &col(&|r| r.experts_train.preserved),
                    series::ALTERNATIVE,
                    None,
                )?;
                k_series(
                    &mut chart,
                    &col(&|r| r.experts.preserved),
                    series::EXPERTS,
                    None,
                )?;
            }
            // The legend in the last panel.
            if let Some(cell) = cells.get(panels.len()) {
                let entries = [
                    ("top-k experts (held-out digits)", series::EXPERTS),
                    (
                        "top-k experts ranked on training digits",
                        series::ALTERNATIVE,
                    ),
                    ("k random channels (mean; band min-max)", series::RANDOM),
                    ("k least influential channels", series::BOTTOM),
                ];
                for (i, (text, colour)) in entries.iter().enumerate() {
                    let y = 60 + 30 * i as i32;
                    cell.draw(&PathElement::new(
                        vec![(20, y), (50, y)],
                        colour.stroke_width(3),
                    ))
                    .map_err(e)?;
                    cell.draw(&Circle::new((35, y), 3, colour.filled()))
                        .map_err(e)?;
                    cell.draw(&Text::new(
                        text.to_string(),
                        (58, y - 7),
                        ("sans-serif", 12),
                    ))
                    .map_err(e)?;
                }
                cell.draw(&Text::new(
                    "k = all: the plain held-out accuracy".to_string(),
                    (20, 60 + 30 * entries.len() as i32),
                    ("sans-serif", 12),
                ))
                .map_err(e)?;
            }
            Ok(())
        },
    )
}

/// One measure of a [`crate::report::ZeroEffect`], for a panel.
type Measure = dyn Fn(&crate::report::ZeroEffect) -> f64;

/// What tells two classes apart (`paper-comparative.png`, §4.3): the comparative influence of
/// every channel (`F_of − F_against` over the `of` digits; its top channels marked), the drop
/// of the margin `F_of − F_against` and the share of `of` digits predicted as `against` when
/// `k` channels are zeroed (top comparative channels, the class's own top experts, random
/// channels, least influential), and the marked channels in input space on the `of` digits
/// (first row) and on the `against` digits (second row), as the Integrated Gradients of their
/// activation at `maps_layer`.
///
/// # Errors
/// [`DigitsError::Io`] when the figure cannot be drawn or written.
pub fn paper_comparative(
    path: &Path,
    title: &str,
    c: &crate::report::Comparative,
    maps: &[crate::explain::ExpertMaps; 2],
    maps_layer: &str,
) -> Result<(), DigitsError> {
    use plotters::prelude::*;
    let (a, b) = (c.pair.of, c.pair.against);
    let n_maps = maps[0].maps.len();
    let cols = n_maps + 1;
    let scale = maps
        .iter()
        .flat_map(|m| m.maps.iter().flatten())
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let title_h = 32 + 18 * title.lines().count().saturating_sub(1) as u32;
    let (top_h, cell_w, cell_h, bar_w) = (300u32, 150u32, 150u32, 110u32);
    let width = (3 * 380u32).max(cols as u32 * cell_w + bar_w);
    let height = title_h + top_h + 2 * cell_h + 24;
    figure(path, (width, height), |root| {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        let root = title_lines(root, title)?;
        let (top, bottom) = root.split_vertically(top_h);
        let panels = top.split_evenly((1, 3));
        let marked = maps[0].experts.clone();
        channel_bars(
            &panels[0],
            &format!("(a) comparative influence, {a}s: F_{a} − F_{b}"),
            &c.influence.mean_influence,
            &marked,
            &format!("influence on F_{a} − F_{b}"),
            "channel",
        )?;
        let ks: Vec<usize> = c.rows.iter().map(|r| r.k).collect();
        let n = ks.len().max(1);
        let label = k_label(&ks);
        let measures: [(&str, String, &Measure); 2] = [
            ("(b)", format!("drop of the margin F_{a} − F_{b}"), &|z| {
                z.margin_drop
            }),
            ("(c)", format!("{a}s now predicted as {b}"), &|z| z.flipped),
        ];
        for (panel, (tag, desc, f)) in panels[1..].iter().zip(measures) {
            let values: Vec<f64> = c
                .rows
                .iter()
                .flat_map(|r| {
                    [
                        f(&r.comparative),
                        f(&r.class_experts),
                        f(&r.random),
                        f(&r.bottom),
                    ]
                })
                .collect();
            let hi = values.iter().fold(0f64, |m, &v| m.max(v));
            let lo = values.iter().fold(0f64, |m, &v| m.min(v));
            let hi = if tag == "(c)" { hi.max(0.1) } else { hi };
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{tag} zeroing k channels: {desc}"),
                    ("sans-serif", 13),
                )
                .margin(6)
                .margin_right(14)
                .x_label_area_size(32)
                .y_label_area_size(50)
                .build_cartesian_2d(-0.25f32..(n as f32 - 0.75), lo.min(0.0)..(hi * 1.12))
                .map_err(e)?;
            let share = tag == "(c)";
            chart
                .configure_mesh()
                .x_labels(n)
                .x_label_formatter(&label)
                .y_labels(6)
                .y_label_formatter(&|v| {
                    if share {
                        format!("{:.0}%", 100.0 * v)
                    } else {
                        format!("{v:.1}")
                    }
                })
                .x_desc("k: channels zeroed")
                .y_desc(desc.clone())
                .label_style(("sans-serif", 10))
                .axis_desc_style(("sans-serif", 11))
                .light_line_style(WHITE)
                .draw()
                .map_err(e)?;
            let col = |g: &dyn Fn(&crate::report::ComparativeRow) -> f64| -> Vec<f64> {
                c.rows.iter().map(g).collect()
            };
            k_series(
                &mut chart,
                &col(&|r| f(&r.random)),
                series::RANDOM,
                Some("random (mean)"),
            )?;
            k_series(
                &mut chart,
                &col(&|r| f(&r.bottom)),
                series::BOTTOM,
                Some("least comparative influence"),
            )?;
            k_series(
                &mut chart,
                &col(&|r| f(&r.class_experts)),
                series::ALTERNATIVE,
                Some(&format!("top experts of {a} (F_{a})")),
            )?;
            k_series(
                &mut chart,
                &col(&|r| f(&r.comparative)),
                series::EXPERTS,
                Some(&format!("top comparative (F_{a} − F_{b})")),
            )?;
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 10))
                .draw()
                .map_err(e)?;
        }
        let bottom = bottom
            .titled(
                &format!(
                    "(d) the marked channels in input space: IG of each channel's {maps_layer} activation, averaged over the held-out {a}s (top row) and {b}s (bottom row)"
                ),
                ("sans-serif", 12),
            )
            .map_err(e)?;
        let (tiles, rest) = bottom.split_horizontally(cols as u32 * cell_w);
        let (cbar, _) = rest.split_horizontally(bar_w);
        let cells = tiles.split_evenly((2, cols));
        for (r, m) in maps.iter().enumerate() {
            pixel_tile(
                &cells[r * cols],
                &format!("mean {} ({} digits)", m.class, m.digits),
                11,
                &|p| gray(m.mean_digit[p]),
            )?;
            for (k, map) in m.maps.iter().enumerate() {
                pixel_tile(
                    &cells[r * cols + 1 + k],
                    &format!("#{} on {}s", m.experts[k], m.class),
                    11,
                    &|p| heat(map[p] / scale),
                )?;
            }
        }
        colour_bar(&cbar, scale, "IG per pixel")
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
