//! The `.kmodel` parser on valid files and on every kind of damage: it must return an error,
//! never panic, never read out of bounds.

use kestrel_micro::builder::{seal, Builder, TensorSpec};
use kestrel_micro::{DType, Error, ErrorKind, Interpreter, Model, OpCode, Storage};

/// A one-Conv model: x u8 [1,4,4,1] (NHWC) → 3×3 conv, 2 filters [2,3,3,1] → y u8 [1,2,2,2].
fn conv_model() -> Vec<u8> {
    conv_model_with(&[])
}

/// `conv_model` with metadata entries.
fn conv_model_with(metadata: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Builder::new();
    for (key, value) in metadata {
        b.metadata(key, value);
    }
    let w_at = b.weights(&[1u8; 18]);
    let bias_at = b.weights(&[0u8; 8]);
    let mult_at = b.f32_weights(&[0.01, 0.02]);
    let scales_at = b.f32_weights(&[0.1, 0.2]);
    let x = b.tensor(TensorSpec {
        dtype: DType::U8,
        dims: &[1, 4, 4, 1],
        storage: Storage::Arena,
        offset: 0,
        scale: Some(0.5),
        zero_point: 3,
        channel_scales: None,
    });
    let w = b.tensor(TensorSpec {
        dtype: DType::I8,
        dims: &[2, 3, 3, 1],
        storage: Storage::Weights,
        offset: w_at,
        scale: Some(0.1),
        zero_point: 0,
        channel_scales: Some(scales_at),
    });
    let bias = b.tensor(TensorSpec {
        dtype: DType::I32,
        dims: &[2],
        storage: Storage::Weights,
        offset: bias_at,
        scale: None,
        zero_point: 0,
        channel_scales: None,
    });
    let y = b.tensor(TensorSpec {
        dtype: DType::U8,
        dims: &[1, 2, 2, 2],
        storage: Storage::Arena,
        offset: 16,
        scale: Some(0.25),
        zero_point: 0,
        channel_scales: None,
    });
    // kh kw sh sw dh dw pt pl pb pr groups(u16)
    b.op(OpCode::Conv, &[x, w, bias], &[y], [3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0], Some(mult_at));
    b.input(x);
    b.output(y);
    b.arena(24);
    b.finish()
}

#[cfg(feature = "all-ops")]
/// x u8 [1,2,2,3] → Resize (nearest, ×2 on H and W) → PRelu (slope per channel, float) →
/// AveragePool 2×2 stride 2 → Mul by x (same shape) → y u8 [1,2,2,3], channels-last.
fn requantizing_model() -> Vec<u8> {
    let mut b = Builder::new();
    // Index maps of the Resize: axis 0 (1 entry), H (4), W (4), C (3).
    let maps: Vec<u8> = [0u16, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let maps_at = b.weights(&maps);
    let slope_at = b.f32_weights(&[0.5, -1.0, 0.25]);
    let act = |b: &mut Builder, dims: &'static [usize], offset: u32| {
        b.tensor(TensorSpec {
            dtype: DType::U8,
            dims,
            storage: Storage::Arena,
            offset,
            scale: Some(0.1),
            zero_point: 100,
            channel_scales: None,
        })
    };
    let x = act(&mut b, &[1, 2, 2, 3], 0);
    let up = act(&mut b, &[1, 4, 4, 3], 16);
    let pr = act(&mut b, &[1, 4, 4, 3], 64);
    let avg = act(&mut b, &[1, 2, 2, 3], 16);
    let y = act(&mut b, &[1, 2, 2, 3], 32);
    let slope = b.tensor(TensorSpec {
        dtype: DType::F32,
        dims: &[1, 1, 1, 3],
        storage: Storage::Weights,
        offset: slope_at,
        scale: None,
        zero_point: 0,
        channel_scales: None,
    });
    b.op(OpCode::Resize, &[x], &[up], [0; 12], Some(maps_at));
    b.op(OpCode::PRelu, &[up, slope], &[pr], [0; 12], None);
    b.op(OpCode::AveragePool, &[pr], &[avg], [2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0], None);
    b.op(OpCode::Mul, &[avg, x], &[y], [0; 12], None);
    b.input(x);
    b.output(y);
    b.arena(112);
    b.finish()
}

