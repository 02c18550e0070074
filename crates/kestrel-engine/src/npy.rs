//! A [`Tensor`] as a NumPy `.npy` file (format 1.0: magic, header dict, little-endian data), so
//! `numpy.load` reads what a model produced.

use crate::{Tensor, TensorData};

impl Tensor {
    /// The bytes of a `.npy` file holding this tensor (C order, its own element type).
    pub fn to_npy(&self) -> Vec<u8> {
        let descr = match &self.data {
            TensorData::F32(_) => "<f4",
            TensorData::F64(_) => "<f8",
            TensorData::F16(_) => "<f2",
            TensorData::I8(_) => "|i1",
            TensorData::U8(_) => "|u1",
            TensorData::I16(_) => "<i2",
            TensorData::U16(_) => "<u2",
            TensorData::I32(_) => "<i4",
            TensorData::U32(_) => "<u4",
            TensorData::I64(_) => "<i8",
            TensorData::U64(_) => "<u8",
            TensorData::Bool(_) => "|b1",
        };
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        // A one-element tuple needs its trailing comma: (5,).
        let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // Magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
        let unpadded = 10 + header.len() + 1;
        header.extend(std::iter::repeat_n(' ', unpadded.next_multiple_of(64) - unpadded));
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len() + self.len() * 8);
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        // The header of a 1.0 file is at most 65535 bytes: at most 32 dims of 20 digits fit.
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        macro_rules! le {
            ($v:expr) => {
                for x in $v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            };
        }
        match &self.data {
            TensorData::F32(v) => le!(v),
            TensorData::F64(v) => le!(v),
            TensorData::F16(v) | TensorData::U16(v) => le!(v),
            TensorData::I8(v) => le!(v),
            TensorData::U8(v) => out.extend_from_slice(v),
            TensorData::I16(v) => le!(v),
            TensorData::I32(v) => le!(v),
            TensorData::U32(v) => le!(v),
            TensorData::I64(v) => le!(v),
            TensorData::U64(v) => le!(v),
            TensorData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_what_numpy_writes() {
        // numpy.save of np.array([[1.5, -2.0]], dtype='<f4') produces exactly these bytes.
        let t = Tensor::f32(vec![1, 2], vec![1.5, -2.0]).unwrap();
        let bytes = t.to_npy();
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }";
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let text = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        assert_eq!(text.trim_end(), header);
        assert!(text.ends_with('\n'));
        assert_eq!(&bytes[10 + len..], [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
    }

    #[test]
    fn one_dimensional_and_scalar_shapes_are_python_tuples() {
        let t = Tensor::new(vec![3], TensorData::I64(vec![1, 2, 3])).unwrap();
        assert!(
            String::from_utf8_lossy(&t.to_npy()).contains("'descr': '<i8', 'fortran_order': False, 'shape': (3,), }")
        );
        let s = Tensor::new(vec![], TensorData::U8(vec![7])).unwrap();
        let bytes = s.to_npy();
        assert!(String::from_utf8_lossy(&bytes).contains("'shape': (), }"));
        assert_eq!(bytes.last(), Some(&7));
    }
}
