//! The Fashion-MNIST `.kmodel` as a perception co-processor: frames arrive over UART0 (28×28
//! 8-bit gray pixels, in kestrel-link packets), each runs in the static arena, and the class,
//! the SysTick ticks it took and every output byte go back; LED 0 lights for an ankle boot.
//! Runs until reset. Under QEMU: `-serial tcp:HOST:PORT` (or `pty`) connects UART0; a second
//! `-serial` (UART1) carries the defmt logs (`defmt-print -e ELF` decodes them).

#![no_std]
#![no_main]

mod defmt_uart;

use cortex_m_rt::entry;
use kestrel_link::device::{Device, Model as LinkModel};
use kestrel_link::message::ModelInfo;
use kestrel_link::packet::wire_len;
use kestrel_micro::{ErrorKind, Interpreter, Model};
use kestrel_mps2_an386::cmsdk_uart::{Uart, UART0};
use kestrel_mps2_an386::fpgaio_led::Led;
use kestrel_mps2_an386::print::print;
use kestrel_mps2_an386::print::Piece::{Num, Text};
use kestrel_mps2_an386::systick;

static MODEL: &[u8] = include_bytes!("../../../data/fashion.kmodel");
const ARENA: usize = 32 * 1024;
const SIDE: u16 = 28;
/// Float32 scores of the 10 classes.
const OUTPUT_BYTES: usize = 40;
/// "Ankle boot" lights the LED.
const LED_CLASS: u16 = 9;
/// 25 MHz / 217 ≈ 115,200 baud (QEMU's socket ignores the rate; a board's UART does not).
const BAUDDIV: u32 = 217;

/// The interpreter behind the link's model interface; frames are scaled as the batch firmware
/// scales its images (pixel / 255 into the float input the model quantizes itself).
struct Fashion<'a> {
    it: Interpreter<'static, 'a>,
    crc: u32,
    /// SysTick, if it could be started (ticks are 0 otherwise).
    timer: Option<cortex_m::peripheral::SYST>,
}

impl LinkModel for Fashion<'_> {
    fn info(&self) -> ModelInfo {
        ModelInfo { height: SIDE, width: SIDE, channels: 1, output_bytes: OUTPUT_BYTES as u16, model_crc: self.crc }
    }

    fn run(&mut self, frame: &[u8], output: &mut [u8]) -> Result<(u16, u32), u8> {
        let input = self.it.input_mut(0).ok_or(0u8)?;
        for (dst, &p) in input.chunks_exact_mut(4).zip(frame) {
            dst.copy_from_slice(&(f32::from(p) / 255.0).to_le_bytes());
        }
        let start = systick::now();
        self.it.run().map_err(|e| match e.kind() {
            ErrorKind::Format => 1,
            ErrorKind::Unsupported => 2,
        })?;
        let ticks = if self.timer.is_some() { systick::ticks_since(start) } else { 0 };
        let out = self.it.output(0).ok_or(0u8)?;
        output.copy_from_slice(out.get(..output.len()).ok_or(0u8)?);
        let mut best = (0u16, f32::NEG_INFINITY);
        for (class, v) in out.chunks_exact(4).enumerate() {
            let p = f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
            if p > best.1 {
                best = (class as u16, p);
            }
        }
        defmt::info!("frame: class {} in {} ticks", best.0, ticks);
        Ok((best.0, ticks))
    }
}

#[entry]
fn main() -> ! {
    let model = match Model::parse(MODEL) {
        Ok(m) => m,
        Err(e) => halt(e.name()),
    };
    let mut arena = [0u8; ARENA];
    let it = match Interpreter::new(model, &mut arena) {
        Ok(it) => it,
        Err(e) => halt(e.name()),
    };
    let timer = systick::start();
    let mut fashion = Fashion { it, crc: kestrel_micro::crc32(MODEL), timer };
    // SAFETY: UART0 and LED 0 of the MPS2, used by nothing else in this firmware.
    let (mut rx, mut tx) = unsafe { Uart::take(UART0, BAUDDIV) };
    // SAFETY: as above.
    let mut led = unsafe { Led::take(0) };
    let mut device = Device::<{ wire_len(SIDE as usize * SIDE as usize) }, OUTPUT_BYTES>::new(Some(LED_CLASS));
    defmt_uart::init();
    defmt::info!("coprocessor ready: {}x{} gray frames, model CRC-32 {=u32:08x}", SIDE, SIDE, fashion.crc);
    print(&[Text(b"coprocessor: ready, frame "), Num(usize::from(SIDE)), Text(b"x"), Num(usize::from(SIDE))]);
    loop {
        let before = device.stats();
        // The UART's errors are `Infallible`; the link's own are answered on the link.
        let _ = device.poll(&mut rx, &mut tx, &mut fashion, &mut led);
        let after = device.stats();
        let dropped = |a: u32, b: u32| a.wrapping_sub(b);
        if dropped(
            after.crc_errors + after.framing_errors + after.too_long,
            before.crc_errors + before.framing_errors + before.too_long,
        ) > 0
        {
            defmt::warn!(
                "dropped a packet: so far {} CRC, {} framing, {} too long",
                after.crc_errors,
                after.framing_errors,
                after.too_long
            );
        }
    }
}

fn halt(why: &str) -> ! {
    print(&[Text(b"coprocessor: "), Text(why.as_bytes())]);
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
