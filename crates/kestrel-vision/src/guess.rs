//! A config for a model nobody has described: preprocessing guessed from its image input's
//! shape, outputs left raw. Every guess is stated, so a user knows what to correct.

use crate::config::{Color, Decoder, Layout, ModelConfig, Preprocess};
use crate::VisionError;

/// Height and width used for a dynamic spatial dimension when no shape is given.
pub const DEFAULT_SIZE: u32 = 640;

/// A guessed config and what was guessed, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Guess {
    pub config: ModelConfig,
    pub notes: Vec<String>,
}

/// Guesses preprocessing for an input declared as `dims` (`None` for a symbolic dimension),
/// with `shape` (the user's `--input-shape`) filling or replacing them.
pub fn guess(input: &str, dims: &[Option<u64>], shape: Option<&[usize]>) -> Result<Guess, VisionError> {
    let fail = |message: String| VisionError::Decode(message);
    let dims: Vec<Option<u64>> = match shape {
        Some(s) => s.iter().map(|&d| Some(d as u64)).collect(),
        None => dims.to_vec(),
    };
    let shown: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |d| d.to_string())).collect();
    let shown = format!("[{}]", shown.join(", "));
    if dims.len() != 4 {
        return Err(fail(format!(
            "input `{input}` has shape {shown}: an image input has 4 dimensions (batch, then channels \
             and size in either order); write a kestrel.toml (`kestrel init`) or pass --input-shape"
        )));
    }
    let image_channels = |d: Option<u64>| matches!(d, Some(1 | 3));
    let (layout, channels, (h, w)) = if image_channels(dims[1]) {
        (Layout::Nchw, dims[1], (dims[2], dims[3]))
    } else if image_channels(dims[3]) {
        (Layout::Nhwc, dims[3], (dims[1], dims[2]))
    } else {
        return Err(fail(format!(
            "input `{input}` has shape {shown}: cannot tell its channel axis (1 or 3 channels at axis 1 \
             or 3); pass --input-shape (e.g. 1,3,640,640) or write a kestrel.toml (`kestrel init`)"
        )));
    };
    let color = if channels == Some(1) { Color::Gray } else { Color::Rgb };
    let mut notes = vec![format!(
        "layout {} (channels at axis {}), {} ({} channel{})",
        if layout == Layout::Nchw { "NCHW" } else { "NHWC" },
        if layout == Layout::Nchw { 1 } else { 3 },
        if color == Color::Gray { "gray" } else { "RGB" },
        channels.unwrap_or(0),
        if channels == Some(1) { "" } else { "s" },
    )];
    let mut size = |d: Option<u64>, what: &str| -> Result<u32, VisionError> {
        match d {
            Some(v) if (1..=8192).contains(&v) => Ok(v as u32),
            Some(v) => Err(fail(format!("input `{input}` has {what} {v}: must be within 1..=8192"))),
            None => {
                notes.push(format!("{what} is dynamic: {DEFAULT_SIZE} (pass --input-shape to choose)"));
                Ok(DEFAULT_SIZE)
            }
        }
    };
    let (height, width) = (size(h, "height")?, size(w, "width")?);
    notes.push(format!("size {width}x{height}, stretched, values in [0, 1], no mean/std"));
    notes.push("outputs printed raw (decoder `raw`)".into());
    Ok(Guess {
        config: ModelConfig {
            name: String::new(),
            preprocess: Preprocess::plain(width, height, layout, color),
            decoder: Decoder::Raw { top: 5 },
        },
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_sizes_and_colours_come_from_the_dims() {
        let g = guess("images", &[Some(1), Some(3), Some(320), Some(416)], None).unwrap();
        assert_eq!(g.config.preprocess, Preprocess::plain(416, 320, Layout::Nchw, Color::Rgb));
        let g = guess("x", &[None, Some(28), Some(28), Some(1)], None).unwrap();
        assert_eq!(g.config.preprocess, Preprocess::plain(28, 28, Layout::Nhwc, Color::Gray));
        assert!(g.notes[0].contains("NHWC"), "{:?}", g.notes);
    }

    #[test]
    fn dynamic_sizes_take_the_default_or_the_given_shape() {
        let dims = [None, Some(3), None, None];
        let g = guess("x", &dims, None).unwrap();
        assert_eq!((g.config.preprocess.width, g.config.preprocess.height), (DEFAULT_SIZE, DEFAULT_SIZE));
        assert!(g.notes.iter().any(|n| n.contains("height is dynamic")), "{:?}", g.notes);
        let g = guess("x", &dims, Some(&[1, 3, 480, 640])).unwrap();
        assert_eq!((g.config.preprocess.width, g.config.preprocess.height), (640, 480));
    }

    #[test]
    fn inputs_that_are_not_images_are_refused_with_their_shape() {
        let e = guess("tokens", &[Some(1), Some(128)], None).unwrap_err().to_string();
        assert!(e.contains("[1, 128]") && e.contains("kestrel init"), "{e}");
        let e = guess("x", &[Some(1), Some(8), Some(8), Some(8)], None).unwrap_err().to_string();
        assert!(e.contains("channel axis"), "{e}");
        assert!(guess("x", &[Some(1), Some(3), Some(0), Some(9)], None).is_err());
        assert!(guess("x", &[Some(1), Some(3), Some(99999), Some(9)], None).is_err());
    }
}
