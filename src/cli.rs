//! Command-line parsing only; each command validates its options into its own struct.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kestrel", version, about = "Edge inference engine: inspect, run and evaluate perception models")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Refuse model files larger than this many bytes (default: 1 GiB).
    #[arg(long, global = true)]
    pub max_model_bytes: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a model's inputs, outputs, ops, parameters, weight bytes and MACs.
    Inspect(InspectArgs),
    /// Write a commented kestrel.toml beside a model: its preprocessing guessed from the
    /// input, raw outputs, and the other decoders to choose from.
    Init(InitArgs),
    /// Run a model on images and print decoded results (classes or boxes).
    Run(RunArgs),
    /// Perceive live: a camera, stream, video or image folder through a model, newest frame
    /// first; timestamped results as JSON lines, stats, a browser preview, a recording.
    Watch(WatchArgs),
    /// Measure top-1 accuracy on a labeled dataset.
    Eval(EvalArgs),
    /// Compress a model (int8 quantization) with calibration on real data.
    Compress(CompressArgs),
    /// Export an int8 model to the integer runtime's .kmodel format (microcontrollers).
    Export(ExportArgs),
    /// Compare a full model with compressed candidates: size, MACs, latency, memory, quality.
    Bench(BenchArgs),
    /// Where a model's time goes, op by op, on the integer runtime.
    Profile(ProfileArgs),
    /// Check the GPU: list the device and compare the CUDA preprocessing kernel with its CPU
    /// reference on random frames (builds with `--features cuda`).
    GpuSelftest(GpuSelftestArgs),
    /// (internal) Measure one model in a fresh process for `bench`.
    #[command(hide = true)]
    BenchWorker(BenchWorkerArgs),
    /// The main job on the bundled models and photos, no arguments needed.
    Demo(DemoArgs),
    /// List the board definitions (boards/*.toml).
    Boards(BoardsArgs),
    /// Make a release bundle for a board: binary, models, health check, SHA-256 manifest; or,
    /// with --format mender, a (signed) Mender artifact of it for fleet roll-outs.
    Bundle(BundleArgs),
    /// Write what a board needs once before Mender can install Kestrel releases on it: the
    /// update module, its settings and the board's device_type.
    MenderSetup(MenderSetupArgs),
    /// Deploy to a board over ssh: upload, verify, health check, atomic switch, restart
    /// (automatic rollback if the service does not come up healthy); or --rollback, --status.
    Deploy(DeployArgs),
    /// Send images to a microcontroller running a model as a co-processor (kestrel-link over a
    /// serial port or a TCP socket) and print its answers.
    Mcu(McuArgs),
    /// (on the board) Check a release: run its health model on its health image and compare
    /// the result with the one the host computed.
    Health(HealthArgs),
    /// (on the board) The service: a health check at start, then a result line for every image
    /// put into STATE/inbox.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct BoardsArgs {
    /// Folder of board definitions (default: ./boards, else $KESTREL_BOARDS).
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BundleOptions {
    /// Board name (a file in boards/) or path to a board .toml.
    #[arg(long)]
    pub board: String,
    /// Folder of board definitions (default: ./boards, else $KESTREL_BOARDS).
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
    /// Models to ship (default: the bundled BlazeFace); the first one is health-checked and served.
    #[arg(long = "model")]
    pub models: Vec<PathBuf>,
    /// The board's kestrel binary (default: cross-built here with cargo for the board's target).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Image for the health check (default: the model folder's first sample, else astronaut.png).
    #[arg(long)]
    pub health_image: Option<PathBuf>,
    /// Backend the service runs with (default: the board's runtime.backend).
    #[arg(long)]
    pub backend: Option<String>,
    /// Install root on the board (default: the board's install.root).
    #[arg(long)]
    pub root: Option<String>,
    /// User the systemd service runs as (default for deploy: USER of --host; else root).
    #[arg(long)]
    pub service_user: Option<String>,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    #[command(flatten)]
    pub bundle: BundleOptions,
    /// Folder the bundle is written into.
    #[arg(long, default_value = "target/bundles")]
    pub out: PathBuf,
    /// `bundle` (a .tar.gz for `kestrel deploy`) or `mender` (that bundle inside a Mender
    /// artifact, payload type `kestrel`; needs `mender-artifact`).
    #[arg(long, value_enum, default_value_t = BundleFormat::Bundle)]
    pub format: BundleFormat,
    /// Sign the Mender artifact with this private key (PEM: EC P-256 `BEGIN EC PRIVATE KEY` or
    /// RSA `BEGIN RSA PRIVATE KEY`).
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BundleFormat {
    Bundle,
    Mender,
}

#[derive(Debug, Args)]
pub struct MenderSetupArgs {
    /// Board name (a file in boards/) or path to a board .toml.
    #[arg(long)]
    pub board: String,
    /// Folder of board definitions (default: ./boards, else $KESTREL_BOARDS).
    #[arg(long)]
    pub boards_dir: Option<PathBuf>,
    /// Install root on the board (default: the board's install.root).
    #[arg(long)]
    pub root: Option<String>,
    /// Folder the files are written into.
    #[arg(long, default_value = "target/mender-setup")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub bundle: BundleOptions,
    /// The board: USER@HOST (or an alias from ~/.ssh/config).
    #[arg(long)]
    pub host: String,
    /// ssh port on the board (default: 22, or what ~/.ssh/config says).
    #[arg(long)]
    pub port: Option<u16>,
    /// Private key for ssh (key authentication only; ssh never prompts).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Extra ssh option KEY=VALUE (repeatable), e.g. UserKnownHostsFile=/path.
    #[arg(long = "ssh-option")]
    pub ssh_options: Vec<String>,
    /// Deploy this bundle (from `kestrel bundle`) instead of making one.
    #[arg(long, conflicts_with_all = ["rollback", "status"])]
    pub bundle_file: Option<PathBuf>,
    /// Switch the board back to its previous release and restart the service.
    #[arg(long, conflicts_with = "status")]
    pub rollback: bool,
    /// Show the board's releases and service state.
    #[arg(long)]
    pub status: bool,
    /// Upload at most this many KiB per second (slow radio links).
    #[arg(long)]
    pub rate_limit: Option<u64>,
    /// Releases to keep besides the current one; previous is always kept (default: the board's install.keep).
    #[arg(long)]
    pub keep: Option<u32>,
    /// Folder the bundle is written into.
    #[arg(long, default_value = "target/bundles")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct McuArgs {
    /// `tcp:HOST:PORT`, or a serial device (set it to raw mode first: `stty -F PATH raw 115200`).
    #[arg(long)]
    pub port: String,
    /// Images to send (PNG or JPEG), scaled to the device's input size.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// The `.kmodel` the device should run: refused unless its CRC matches the device's.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A kestrel.toml whose labels name the classes.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Milliseconds to wait for each answer before sending again.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Times a request is sent again after a timeout or a link error.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// One JSON object per image.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// An unpacked release (holding health.json).
    pub release: PathBuf,
    /// Backend: auto (as the service chooses), cpu, cuda or micro.
    #[arg(long, default_value = "auto")]
    pub backend: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The release to serve (usually ROOT/current).
    pub release: PathBuf,
    /// Folder for the status file, the inbox, results.jsonl and processed images.
    #[arg(long)]
    pub state: PathBuf,
    /// How often the inbox is looked at, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub poll_ms: u64,
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Backend: auto (the integer runtime for an int8 model it runs whole, else CUDA when a GPU
    /// is usable, else the CPU; the choice and its reason go to stderr), cpu, cuda or micro.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Worker threads for inference.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Run on a microcontroller co-processor instead (`tcp:HOST:PORT` or a serial device; see
    /// `kestrel mcu`): the model must be the `.kmodel` the device runs; frames go to it as
    /// 8-bit pixels (`run` and `watch`).
    #[arg(long, value_name = "PORT")]
    pub mcu: Option<String>,
}

/// How a model's inputs are made and its outputs read.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// Preprocessing/decoding config (default: the one a compressed model carries, else
    /// kestrel.toml beside the model, else guessed from the input's shape, with raw outputs).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The model's input shape, comma-separated (e.g. 1,3,480,640): fills dynamic dimensions
    /// and sets the input size.
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Vec<usize>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The .onnx model.
    pub model: PathBuf,
    /// Shape for MACs and memory, comma-separated (default: the config's input size, else the
    /// declared dims with 1 for the batch and 640 for other dynamic ones).
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Vec<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The .onnx model; kestrel.toml is written beside it.
    pub model: PathBuf,
    /// The model's input shape, comma-separated, when its dims are dynamic.
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Vec<usize>,
    /// Replace an existing kestrel.toml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The .onnx model (configured by --config, kestrel.toml beside it, or guessed).
    pub model: PathBuf,
    /// PNG or JPEG images, or float32 .npy tensors fed to the model as they are (no
    /// preprocessing; boxes in input pixels).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model_config: ConfigArgs,
    /// Write every output of every image as NumPy .npy files into this folder
    /// (IMAGE-STEM.OUTPUT-NAME.npy).
    #[arg(long)]
    pub save_outputs: Option<PathBuf>,
    /// Write annotated PNGs into this folder.
    #[arg(long)]
    pub annotate: Option<PathBuf>,
    /// Print one JSON object per image (JSON lines).
    #[arg(long)]
    pub json: bool,
    /// Time N inferences per image after warm-up and report the median latency.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// [MODEL] SOURCE...: the model, a .onnx or .kmodel file (configured by --config,
    /// kestrel.toml beside it, or guessed; when the first argument is not one, the bundled COCO
    /// detector, models/coco-nanodet), then the sources: v4l2:///dev/video0, csi://0,
    /// rtsp://host:port/path, file://clip.mp4 (or a path to a video or a folder of images),
    /// test://[pattern], gst://PIPELINE ending in `appsink name=kestrel`, ros2://TOPIC.
    #[arg(required = true, value_name = "[MODEL] SOURCE")]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub model_config: ConfigArgs,
    /// One JSON line per processed frame (and a `stats` line every few seconds and at the end).
    #[arg(long)]
    pub json: bool,
    /// Write the output lines to this file (flushed per line) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Serve a live preview page on this address (loopback unless another is given).
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8080")]
    pub preview: Option<String>,
    /// Record the annotated stream into this file (.mkv, .mp4 or .avi).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Stop after this many processed frames.
    #[arg(long)]
    pub frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Frame rate to ask cameras and test sources for (and to pace folders with --realtime).
    #[arg(long)]
    pub fps: Option<u32>,
    /// Frame size to ask for (cameras choose their nearest mode; videos are scaled).
    #[arg(long, requires = "height")]
    pub width: Option<u32>,
    #[arg(long, requires = "width")]
    pub height: Option<u32>,
    /// Start videos and folders again when they end.
    #[arg(long = "loop")]
    pub looping: bool,
    /// Play videos and folders at their own frame rate, dropping frames like a live camera.
    #[arg(long)]
    pub realtime: bool,
    /// Inference workers, each on its own handle of the one prepared model (weights shared):
    /// several sources are inferred at once, each source's frames still one at a time and in
    /// order. At most one per source; each uses --threads threads. Default: one per source, as
    /// far as the cores go (one where the backend cannot share a prepared model).
    #[arg(long)]
    pub workers: Option<usize>,
    /// A live source with no frame for this many seconds is reconnected.
    #[arg(long, default_value_t = 5.0)]
    pub stall_timeout: f64,
    /// Give up on a live source after this many reconnects in a row without a frame
    /// (default: keep trying).
    #[arg(long)]
    pub max_reconnects: Option<u32>,
    /// RTSP jitter-buffer latency in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub rtsp_latency: u32,
    /// Seconds between `stats` lines.
    #[arg(long, default_value_t = 5.0)]
    pub stats_every: f64,
    #[command(flatten)]
    pub ros2: Ros2Args,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `kestrel watch` as a ROS 2 perception node (sources `ros2://TOPIC` subscribe to
/// sensor_msgs/Image, or CompressedImage on a topic ending in /compressed).
#[derive(Debug, Args)]
pub struct Ros2Args {
    /// Publish results on this topic (`--ros2` alone: `detections`): vision_msgs/Detection2DArray
    /// for detectors, vision_msgs/Classification for classifiers, each with its image's header;
    /// class names once on `label_info` (LabelInfo, transient local).
    #[arg(long, value_name = "TOPIC", num_args = 0..=1, require_equals = true, default_missing_value = "detections")]
    pub ros2: Option<String>,
    /// `header.frame_id` of results from sources that are not ROS topics (default: the
    /// source's name); results from a ROS topic keep its images' header.
    #[arg(long)]
    pub frame_id: Option<String>,
    /// Reliable QoS for images in and results out (default: sensor data, best effort).
    #[arg(long)]
    pub ros2_reliable: bool,
    /// The node's name on the ROS graph (the domain is ROS_DOMAIN_ID's, as for any node).
    #[arg(long, default_value = "kestrel")]
    pub ros2_node: String,
    #[arg(long, default_value = "/")]
    pub ros2_namespace: String,
}

impl Default for Ros2Args {
    /// Not on a ROS 2 graph; the node name and namespace clap defaults to.
    fn default() -> Self {
        Ros2Args {
            ros2: None,
            frame_id: None,
            ros2_reliable: false,
            ros2_node: "kestrel".into(),
            ros2_namespace: "/".into(),
        }
    }
}

impl WatchArgs {
    /// The model (the first input when it names a .onnx or .kmodel file, else the bundled COCO
    /// detector) and the sources.
    #[cfg_attr(not(feature = "camera"), allow(dead_code))]
    pub fn model_and_sources(&self) -> (PathBuf, &[String]) {
        let is_model = |s: &String| {
            let ext = Path::new(s).extension().map(|e| e.to_ascii_lowercase());
            ext.is_some_and(|e| e == "onnx" || e == "kmodel")
        };
        match self.inputs.split_first() {
            Some((first, sources)) if is_model(first) => (PathBuf::from(first), sources),
            _ => (crate::models::models_dir().join("coco-nanodet/model.onnx"), &self.inputs),
        }
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The .onnx classifier.
    pub model: PathBuf,
    /// Labeled dataset: fashion-mnist (the bundled 10k test images).
    #[arg(long)]
    pub dataset: String,
    /// Folder holding the dataset's IDX files (default: the bundled copy).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Evaluate only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Images per inference.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    #[command(flatten)]
    pub model_config: ConfigArgs,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where annotated images go.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct CompressArgs {
    /// The float .onnx model (configured by --config, kestrel.toml beside it, or guessed).
    pub model: PathBuf,
    /// Calibration data: a folder of images, or `fashion-mnist` (a slice of its training set).
    #[arg(long)]
    pub calib: String,
    /// Where the compressed model goes (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Quantize weights and activations to int8.
    #[arg(long)]
    pub int8: bool,
    /// Prune this fraction (0 < RATIO < 1) of channels (structured) or weights (unstructured).
    #[arg(long)]
    pub prune: Option<f32>,
    /// Remove whole channels from the graph (the default).
    #[arg(long, conflicts_with = "unstructured")]
    pub structured: bool,
    /// Zero the smallest weights instead of removing channels.
    #[arg(long)]
    pub unstructured: bool,
    /// After pruning, refit changed layers to the full model's activations (least squares).
    #[arg(long)]
    pub reconstruct: bool,
    /// Activation ranges: `minmax`, `percentile` (99.99%) or `auto` (percentile for classifiers,
    /// min-max for detectors and raw outputs: their detections are the rare large activations).
    #[arg(long, default_value = "auto")]
    pub calibration: String,
    /// At most this many calibration images (reconstruction uses them all; int8 calibration the first 512).
    #[arg(long, default_value_t = 5000)]
    pub calib_count: usize,
    /// A layer whose quantization alone drops the output SQNR below this stays float (dB).
    #[arg(long, default_value_t = 30.0)]
    pub min_layer_sqnr: f64,
    /// With --int8: no float layers (every Conv/MatMul in int8, residual Adds, Pads and pools on
    /// the integers) — what the integer runtime (`kestrel export`) needs; only the edges stay float.
    #[arg(long, requires = "int8")]
    pub integer_only: bool,
    /// Write the pass reports as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub model_config: ConfigArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct Workload {
    /// Labeled dataset for top-1 accuracy (fashion-mnist).
    #[arg(long, conflicts_with = "images")]
    pub dataset: Option<String>,
    /// Folder of images: quality is agreement with the full model (top-1, or matched boxes).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Evaluate only the first N dataset images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Timed inferences per model (in 5 rounds in which the models take turns, each after 20
    /// warm-up runs).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Worker threads for inference.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The models' input shape, comma-separated, when their dims are dynamic.
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Vec<usize>,
    /// Backend: auto (each model where it runs fastest: an int8 model the integer runtime runs
    /// whole on micro, others on cuda or cpu), cpu, cuda, or micro (the int8 candidates on the
    /// integer runtime, the full model on cpu).
    #[arg(long, default_value = "auto")]
    pub backend: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The full model, then one or more compressed candidates.
    #[arg(required = true, num_args = 1..)]
    pub models: Vec<PathBuf>,
    #[command(flatten)]
    pub workload: Workload,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with SVG charts here.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchWorkerArgs {
    pub model: PathBuf,
    #[command(flatten)]
    pub workload: Workload,
    /// Time the runs only (a later round: the first one measured quality).
    #[arg(long)]
    pub latency_only: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The int8 .onnx model (from `kestrel compress --int8`).
    pub model: PathBuf,
    /// Where the .kmodel goes (written atomically). It carries the model's config and its
    /// input and output names, so `kestrel run|eval|bench|watch` take it alone.
    #[arg(short, long)]
    pub out: PathBuf,
    /// The input shape is the config's (the model's declared one, batch 1, when guessed).
    #[command(flatten)]
    pub model_config: ConfigArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The int8 .onnx model or .kmodel.
    pub model: PathBuf,
    /// Timed runs, after 10 warm-up runs; each op's time is its mean over them.
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// How many of the slowest ops to list (every kind of op is always listed).
    #[arg(long, default_value_t = 12)]
    pub top: usize,
    #[command(flatten)]
    pub model_config: ConfigArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GpuSelftestArgs {
    #[arg(long)]
    pub json: bool,
}
