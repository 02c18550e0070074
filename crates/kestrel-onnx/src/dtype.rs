//! ONNX element types: names and storage sizes.

/// Storage of one ONNX element type, as `TensorProto.DataType` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElemType {
    pub code: i32,
    pub name: &'static str,
    /// Bits per element in `raw_data` (4 for the packed sub-byte types; 0 for strings).
    pub bits: u32,
}

impl ElemType {
    pub fn from_code(code: i32) -> Option<ElemType> {
        let (name, bits) = match code {
            1 => ("float32", 32),
            2 => ("uint8", 8),
            3 => ("int8", 8),
            4 => ("uint16", 16),
            5 => ("int16", 16),
            6 => ("int32", 32),
            7 => ("int64", 64),
            8 => ("string", 0),
            9 => ("bool", 8),
            10 => ("float16", 16),
            11 => ("float64", 64),
            12 => ("uint32", 32),
            13 => ("uint64", 64),
            14 => ("complex64", 64),
            15 => ("complex128", 128),
            16 => ("bfloat16", 16),
            17..=20 => ("float8", 8),
            21 => ("uint4", 4),
            22 => ("int4", 4),
            23 => ("float4e2m1", 4),
            24 => ("float8e8m0", 8),
            25 => ("uint2", 2),
            26 => ("int2", 2),
            _ => return None,
        };
        Some(ElemType { code, name, bits })
    }

    /// Bytes needed for `count` elements in `raw_data`, or `None` on overflow.
    pub fn raw_bytes(&self, count: u64) -> Option<u64> {
        count.checked_mul(u64::from(self.bits)).map(|b| b.div_ceil(8))
    }

    /// How many entries of the typed repeated field hold `count` elements.
    pub fn typed_entries(&self, count: u64) -> u64 {
        match self.code {
            14 | 15 => count.saturating_mul(2),
            21..=23 => count.div_ceil(2),
            25 | 26 => count.div_ceil(4),
            _ => count,
        }
    }
}
