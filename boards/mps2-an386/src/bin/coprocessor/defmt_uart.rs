//! defmt's global logger on UART1: each log is a few bytes (an index into the ELF's string
//! table plus the arguments), which `defmt-print -e ELF` turns back into text on the host.

use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, Ordering};

use critical_section::{CriticalSection, Mutex, RestoreState};

use kestrel_mps2_an386::cmsdk_uart::{Uart, UartTx, UART1};

/// The port, once [`init`] has run; logs before that are dropped.
static PORT: Mutex<RefCell<Option<UartTx>>> = Mutex::new(RefCell::new(None));
static ENCODER: Mutex<RefCell<defmt::Encoder>> = Mutex::new(RefCell::new(defmt::Encoder::new()));
static TAKEN: AtomicBool = AtomicBool::new(false);
static RESTORE: Mutex<RefCell<Option<RestoreState>>> = Mutex::new(RefCell::new(None));

/// Enables UART1 for the logs.
pub fn init() {
    // SAFETY: UART1 of the MPS2, used by nothing but this logger.
    let (_, tx) = unsafe { Uart::take(UART1, 16) };
    critical_section::with(|cs| *PORT.borrow_ref_mut(cs) = Some(tx));
}

#[defmt::global_logger]
struct Logger;

fn with_port(cs: CriticalSection<'_>, bytes: &[u8]) {
    if let Some(port) = PORT.borrow_ref_mut(cs).as_mut() {
        port.send(bytes);
    }
}

// SAFETY: `acquire` enters a critical section that `release` leaves, and refuses to nest, so
// `write`, `flush` and `release` only ever run between one `acquire` and its `release`, as the
// `Logger` contract requires.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // SAFETY: paired with the `release` in `Logger::release`, which defmt always calls.
        let restore = unsafe { critical_section::acquire() };
        if TAKEN.swap(true, Ordering::Relaxed) {
            panic!("defmt logger taken reentrantly");
        }
        // SAFETY: inside the critical section just entered.
        let cs = unsafe { CriticalSection::new() };
        *RESTORE.borrow_ref_mut(cs) = Some(restore);
        ENCODER.borrow_ref_mut(cs).start_frame(|b| with_port(cs, b));
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: called after `acquire`, inside its critical section.
        let cs = unsafe { CriticalSection::new() };
        ENCODER.borrow_ref_mut(cs).end_frame(|b| with_port(cs, b));
        let restore = RESTORE.borrow_ref_mut(cs).take();
        TAKEN.store(false, Ordering::Relaxed);
        if let Some(restore) = restore {
            // SAFETY: the state `acquire` saved; the section ends here.
            unsafe { critical_section::release(restore) };
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: called after `acquire`, inside its critical section.
        let cs = unsafe { CriticalSection::new() };
        ENCODER.borrow_ref_mut(cs).write(bytes, |b| with_port(cs, b));
    }
}
