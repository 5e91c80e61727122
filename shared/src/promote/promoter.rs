//! The promote function's state: the configuration and its ports. It writes image-tag
//! parameters only through a `Recorder` (the push's checks and write path) and reads alarms
//! through `Alarms`. Its behaviour is split by job: `observe.rs` (reads and decisions),
//! `handler.rs` (an event), `operator.rs` (`tagrelay approve`/`rollback`).

use crate::config::Config;
use crate::record::Recorder;

pub struct Promoter<P, R, A> {
    pub(super) recorder: Recorder<P, R>,
    pub(super) alarms: A,
}

impl<P, R, A> Promoter<P, R, A> {
    pub fn new(config: Config, parameters: P, images: R, alarms: A) -> Self {
        Self { recorder: Recorder::new(config, parameters, images), alarms }
    }

    pub fn config(&self) -> &Config {
        self.recorder.config()
    }

    /// The parameter store, the image registry and the alarms.
    pub fn ports(&self) -> (&P, &R, &A) {
        let (parameters, images) = self.recorder.ports();
        (parameters, images, &self.alarms)
    }
}
