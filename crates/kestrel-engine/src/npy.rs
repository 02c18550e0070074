//! A [`Tensor`] as a NumPy `.npy` file (format 1.0: magic, header dict, little-endian data), so
//! `numpy.load` reads what a model produced; and float32 `.npy` files read back as model inputs.

use crate::{EngineError, Tensor, TensorData};

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

    /// Reads a float32 `.npy` file (`numpy.save` of a C-ordered `<f4` array, format 1.0 to
    /// 3.0): a model input given exactly, bypassing preprocessing.
    pub fn from_npy(bytes: &[u8]) -> Result<Tensor, EngineError> {
        let bad = |why: &str| EngineError::Shape(format!("not a float32 .npy file: {why}"));
        let rest = bytes.strip_prefix(b"\x93NUMPY").ok_or_else(|| bad("no NUMPY magic"))?;
        let (header_len, rest) = match rest {
            [1, _, a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
            [2 | 3, _, a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, rest),
            _ => return Err(bad("unknown format version")),
        };
        let header = rest.get(..header_len).ok_or_else(|| bad("truncated header"))?;
        let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
        let data = &rest[header_len..];
        let field = |key: &str| -> Option<&str> {
            let after = &header[header.find(&format!("'{key}':"))? + key.len() + 3..];
            Some(after.trim_start())
        };
        let descr = field("descr").and_then(|v| v.strip_prefix('\'')?.split('\'').next());
        if descr != Some("<f4") {
            return Err(bad(&format!("element type {} (only float32, '<f4', is read)", descr.unwrap_or("missing"))));
        }
        if !field("fortran_order").is_some_and(|v| v.starts_with("False")) {
            return Err(bad("Fortran order (save a C-ordered array)"));
        }
        let dims =
            field("shape").and_then(|v| v.strip_prefix('(')?.split(')').next()).ok_or_else(|| bad("no shape"))?;
        let shape = dims
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.parse::<usize>().map_err(|_| bad(&format!("shape dimension `{d}`"))))
            .collect::<Result<Vec<_>, _>>()?;
        let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|n| n.checked_mul(4).is_some());
        let count = count.ok_or_else(|| bad(&format!("shape {shape:?} is too large")))?;
        if count * 4 != data.len() {
            return Err(bad(&format!(
                "shape {shape:?} needs {} bytes of values, the file holds {}",
                count * 4,
                data.len()
            )));
        }
        let values = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Tensor::f32(shape, values)
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
    fn npy_files_read_back_and_bad_ones_are_refused() {
        let t = Tensor::f32(vec![2, 1, 3], vec![1.0, -2.5, 3.0, 0.0, 7.0, f32::MAX]).unwrap();
        assert_eq!(Tensor::from_npy(&t.to_npy()).unwrap(), t);
        let bytes = t.to_npy();
        // The file with `from` replaced in its header, padding spaces taken or given so that
        // the header keeps its length and the data its place.
        let edit = |from: &str, to: &str| {
            let header = String::from_utf8(bytes[10..bytes.len() - 24].to_vec()).unwrap();
            let mut header = header.trim_end().replace(from, to);
            header.extend(std::iter::repeat_n(' ', bytes.len() - 24 - 10 - 1 - header.len()));
            [&bytes[..10], header.as_bytes(), b"\n", &bytes[bytes.len() - 24..]].concat()
        };
        for (bad, phrase) in [
            (bytes[..bytes.len() - 1].to_vec(), "needs 24 bytes of values, the file holds 23"),
            (bytes[..20].to_vec(), "truncated header"),
            (b"PK\x03\x04".to_vec(), "no NUMPY magic"),
            (Tensor::new(vec![1], TensorData::I64(vec![1])).unwrap().to_npy(), "element type <i8"),
            (edit("False", "True "), "Fortran order"),
            (edit("(2, 1, 3)", "(2, x, 3)"), "dimension `x`"),
            (edit("(2, 1, 3)", "(9999999999, 9999999999, 9)"), "is too large"),
        ] {
            let e = Tensor::from_npy(&bad).unwrap_err().to_string();
            assert!(e.contains(phrase), "{e}");
        }
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
