//! The CMSDK APB UART (Arm's Cortex-M System Design Kit; the MPS2's UART0 at 0x4000_4000) as an
//! `embedded-io` byte stream: a one-byte buffer each way, polled. Split into a receiving and a
//! sending half so the link code can hold both.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

/// UART0 of the MPS2 boards (QEMU's first `-serial` goes here).
pub const UART0: usize = 0x4000_4000;
/// UART1 (QEMU's second `-serial`).
pub const UART1: usize = 0x4000_5000;

const DATA: usize = 0x0;
const STATE: usize = 0x4;
const CTRL: usize = 0x8;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;

/// Register access for one UART; only [`Uart::take`] makes one.
#[derive(Clone, Copy)]
struct Regs(usize);

impl Regs {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: `self.0` is a CMSDK APB UART's register block (`Uart::take`'s contract) and
        // `offset` one of its 32-bit registers; volatile, as the hardware changes them.
        unsafe { read_volatile((self.0 + offset) as *const u32) }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`; writing DATA, CTRL or BAUDDIV has no effect beyond the UART.
        unsafe { write_volatile((self.0 + offset) as *mut u32, value) }
    }
}

pub struct Uart;

impl Uart {
    /// Enables the UART at `base` (8N1 at the clock divided by `bauddiv`, at least 16) and
    /// returns its two halves.
    ///
    /// # Safety
    /// `base` must be a CMSDK APB UART's register block, and nothing else may use it.
    pub unsafe fn take(base: usize, bauddiv: u32) -> (UartRx, UartTx) {
        let regs = Regs(base);
        regs.write(BAUDDIV, bauddiv.max(16));
        regs.write(CTRL, CTRL_TX_EN | CTRL_RX_EN);
        (UartRx(regs), UartTx(regs))
    }
}

pub struct UartRx(Regs);
pub struct UartTx(Regs);

impl UartTx {
    /// Sends `bytes`, waiting for room before each.
    pub fn send(&mut self, bytes: &[u8]) {
        for &b in bytes {
            while self.0.read(STATE) & STATE_TX_FULL != 0 {}
            self.0.write(DATA, u32::from(b));
        }
    }
}

impl embedded_io::ErrorType for UartRx {
    type Error = Infallible;
}

impl embedded_io::ErrorType for UartTx {
    type Error = Infallible;
}

impl embedded_io::Read for UartRx {
    /// Waits for one byte, then takes what else has arrived, without waiting again.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut n = 0;
        while n < buf.len() {
            if self.0.read(STATE) & STATE_RX_FULL == 0 {
                if n > 0 {
                    break;
                }
                continue;
            }
            buf[n] = self.0.read(DATA) as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for UartTx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.send(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while self.0.read(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
