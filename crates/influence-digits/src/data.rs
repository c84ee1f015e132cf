//! The UCI 8×8 handwritten digits (Alpaydin & Kaynak 1998; CC BY 4.0) from a CSV file:
//! a header `p0,…,p63,label`, then one row per digit with 64 pixel counts (0–16, row-major)
//! and the label (0–9).

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::DigitsError;

/// Side of an image, in pixels.
pub const SIDE: usize = 8;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;
/// Number of classes.
pub const CLASSES: usize = 10;

/// The digits: pixel values scaled to [0, 1] (count / 16) and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Digits {
    /// `[n, 64]`, row-major, values in [0, 1].
    pub pixels: Vec<[f32; PIXELS]>,
    /// `[n]`, 0–9.
    pub labels: Vec<usize>,
}

impl Digits {
    /// Reads the CSV file.
    ///
    /// # Errors
    /// [`DigitsError::Io`] when the file cannot be read, [`DigitsError::Csv`] naming the line
    /// of a missing header, a row without 65 fields, a non-numeric field, a pixel outside
    /// 0–16 or a label outside 0–9.
    pub fn load(path: &Path) -> Result<Self, DigitsError> {
        let text = std::fs::read_to_string(path).map_err(|e| DigitsError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, reason)| DigitsError::Csv {
            path: path.display().to_string(),
            line,
            reason,
        })
    }

    /// Parses the CSV text; errors carry the 1-based line number and the reason.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, header)) if header.trim_start().starts_with("p0,") => {}
            _ => return Err((1, "expected the header `p0,p1,...,p63,label`".into())),
        }
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (i, line) in lines {
            let n = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != PIXELS + 1 {
                return Err((
                    n,
                    format!("{} fields, expected {}", fields.len(), PIXELS + 1),
                ));
            }
            let mut row = [0f32; PIXELS];
            for (p, f) in row.iter_mut().zip(&fields) {
                let v: f32 = f
                    .parse()
                    .map_err(|_| (n, format!("pixel value {f:?} is not a number")))?;
                if !(0.0..=16.0).contains(&v) {
                    return Err((n, format!("pixel value {v} outside 0..=16")));
                }
                *p = v / 16.0;
            }
            let label: usize = fields[PIXELS]
                .parse()
                .ok()
                .filter(|l| *l < CLASSES)
                .ok_or_else(|| (n, format!("label {:?} is not 0-9", fields[PIXELS])))?;
            pixels.push(row);
            labels.push(label);
        }
        if labels.is_empty() {
            return Err((2, "no rows after the header".into()));
        }
        Ok(Self { pixels, labels })
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A stratified split: in each class, a seeded shuffle, then the first
    /// `round(test_fraction · class size)` digits go to the held-out set. Returns
    /// `(train, held_out)` indices, each sorted.
    pub fn stratified_split(&self, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for class in 0..CLASSES {
            let mut idx: Vec<usize> = (0..self.len())
                .filter(|&i| self.labels[i] == class)
                .collect();
            idx.shuffle(&mut rng);
            let n_test = (idx.len() as f64 * test_fraction).round() as usize;
            test.extend_from_slice(&idx[..n_test]);
            train.extend_from_slice(&idx[n_test..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        (train, test)
    }

    /// The images `idx` as a tensor.
    ///
    /// # Shapes
    /// - returns: `[idx.len(), 1, 8, 8]`
    pub fn images<B: Backend>(&self, idx: &[usize], device: &B::Device) -> Tensor<B, 4> {
        let values: Vec<f32> = idx.iter().flat_map(|&i| self.pixels[i]).collect();
        Tensor::from_data(TensorData::new(values, [idx.len(), 1, SIDE, SIDE]), device)
    }

    /// The labels `idx` as a tensor.
    ///
    /// # Shapes
    /// - returns: `[idx.len()]`
    pub fn label_tensor<B: Backend>(&self, idx: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
        let values: Vec<i64> = idx.iter().map(|&i| self.labels[i] as i64).collect();
        Tensor::from_data(TensorData::new(values, [idx.len()]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str) -> String {
        let mut f = vec!["0"; PIXELS];
        f[3] = "16";
        format!("{},{label}", f.join(","))
    }

    fn header() -> String {
        let mut h: Vec<String> = (0..PIXELS).map(|i| format!("p{i}")).collect();
        h.push("label".into());
        h.join(",")
    }

    #[test]
    fn parses_and_scales() {
        let d = Digits::parse(&format!("{}\n{}\n{}\n", header(), row("3"), row("7"))).unwrap();
        assert_eq!(d.labels, vec![3, 7]);
        assert_eq!(d.pixels[0][3], 1.0);
        assert_eq!(d.pixels[0][0], 0.0);
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let bad_count = format!("{}\n{}\n1,2,3\n", header(), row("1"));
        assert_eq!(Digits::parse(&bad_count).unwrap_err().0, 3);
        let bad_label = format!("{}\n{}\n", header(), row("12"));
        let e = Digits::parse(&bad_label).unwrap_err();
        assert_eq!(e.0, 2);
        assert!(e.1.contains("label"));
        let bad_pixel = format!("{}\n{}\n", header(), row("1").replacen("16", "x", 1));
        assert!(
            Digits::parse(&bad_pixel)
                .unwrap_err()
                .1
                .contains("not a number")
        );
        assert_eq!(Digits::parse("").unwrap_err().0, 1);
        assert_eq!(Digits::parse(&header()).unwrap_err().0, 2);
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        let mut text = header();
        for i in 0..100 {
            text.push('\n');
            text.push_str(&row(&(i % 10).to_string()));
        }
        let d = Digits::parse(&text).unwrap();
        let (train, test) = d.stratified_split(0.2, 7);
        assert_eq!((train.len(), test.len()), (80, 20));
        for c in 0..CLASSES {
            assert_eq!(test.iter().filter(|&&i| d.labels[i] == c).count(), 2);
        }
        assert_eq!(d.stratified_split(0.2, 7), (train, test));
    }
}