#[cfg(feature = "all-ops")]
/// The float ops of a mixed int8 model: x f32 [1,3,3,2] → ConvF32 3×3 (pad 1, bias) → BinaryF32
/// with x (relu) → MaxPool 2×2 → Pad 2 channels with zeros → y f32 [1,2,2,4].
fn float_model() -> Vec<u8> {
    let mut b = Builder::new();
    let w: Vec<f32> = (0..36).map(|i| (i as f32 - 18.0) / 20.0).collect();
    let (w_at, bias_at) = (b.f32_weights(&w), b.f32_weights(&[0.5, -0.25]));
    let f32_tensor = |b: &mut Builder, dims: &'static [usize], storage: Storage, offset: u32| {
        b.tensor(TensorSpec {
            dtype: DType::F32,
            dims,
            storage,
            offset,
            scale: None,
            zero_point: 0,
            channel_scales: None,
        })
    };
    let x = f32_tensor(&mut b, &[1, 3, 3, 2], Storage::Arena, 0);
    let wt = f32_tensor(&mut b, &[3, 3, 2, 2], Storage::Weights, w_at);
    let bias = f32_tensor(&mut b, &[2], Storage::Weights, bias_at);
    let conv = f32_tensor(&mut b, &[1, 3, 3, 2], Storage::Arena, 80);
    let sum = f32_tensor(&mut b, &[1, 3, 3, 2], Storage::Arena, 160);
    let pooled = f32_tensor(&mut b, &[1, 2, 2, 2], Storage::Arena, 240);
    let y = f32_tensor(&mut b, &[1, 2, 2, 4], Storage::Arena, 288);
    b.op(OpCode::ConvF32, &[x, wt, bias], &[conv], [3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0], None);
    b.op(OpCode::BinaryF32, &[conv, x], &[sum], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], None);
    b.op(OpCode::MaxPool, &[sum], &[pooled], [2, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0], None);
    b.op(OpCode::Pad, &[pooled], &[y], [0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0], None);
    b.input(x);
    b.output(y);
    b.arena(352);
    b.finish()
}

#[cfg(feature = "all-ops")]
#[test]
fn the_float_ops_compute_their_definition() {
    let file = float_model();
    let m = Model::parse(&file).expect("valid");
    let mut arena = vec![0u8; m.arena_len()];
    let mut it = Interpreter::new(m, &mut arena).unwrap();
    let x: Vec<f32> = (0..18).map(|i| (i as f32 - 9.0) / 4.0).collect();
    for (slot, v) in it.input_mut(0).unwrap().chunks_exact_mut(4).zip(&x) {
        slot.copy_from_slice(&v.to_le_bytes());
    }
    it.run().unwrap();
    let got: Vec<f32> =
        it.output(0).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    // By hand from the definitions, in f64.
    let w = |ky: usize, kx: usize, c: usize, m: usize| (((ky * 3 + kx) * 2 + c) * 2 + m) as f64 / 20.0 - 0.9;
    let xv = |y: usize, xx: usize, c: usize| x[(y * 3 + xx) * 2 + c] as f64;
    let sum = |y: usize, xx: usize, m: usize| {
        let mut acc = [0.5, -0.25][m];
        for ky in 0..3 {
            for kx in 0..3 {
                let (iy, ix) = ((y + ky).wrapping_sub(1), (xx + kx).wrapping_sub(1));
                if iy < 3 && ix < 3 {
                    acc += (0..2).map(|c| xv(iy, ix, c) * w(ky, kx, c, m)).sum::<f64>();
                }
            }
        }
        (acc + xv(y, xx, m)).max(0.0)
    };
    for (oy, ox, m) in (0..2).flat_map(|a| (0..2).flat_map(move |b| (0..4).map(move |m| (a, b, m)))) {
        let want = if m < 2 {
            (0..2)
                .flat_map(|dy| (0..2).map(move |dx| (dy, dx)))
                .map(|(dy, dx)| sum(oy + dy, ox + dx, m))
                .fold(f64::MIN, f64::max)
        } else {
            0.0
        };
        let g = got[(oy * 2 + ox) * 4 + m] as f64;
        assert!((g - want).abs() < 1e-5, "y[{oy},{ox},{m}] = {g}, want {want}");
    }
}

#[test]
fn a_valid_model_parses_zero_copy() {
    let file = conv_model();
    let m = Model::parse(&file).expect("valid");
    assert_eq!((m.tensor_count(), m.op_count(), m.arena_len()), (4, 1, 24));
    let w = m.tensor(1);
    assert_eq!(w.dims, [2, 3, 3, 1]);
    assert_eq!(m.weights_of(&w), &[1u8; 18][..]);
    // Zero-copy: the weights slice points into the file.
    let range = file.as_ptr_range();
    assert!(range.contains(&m.weights_of(&w).as_ptr()));
    let op = m.op(0);
    assert_eq!(op.code, OpCode::Conv);
    assert_eq!(m.f32s(op.extra.unwrap(), 2).collect::<Vec<_>>(), vec![0.01, 0.02]);
    assert_eq!((m.input(0), m.output(0)), (0, 3));
}

