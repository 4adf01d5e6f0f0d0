//! The dense NHWC tensor.

/// A dense NHWC tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Batch size.
    pub n: usize,
    /// Height (rows).
    pub h: usize,
    /// Width (pixels per row).
    pub w: usize,
    /// Channels (innermost).
    pub c: usize,
    /// The elements in NHWC order: element `(b, y, x, k)` is at `((b * h + y) * w + x) * c + k`.
    pub data: Vec<f32>,
}

impl Tensor {
    /// Wraps `data` as an `n x h x w x c` NHWC tensor.
    ///
    /// # Panics
    /// If `data.len() != n * h * w * c`.
    pub fn new(n: usize, h: usize, w: usize, c: usize, data: Vec<f32>) -> Tensor {
        assert_eq!(
            data.len(),
            n * h * w * c,
            "Tensor::new: {n}x{h}x{w}x{c} needs {} elements, got {}",
            n * h * w * c,
            data.len()
        );
        Tensor { n, h, w, c, data }
    }

    /// The element at batch `n`, row `y`, column `x`, channel `c`.
    ///
    /// # Panics
    /// If any coordinate is out of range.
    pub fn at(&self, n: usize, y: usize, x: usize, c: usize) -> f32 {
        self.data[self.index(n, y, x, c)]
    }

    /// The offset of `(n, y, x, c)` in `data`, bounds-checked per coordinate.
    pub(crate) fn index(&self, n: usize, y: usize, x: usize, c: usize) -> usize {
        assert!(
            n < self.n && y < self.h && x < self.w && c < self.c,
            "Tensor index ({n}, {y}, {x}, {c}) out of range for {}x{}x{}x{}",
            self.n,
            self.h,
            self.w,
            self.c
        );
        ((n * self.h + y) * self.w + x) * self.c + c
    }
}

#[cfg(test)]
mod tests {
    use super::Tensor;

    #[test]
    fn at_is_nhwc() {
        // 2 x 2 x 3 x 2 tensor holding its own offsets 0..24.
        let t = Tensor::new(2, 2, 3, 2, (0..24).map(|i| i as f32).collect());
        assert_eq!(t.at(0, 0, 0, 0), 0.0);
        assert_eq!(t.at(0, 0, 0, 1), 1.0); // channel is innermost
        assert_eq!(t.at(0, 0, 1, 0), 2.0); // next pixel: + c = 2
        assert_eq!(t.at(0, 1, 0, 0), 6.0); // next row: + w*c = 6
        assert_eq!(t.at(1, 0, 0, 0), 12.0); // next image: + h*w*c = 12
        assert_eq!(t.at(1, 1, 2, 1), 23.0); // 12 + 6 + 4 + 1
    }

    #[test]
    #[should_panic(expected = "needs 6 elements")]
    fn new_rejects_wrong_length() {
        let _ = Tensor::new(1, 2, 3, 1, vec![0.0; 5]);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn at_rejects_out_of_range_channel() {
        // (0, 0, 0, 2) would alias (0, 0, 1, 0) without the per-coordinate check.
        let t = Tensor::new(1, 1, 2, 2, vec![0.0; 4]);
        let _ = t.at(0, 0, 0, 2);
    }
}
