//! Global average pooling (memory-bound; one portable implementation serves every ISA).

use crate::dwconv::expect;
use crate::error::Result;
use crate::tensor::{TensorView, TensorViewMut};
use crate::Kernels;

impl Kernels {
    /// Global average pool: `output[n][0][0][c] = mean over (y, x) of input[n][y][x][c]`.
    /// `output` has shape `[n, 1, 1, c]`. Sums in f32 pixel by pixel, vectorised over channels.
    pub fn global_avg_pool(
        &self,
        input: &TensorView<'_>,
        output: &mut TensorViewMut<'_>,
    ) -> Result<()> {
        let (i, o) = (input.shape, output.shape);
        expect("output batch", i.n, o.n)?;
        expect("output height", 1, o.h)?;
        expect("output width", 1, o.w)?;
        expect("output channels", i.c, o.c)?;
        let scale = 1.0 / (i.h * i.w) as f32;
        for n in 0..i.n {
            let off = output.offset(n, 0, 0);
            let acc = &mut output.data[off..off + i.c];
            acc.fill(0.0);
            for y in 0..i.h {
                for x in 0..i.w {
                    let px = &input.data[input.offset(n, y, x)..][..i.c];
                    for (a, &v) in acc.iter_mut().zip(px) {
                        *a += v;
                    }
                }
            }
            for a in acc.iter_mut() {
                *a *= scale;
            }
        }
        Ok(())
    }
}
