//! Puts memory.x where the linker finds it, and unpacks the first N Fashion-MNIST test images
//! (and labels) from the repo's bundled copy into OUT_DIR for `include_bytes!`.

use std::io::Read;
use std::path::PathBuf;

const IMAGES: usize = 300;

fn gunzip(path: &str) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file).read_to_end(&mut out).unwrap_or_else(|e| panic!("unpacking {path}: {e}"));
    out
}

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("memory.x");
    let data = "../../models/fashion-cnn/data";
    let images = gunzip(&format!("{data}/t10k-images-idx3-ubyte.gz"));
    let labels = gunzip(&format!("{data}/t10k-labels-idx1-ubyte.gz"));
    std::fs::write(out.join("images.u8"), &images[16..16 + IMAGES * 784]).expect("images");
    std::fs::write(out.join("labels.u8"), &labels[8..8 + IMAGES]).expect("labels");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=data/fashion.kmodel");
    println!("cargo:rerun-if-changed=build.rs");
}
