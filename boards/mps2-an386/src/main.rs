//! Fashion-MNIST on a Cortex-M4F: the int8 `.kmodel` runs in a stack arena on the first 300
//! test images; each prediction and the accuracy go out over semihosting, then QEMU exits 0.
//! `cargo run --release` (from this folder) builds it and runs it in qemu-system-arm.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use kestrel_micro::{Interpreter, Model};
use panic_semihosting as _;

static MODEL: &[u8] = include_bytes!("../data/fashion.kmodel");
static IMAGES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images.u8"));
static LABELS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/labels.u8"));
const ARENA: usize = 32 * 1024;

#[entry]
fn main() -> ! {
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            hprintln!("error: {}", e);
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
    hprintln!("model: {} ops, arena {} bytes", model.op_count(), model.arena_len());
    let mut arena = [0u8; ARENA];
    let mut it = Interpreter::new(model, &mut arena)?;
    let mut correct = 0;
    for (i, image) in IMAGES.chunks_exact(784).enumerate() {
        if let Some(input) = it.input_mut(0) {
            for (dst, &p) in input.chunks_exact_mut(4).zip(image) {
                dst.copy_from_slice(&(f32::from(p) / 255.0).to_le_bytes());
            }
        }
        it.run()?;
        let mut best = (0, f32::NEG_INFINITY);
        if let Some(out) = it.output(0) {
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
        hprintln!("prediction {} {}", i, best.0);
    }
    hprintln!("accuracy {}/{}", correct, LABELS.len());
    Ok(())
}
