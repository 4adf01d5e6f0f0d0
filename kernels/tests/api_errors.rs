//! One test per error path of the public API: bad input gives a typed error, never a panic.

use sepconv::{
    Activation, Conv3x3Params, Error, Isa, Kernels, Padding, Shape, Strides, TensorView,
    TensorViewMut, WeightLayout,
};

fn k() -> Kernels {
    Kernels::for_isa(Isa::Portable).unwrap()
}

fn zeros(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

#[test]
fn zero_dimension() {
    let d = zeros(16);
    for (shape, what) in [
        (Shape::new(0, 2, 2, 2), "batch"),
        (Shape::new(1, 0, 2, 2), "height"),
        (Shape::new(1, 2, 0, 2), "width"),
        (Shape::new(1, 2, 2, 0), "channels"),
    ] {
        assert_eq!(
            TensorView::new(&d, shape).unwrap_err(),
            Error::ZeroDimension { what }
        );
    }
    assert_eq!(
        k().pack_depthwise3x3(&[], WeightLayout::Hwio, None, 0)
            .unwrap_err(),
        Error::ZeroDimension { what: "channels" }
    );
    assert!(matches!(
        k().pack_pointwise(&[], WeightLayout::Hwio, None, 0, 4),
        Err(Error::ZeroDimension { .. })
    ));
}

#[test]
fn overflowing_dimensions() {
    let d = zeros(4);
    let huge = Shape::new(usize::MAX / 2, 4, 4, 4);
    assert!(matches!(
        TensorView::new(&d, huge),
        Err(Error::Overflow { .. })
    ));
    let s = Strides {
        pixel: usize::MAX,
        row: usize::MAX,
        batch: usize::MAX,
    };
    assert!(matches!(
        TensorView::with_strides(&d, Shape::new(1, 2, 2, 1), s),
        Err(Error::Overflow { .. })
    ));
    assert!(matches!(
        k().pack_pointwise(&d, WeightLayout::Hwio, None, usize::MAX, 3),
        Err(Error::Overflow { .. })
    ));
    assert!(matches!(
        k().pack_conv3x3(&d, WeightLayout::Hwio, None, usize::MAX / 4, 1),
        Err(Error::Overflow { .. })
    ));
}

#[test]
fn slice_too_short() {
    let mut d = zeros(15);
    assert_eq!(
        TensorView::new(&d, Shape::new(1, 2, 2, 4)).unwrap_err(),
        Error::SliceTooShort {
            what: "input tensor",
            needed: 16,
            got: 15
        }
    );
    assert!(matches!(
        TensorViewMut::new(&mut d, Shape::new(1, 2, 2, 4)),
        Err(Error::SliceTooShort { .. })
    ));
}

#[test]
fn bad_strides() {
    let d = zeros(100);
    let shape = Shape::new(1, 2, 2, 4);
    let bad =
        |pixel, row, batch| TensorView::with_strides(&d, shape, Strides { pixel, row, batch });
    assert!(matches!(
        bad(3, 8, 16),
        Err(Error::BadStride {
            what: "pixel stride",
            ..
        })
    ));
    assert!(matches!(
        bad(4, 7, 16),
        Err(Error::BadStride {
            what: "row stride",
            ..
        })
    ));
    assert!(matches!(
        bad(4, 8, 15),
        Err(Error::BadStride {
            what: "batch stride",
            ..
        })
    ));
    assert!(bad(5, 11, 23).is_ok());
}

#[test]
fn shape_mismatches() {
    let k = k();
    let x = zeros(4 * 4 * 3);
    let input = TensorView::new(&x, Shape::new(1, 4, 4, 3)).unwrap();
    let dw = k
        .pack_depthwise3x3(&zeros(27), WeightLayout::Hwio, None, 3)
        .unwrap();
    let p = Conv3x3Params::new();
    // Wrong output height, width, channels, batch.
    for shape in [
        Shape::new(1, 3, 4, 3),
        Shape::new(1, 4, 5, 3),
        Shape::new(1, 4, 4, 2),
        Shape::new(2, 4, 4, 3),
    ] {
        let mut y = zeros(200);
        let mut out = TensorViewMut::new(&mut y, shape).unwrap();
        assert!(matches!(
            k.depthwise3x3(&input, &dw, &p, &mut out),
            Err(Error::ShapeMismatch { .. })
        ));
    }
    // Weights for other channels.
    let dw4 = k
        .pack_depthwise3x3(&zeros(36), WeightLayout::Hwio, None, 4)
        .unwrap();
    let mut y = zeros(48);
    let mut out = TensorViewMut::new(&mut y, Shape::new(1, 4, 4, 3)).unwrap();
    assert!(matches!(
        k.depthwise3x3(&input, &dw4, &p, &mut out),
        Err(Error::ShapeMismatch { .. })
    ));
    // Weight and bias slices of the wrong length.
    assert!(matches!(
        k.pack_depthwise3x3(&zeros(26), WeightLayout::Hwio, None, 3),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        k.pack_pointwise(&zeros(12), WeightLayout::Oihw, Some(&zeros(3)), 3, 4),
        Err(Error::ShapeMismatch { .. })
    ));
    // Pointwise: input channels differ from the weights'.
    let pw = k
        .pack_pointwise(&zeros(8), WeightLayout::Hwio, None, 2, 4)
        .unwrap();
    let mut y = zeros(64);
    let mut out = TensorViewMut::new(&mut y, Shape::new(1, 4, 4, 4)).unwrap();
    assert!(matches!(
        k.pointwise(&input, &pw, Activation::None, &mut out),
        Err(Error::ShapeMismatch { .. })
    ));
    // Fully connected on a strided input is refused, not misread.
    let s = Strides {
        pixel: 4,
        row: 16,
        batch: 64,
    };
    let strided = TensorView::with_strides(&x, Shape::new(1, 2, 2, 3), s);
    assert!(
        strided.is_err() || {
            let fc = k
                .pack_fully_connected(&zeros(12 * 2), WeightLayout::Hwio, None, 12, 2)
                .unwrap();
            let mut y = zeros(2);
            let mut out = TensorViewMut::new(&mut y, Shape::new(1, 1, 1, 2)).unwrap();
            matches!(
                k.fully_connected(&strided.unwrap(), &fc, Activation::None, &mut out),
                Err(Error::BadStride { .. })
            )
        }
    );
}

#[test]
fn unsupported_stride() {
    for s in [0, 3, 4] {
        assert_eq!(
            Conv3x3Params::new()
                .stride(s)
                .output_size(8, 8)
                .unwrap_err(),
            Error::UnsupportedStride(s)
        );
    }
}

#[test]
fn bad_padding() {
    let too_big = Padding::Explicit {
        top: 3,
        bottom: 0,
        left: 0,
        right: 0,
    };
    assert!(matches!(
        Conv3x3Params::new().padding(too_big).output_size(8, 8),
        Err(Error::BadPadding { .. })
    ));
    assert!(matches!(
        Conv3x3Params::new()
            .padding(Padding::Valid)
            .output_size(2, 8),
        Err(Error::BadPadding { .. })
    ));
    // And through an operator.
    let k = k();
    let x = zeros(2 * 2);
    let dw = k
        .pack_depthwise3x3(&zeros(9), WeightLayout::Hwio, None, 1)
        .unwrap();
    let mut y = zeros(4);
    let mut out = TensorViewMut::new(&mut y, Shape::new(1, 2, 2, 1)).unwrap();
    let r = k.depthwise3x3(
        &TensorView::new(&x, Shape::new(1, 2, 2, 1)).unwrap(),
        &dw,
        &Conv3x3Params::new().padding(Padding::Valid),
        &mut out,
    );
    assert!(matches!(r, Err(Error::BadPadding { .. })));
}

#[test]
fn bad_activation() {
    for a in [
        Activation::Clamp { min: 1.0, max: 0.0 },
        Activation::Clamp {
            min: f32::NAN,
            max: 0.0,
        },
        Activation::Clamp {
            min: 0.0,
            max: f32::NAN,
        },
    ] {
        assert_eq!(a.bounds().unwrap_err(), Error::BadActivation);
    }
    let k = k();
    let x = zeros(4);
    let pw = k
        .pack_pointwise(&zeros(1), WeightLayout::Hwio, None, 1, 1)
        .unwrap();
    let mut y = zeros(4);
    let mut out = TensorViewMut::new(&mut y, Shape::new(1, 2, 2, 1)).unwrap();
    assert_eq!(
        k.pointwise(
            &TensorView::new(&x, Shape::new(1, 2, 2, 1)).unwrap(),
            &pw,
            Activation::Clamp { min: 2.0, max: 1.0 },
            &mut out
        ),
        Err(Error::BadActivation)
    );
}

/// `depthwise3x3_row`: every argument it checks beyond `depthwise3x3`'s.
#[test]
fn depthwise_row_arguments() {
    let (w, c) = (5, 3);
    let x = zeros(w * c);
    let wide = zeros((w + 1) * c);
    let row = TensorView::new(&x, Shape::new(1, 1, w, c)).unwrap();
    let other_width = TensorView::new(&wide, Shape::new(1, 1, w + 1, c)).unwrap();
    let strided = Strides {
        pixel: c + 1,
        row: w * (c + 1),
        batch: w * (c + 1),
    };
    let long = zeros(w * (c + 1));
    let other_stride = TensorView::with_strides(&long, Shape::new(1, 1, w, c), strided).unwrap();
    let two_rows = TensorView::new(&wide, Shape::new(1, 2, 2, c)).unwrap();
    let dw = k()
        .pack_depthwise3x3(&zeros(9 * c), WeightLayout::Hwio, None, c)
        .unwrap();
    let p = Conv3x3Params::new();
    let mut y = zeros(w * c);
    let mut out = TensorViewMut::new(&mut y, Shape::new(1, 1, w, c)).unwrap();
    let mismatch = |what, expected, got| {
        Err(Error::ShapeMismatch {
            what,
            expected,
            got,
        })
    };
    for (rows, want) in [
        (
            [None, None, None],
            Err(Error::ZeroDimension {
                what: "input rows given",
            }),
        ),
        (
            [Some(&two_rows), None, None],
            mismatch("input row height", 1, 2),
        ),
        (
            [None, Some(&row), Some(&other_width)],
            mismatch("input row width", w, w + 1),
        ),
        (
            [Some(&row), Some(&other_stride), None],
            mismatch("input row pixel stride", c, c + 1),
        ),
        ([None, Some(&row), None], Ok(())),
    ] {
        assert_eq!(k().depthwise3x3_row(rows, &dw, &p, &mut out), want);
    }
    let mut short = zeros((w - 1) * c);
    let mut narrow = TensorViewMut::new(&mut short, Shape::new(1, 1, w - 1, c)).unwrap();
    assert_eq!(
        k().depthwise3x3_row([Some(&row), None, None], &dw, &p, &mut narrow),
        mismatch("output width", w, w - 1)
    );
    assert_eq!(
        k().depthwise3x3_row([Some(&row); 3], &dw, &p.stride(3), &mut out),
        Err(Error::UnsupportedStride(3))
    );
}

#[test]
fn weights_packed_for_another_isa() {
    let all = Kernels::available();
    let (Some(a), Some(b)) = (all.first(), all.last()) else {
        unreachable!()
    };
    if a.isa() == b.isa() {
        eprintln!("SKIP: only one ISA available, cannot mix packed weights across ISAs");
        return;
    }
    let x = zeros(16);
    let input = TensorView::new(&x, Shape::new(1, 4, 4, 1)).unwrap();
    let mut y = zeros(16);
    let dw = a
        .pack_depthwise3x3(&zeros(9), WeightLayout::Hwio, None, 1)
        .unwrap();
    let mut out = TensorViewMut::new(&mut y, Shape::new(1, 4, 4, 1)).unwrap();
    assert!(matches!(
        b.depthwise3x3(&input, &dw, &Conv3x3Params::new(), &mut out),
        Err(Error::WeightsMismatch { .. })
    ));
    let pw = a
        .pack_pointwise(&zeros(1), WeightLayout::Hwio, None, 1, 1)
        .unwrap();
    assert!(matches!(
        b.pointwise(&input, &pw, Activation::None, &mut out),
        Err(Error::WeightsMismatch { .. })
    ));
}

#[test]
fn unknown_and_unavailable_isa() {
    assert_eq!(
        Kernels::resolve(Some("sse9")).unwrap_err(),
        Error::UnknownIsa("sse9".into())
    );
    for isa in Isa::ALL {
        match Kernels::resolve(Some(isa.name())) {
            Ok(k) => assert_eq!(k.isa(), isa),
            Err(e) => assert_eq!(e, Error::IsaUnavailable(isa)),
        }
    }
    let best = Kernels::available().last().unwrap().isa();
    assert_eq!(Kernels::resolve(None).unwrap().isa(), best);
    assert_eq!(Kernels::resolve(Some("  ")).unwrap().isa(), best);
}

#[test]
fn zero_threads() {
    assert_eq!(k().with_threads(0).unwrap_err(), Error::ZeroThreads);
}

#[test]
fn errors_display_a_message() {
    let e = Error::SliceTooShort {
        what: "input tensor",
        needed: 16,
        got: 15,
    };
    assert_eq!(e.to_string(), "input tensor needs 16 floats, got 15");
}
