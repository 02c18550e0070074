//! One file per subcommand.

mod bench;
mod bench_html;
mod compress;
mod demo;
mod deploy;
mod eval;
mod export;
mod gpu_selftest;
mod init;
mod inspect;
mod mcu;
mod profile;
pub mod run;
mod serve;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub fn dispatch(cli: Cli) -> Result<()> {
    if let Some(max) = cli.max_model_bytes {
        let limits = kestrel_onnx::Limits { max_file_bytes: max, ..Default::default() };
        let _ = crate::models::LIMITS.set(limits);
    }
    match cli.command {
        Command::Inspect(a) => inspect::inspect(&a),
        Command::Init(a) => init::init(&a),
        Command::Run(a) => run::run(&a),
        #[cfg(feature = "camera")]
        Command::Watch(a) => crate::watch::watch(&a),
        #[cfg(not(feature = "camera"))]
        Command::Watch(_) => anyhow::bail!(
            "this kestrel was built without the `camera` feature (GStreamer): `kestrel watch` needs a build with it"
        ),
        Command::Eval(a) => eval::eval(&a),
        Command::Compress(a) => compress::compress(&a),
        Command::Export(a) => export::export(&a),
        Command::Bench(a) => bench::bench(&a),
        Command::Profile(a) => profile::profile(&a),
        Command::GpuSelftest(a) => gpu_selftest::gpu_selftest(&a),
        Command::BenchWorker(a) => bench::worker(&a),
        Command::Demo(a) => demo::demo(&a),
        Command::Boards(a) => deploy::boards(&a),
        Command::Bundle(a) => deploy::bundle(&a),
        Command::MenderSetup(a) => deploy::mender_setup(&a),
        Command::Mcu(a) => mcu::mcu(&a),
        Command::Deploy(a) => deploy::deploy(&a),
        Command::Health(a) => serve::health(&a),
        Command::Serve(a) => serve::serve(&a),
    }
}

/// `1234567` → `1.23 M`, for humans.
pub fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.0} "),
    }
}
