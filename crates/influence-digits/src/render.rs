//! PNG images of the explanations (the `image` crate).
//!
//! Each digit is drawn as three tiles: the input (dark strokes on white), its influence map
//! (the layer's channels summed, brought to the input's 8×8 grid; red where the layer's
//! activation raises the explained class, blue where it lowers it, white for none, scaled to
//! the digit's largest absolute value) and the map laid over the input.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::DigitsError;
use crate::data::{PIXELS, SIDE};

/// Pixels per input pixel in the images.
pub const SCALE: u32 = 8;
const TILE: u32 = SIDE as u32 * SCALE;
const GAP: u32 = 4;

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

/// The three tiles of one digit: input, influence map, overlay.
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

fn draw(img: &mut RgbImage, tile: &[Rgb<u8>; PIXELS], x0: u32, y0: u32) {
    for (p, c) in tile.iter().enumerate() {
        let (px, py) = ((p % SIDE) as u32, (p / SIDE) as u32);
        for dy in 0..SCALE {
            for dx in 0..SCALE {
                img.put_pixel(x0 + px * SCALE + dx, y0 + py * SCALE + dy, *c);
            }
        }
    }
}

fn save(img: &RgbImage, path: &Path) -> Result<(), DigitsError> {
    img.save(path).map_err(|e| DigitsError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// A grid with one row per digit and three columns: input, influence map, overlay.
///
/// # Errors
/// [`DigitsError::Io`] when the file cannot be written.
pub fn digit_grid(
    path: &Path,
    digits: &[([f32; PIXELS], [f32; PIXELS])],
) -> Result<(), DigitsError> {
    let rows = digits.len().max(1) as u32;
    let mut img =
        RgbImage::from_pixel(3 * TILE + 4 * GAP, rows * (TILE + GAP) + GAP, Rgb([255; 3]));
    for (r, (pixels, map)) in digits.iter().enumerate() {
        for (c, tile) in tiles(pixels, map).iter().enumerate() {
            draw(
                &mut img,
                tile,
                GAP + c as u32 * (TILE + GAP),
                GAP + r as u32 * (TILE + GAP),
            );
        }
    }
    save(&img, path)
}

/// A grid with one column per digit and three rows: inputs, influence maps, overlays.
///
/// # Errors
/// [`DigitsError::Io`] when the file cannot be written.
pub fn overview(path: &Path, digits: &[([f32; PIXELS], [f32; PIXELS])]) -> Result<(), DigitsError> {
    let cols = digits.len().max(1) as u32;
    let mut img =
        RgbImage::from_pixel(cols * (TILE + GAP) + GAP, 3 * TILE + 4 * GAP, Rgb([255; 3]));
    for (c, (pixels, map)) in digits.iter().enumerate() {
        for (r, tile) in tiles(pixels, map).iter().enumerate() {
            draw(
                &mut img,
                tile,
                GAP + c as u32 * (TILE + GAP),
                GAP + r as u32 * (TILE + GAP),
            );
        }
    }
    save(&img, path)
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
