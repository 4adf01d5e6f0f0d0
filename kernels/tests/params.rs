//! `Conv3x3Params::explicit_padding`: the resolved padding is the same convolution.

use sepconv::{
    Conv3x3Params, Isa, Kernels, Padding, Shape, TensorView, TensorViewMut, WeightLayout,
};

/// Every small size, both strides, `SAME`, `VALID` and a few explicit paddings: where the
/// padding is valid, the explicit one it resolves to gives the same output size and the same
/// depthwise output bits; where it is not, both are errors.
#[test]
fn explicit_padding_is_the_same_convolution() {
    let k = Kernels::for_isa(Isa::Portable).unwrap();
    let c = 3;
    let w: Vec<f32> = (0..9 * c).map(|i| (i as f32 * 0.37).sin()).collect();
    let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.1).collect();
    let packed = k
        .pack_depthwise3x3(&w, WeightLayout::Hwio, Some(&bias), c)
        .unwrap();
    let explicit = |top, bottom, left, right| Padding::Explicit {
        top,
        bottom,
        left,
        right,
    };
    let mut checked = 0;
    for padding in [
        Padding::Same,
        Padding::Valid,
        explicit(1, 1, 1, 1),
        explicit(0, 2, 2, 0),
        explicit(2, 1, 0, 1),
    ] {
        for stride in [1, 2] {
            for h in 1..=9 {
                for wd in 1..=9 {
                    let p = Conv3x3Params::new().stride(stride).padding(padding);
                    let Ok((oh, ow)) = p.output_size(h, wd) else {
                        assert!(p.explicit_padding(h, wd).is_err());
                        continue;
                    };
                    let e = p.explicit_padding(h, wd).unwrap();
                    let pe = p.padding(e);
                    assert_eq!(
                        pe.output_size(h, wd).unwrap(),
                        (oh, ow),
                        "{padding:?} {e:?}"
                    );
                    let x: Vec<f32> = (0..h * wd * c).map(|i| (i as f32 * 0.71).cos()).collect();
                    let xv = TensorView::new(&x, Shape::new(1, h, wd, c)).unwrap();
                    let run = |p: &Conv3x3Params| {
                        let mut y = vec![0.0f32; oh * ow * c];
                        let mut yv = TensorViewMut::new(&mut y, Shape::new(1, oh, ow, c)).unwrap();
                        k.depthwise3x3(&xv, &packed, p, &mut yv).unwrap();
                        y
                    };
                    let (a, b) = (run(&p), run(&pe));
                    assert!(
                        a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{padding:?} -> {e:?}, stride {stride}, {h}x{wd}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 300, "{checked} cases");
}
