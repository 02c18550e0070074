//! Built without the `ros2` feature: `ros2://` sources and `--ros2` are refused with a clear
//! error; nothing else changes.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};
use kestrel_camera::{BufferPool, Frame, LatestQueue, SourceCounters};
use kestrel_vision::ModelConfig;

use crate::cli::Ros2Args;
use crate::commands::run::Decoded;

/// Never made: there is no ROS node in this build.
pub enum Ros {}

/// Never made: there are no ROS sources in this build.
pub enum Source {}

impl Ros {
    pub fn start_if_wanted(args: &Ros2Args, sources: &[String], _: &ModelConfig) -> Result<Option<Ros>> {
        if args.ros2.is_some() || sources.iter().any(|s| s.starts_with("ros2://")) {
            bail!("this kestrel was built without the `ros2` feature: ros2:// sources and --ros2 need a build with it");
        }
        Ok(None)
    }

    pub fn open_source(&mut self, _: usize, _: &str) -> Option<Result<Source>> {
        match *self {}
    }

    pub fn publish(&self, _: &Frame, _: &Decoded) {
        match *self {}
    }
}

impl Source {
    pub fn index(&self) -> usize {
        match *self {}
    }

    pub fn description(&self) -> String {
        match *self {}
    }

    pub fn run(self, _: &LatestQueue<Frame>, _: &Arc<BufferPool>, _: &AtomicBool, _: &SourceCounters) -> Result<()> {
        match self {}
    }
}
