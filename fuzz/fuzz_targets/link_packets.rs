//! Bytes on a co-processor link. See `kestrel_fuzz::targets::link_packets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::targets::link_packets(data));
