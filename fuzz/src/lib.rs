//! Coverage-guided fuzzing of Kestrel's parsers and decoders: see `fuzz/README.md`.

pub mod targets;
