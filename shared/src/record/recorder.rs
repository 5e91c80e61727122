//! The record-image-tag handler's state: the validated configuration and the two ports. Its
//! behaviour is split by job: `handler.rs` (an event), `sweep.rs` (the schedule), `write.rs`
//! (the one write path), `operator.rs` (`tagrelay promote`/`pin`).

use crate::config::Config;

pub struct Recorder<P, R> {
    pub(super) config: Config,
    pub(super) parameters: P,
    pub(super) images: R,
}

impl<P, R> Recorder<P, R> {
    pub fn new(config: Config, parameters: P, images: R) -> Self {
        Self { config, parameters, images }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ports, for inspection in tests and by callers that share them.
    pub fn ports(&self) -> (&P, &R) {
        (&self.parameters, &self.images)
    }
}
