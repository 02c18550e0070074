//! Fashion-MNIST on a Cortex-M4F: the int8 `.kmodel` runs in a stack arena on the first 300
//! test images; each prediction and the accuracy go out over semihosting, then QEMU exits 0.
//! `cargo run --release` (from this folder) builds it and runs it in qemu-system-arm.
//!
//! Text goes out through a few lines of decimal printing instead of `core::fmt` (and so does a
//! panic's location, `print`): formatting machinery would be a fifth of the firmware's code.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use kestrel_micro::{Interpreter, Model};
use kestrel_mps2_an386::print::print;
use kestrel_mps2_an386::print::Piece::{Num, Text};
use kestrel_mps2_an386::systick;

static MODEL: &[u8] = include_bytes!("../data/fashion.kmodel");
static IMAGES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images.u8"));
static LABELS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/labels.u8"));
const ARENA: usize = 32 * 1024;

#[entry]
fn main() -> ! {
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            print(&[Text(b"error: "), Text(e.name().as_bytes())]);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(code);
    loop {
        // Only reached without a debugger attached: sleep instead of spinning.
        cortex_m::asm::wfi();
    }
}

fn run() -> Result<(), kestrel_micro::Error> {
    let model = Model::parse(MODEL)?;
    print(&[Text(b"model: "), Num(model.op_count()), Text(b" ops, arena "), Num(model.arena_len()), Text(b" bytes")]);
    let mut arena = [0u8; ARENA];
    let mut it = Interpreter::new(model, &mut arena)?;
    // SysTick times the first inference.
    let timer = systick::start();
    let mut correct = 0;
    // Every output byte of every image, folded: the host checks the runtime is bit-exact here.
    let mut digest = 0u32;
    for (i, image) in IMAGES.chunks_exact(784).enumerate() {
        if let Some(input) = it.input_mut(0) {
            for (dst, &p) in input.chunks_exact_mut(4).zip(image) {
                dst.copy_from_slice(&(f32::from(p) / 255.0).to_le_bytes());
            }
        }
        let start = systick::now();
        it.run()?;
        if i == 0 && timer.is_some() {
            let ticks = systick::ticks_since(start);
            print(&[Text(b"first inference: "), Num(ticks as usize), Text(b" SysTick ticks")]);
        }
        let mut best = (0, f32::NEG_INFINITY);
        if let Some(out) = it.output(0) {
            digest = digest.wrapping_mul(31).wrapping_add(kestrel_micro::crc32(out));
            for (class, v) in out.chunks_exact(4).enumerate() {
                let p = f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                if p > best.1 {
                    best = (class, p);
                }
            }
        }
        if best.0 == usize::from(LABELS[i]) {
            correct += 1;
        }
        print(&[Text(b"prediction "), Num(i), Text(b" "), Num(best.0)]);
    }
    print(&[Text(b"outputs digest "), Num(digest as usize)]);
    print(&[Text(b"accuracy "), Num(correct), Text(b"/"), Num(LABELS.len())]);
    Ok(())
}
