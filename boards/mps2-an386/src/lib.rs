//! What both firmwares share: the MPS2-AN386's peripherals behind the embedded-hal and
//! embedded-io traits (CMSDK APB UART, FPGA I/O LEDs), and text over semihosting without
//! `core::fmt`.

#![no_std]

pub mod cmsdk_uart;
pub mod fpgaio_led;
pub mod print;
pub mod systick;
