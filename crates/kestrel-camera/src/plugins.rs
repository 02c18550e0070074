//! Which GStreamer elements a pipeline needs, and which Debian package has each, so a missing
//! plugin is named before any frame instead of failing somewhere inside GStreamer.

/// Debian/Ubuntu package of the elements Kestrel's pipelines use.
pub fn package_of(element: &str) -> &'static str {
    match element {
        "videotestsrc" | "videoconvert" | "videoscale" | "appsink" | "appsrc" | "decodebin" | "playbin"
        | "videorate" | "encodebin" | "uridecodebin" => "gstreamer1.0-plugins-base",
        "v4l2src" | "jpegdec" | "jpegenc" | "rtspsrc" | "matroskamux" | "matroskademux" | "qtdemux" | "avimux"
        | "rtpjpegdepay" | "rtpjpegpay" | "rtph264depay" => "gstreamer1.0-plugins-good",
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "h264parse" | "openh264dec" | "openh264enc" => "gstreamer1.0-plugins-bad",
        e if e.starts_with("avdec_") || e.starts_with("avenc_") => "gstreamer1.0-libav",
        "filesrc" | "fakesink" | "queue" | "tee" | "identity" => "libgstreamer1.0-0",
        "nvarguscamerasrc" | "nvvidconv" | "nvv4l2decoder" => "nvidia-l4t-gstreamer (JetPack)",
        _ => "the GStreamer plugin package that provides it",
    }
}

/// The element names in a `gst-launch` style description (caps and properties skipped).
pub fn elements(description: &str) -> Vec<&str> {
    description
        .split('!')
        .filter_map(|part| part.split_whitespace().next())
        .filter(|word| !word.contains('/') && !word.contains('=') && !word.contains('.'))
        .collect()
}

/// The first element of `description` this GStreamer installation lacks, with its package.
/// GStreamer must be initialised.
pub fn first_missing(description: &str) -> Option<(&str, &'static str)> {
    elements(description).into_iter().find(|e| gstreamer::ElementFactory::find(e).is_none()).map(|e| (e, package_of(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_found_between_links() {
        let d = "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=kestrel";
        assert_eq!(elements(d), ["filesrc", "decodebin", "videoconvert", "appsink"]);
        assert_eq!(package_of("rtspsrc"), "gstreamer1.0-plugins-good");
        assert_eq!(package_of("avdec_h264"), "gstreamer1.0-libav");
    }
}
