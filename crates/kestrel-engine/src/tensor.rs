//! The engine's own tensor type: dense, row-major, one of the ONNX numeric element types.

use crate::EngineError;

/// Element data of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// IEEE half floats, as their bit patterns.
    F16(Vec<u16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
}

/// A dense tensor passed to and returned by every backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

macro_rules! each_variant {
    ($data:expr, $v:ident => $e:expr) => {
        match $data {
            TensorData::F32($v) => $e,
            TensorData::F64($v) => $e,
            TensorData::F16($v) => $e,
            TensorData::I8($v) => $e,
            TensorData::U8($v) => $e,
            TensorData::I16($v) => $e,
            TensorData::U16($v) => $e,
            TensorData::I32($v) => $e,
            TensorData::U32($v) => $e,
            TensorData::I64($v) => $e,
            TensorData::U64($v) => $e,
            TensorData::Bool($v) => $e,
        }
    };
}

impl Tensor {
    /// Builds a tensor, checking that the data fills the shape exactly.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, EngineError> {
        let expected = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let len = each_variant!(&data, v => v.len());
        if expected != Some(len) {
            return Err(EngineError::Shape(format!("{len} values cannot fill shape {shape:?}")));
        }
        Ok(Tensor { shape, data })
    }

    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, EngineError> {
        Tensor::new(shape, TensorData::F32(data))
    }

    pub fn len(&self) -> usize {
        each_variant!(&self.data, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype_name(&self) -> &'static str {
        match &self.data {
            TensorData::F32(_) => "float32",
            TensorData::F64(_) => "float64",
            TensorData::F16(_) => "float16",
            TensorData::I8(_) => "int8",
            TensorData::U8(_) => "uint8",
            TensorData::I16(_) => "int16",
            TensorData::U16(_) => "uint16",
            TensorData::I32(_) => "int32",
            TensorData::U32(_) => "uint32",
            TensorData::I64(_) => "int64",
            TensorData::U64(_) => "uint64",
            TensorData::Bool(_) => "bool",
        }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Every element widened to f64 (for comparisons across types).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F16(v) => v.iter().map(|&b| f64::from(half::f16::from_bits(b))).collect(),
            TensorData::Bool(v) => v.iter().map(|&b| f64::from(u8::from(b))).collect(),
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F64(v) => v.clone(),
            TensorData::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::U16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::U32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::U64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Decodes little-endian bytes of an ONNX element type (code as in `TensorProto.DataType`).
    pub fn from_le_bytes(onnx_type: i32, shape: Vec<usize>, bytes: &[u8]) -> Result<Tensor, EngineError> {
        fn chunks<const N: usize, T>(b: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
            b.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
        }
        let data = match onnx_type {
            1 => TensorData::F32(chunks(bytes, f32::from_le_bytes)),
            2 => TensorData::U8(bytes.to_vec()),
            3 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
            4 => TensorData::U16(chunks(bytes, u16::from_le_bytes)),
            5 => TensorData::I16(chunks(bytes, i16::from_le_bytes)),
            6 => TensorData::I32(chunks(bytes, i32::from_le_bytes)),
            7 => TensorData::I64(chunks(bytes, i64::from_le_bytes)),
            9 => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
            10 => TensorData::F16(chunks(bytes, u16::from_le_bytes)),
            11 => TensorData::F64(chunks(bytes, f64::from_le_bytes)),
            12 => TensorData::U32(chunks(bytes, u32::from_le_bytes)),
            13 => TensorData::U64(chunks(bytes, u64::from_le_bytes)),
            other => return Err(EngineError::UnsupportedType(format!("ONNX element type {other}"))),
        };
        Tensor::new(shape, data)
    }
}
