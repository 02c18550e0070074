//! The Cortex-M4F firmwares (boards/mps2-an386) under qemu-system-arm: the batch one must
//! predict exactly what the same .kmodel predicts on the host, image by image; the co-processor
//! must answer frames sent over its UART (kestrel-link) with the host's bytes, through link
//! faults; both runtimes' code must stay small. Needs `qemu-system-arm` and the thumbv7em-none-eabihf target (scripts/test.sh installs
//! both); without them this test fails and says so.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kestrel_link::host::{Client, ClientError};
use kestrel_link::message::Refusal;

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

/// Builds both firmwares once (`cargo build --release` in boards/mps2-an386); the path of `bin`.
fn firmware(bin: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target_dir = common::repo().join("target/mcu");
        let build = Command::new("cargo")
            .args(["build", "--release"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(common::repo().join("boards/mps2-an386"))
            .output()
            .expect("running cargo for the firmware");
        assert!(
            build.status.success(),
            "firmware build failed (rustup target add thumbv7em-none-eabihf?):\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
        target_dir.join("thumbv7em-none-eabihf/release")
    });
    dir.join(bin)
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

    let elf_path = firmware("kestrel-mps2-an386");
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
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
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

/// The host's integer run of the firmware's `.kmodel` on image `i` of the Fashion-MNIST test
/// set: (top class, every output byte), with the firmware's scaling (pixel / 255).
struct HostRun {
    set: LabeledImages,
    kmodel: Vec<u8>,
}

impl HostRun {
    fn new() -> HostRun {
        let data = common::repo().join("models/fashion-cnn/data");
        let set =
            LabeledImages::read_idx(&data.join("t10k-images-idx3-ubyte.gz"), &data.join("t10k-labels-idx1-ubyte.gz"))
                .unwrap();
        let kmodel = std::fs::read(common::repo().join("boards/mps2-an386/data/fashion.kmodel")).unwrap();
        HostRun { set, kmodel }
    }

    fn run(&self, i: usize) -> (u16, Vec<u8>) {
        self.run_pixels(self.set.image(i))
    }

    fn run_pixels(&self, pixels: &[u8]) -> (u16, Vec<u8>) {
        let model = Model::parse(&self.kmodel).unwrap();
        let mut arena = vec![0u8; model.arena_len()];
        let mut it = Interpreter::new(model, &mut arena).unwrap();
        for (dst, &p) in it.input_mut(0).unwrap().chunks_exact_mut(4).zip(pixels) {
            dst.copy_from_slice(&(f32::from(p) / 255.0).to_le_bytes());
        }
        it.run().unwrap();
        let out = it.output(0).unwrap().to_vec();
        let probs: Vec<f32> = out.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let best = (0..probs.len()).fold(0, |b, c| if probs[c] > probs[b] { c } else { b });
        (best as u16, out)
    }
}

/// What the proxy does to the next bytes the host sends (counted from when it is armed).
#[derive(Debug, Clone)]
enum Fault {
    None,
    /// Flips the lowest bit of byte `at`.
    Flip {
        at: usize,
    },
    /// Drops byte `at`.
    Drop {
        at: usize,
    },
    /// Passes `keep` bytes of the next packet, drops the rest of it (not its 0x00).
    Truncate {
        keep: usize,
    },
    /// Random bytes before the next packet.
    Noise(usize),
    /// Passes `after` bytes, then resets the board (QEMU monitor) and passes the rest.
    Reset {
        after: usize,
    },
}

/// A TCP proxy between the host client and QEMU's serial socket, injecting `Fault`s into what
/// the host sends; every fault fires once.
struct Proxy {
    port: u16,
    fault: Arc<Mutex<Fault>>,
}

impl Proxy {
    fn start(device: u16, monitor: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let shared = fault.clone();
        std::thread::spawn(move || {
            let (host, _) = listener.accept().unwrap();
            let dev = TcpStream::connect(("127.0.0.1", device)).unwrap();
            let (mut host_rx, mut dev_tx) = (host.try_clone().unwrap(), dev.try_clone().unwrap());
            let (mut dev_rx, mut host_tx) = (dev, host);
            std::thread::spawn(move || std::io::copy(&mut dev_rx, &mut host_tx));
            let mut seen = 0usize;
            let mut rng = 0x2545_F491_4F6C_DD1Du64;
            let mut buf = [0u8; 4096];
            loop {
                let n = match host_rx.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut out = Vec::with_capacity(n + 64);
                for &b in &buf[..n] {
                    let mut f = shared.lock().unwrap();
                    match f.clone() {
                        Fault::None => out.push(b),
                        Fault::Flip { at } if seen == at => {
                            out.push(b ^ 1);
                            *f = Fault::None;
                        }
                        Fault::Drop { at } if seen == at => *f = Fault::None,
                        Fault::Truncate { keep } if seen > keep => {
                            if b == 0 {
                                out.push(0);
                                *f = Fault::None;
                            }
                        }
                        Fault::Noise(len) => {
                            for _ in 0..len {
                                rng ^= rng << 13;
                                rng ^= rng >> 7;
                                rng ^= rng << 17;
                                out.push(rng as u8);
                            }
                            out.push(b);
                            *f = Fault::None;
                        }
                        Fault::Reset { after } if seen == after => {
                            dev_tx.write_all(&out).unwrap();
                            out.clear();
                            // QEMU holds bytes until the guest reads them: let it take these
                            // first, so the reset loses what the firmware had received.
                            std::thread::sleep(Duration::from_millis(300));
                            let mut m = TcpStream::connect(("127.0.0.1", monitor)).unwrap();
                            m.write_all(b"system_reset\n").unwrap();
                            std::thread::sleep(Duration::from_millis(500));
                            out.push(b);
                            *f = Fault::None;
                        }
                        _ => out.push(b),
                    }
                    if !matches!(*f, Fault::None) {
                        seen += 1;
                    } else {
                        seen = 0;
                    }
                }
                if dev_tx.write_all(&out).is_err() {
                    return;
                }
            }
        });
        Proxy { port, fault }
    }

    fn arm(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The co-processor firmware in QEMU, its UART0 on a TCP socket, its monitor on another, its
/// defmt logs (UART1) in a file.
struct Coprocessor {
    qemu: Child,
    defmt: PathBuf,
    serial: u16,
    monitor: u16,
    /// Times the firmware said it was ready (once per start or reset).
    starts: Arc<Mutex<usize>>,
}

impl Coprocessor {
    fn start() -> Coprocessor {
        let (serial, monitor) = (free_port(), free_port());
        let defmt = common::repo().join(format!("target/tmp/coprocessor-{}.defmt", std::process::id()));
        std::fs::create_dir_all(defmt.parent().unwrap()).unwrap();
        let mut qemu = Command::new("qemu-system-arm")
            .args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-display", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-serial")
            .arg(format!("tcp:127.0.0.1:{serial},server=on,wait=off"))
            .arg("-serial")
            .arg(format!("file:{}", defmt.display()))
            .arg("-monitor")
            .arg(format!("tcp:127.0.0.1:{monitor},server=on,wait=off"))
            .arg("-kernel")
            .arg(firmware("coprocessor"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-arm is not installed (apt-get install qemu-system-arm, or run scripts/test.sh)");
        let mut lines = std::io::BufReader::new(qemu.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        assert!(first.starts_with("coprocessor: ready"), "firmware said: {first}");
        let starts = Arc::new(Mutex::new(1));
        let counted = starts.clone();
        // Later lines (after a reset) go on being read, so QEMU never blocks on its stdout.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.starts_with("coprocessor: ready") {
                    *counted.lock().unwrap() += 1;
                }
            }
        });
        Coprocessor { qemu, defmt, serial, monitor, starts }
    }
}

impl Coprocessor {
    /// Stops the board and decodes its defmt log with `defmt-print` and the firmware's ELF.
    fn stop_and_read_log(&mut self) -> String {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        let tool = std::env::var_os("KESTREL_DEFMT_PRINT")
            .map(PathBuf::from)
            .unwrap_or_else(|| common::repo().join("target/defmt-print/bin/defmt-print"));
        let out = Command::new(&tool)
            .arg("-e")
            .arg(firmware("coprocessor"))
            .stdin(std::fs::File::open(&self.defmt).unwrap())
            .output()
            .unwrap_or_else(|e| panic!("{} ({e}): scripts/test.sh installs defmt-print there", tool.display()));
        assert!(out.status.success(), "defmt-print: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Coprocessor {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// The co-processor firmware answers over the emulated UART: the 300 test images give the
/// host's classes and output bytes; faults injected on the link (flipped, dropped and noise
/// bytes, a cut packet, an over-long frame, the board reset mid-frame) are detected, answered
/// or timed out, retried, and the next frames are answered correctly.
#[test]
fn coprocessor_answers_over_the_emulated_uart_through_faults() {
    let host = HostRun::new();
    let elf = std::fs::read(firmware("coprocessor")).unwrap();
    let text = text_size(&elf).expect("an ELF with a .text section");
    println!(
        "co-processor firmware .text: {text} bytes (runtime, link, UART and LED drivers); arena 32 KiB, \
         receive buffer {} bytes",
        kestrel_link::packet::wire_len(784)
    );
    assert!(text <= TEXT_LIMIT, ".text is {text} bytes, over {TEXT_LIMIT}");
    let mut board = Coprocessor::start();

    // `kestrel mcu` straight to the board's serial socket (QEMU takes one connection at a time).
    let samples: Vec<PathBuf> = std::fs::read_dir(common::repo().join("models/fashion-cnn/samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    let port = format!("tcp:127.0.0.1:{}", board.serial);
    let mut args = vec!["mcu", "--port", &port, "--json", "--config", "models/fashion-cnn/kestrel.toml"];
    args.extend(["--model", "boards/mps2-an386/data/fashion.kmodel"]);
    args.extend(samples.iter().map(|p| p.to_str().unwrap()));
    let lines = common::kestrel_ok(&args);
    let labels = kestrel_vision::ModelConfig::load(&common::repo().join("models/fashion-cnn/kestrel.toml")).unwrap();
    for (line, path) in lines.lines().zip(&samples) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let pixels = kestrel_vision::image_io::load_rgb(path).unwrap();
        let gray = kestrel_vision::image::DynamicImage::ImageRgb8(pixels).to_luma8().into_raw();
        let (class, output) = host.run_pixels(&gray);
        let hex: String = output.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!((v["class"].as_u64(), v["output"].as_str()), (Some(u64::from(class)), Some(hex.as_str())), "{line}");
        assert_eq!(v["label"].as_str(), labels.decoder.labels().get(usize::from(class)).map(String::as_str));
    }
    assert_eq!(lines.lines().count(), samples.len());
    // Another model's .kmodel is refused by its CRC, naming both.
    let other = common::repo().join("target/tmp/not-the-firmware.kmodel");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, b"another model").unwrap();
    let out =
        common::kestrel(&["mcu", "--port", &port, "--model", other.to_str().unwrap(), samples[0].to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("the device runs another model"), "{out:?}");

    // The co-processor as an engine: `run` and `watch` with `--mcu` give what the local integer
    // runtime gives for the same .kmodel (the frames go back to pixels and over the link).
    let kmodel = "boards/mps2-an386/data/fashion.kmodel";
    let strip_times = |s: String| s.lines().map(|l| l.split(" (").next().unwrap_or(l).to_string()).collect::<Vec<_>>();
    let sample = samples[0].to_str().unwrap();
    let remote = common::kestrel_ok(&["run", kmodel, sample, "--mcu", &port]);
    assert_eq!(strip_times(remote), strip_times(common::kestrel_ok(&["run", kmodel, sample])));
    let folder = common::repo().join("models/fashion-cnn/samples");
    let watch = |extra: &[&str]| -> Vec<serde_json::Value> {
        let args = [&["watch", kmodel, folder.to_str().unwrap(), "--json"][..], extra].concat();
        let out = common::kestrel_ok(&args);
        out.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["classes"].clone()).collect()
    };
    let (remote, local) = (watch(&["--mcu", &port]), watch(&[]));
    assert!(remote.len() >= samples.len() && remote == local, "watch --mcu: {remote:?}\nlocal: {local:?}");

    let proxy = Proxy::start(board.serial, board.monitor);
    let stream = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    let mut client = Client::new(stream.try_clone().unwrap(), stream, Duration::from_secs(2), 3);

    let info = client.hello().unwrap();
    assert_eq!((info.height, info.width, info.channels, info.output_bytes), (28, 28, 1, 40));
    assert_eq!(info.model_crc, kestrel_micro::crc32(&host.kmodel));

    let mut correct = 0;
    let start = Instant::now();
    for i in 0..IMAGES {
        let answer = client.infer(host.set.image(i)).unwrap();
        let (class, output) = host.run(i);
        assert_eq!((answer.class, &answer.output), (class, &output), "image {i}");
        correct += usize::from(answer.class == u16::from(host.set.labels[i]));
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(client.stats.retries, 0, "a clean link needed retries");
    println!(
        "co-processor over the emulated UART: {IMAGES} images, every class and output byte equal to the host's; \
         accuracy {correct}/{IMAGES}; {:.1} ms per frame round trip",
        seconds * 1e3 / IMAGES as f64
    );

    let faults = [
        Fault::Flip { at: 40 },
        Fault::Drop { at: 100 },
        Fault::Noise(300),
        Fault::Truncate { keep: 200 },
        Fault::Reset { after: 400 },
    ];
    for (k, fault) in faults.iter().enumerate() {
        let retries = client.stats.retries;
        proxy.arm(fault.clone());
        let i = 10 + k;
        let answer = client.infer(host.set.image(i)).unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!((answer.class, answer.output), host.run(i), "{fault:?}");
        assert!(client.stats.retries > retries, "{fault:?} went unnoticed");
        // And the next frame, untouched.
        assert_eq!(client.infer(host.set.image(i + 1)).map(|a| (a.class, a.output)).unwrap(), host.run(i + 1));
    }
    // A frame longer than the device's buffer: dropped unread (`TooLong`), never answered.
    match client.infer(&[7u8; 2000]) {
        Err(ClientError::Link { .. }) => {}
        other => panic!("an over-long frame: {other:?}"),
    }
    // A frame of the wrong size that fits: refused by name.
    match client.infer(&[7u8; 100]) {
        Err(ClientError::Refused(Refusal::FrameSize)) => {}
        other => panic!("a short frame: {other:?}"),
    }
    assert_eq!(client.infer(host.set.image(0)).map(|a| (a.class, a.output)).unwrap(), host.run(0));
    assert_eq!(*board.starts.lock().unwrap(), 2, "the board was reset once");
    let stats = client.device_stats().unwrap();
    assert!(stats.crc_errors + stats.framing_errors >= 1 && stats.too_long >= 1, "{stats:?}");
    println!("device counters after the faults (since its reset): {stats:?}; client: {:?}", client.stats);

    // The firmware's defmt log, decoded on the host from the ELF: both starts, every frame, the drops.
    let log = board.stop_and_read_log();
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("INFO  coprocessor ready: 28x28 gray frames"), 2, "{log}");
    assert!(count("INFO  frame: class ") >= IMAGES + samples.len(), "{} frames logged", count("frame: class"));
    assert!(count("WARN  dropped a packet") >= 4, "{log}");
    println!("defmt log: {} lines, e.g. {:?}", log.lines().count(), log.lines().find(|l| l.contains("WARN")));
}
