//! The fuzz targets' bodies, one function per entry point: the libFuzzer binaries in
//! `fuzz_targets/` call them, and the main test suite (`tests/fuzz_regressions.rs`) replays
//! every input in `fuzz/regressions/` through them. Each must return normally for any input:
//! a panic, a hang or an out-of-bounds access is a bug.

use std::path::Path;
use std::sync::OnceLock;

use byteorder::LittleEndian;
use kestrel_engine::{BackendKind, Engine, PrepareOptions, Tensor};
use kestrel_micro::{Interpreter, Model};
use kestrel_onnx::OnnxModel;
use kestrel_ros2::image::{compressed_to_rgb, image_to_rgb};
use kestrel_ros2::msg::{CompressedImage, Image};
use kestrel_vision::config::Decoder;
use kestrel_vision::decode::{blazeface, classify, gfl, landmarks, raw, segmentation, ssd_anchors, yolo};
use kestrel_vision::preprocess::{FrameMap, Preprocessor};
use kestrel_vision::ModelConfig;

/// libfuzzer-sys aborts on every panic, caught or not. tract is third-party and panics on some
/// graphs; Kestrel's CPU backend catches those (`guard`) and returns an error, by design. The
/// targets that prepare models on tract replace the hook with a silent one: a panic that
/// Kestrel catches is then an error like any other, and one it does not catch still unwinds to
/// libfuzzer-sys's own `catch_unwind`, which aborts (a crash).
pub fn tolerate_caught_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// The model's one input shape with dynamic dimensions set to 1 (as the exporter reads it), if
/// it is small enough to run within the time limit (1 to 64 per side and 2^16 elements).
fn small_input_shape(model: &OnnxModel) -> Option<Vec<usize>> {
    if kestrel_onnx::summarize(&model.proto).inputs.len() != 1 {
        return None;
    }
    let dims = kestrel_engine::export_kmodel::declared_input_shape(model);
    let small = dims.iter().all(|d| (1..=64).contains(d)) && dims.iter().product::<usize>() <= 1 << 16;
    (!dims.is_empty() && small).then_some(dims)
}

/// ONNX bytes → limits, prescan, decode, validate, normalize; what loads is prepared on the CPU
/// backend (tract) at a small input shape and run once.
pub fn onnx_load(bytes: &[u8]) {
    let Ok(model) = kestrel_onnx::from_bytes(bytes, None, &kestrel_onnx::Limits::default()) else { return };
    let Some(shape) = small_input_shape(&model) else { return };
    let options = PrepareOptions { threads: 1, input_shapes: vec![shape.clone()] };
    if let Ok(mut engine) = Engine::new(BackendKind::Cpu, &model, &options) {
        let input = Tensor::f32(shape.clone(), vec![0.5; shape.iter().product()]).expect("a small shape");
        let _ = engine.run(std::slice::from_ref(&input));
    }
}

/// The arena a small device would give; a `.kmodel` asking for more is refused before running.
const ARENA: usize = 4 << 20;

/// Prepares and runs a parsed `.kmodel` on a patterned input, if it fits the arena.
fn run_kmodel(model: Model<'_>) -> bool {
    if model.arena_len() > ARENA || Interpreter::prepared_len(&model) > ARENA {
        return false;
    }
    let mut arena = vec![0u8; model.arena_len()];
    let mut prepared = vec![0u8; Interpreter::prepared_len(&model)];
    if Interpreter::prepare(&model, &mut prepared).is_err() {
        return false;
    }
    let Ok(mut it) = Interpreter::with_prepared(model, &mut arena, &prepared) else { return false };
    if let Some(input) = it.input_mut(0) {
        for (i, b) in input.iter_mut().enumerate() {
            *b = (i * 37) as u8;
        }
    }
    it.run().is_ok()
}

