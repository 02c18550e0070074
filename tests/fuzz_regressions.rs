//! Every input the fuzzers found a bug with (`fuzz/regressions/TARGET/`), and the committed seed
//! corpora (`fuzz/corpus/TARGET/`), replayed through the same target functions the libFuzzer
//! binaries run (`fuzz/src/targets.rs`, included here): each must return normally. The fuzzers
//! themselves run in `scripts/fuzz.sh ci` (see fuzz/README.md).

#![cfg(feature = "ros2")]

#[allow(dead_code)]
#[path = "../fuzz/src/targets.rs"]
mod targets;

mod common;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 11] = [
    ("onnx_load", targets::onnx_load),
    ("kmodel_run", targets::kmodel_run),
    ("kmodel_export", targets::kmodel_export),
    ("configs", targets::configs),
    ("image_preprocess", targets::image_preprocess),
    ("camera_frame", targets::camera_frame),
    ("ros2_image", targets::ros2_image),
    ("decoders", targets::decoders),
    ("bundle_open", targets::bundle_open),
    ("release_json", targets::release_json),
    ("link_packets", targets::link_packets),
];

#[test]
fn found_and_seed_inputs_replay_without_a_panic() {
    let mut replayed = 0;
    for (name, target) in TARGETS {
        for folder in ["fuzz/regressions", "fuzz/corpus"] {
            let dir = common::repo().join(folder).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                let caught = std::panic::catch_unwind(|| target(&bytes));
                assert!(caught.is_ok(), "{name} panics on {}", path.display());
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 9, "only {replayed} inputs found: run from the repository");
}

#[test]
fn the_bundle_seed_is_a_bundle_the_target_reads() {
    let seed = common::repo().join("fuzz/corpus/bundle_open/small-release.tar.gz");
    let bundle = kestrel_deploy::bundle::open(&seed).unwrap();
    assert_eq!((bundle.release.id.as_str(), bundle.files), ("20261201T120000Z-abcdef12", 4));
}

#[test]
fn the_release_json_seeds_are_files_the_target_reads() {
    let dir = common::repo().join("fuzz/corpus/release_json");
    let release = std::fs::read(dir.join("release")).unwrap();
    assert_eq!(kestrel_deploy::bundle::parse_release(&release[1..]).unwrap().id, "20261201T120000Z-abcdef12");
    let health = std::fs::read(dir.join("health")).unwrap();
    assert_eq!(kestrel_deploy::bundle::parse_health(&health[1..]).unwrap().budget_s, 120);
}

#[test]
fn the_link_seeds_are_packets_the_target_reads() {
    use kestrel_link::packet::{wire_len, Decoder, Kind};
    let dir = common::repo().join("fuzz/corpus/link_packets");
    let mut kinds = Vec::new();
    for name in ["hello", "frame", "answers"] {
        let mut d = Decoder::<{ wire_len(784) }>::default();
        for b in std::fs::read(dir.join(name)).unwrap() {
            if let Some(p) = d.push(b) {
                kinds.push(p.unwrap().kind);
            }
        }
    }
    assert_eq!(kinds, [Kind::Hello, Kind::Frame, Kind::ModelInfo, Kind::Result, Kind::Error]);
}

#[test]
fn the_ros2_seeds_are_messages_the_target_reads() {
    use byteorder::LittleEndian;
    let dir = common::repo().join("fuzz/corpus/ros2_image");
    let rgb8 = std::fs::read(dir.join("rgb8")).unwrap();
    let (image, _) = cdr_encoding::from_bytes::<kestrel_ros2::msg::Image, LittleEndian>(&rgb8[1..]).unwrap();
    assert_eq!((image.width, image.height, image.encoding.as_str(), image.step), (4, 3, "rgb8", 12));
    let png = std::fs::read(dir.join("compressed-png")).unwrap();
    let (compressed, _) =
        cdr_encoding::from_bytes::<kestrel_ros2::msg::CompressedImage, LittleEndian>(&png[1..]).unwrap();
    let rgb = kestrel_ros2::image::compressed_to_rgb(&compressed).unwrap();
    assert_eq!(rgb.dimensions(), (5, 4));
}
