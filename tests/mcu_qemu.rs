//! The Cortex-M4F firmware (boards/mps2-an386) under qemu-system-arm: it must predict exactly
//! what the same .kmodel predicts on the host, image by image, and its runtime code must stay
//! small. Needs `qemu-system-arm` and the thumbv7em-none-eabihf target (scripts/test.sh installs
//! both); without them this test fails and says so.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kestrel_micro::{Interpreter, Model};
use kestrel_vision::dataset::LabeledImages;

const IMAGES: usize = 300;
const TEXT_LIMIT: u64 = 32 * 1024;

/// Size of the `.text` section of a 32-bit little-endian ELF.
fn text_size(elf: &[u8]) -> Option<u64> {
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes([elf[at], elf[at + 1], elf[at + 2], elf[at + 3]]) as usize;
    if elf.get(..5)? != b"\x7fELF\x01" {
        return None;
    }
    let (shoff, shentsize, shnum, shstrndx) = (u32_at(0x20), u16_at(0x2E), u16_at(0x30), u16_at(0x32));
    let strtab = u32_at(shoff + shstrndx * shentsize + 0x10);
    (0..shnum).find_map(|i| {
        let sh = shoff + i * shentsize;
        let name_at = strtab + u32_at(sh);
        let name = elf.get(name_at..name_at + 6)?;
        (name == b".text\0").then(|| u32_at(sh + 0x14) as u64)
    })
}

#[test]
fn firmware_on_qemu_predicts_like_the_host() {
    let root = common::repo();
    let board = root.join("boards/mps2-an386");
    // The firmware's model is what `kestrel export` makes of the committed int8 model today.
    let fresh = std::env::temp_dir().join(format!("kestrel-mcu-{}.kmodel", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .args(["export", "models/fashion-cnn/model.int8.onnx", "-o"])
        .arg(&fresh)
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kmodel = std::fs::read(board.join("data/fashion.kmodel")).unwrap();
    assert!(std::fs::read(&fresh).unwrap() == kmodel, "boards/mps2-an386/data/fashion.kmodel is stale: re-export it");
    std::fs::remove_file(&fresh).ok();

    let target_dir = root.join("target/mcu");
    let build = Command::new("cargo")
        .args(["build", "--release"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(&board)
        .output()
        .expect("running cargo for the firmware");
    assert!(
        build.status.success(),
        "firmware build failed (rustup target add thumbv7em-none-eabihf?):\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let elf_path = target_dir.join("thumbv7em-none-eabihf/release/kestrel-mps2-an386");
    let elf = std::fs::read(&elf_path).unwrap();
    let text = text_size(&elf).expect("an ELF with a .text section");
    println!("firmware .text: {text} bytes (model and images live in .rodata)");
    assert!(text <= TEXT_LIMIT, ".text is {text} bytes, over {TEXT_LIMIT}");

    let mut child = Command::new("qemu-system-arm")
        .args([
            "-cpu",
            "cortex-m4",
            "-machine",
            "mps2-an386",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ])
        .arg(&elf_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-arm is not installed (apt-get install qemu-system-arm, or run scripts/test.sh)");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("the firmware did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "firmware exit {status:?}:\n{stdout}");

    // The host: the same .kmodel, the same images, the same runtime crate.
    let data = root.join("models/fashion-cnn/data");
    let set = LabeledImages::read_idx(&data.join("t10k-images-idx3-ubyte.gz"), &data.join("t10k-labels-idx1-ubyte.gz"))
        .unwrap();
    let model = Model::parse(&kmodel).unwrap();
    let mut arena = vec![0u8; model.arena_len()];
    let mut it = Interpreter::new(model, &mut arena).unwrap();
    let mut expected = Vec::new();
    let mut correct = 0;
    let mut digest = 0u32;
    for i in 0..IMAGES {
        for (dst, &p) in it.input_mut(0).unwrap().chunks_exact_mut(4).zip(set.image(i)) {
            dst.copy_from_slice(&(f32::from(p) / 255.0).to_le_bytes());
        }
        it.run().unwrap();
        digest = digest.wrapping_mul(31).wrapping_add(kestrel_micro::crc32(it.output(0).unwrap()));
        let probs: Vec<f32> =
            it.output(0).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let best = (0..probs.len()).fold(0, |b, c| if probs[c] > probs[b] { c } else { b });
        correct += usize::from(best == usize::from(set.labels[i]));
        expected.push(format!("prediction {i} {best}"));
    }
    let got: Vec<&str> = stdout.lines().filter(|l| l.starts_with("prediction ")).collect();
    assert_eq!(got.len(), IMAGES, "{stdout}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e, "the firmware and the host disagree");
    }
    // Not only the same classes: the same bytes (the Cortex-M kernels are SMLAD pairs).
    let digest_line = format!("outputs digest {digest}");
    assert!(stdout.contains(&digest_line), "host says {digest_line}; firmware said:\n{stdout}");
    let accuracy_line = format!("accuracy {correct}/{IMAGES}");
    assert!(stdout.contains(&accuracy_line), "host says {accuracy_line}; firmware said:\n{stdout}");
    common::record_check("cortex-m-dsp", true, "the SMLAD firmware's output bytes equal the host's on 300 images");
    println!("qemu Cortex-M4F: {accuracy_line}, every output byte identical to the host's ({digest_line})");
}
