//! SysTick at the core clock, free-running, to time inferences (a 24-bit down-counter: spans
//! under 16.7 M ticks). Under QEMU with `-icount shift=0` an instruction takes 1 ns of its
//! clock, 40 to a tick of the board's 25 MHz; without `-icount`, ticks follow the host's clock.

use cortex_m::peripheral::{syst::SystClkSource, SYST};

/// Starts the counter; `None` when the core peripherals were already taken.
pub fn start() -> Option<SYST> {
    let mut syst = cortex_m::Peripherals::take()?.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00FF_FFFF);
    syst.clear_current();
    syst.enable_counter();
    Some(syst)
}

/// The counter now, for [`ticks_since`].
pub fn now() -> u32 {
    SYST::get_current()
}

/// Ticks elapsed since `start` (a value of [`now`]).
pub fn ticks_since(start: u32) -> u32 {
    start.wrapping_sub(SYST::get_current()) & 0x00FF_FFFF
}
