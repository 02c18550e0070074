use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VisionError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode image `{path}`: {message}")]
    Image { path: PathBuf, message: String },
    #[error("cannot write `{path}`: {message}")]
    Write { path: PathBuf, message: String },
    #[error("config `{path}`: {message}")]
    Config { path: PathBuf, message: String },
    #[error("dataset `{path}`: {message}")]
    Dataset { path: PathBuf, message: String },
    #[error("{0}")]
    Decode(String),
}
