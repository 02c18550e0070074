//! A config for a model nobody has described: preprocessing guessed from its image input's
//! shape, outputs left raw. Every guess is stated, so a user knows what to correct.

use crate::config::{Color, Decoder, Layout, ModelConfig, Preprocess, Resize};
use crate::decode::yolo::YoloConfig;
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
/// with `shape` (the user's `--input-shape`) filling or replacing them. Models exported by
/// Ultralytics describe themselves in their metadata (`task`, `names`, `imgsz`): those get
/// Ultralytics' own preprocessing and a decoder.
pub fn guess(
    input: &str,
    dims: &[Option<u64>],
    shape: Option<&[usize]>,
    metadata: &[(&str, &str)],
) -> Result<Guess, VisionError> {
    let ultralytics = Ultralytics::read(metadata);
    let mut dims: Vec<Option<u64>> = match shape {
        Some(s) => s.iter().map(|&d| Some(d as u64)).collect(),
        None => dims.to_vec(),
    };
    if let (Some(u), None, 4) = (&ultralytics, shape, dims.len()) {
        // Its training size fills dynamic height and width.
        let (h, w) = (dims[2].or(Some(u.size.0 as u64)), dims[3].or(Some(u.size.1 as u64)));
        (dims[2], dims[3]) = (h, w);
    }
    let mut g = plain(input, &dims)?;
    if let Some(u) = ultralytics {
        u.apply(&mut g)?;
    }
    Ok(g)
}

/// What an Ultralytics export says about itself.
struct Ultralytics {
    task: String,
    labels: Vec<String>,
    /// Height, width.
    size: (u32, u32),
    /// Pose models: keypoints and values per keypoint (`kpt_shape`).
    keypoints: Option<(usize, usize)>,
}

impl Ultralytics {
    fn read(metadata: &[(&str, &str)]) -> Option<Ultralytics> {
        let get = |k: &str| metadata.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        if !get("author").is_some_and(|a| a.contains("Ultralytics")) {
            return None;
        }
        let numbers = |v: &str| -> Vec<usize> {
            v.trim_matches(|c| c == '[' || c == ']').split(',').filter_map(|d| d.trim().parse().ok()).collect()
        };
        let size = match numbers(get("imgsz")?).as_slice() {
            [s] => (*s as u32, *s as u32),
            [h, w] => (*h as u32, *w as u32),
            _ => return None,
        };
        let keypoints = get("kpt_shape").and_then(|k| match numbers(k).as_slice() {
            [n, v] => Some((*n, *v)),
            _ => None,
        });
        Some(Ultralytics {
            task: get("task")?.to_string(),
            labels: python_dict_values(get("names")?)?,
            size,
            keypoints,
        })
    }

    fn apply(self, g: &mut Guess) -> Result<(), VisionError> {
        let p = &mut g.config.preprocess;
        let decoder = match self.task.as_str() {
            "detect" | "pose" | "segment" => {
                (p.resize, p.pad_value) = (Resize::Letterbox, 114);
                let (keypoints, keypoint_values) = self.keypoints.unwrap_or((0, 3));
                Decoder::Yolo(YoloConfig {
                    keypoints,
                    keypoint_values,
                    mask_coefficients: if self.task == "segment" { 32 } else { 0 },
                    ..YoloConfig::new(self.labels)
                })
            }
            "classify" => {
                p.resize = Resize::Crop;
                Decoder::Classifier { labels: self.labels, top_k: 5, softmax: false }
            }
            _ => return Ok(()),
        };
        g.config.name = format!("Ultralytics {} model", self.task);
        g.notes.retain(|n| !n.starts_with("size") && !n.starts_with("outputs"));
        g.notes.push(format!(
            "Ultralytics {} export (its metadata): size {}x{}, {}, values in [0, 1], {} labels",
            self.task,
            p.width,
            p.height,
            if p.resize == Resize::Crop { "centre crop" } else { "letterbox padded with 114" },
            match &decoder {
                Decoder::Yolo(YoloConfig { labels, .. }) | Decoder::Classifier { labels, .. } => labels.len(),
                _ => 0,
            }
        ));
        g.config.decoder = decoder;
        Ok(())
    }
}

/// The values of a Python dict literal with integer keys, in key order:
/// `{0: 'person', 1: "it's"}` → `["person", "it's"]`. `None` when it is not one.
fn python_dict_values(text: &str) -> Option<Vec<String>> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut chars = body.chars().peekable();
    let mut entries: Vec<(usize, String)> = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|c| *c != ':').collect();
        let key: usize = key.trim().parse().ok()?;
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let quote = chars.next().filter(|q| *q == '\'' || *q == '"')?;
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => value.push(chars.next()?),
                c if c == quote => break,
                c => value.push(c),
            }
        }
        entries.push((key, value));
    }
    entries.sort_by_key(|e| e.0);
    // Keys must be 0, 1, 2, …: the class index is the position.
    entries.iter().enumerate().all(|(i, e)| e.0 == i).then(|| entries.into_iter().map(|e| e.1).collect())
}

