//! `release.json` / `health.json` as the board reads them. See `kestrel_fuzz::targets::release_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::targets::release_json(data));