#[test]
fn metadata_entries_round_trip_and_their_damage_is_caught() {
    assert_eq!(Model::parse(&conv_model()).unwrap().metadata().count(), 0);
    let entries: [(&str, &[u8]); 3] =
        [("kestrel.inputs", b"images"), ("empty", b""), ("kestrel.config", b"[x]\ny = 1")];
    let good = conv_model_with(&entries);
    let m = Model::parse(&good).unwrap();
    assert_eq!(m.metadata().collect::<Vec<_>>(), entries.to_vec());
    assert_eq!(m.metadata_value("kestrel.config"), Some(&b"[x]\ny = 1"[..]));
    assert_eq!(m.metadata_value("absent"), None);
    let at = u32::from_le_bytes(good[48..52].try_into().unwrap()) as usize;
    let patch = |at: usize, bytes: &[u8]| {
        let mut f = good.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        seal(&mut f);
        Model::parse(&f).map(|_| ())
    };
    let invalid = |what| Err(Error::Invalid { what, index: 0 });
    assert_eq!(patch(at, &0u16.to_le_bytes()), invalid("metadata entry"), "an empty key");
    assert_eq!(patch(at + 2, &[0xFF]), invalid("metadata entry"), "a key that is not UTF-8");
    assert_eq!(patch(at + 2 + 14, &u32::MAX.to_le_bytes()), Err(Error::Truncated { what: "metadata" }));
    assert_eq!(patch(48, &(good.len() as u32).to_le_bytes()), Err(Error::OutOfBounds { what: "metadata", index: 0 }));
    assert_eq!(patch(52, &0u32.to_le_bytes()), invalid("metadata offset"), "an offset without a length");
    assert_eq!(patch(56, &[1]), invalid("reserved header bytes"));
}

#[test]
fn every_truncation_is_an_error() {
    let file = conv_model();
    for len in 0..file.len() {
        assert!(Model::parse(&file[..len]).is_err(), "length {len}");
    }
}

#[test]
fn corruption_without_a_matching_checksum_is_caught() {
    let mut file = conv_model();
    let last = file.len() - 1;
    file[last] ^= 0x40;
    assert!(matches!(Model::parse(&file), Err(Error::Checksum { .. })));
}

#[test]
fn any_forged_byte_is_handled_without_panicking() {
    // Every byte after the checksum, set to a handful of hostile values, checksum recomputed:
    // the parser must answer (Ok or Err) and never panic or read out of bounds, and a model it
    // accepts must run without panicking.
    let files = [
        ("conv", conv_model(), 100),
        ("conv with metadata", conv_model_with(&[("kestrel.inputs", b"x"), ("k", b"")]), 100),
        #[cfg(feature = "all-ops")]
        ("requantizing", requantizing_model(), 200),
        #[cfg(feature = "all-ops")]
        ("float", float_model(), 200),
        #[cfg(feature = "all-ops")]
        ("slice", slice_model(), 40),
    ];
    for (name, file, refused) in files {
        let mut errors = 0;
        for at in 16..file.len() {
            for v in [0x00u8, 0x01, 0x7F, 0x80, 0xFE, 0xFF] {
                let mut f = file.clone();
                f[at] = v;
                seal(&mut f);
                match Model::parse(&f) {
                    Err(e) => {
                        errors += 1;
                        assert!(!format!("{e}").is_empty());
                    }
                    Ok(m) => {
                        let mut arena = vec![0u8; m.arena_len()];
                        Interpreter::new(m, &mut arena).unwrap().run().unwrap();
                    }
                }
            }
        }
        assert!(errors > refused, "{name}: only {errors} forged files were refused");
    }
}

