//! ROS 2 image messages (CDR) → RGB. See `kestrel_fuzz::targets::ros2_image`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::targets::ros2_image(data));
