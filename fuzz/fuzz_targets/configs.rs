//! `kestrel.toml` and board `.toml` parse and validate. See `kestrel_fuzz::targets::configs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::targets::configs(data));