#[cfg(feature = "all-ops")]
#[test]
fn the_requantizing_ops_run_and_their_damage_is_caught() {
    let good = requantizing_model();
    let model = Model::parse(&good).unwrap();
    let mut arena = vec![0u8; model.arena_len()];
    let mut it = Interpreter::new(model, &mut arena).unwrap();
    it.input_mut(0).unwrap().copy_from_slice(&[90, 100, 110, 120, 130, 140, 80, 100, 105, 100, 100, 100]);
    it.run().unwrap();
    // Pixel (0,0) channel 0: x = 90 → -1.0; resized 2×2 block all -1.0; PRelu · 0.5 → -0.5;
    // average -0.5 → 95; Mul (95 − 100)·0.1 · (90 − 100)·0.1 = 0.5 → 105.
    assert_eq!(it.output(0).unwrap()[0], 105);
    let patch = |at: usize, bytes: &[u8]| {
        let mut f = good.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        seal(&mut f);
        Model::parse(&f).map(|_| ())
    };
    // Weights start after the tables: 64 + 6·32 (tensors) + 4·32 (ops) + io, 16-aligned.
    let weights = (64 + 6 * 32 + 4 * 32 + 2 * 2usize).next_multiple_of(16);
    // A Resize source index past the input's H.
    let e = patch(weights + 2 * 2, &7u16.to_le_bytes()).unwrap_err();
    assert!(matches!(e, Error::OutOfBounds { what: "Resize source index of op", .. }), "{e:?}");
}

#[cfg(feature = "all-ops")]
#[test]
fn bilinear_resize_runs_and_its_damaged_maps_are_caught() {
    // x u8 [1, 2, 2, 1] (scale 0.5) → ResizeLinear → y u8 [1, 1, 3, 1] (scale 1, zero point 10):
    // one row between the two, columns at 0, ¼ and 1 (see ops::resize's unit test).
    let entry = |i1: u16, i2: u16, d1: f32, d2: f32| -> Vec<u8> {
        [&i1.to_le_bytes()[..], &i2.to_le_bytes(), &d1.to_le_bytes(), &d2.to_le_bytes()].concat()
    };
    let maps = [entry(0, 1, 0.5, 0.5), entry(0, 0, 0.5, 0.5), entry(0, 1, 0.25, 0.75), entry(1, 1, 0.5, 0.5)].concat();
    let mut b = Builder::new();
    let maps_at = b.weights(&maps);
    let act = |b: &mut Builder, dims: &'static [usize], offset: u32, scale: f32, zero_point: i32| {
        b.tensor(TensorSpec {
            dtype: DType::U8,
            dims,
            storage: Storage::Arena,
            offset,
            scale: Some(scale),
            zero_point,
            channel_scales: None,
        })
    };
    let x = act(&mut b, &[1, 2, 2, 1], 0, 0.5, 0);
    let y = act(&mut b, &[1, 1, 3, 1], 16, 1.0, 10);
    let mut params = [0u8; 12];
    params[0] = 1;
    b.op(OpCode::ResizeLinear, &[x], &[y], params, Some(maps_at));
    b.input(x);
    b.output(y);
    b.arena(32);
    let good = b.finish();
    let model = Model::parse(&good).unwrap();
    let mut arena = vec![0u8; model.arena_len()];
    let mut it = Interpreter::new(model, &mut arena).unwrap();
    it.input_mut(0).unwrap().copy_from_slice(&[0, 100, 200, 40]);
    it.run().unwrap();
    assert_eq!(it.output(0).unwrap(), [60, 56, 45]);
    let patch = |at: usize, bytes: &[u8]| {
        let mut f = good.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        seal(&mut f);
        Model::parse(&f).map(|_| ())
    };
    // Weights start after the tables: 64 + 2·32 (tensors) + 1·32 (op) + io, 16-aligned.
    let weights = (64 + 2 * 32 + 32 + 2 * 2usize).next_multiple_of(16);
    let e = patch(weights + 2, &2u16.to_le_bytes()).unwrap_err();
    assert!(matches!(e, Error::OutOfBounds { what: "ResizeLinear source index of op", .. }), "{e:?}");
    let e = patch(weights + 4, &f32::NAN.to_le_bytes()).unwrap_err();
    assert!(matches!(e, Error::Invalid { what: "ResizeLinear weights (finite)", .. }), "{e:?}");
}

#[test]
fn random_bytes_are_refused() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for len in [0usize, 3, 64, 65, 200, 1000] {
        let mut f: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        if len >= 4 {
            f[..4].copy_from_slice(b"KMDL");
        }
        assert!(Model::parse(&f).is_err());
    }
}