/// `.kmodel` bytes (as read from flash) → parse, prepare and run in a bounded arena. The file's
/// length and CRC are resealed first, as a forger would, so mutations reach what the checksum
/// guards; a first byte of 0 keeps the bytes as they are, so the CRC check is fuzzed too.
pub fn kmodel_run(data: &[u8]) {
    let Some((&reseal, bytes)) = data.split_first() else { return };
    let mut bytes = bytes.to_vec();
    if reseal != 0 && bytes.len() >= 16 {
        let len = bytes.len() as u32;
        bytes[8..12].copy_from_slice(&len.to_le_bytes());
        let crc = kestrel_micro::crc32(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(model) = Model::parse(&bytes) {
        run_kmodel(model);
    }
}

/// ONNX bytes (seeded with int8 models) → load, export to `.kmodel` at a small input shape,
/// then parse and run what was exported: the exporter must refuse what it cannot express, and
/// what it writes must parse.
pub fn kmodel_export(bytes: &[u8]) {
    let Ok(model) = kestrel_onnx::from_bytes(bytes, None, &kestrel_onnx::Limits::default()) else { return };
    let Some(shape) = small_input_shape(&model) else { return };
    let Ok(exported) = kestrel_engine::export_kmodel::export_kmodel(&model, &shape, None) else { return };
    let parsed = Model::parse(&exported.bytes);
    let model = parsed.unwrap_or_else(|e| panic!("the exporter wrote a .kmodel that does not parse: {e:?}"));
    run_kmodel(model);
}

/// Config text → parse and validate: the first byte picks a model config (`kestrel.toml`, also
/// what a compressed model carries in its metadata) or a board definition (`boards/*.toml`).
pub fn configs(data: &[u8]) {
    let Some((&kind, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    if kind % 2 == 0 {
        if let Ok(config) = ModelConfig::from_toml(text, Path::new("kestrel.toml")) {
            // What loads round-trips through the text a compressed model stores.
            let again = config.to_toml().expect("a loaded config writes");
            if let Err(e) = ModelConfig::from_toml(&again, Path::new("again.toml")) {
                panic!("a config that loaded does not load again once written: {e}\n{again}");
            }
        }
    } else {
        let _ = kestrel_deploy::board::Board::parse(text, Path::new("board.toml"));
    }
}

const CONFIGS: [&str; 3] = [
    include_str!("../../models/blazeface/kestrel.toml"),
    include_str!("../../models/fashion-cnn/kestrel.toml"),
    include_str!("../../models/coco-nanodet/kestrel.toml"),
];

fn bundled_configs() -> &'static [ModelConfig] {
    static PARSED: OnceLock<Vec<ModelConfig>> = OnceLock::new();
    PARSED.get_or_init(|| {
        CONFIGS.iter().map(|t| ModelConfig::from_toml(t, Path::new("kestrel.toml")).expect("bundled")).collect()
    })
}

/// Each bundled model's preprocessing (letterbox and stretch; NCHW and NHWC; RGB and BGR;
/// ranges and mean/std) of `image`: every model input finite.
fn preprocess_all(image: &kestrel_vision::image::RgbImage) {
    for config in bundled_configs() {
        let mut pre = Preprocessor::new(config.preprocess);
        let map = pre.run(image);
        assert!(pre.tensor().iter().all(|v| v.is_finite()), "a non-finite model input");
        let _ = map.to_source(0.0, 0.0);
    }
}

/// Image bytes (PNG, JPEG) → decode with limits → each bundled model's preprocessing.
pub fn image_preprocess(bytes: &[u8]) {
    if let Ok(image) = kestrel_vision::image_io::decode_rgb(bytes) {
        preprocess_all(&image);
    }
}

/// A camera frame as GStreamer maps it (width, height, row stride, bytes: the first 5 bytes
/// give the sizes, the rest is the buffer) → packed RGB → each bundled preprocessing.
pub fn camera_frame(data: &[u8]) {
    let Some((head, buffer)) = data.split_first_chunk::<5>() else { return };
    let (w, h) = (u32::from(u16::from_le_bytes([head[0], head[1]])), u32::from(head[2]));
    let stride = usize::from(u16::from_le_bytes([head[3], head[4]]));
    let pool = kestrel_camera::BufferPool::new(1);
    if let Ok(image) = kestrel_camera::capture::packed_rgb(buffer, w, h, stride, &pool) {
        assert_eq!(image.dimensions(), (w, h));
        preprocess_all(&image);
    }
}

/// What arrives from the network on a `ros2://` source: CDR bytes → `sensor_msgs/Image` or
/// `CompressedImage` (the first byte picks) → RGB, as the subscription does it.
pub fn ros2_image(data: &[u8]) {
    let Some((&kind, cdr)) = data.split_first() else { return };
    if kind % 2 == 0 {
        let Ok((image, _)) = cdr_encoding::from_bytes::<Image, LittleEndian>(cdr) else { return };
        let mut rgb = Vec::new();
        if let Ok((w, h)) = image_to_rgb(&image, &mut rgb) {
            assert_eq!(rgb.len(), w as usize * h as usize * 3);
        }
    } else {
        let Ok((image, _)) = cdr_encoding::from_bytes::<CompressedImage, LittleEndian>(cdr) else { return };
        let _ = compressed_to_rgb(&image);
    }
}

/// One decoder case: a decoder family with thresholds, a frame mapping and output tensors of
/// any shape and values (NaN, infinities, huge values; data that does not fill its shape).
#[derive(arbitrary::Arbitrary, Debug)]
pub struct DecoderCase {
    family: u8,
    score_threshold: f32,
    iou_threshold: f32,
    /// input width, height, scale x, y, pad x, y, source width, height
    frame: [f32; 8],
    outputs: Vec<(Vec<u8>, Vec<f32>)>,
}

const INLINE_PREPROCESS: &str = "[preprocess]\nwidth = 64\nheight = 64\nlayout = \"nchw\"\ncolor = \"rgb\"\n\
                                 resize = \"stretch\"\nrange = [0.0, 1.0]\n";
const DECODER_CONFIGS: [&str; 7] = [
    include_str!("../../models/blazeface/kestrel.toml"),
    include_str!("../../models/coco-nanodet/kestrel.toml"),
    include_str!("../../models/pose-detection/kestrel.toml"),
    include_str!("../../models/hand-landmark/kestrel.toml"),
    include_str!("../../models/fashion-cnn/kestrel.toml"),
    "[decoder]\nkind = \"yolo\"\nlabels = [\"a\", \"b\", \"c\"]\n",
    "[decoder]\nkind = \"segmentation\"\n",
];

/// Output tensors → each decoder family, as `kestrel run` and `watch` call them: a result or
/// an error, never a panic. The bytes are read as a [`DecoderCase`] (`arbitrary`).
pub fn decoders(data: &[u8]) {
    use arbitrary::Arbitrary;
    if let Ok(case) = DecoderCase::arbitrary_take_rest(arbitrary::Unstructured::new(data)) {
        decode_case(case);
    }
}

fn decode_case(case: DecoderCase) {
    static PARSED: OnceLock<Vec<ModelConfig>> = OnceLock::new();
    let configs = PARSED.get_or_init(|| {
        DECODER_CONFIGS
            .iter()
            .map(|t| {
                let text = if t.contains("[preprocess]") { t.to_string() } else { format!("{INLINE_PREPROCESS}{t}") };
                ModelConfig::from_toml(&text, Path::new("kestrel.toml")).expect("bundled")
            })
            .collect()
    });
    let mut decoder = configs[case.family as usize % configs.len()].decoder.clone();
    let (score, iou) = (case.score_threshold, case.iou_threshold);
    match &mut decoder {
        Decoder::Yolo(c) => (c.score_threshold, c.iou_threshold) = (score, iou),
        Decoder::Gfl(c) => c.score_threshold = score,
        Decoder::SsdAnchors(o) => o.min_score_thresh = score,
        Decoder::Segmentation(c) => c.threshold = score,
        Decoder::Landmarks(c) => c.presence_threshold = score,
        _ => {}
    }
    let [iw, ih, sx, sy, px, py, sw, sh] = case.frame;
    let frame = FrameMap {
        input_width: iw,
        input_height: ih,
        scale_x: sx,
        scale_y: sy,
        pad_x: px,
        pad_y: py,
        source_width: sw,
        source_height: sh,
    };
    let shapes: Vec<Vec<usize>> =
        case.outputs.iter().map(|(d, _)| d.iter().map(|&v| usize::from(v)).collect()).collect();
    let outputs: Vec<(&[f32], &[usize])> =
        case.outputs.iter().zip(&shapes).map(|((_, v), s)| (v.as_slice(), s.as_slice())).collect();
    let data = |i: usize| outputs.get(i).map_or(&[][..], |o| o.0);
    let mut out = Vec::new();
    let _ = match &decoder {
        Decoder::Blazeface { .. } => blazeface::decode(data(0), data(1), &frame, score, iou).map(|d| out = d),
        Decoder::Gfl(c) => {
            let input = (iw.clamp(0.0, 4096.0) as usize, ih.clamp(0.0, 4096.0) as usize);
            gfl::levels(&outputs, c, input)
                .and_then(|levels| gfl::Decoder::default().decode(&levels, &frame, c, &mut out))
        }
        Decoder::SsdAnchors(o) => ssd_anchors::Decoder::default().decode(data(0), data(1), &frame, o, &mut out),
        Decoder::Yolo(c) => {
            let shape = outputs.first().map_or(&[][..], |o| o.1);
            yolo::Decoder::default().decode(data(0), shape, &frame, c, &mut out)
        }
        Decoder::Segmentation(c) => {
            let shape = outputs.first().map_or(&[][..], |o| o.1);
            segmentation::Decoder::default().decode(data(0), shape, &frame, c, &mut out)
        }
        Decoder::Landmarks(c) => landmarks::decode(data(0), data(1).first().copied(), &frame, c, &mut out),
        Decoder::Classifier { labels, top_k, softmax } => {
            classify::top_k(data(0), labels, *top_k, *softmax);
            Ok(())
        }
        Decoder::Raw { top } => {
            let shape = outputs.first().map_or(&[][..], |o| o.1);
            raw::summarize("output", "float32", shape, data(0), *top);
            Ok(())
        }
    };
}

/// A release bundle (`.tar.gz`, as `kestrel deploy --bundle` reads it back): entries' paths
/// checked, `release.json` parsed. Written to a file first, as `bundle::open` takes a path.
pub fn bundle_open(bytes: &[u8]) {
    let path = std::env::temp_dir().join(format!("kestrel-fuzz-bundle-{}.tar.gz", std::process::id()));
    std::fs::write(&path, bytes).expect("writing the temporary bundle");
    let _ = kestrel_deploy::bundle::open(&path);
}

/// `release.json` (first byte even) or `health.json` (odd) as the board reads them (`kestrel
/// health`, `kestrel serve`): what is accepted must write and read back the same.
pub fn release_json(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else { return };
    if which % 2 == 0 {
        if let Ok(r) = kestrel_deploy::bundle::parse_release(bytes) {
            let again = kestrel_deploy::bundle::parse_release(&serde_json::to_vec(&r).expect("serializes"))
                .expect("reads back");
            assert_eq!(format!("{r:?}"), format!("{again:?}"));
        }
    } else if let Ok(h) = kestrel_deploy::bundle::parse_health(bytes) {
        let again =
            kestrel_deploy::bundle::parse_health(&serde_json::to_vec(&h).expect("serializes")).expect("reads back");
        assert_eq!(format!("{h:?}"), format!("{again:?}"));
    }
}

/// Bytes arriving on a co-processor link (`kestrel-link`), as the device and the host receive
/// them: every packet the decoder accepts parses as its kind's message or is refused, and sent
/// again it comes back the same; the decoder never holds more than its buffer.
pub fn link_packets(data: &[u8]) {
    use kestrel_link::message::{Inference, ModelInfo, Refusal, Stats};
    use kestrel_link::packet::{send, wire_len, Decoder, Kind};
    const N: usize = wire_len(784);
    let mut decoder = Decoder::<N>::default();
    for &b in data {
        if let Some(Ok(p)) = decoder.push(b) {
            let _ = match p.kind {
                Kind::ModelInfo => ModelInfo::parse(p.payload).map(|_| ()),
                Kind::Result => Inference::parse(p.payload).map(|_| ()),
                Kind::Error => Refusal::parse(p.payload).map(|_| ()),
                Kind::Stats => Stats::parse(p.payload).map(|_| ()),
                Kind::Hello | Kind::Frame | Kind::StatsRequest => Ok(()),
            };
            let (kind, seq, payload) = (p.kind, p.seq, p.payload.to_vec());
            let mut wire = Vec::new();
            send(kind, seq, &[&payload], &mut |b: &[u8]| {
                wire.extend_from_slice(b);
                Ok::<(), ()>(())
            })
            .expect("writing to a vector");
            let mut again = Decoder::<N>::default();
            let back = wire.iter().find_map(|&b| again.push(b).map(|r| r.map(|p| (p.kind, p.seq, p.payload.to_vec()))));
            assert_eq!(back, Some(Ok((kind, seq, payload))));
        }
        assert!(decoder.pending() <= N);
    }
}
