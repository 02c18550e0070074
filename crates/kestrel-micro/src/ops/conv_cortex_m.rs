//! Cortex-M4/M7 (ARMv7E-M) fast path of the portable convolution's dot product: `SMLAD`, two
//! 16 × 16-bit multiply-adds per instruction, as CMSIS-NN does it. Four int8 weights load as one
//! word; `SXTB16` sign-extends bytes 0 and 2 (and, rotated by 8, bytes 1 and 3) into two 16-bit
//! halves, so the centred patch is stored with each group of four as (x0, x2, x1, x3) to meet
//! them without repacking. Sums wrap as the portable ones do: bit-identical. About 2
//! instructions per multiply-add against 8 for the loop the compiler makes at `opt-level = "z"`.
//!
//! Built with the `cortex-m-dsp` feature, whose user promises an ARMv7E-M core (the DSP
//! extension: Cortex-M4, M7, M33 with DSP); stable Rust exposes no cfg for it.

use core::arch::asm;

/// `centred[i] = x[i] − x_zero` with each group of four stored as (0, 2, 1, 3); a tail shorter
/// than four stays in order.
pub(crate) fn centre(patch: &[u8], x_zero: i32, centred: &mut [i16]) {
    let c = |p: u8| (i32::from(p) - x_zero) as i16;
    let whole = patch.len() / 4 * 4;
    for (out, p) in centred.chunks_exact_mut(4).zip(patch[..whole].chunks_exact(4)) {
        out.copy_from_slice(&[c(p[0]), c(p[2]), c(p[1]), c(p[3])]);
    }
    for (out, &p) in centred[whole..patch.len()].iter_mut().zip(&patch[whole..]) {
        *out = c(p);
    }
}

/// Σ centred·w over a patch [`centre`]d for this order, int8 weights `filter`.
pub(crate) fn dot16(centred: &[i16], filter: &[u8]) -> i32 {
    let whole = centred.len().min(filter.len()) / 4 * 4;
    let mut acc = 0i32;
    for (x, w) in centred[..whole].chunks_exact(4).zip(filter[..whole].chunks_exact(4)) {
        let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let half = |a: i16, b: i16| u32::from(a as u16) | (u32::from(b as u16) << 16);
        let (x02, x13) = (half(x[0], x[1]), half(x[2], x[3]));
        // SAFETY: register-only ARMv7E-M DSP instructions (no memory, no flags read); the
        // `cortex-m-dsp` feature is the promise that this core has them.
        unsafe {
            let (w02, w13): (u32, u32);
            asm!("sxtb16 {0}, {1}", out(reg) w02, in(reg) w, options(pure, nomem, nostack, preserves_flags));
            asm!("sxtb16 {0}, {1}, ror #8", out(reg) w13, in(reg) w, options(pure, nomem, nostack, preserves_flags));
            asm!("smlad {0}, {1}, {2}, {0}", inout(reg) acc, in(reg) x02, in(reg) w02, options(pure, nomem, nostack));
            asm!("smlad {0}, {1}, {2}, {0}", inout(reg) acc, in(reg) x13, in(reg) w13, options(pure, nomem, nostack));
        }
    }
    centred[whole..]
        .iter()
        .zip(&filter[whole..])
        .fold(acc, |s, (&c, &q)| s.wrapping_add(i32::from(c) * i32::from(q as i8)))
}