/// The plain guess from the input's dims alone.
fn plain(input: &str, dims: &[Option<u64>]) -> Result<Guess, VisionError> {
    let fail = |message: String| VisionError::Decode(message);
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
        let g = guess("images", &[Some(1), Some(3), Some(320), Some(416)], None, &[]).unwrap();
        assert_eq!(g.config.preprocess, Preprocess::plain(416, 320, Layout::Nchw, Color::Rgb));
        let g = guess("x", &[None, Some(28), Some(28), Some(1)], None, &[]).unwrap();
        assert_eq!(g.config.preprocess, Preprocess::plain(28, 28, Layout::Nhwc, Color::Gray));
        assert!(g.notes[0].contains("NHWC"), "{:?}", g.notes);
    }

    #[test]
    fn dynamic_sizes_take_the_default_or_the_given_shape() {
        let dims = [None, Some(3), None, None];
        let g = guess("x", &dims, None, &[]).unwrap();
        assert_eq!((g.config.preprocess.width, g.config.preprocess.height), (DEFAULT_SIZE, DEFAULT_SIZE));
        assert!(g.notes.iter().any(|n| n.contains("height is dynamic")), "{:?}", g.notes);
        let g = guess("x", &dims, Some(&[1, 3, 480, 640]), &[]).unwrap();
        assert_eq!((g.config.preprocess.width, g.config.preprocess.height), (640, 480));
    }

    #[test]
    fn inputs_that_are_not_images_are_refused_with_their_shape() {
        let e = guess("tokens", &[Some(1), Some(128)], None, &[]).unwrap_err().to_string();
        assert!(e.contains("[1, 128]") && e.contains("kestrel init"), "{e}");
        let e = guess("x", &[Some(1), Some(8), Some(8), Some(8)], None, &[]).unwrap_err().to_string();
        assert!(e.contains("channel axis"), "{e}");
        assert!(guess("x", &[Some(1), Some(3), Some(0), Some(9)], None, &[]).is_err());
        assert!(guess("x", &[Some(1), Some(3), Some(99999), Some(9)], None, &[]).is_err());
    }

    #[test]
    fn ultralytics_exports_configure_themselves_from_their_metadata() {
        let names = r#"{0: 'person', 1: "it's", 2: 'a, b'}"#;
        let meta = [("author", "Ultralytics"), ("task", "detect"), ("imgsz", "[320, 480]"), ("names", names)];
        let dims = [None, Some(3), None, None];
        let g = guess("images", &dims, None, &meta).unwrap();
        let p = g.config.preprocess;
        assert_eq!((p.width, p.height, p.resize, p.pad_value), (480, 320, Resize::Letterbox, 114));
        let Decoder::Yolo(YoloConfig { labels, keypoints, .. }) = &g.config.decoder else {
            panic!("{:?}", g.config.decoder)
        };
        assert_eq!((labels.as_slice(), *keypoints), (&["person".to_string(), "it's".into(), "a, b".into()][..], 0));
        assert!(g.notes.iter().any(|n| n.contains("Ultralytics detect export")), "{:?}", g.notes);
        // --input-shape wins over imgsz; an unknown task keeps the plain guess.
        let g = guess("images", &dims, Some(&[1, 3, 640, 640]), &meta).unwrap();
        assert_eq!(g.config.preprocess.width, 640);
        let other = [("author", "Ultralytics"), ("task", "obb"), ("imgsz", "[320, 320]"), ("names", names)];
        assert_eq!(guess("images", &dims, None, &other).unwrap().config.decoder, Decoder::Raw { top: 5 });
        let pose = [
            ("author", "Ultralytics"),
            ("task", "pose"),
            ("imgsz", "640"),
            ("names", "{0: 'person'}"),
            ("kpt_shape", "[17, 3]"),
        ];
        let Decoder::Yolo(YoloConfig { keypoints, keypoint_values, .. }) =
            guess("i", &dims, None, &pose).unwrap().config.decoder
        else {
            panic!()
        };
        assert_eq!((keypoints, keypoint_values), (17, 3));
    }

    #[test]
    fn python_dicts_are_read_strictly() {
        assert_eq!(python_dict_values("{}"), Some(vec![]));
        assert_eq!(python_dict_values("{1: 'a'}"), None); // classes must start at 0
        assert_eq!(python_dict_values("{0: 'a', 1: b}"), None);
        assert_eq!(python_dict_values("{0: 'unterminated}"), None);
        assert_eq!(python_dict_values(r"{0: 'it\'s'}"), Some(vec!["it's".into()]));
    }
}
