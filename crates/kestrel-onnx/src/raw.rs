//! Tensor data as little-endian bytes, whichever protobuf field holds it.

use crate::dtype::ElemType;
use crate::pb;
use crate::summary::element_count;
use crate::OnnxError;

/// A dense tensor as little-endian bytes with its ONNX element type.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub elem: ElemType,
    pub dims: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Packs a validated, inline (not external) tensor into little-endian bytes.
pub fn tensor_raw_le(t: &pb::TensorProto) -> Result<RawTensor, OnnxError> {
    let invalid = |reason: &str| OnnxError::Invalid { what: "tensor", name: t.name.clone(), reason: reason.into() };
    let elem = ElemType::from_code(t.data_type).ok_or_else(|| invalid("unknown data type"))?;
    if elem.code == 8 {
        return Err(invalid("string tensors have no byte representation"));
    }
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(invalid("external data is read by the backend, not here"));
    }
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let count = element_count(&t.dims);
    let expected = elem.raw_bytes(count).ok_or_else(|| invalid("size overflows"))? as usize;
    let bytes: Vec<u8> = if !t.raw_data.is_empty() {
        t.raw_data.clone()
    } else {
        match elem.code {
            1 | 14 => t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            7 => t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            11 | 15 => t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            12 => t.uint64_data.iter().flat_map(|&v| (v as u32).to_le_bytes()).collect(),
            13 => t.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            2 | 3 | 9 | 17..=20 => t.int32_data.iter().map(|&v| v as u8).collect(),
            4 | 5 | 10 | 16 => t.int32_data.iter().flat_map(|&v| (v as u16).to_le_bytes()).collect(),
            6 => t.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            21..=23 => t.int32_data.iter().map(|&v| v as u8).collect(),
            _ => return Err(invalid("unsupported data type")),
        }
    };
    if bytes.len() != expected {
        return Err(invalid("data length does not match its dims"));
    }
    Ok(RawTensor { elem, dims, bytes })
}
