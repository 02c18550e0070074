//! An RTSP "IP camera" for the `kestrel watch` tests (tests/watch.rs builds and runs it): serves a video file's H.264 stream at
//! rtsp://127.0.0.1:PORT/clip (looping: each client session plays it from the start) until
//! killed. `rtsp_camera PORT CLIP.mp4`; prints `ready` once it listens.

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, clip] = args.as_slice() else {
        return Err("usage: rtsp_camera PORT CLIP.mp4".into());
    };
    gst::init()?;
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(port);
    let factory = rtsp::RTSPMediaFactory::new();
    let clip = std::path::Path::new(clip).canonicalize()?;
    factory.set_launch(&format!(
        "( filesrc location=\"{}\" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        clip.display()
    ));
    factory.set_shared(true);
    server.mount_points().ok_or("no mount points")?.add_factory("/clip", factory);
    let _source = server.attach(None)?;
    println!("ready");
    gst::glib::MainLoop::new(None, false).run();
    Ok(())
}