#[test]
fn specific_damage_gets_specific_errors() {
    let good = conv_model();
    let patch = |at: usize, bytes: &[u8]| {
        let mut f = good.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        seal(&mut f);
        Model::parse(&f).map(|_| ())
    };
    assert_eq!(patch(0, b"ONNX").unwrap_err(), Error::BadMagic);
    // Version 1 (channels-first) files are refused by name.
    let e = patch(4, &1u16.to_le_bytes()).unwrap_err();
    assert_eq!((e, e.kind()), (Error::UnsupportedVersion { version: 1 }, ErrorKind::Unsupported));
    // Tensor table starts at 64: tensor 1 (the weight) at 96; its offset field at +12.
    assert!(matches!(patch(96 + 12, &0x7FFF_FFF0u32.to_le_bytes()), Err(Error::OutOfBounds { .. })));
    // A zero dimension.
    assert!(matches!(patch(64 + 4, &0u16.to_le_bytes()), Err(Error::Invalid { what: "dimension", .. })));
    // The op (table at 64 + 4·32 = 192) reading its own output.
    assert!(matches!(patch(192 + 4, &3u16.to_le_bytes()), Err(Error::Invalid { .. } | Error::ReadBeforeWrite { .. })));
    assert!(matches!(patch(192, &99u16.to_le_bytes()), Err(Error::UnknownOpcode { opcode: 99, .. })));
    // A stride of zero would divide by zero in the output-size arithmetic.
    assert!(matches!(patch(192 + 16 + 2, &[0]), Err(Error::Invalid { what: "Conv parameters", .. })));
    // The header's arena too small for the output activation.
    assert!(matches!(patch(44, &20u32.to_le_bytes()), Err(Error::OutOfBounds { .. })));
}

/// Built without `all-ops` (as the firmware is), a model using an op left out is refused by
/// name at parse time.
#[cfg(not(feature = "all-ops"))]
#[test]
fn ops_left_out_of_the_build_are_refused_by_name() {
    let mut b = Builder::new();
    let spec = |offset| TensorSpec {
        dtype: DType::U8,
        dims: &[1, 2, 2, 3],
        storage: Storage::Arena,
        offset,
        scale: Some(0.1),
        zero_point: 0,
        channel_scales: None,
    };
    let (x, y) = (b.tensor(spec(0)), b.tensor(spec(16)));
    b.op(OpCode::Concat, &[x, x], &[y], [3; 12], None);
    b.input(x);
    b.output(y);
    b.arena(32);
    let e = Model::parse(&b.finish()).unwrap_err();
    assert_eq!((e, e.kind()), (Error::OpNotBuilt { op: 0, opcode: 13 }, ErrorKind::Unsupported));
    assert!(format!("{e}").contains("all-ops"), "{e}");
}

/// x u8 [1, 2, 3, 4] → Slice from (0, 1, 1, 2) → y u8 [1, 1, 2, 2].
#[cfg(feature = "all-ops")]
fn slice_model() -> Vec<u8> {
    let mut b = Builder::new();
    let t = |b: &mut Builder, dims: &[usize], offset: u32| {
        b.tensor(TensorSpec {
            dtype: DType::U8,
            dims,
            storage: Storage::Arena,
            offset,
            scale: Some(0.5),
            zero_point: 7,
            channel_scales: None,
        })
    };
    let x = t(&mut b, &[1, 2, 3, 4], 0);
    let y = t(&mut b, &[1, 1, 2, 2], 32);
    b.op(OpCode::Slice, &[x], &[y], [0, 0, 1, 0, 1, 0, 2, 0, 0, 0, 0, 0], None);
    b.input(x);
    b.output(y);
    b.arena(48);
    b.finish()
}

#[cfg(feature = "all-ops")]
#[test]
fn slice_crops_and_a_crop_outside_its_input_is_refused() {
    let good = slice_model();
    let model = Model::parse(&good).unwrap();
    let mut arena = vec![0u8; model.arena_len()];
    let mut it = Interpreter::new(model, &mut arena).unwrap();
    let x: Vec<u8> = (0..24).collect();
    it.input_mut(0).unwrap().copy_from_slice(&x);
    it.run().unwrap();
    // x[0, 1, 1..3, 2..4]: rows start at (1·3 + 1)·4 + 2 = 18 and (1·3 + 2)·4 + 2 = 22.
    assert_eq!(it.output(0).unwrap(), &[18, 19, 22, 23][..]);
    let op_params = 64 + 2 * 32 + 16;
    let patch = |at: usize, bytes: &[u8]| {
        let mut f = good.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        seal(&mut f);
        Model::parse(&f).map(|_| ())
    };
    let refused = Err(Error::Invalid { what: "Slice (the output a crop of the input, same type)", index: 0 });
    // Begin 2 on the W axis (of 3) leaves no room for 2 columns; begin 3 on C (of 4) neither.
    assert_eq!(patch(op_params + 4, &[2]), refused);
    assert_eq!(patch(op_params + 6, &[3]), refused);
    assert_eq!(patch(op_params + 11, &[1]), refused, "the bytes after the begins are zero");
}
