//! Writing `.kmodel` files (feature `alloc`): the exporter's back end, and the tests' way to make
//! valid and deliberately broken files.

use alloc::vec::Vec;

use crate::crc32;
use crate::format::{DType, OpCode, Storage, HEADER_LEN, MAGIC, NONE, NO_EXTRA, OP_LEN, TENSOR_LEN, VERSION};

/// One tensor to write.
#[derive(Debug, Clone, Copy)]
pub struct TensorSpec<'a> {
    pub dtype: DType,
    pub dims: &'a [usize],
    pub storage: Storage,
    /// Arena offset (activations) or weights offset (constants).
    pub offset: u32,
    pub scale: Option<f32>,
    pub zero_point: i32,
    pub channel_scales: Option<u32>,
}

#[derive(Debug, Default, Clone)]
pub struct Builder {
    tensors: Vec<[u8; TENSOR_LEN]>,
    ops: Vec<[u8; OP_LEN]>,
    inputs: Vec<u16>,
    outputs: Vec<u16>,
    weights: Vec<u8>,
    arena_len: u32,
    metadata: Vec<u8>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Appends bytes to the weights, 16-byte aligned; returns their offset.
    pub fn weights(&mut self, bytes: &[u8]) -> u32 {
        while !self.weights.len().is_multiple_of(16) {
            self.weights.push(0);
        }
        let at = self.weights.len() as u32;
        self.weights.extend_from_slice(bytes);
        at
    }

    pub fn f32_weights(&mut self, values: &[f32]) -> u32 {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.weights(&bytes)
    }

    pub fn tensor(&mut self, t: TensorSpec<'_>) -> u16 {
        let mut e = [0u8; TENSOR_LEN];
        e[0] = t.dtype.code();
        e[1] = t.dims.len() as u8;
        e[2] = match t.storage {
            Storage::Arena => 0,
            Storage::Weights => 1,
        };
        e[3] = match (t.scale, t.channel_scales) {
            (None, _) => 0,
            (Some(_), None) => 1,
            (Some(_), Some(_)) => 2,
        };
        for i in 0..4 {
            let d = t.dims.get(i).copied().unwrap_or(1) as u16;
            e[4 + 2 * i..6 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        let len = t.dims.iter().product::<usize>() * t.dtype.size();
        e[12..16].copy_from_slice(&t.offset.to_le_bytes());
        e[16..20].copy_from_slice(&(len as u32).to_le_bytes());
        e[20..24].copy_from_slice(&t.scale.unwrap_or(0.0).to_le_bytes());
        e[24..28].copy_from_slice(&t.zero_point.to_le_bytes());
        e[28..32].copy_from_slice(&t.channel_scales.unwrap_or(NO_EXTRA).to_le_bytes());
        self.tensors.push(e);
        (self.tensors.len() - 1) as u16
    }

    pub fn op(&mut self, code: OpCode, inputs: &[u16], outputs: &[u16], params: [u8; 12], extra: Option<u32>) {
        let mut e = [0u8; OP_LEN];
        e[0..2].copy_from_slice(&code.code().to_le_bytes());
        e[2] = inputs.len() as u8;
        e[3] = outputs.len() as u8;
        for i in 0..4 {
            e[4 + 2 * i..6 + 2 * i].copy_from_slice(&inputs.get(i).copied().unwrap_or(NONE).to_le_bytes());
        }
        for i in 0..2 {
            e[12 + 2 * i..14 + 2 * i].copy_from_slice(&outputs.get(i).copied().unwrap_or(NONE).to_le_bytes());
        }
        e[16..28].copy_from_slice(&params);
        e[28..32].copy_from_slice(&extra.unwrap_or(NO_EXTRA).to_le_bytes());
        self.ops.push(e);
    }

    pub fn input(&mut self, t: u16) {
        self.inputs.push(t);
    }

    pub fn output(&mut self, t: u16) {
        self.outputs.push(t);
    }

    pub fn arena(&mut self, len: u32) {
        self.arena_len = len;
    }

    /// Adds a metadata entry (the key is 1..=255 bytes of UTF-8).
    pub fn metadata(&mut self, key: &str, value: &[u8]) {
        assert!((1..=255).contains(&key.len()), "metadata key length");
        self.metadata.extend_from_slice(&(key.len() as u16).to_le_bytes());
        self.metadata.extend_from_slice(key.as_bytes());
        self.metadata.extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.metadata.extend_from_slice(value);
    }

    /// The file: header, tables and weights, each 16-byte aligned, with its checksum.
    pub fn finish(&self) -> Vec<u8> {
        let align = |v: &mut Vec<u8>| {
            while !v.len().is_multiple_of(16) {
                v.push(0);
            }
        };
        let mut out = alloc::vec![0u8; HEADER_LEN];
        let tensors_at = out.len();
        self.tensors.iter().for_each(|e| out.extend_from_slice(e));
        align(&mut out);
        let ops_at = out.len();
        self.ops.iter().for_each(|e| out.extend_from_slice(e));
        align(&mut out);
        let io_at = out.len();
        self.inputs.iter().chain(&self.outputs).for_each(|t| out.extend_from_slice(&t.to_le_bytes()));
        align(&mut out);
        let weights_at = out.len();
        out.extend_from_slice(&self.weights);
        let metadata_at = if self.metadata.is_empty() { 0 } else { out.len() };
        out.extend_from_slice(&self.metadata);
        let h = &mut out[..HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        h[6..8].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        h[16..18].copy_from_slice(&(self.tensors.len() as u16).to_le_bytes());
        h[18..20].copy_from_slice(&(self.ops.len() as u16).to_le_bytes());
        h[20] = self.inputs.len() as u8;
        h[21] = self.outputs.len() as u8;
        for (at, v) in [
            (24, tensors_at),
            (28, ops_at),
            (32, io_at),
            (36, weights_at),
            (40, self.weights.len()),
            (44, self.arena_len as usize),
            (48, metadata_at),
            (52, self.metadata.len()),
        ] {
            h[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
        }
        let len = out.len() as u32;
        out[8..12].copy_from_slice(&len.to_le_bytes());
        seal(&mut out);
        out
    }
}

/// Recomputes the checksum after bytes changed (tests use it to forge files that pass the CRC).
pub fn seal(file: &mut [u8]) {
    if file.len() >= HEADER_LEN {
        let crc = crc32(&file[16..]);
        file[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}
