//! Release bundle `.tar.gz` → entries and `release.json`. See `kestrel_fuzz::targets::bundle_open`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::targets::bundle_open(data));
