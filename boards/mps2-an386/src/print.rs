//! Lines of text and numbers to the host's stdout over semihosting, and the panic handler.

use cortex_m_semihosting::{debug, hio};

/// A piece of a printed line.
pub enum Piece<'a> {
    Text(&'a [u8]),
    Num(usize),
}
use Piece::{Num, Text};

/// Writes one line to the host's stdout.
pub fn print(pieces: &[Piece]) {
    let Ok(mut out) = hio::hstdout() else { return };
    for piece in pieces {
        let mut digits = [0u8; 20];
        let bytes = match *piece {
            Text(t) => t,
            Num(mut n) => {
                let mut at = digits.len();
                loop {
                    at -= 1;
                    digits[at] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break digits.get(at..).unwrap_or_default();
                    }
                }
            }
        };
        let _ = out.write_all(bytes);
    }
    let _ = out.write_all(b"\n");
}

/// Prints where the panic happened and exits QEMU with a failure.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line() as usize));
    print(&[Text(b"panicked at "), Text(file.as_bytes()), Text(b":"), Num(line)]);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
