//! The MPS2's user LEDs (FPGA I/O block, LED register at 0x4002_8000, one bit per LED) as
//! `embedded-hal` output pins.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

const LED: usize = 0x4002_8000;

/// One LED, by bit (0 or 1 on the MPS2).
pub struct Led {
    bit: u32,
}

impl Led {
    /// # Safety
    /// Nothing else may drive the same LED (the register is shared by the LEDs: read, modify,
    /// write, with no other code touching it concurrently).
    pub unsafe fn take(bit: u32) -> Led {
        Led { bit }
    }

    /// Whether the LED is on, as the register says.
    pub fn is_on(&self) -> bool {
        // SAFETY: the FPGA I/O LED register of the MPS2, a plain 32-bit register.
        unsafe { read_volatile(LED as *const u32) & (1 << self.bit) != 0 }
    }

    fn set(&mut self, on: bool) {
        // SAFETY: as in `is_on`; `take`'s contract makes this read-modify-write exclusive.
        unsafe {
            let v = read_volatile(LED as *const u32);
            write_volatile(LED as *mut u32, if on { v | (1 << self.bit) } else { v & !(1 << self.bit) });
        }
    }
}

impl embedded_hal::digital::ErrorType for Led {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for Led {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}
