//! The trigger-deploy handler's state: the validated configuration and the two ports. Its
//! behaviour: `handler.rs` (an event, one environment's reconcile).

use crate::config::Config;

pub struct Deployer<P, B> {
    pub(super) config: Config,
    pub(super) parameters: P,
    pub(super) builds: B,
}

impl<P, B> Deployer<P, B> {
    pub fn new(config: Config, parameters: P, builds: B) -> Self {
        Self { config, parameters, builds }
    }

    /// The ports, for inspection in tests.
    pub fn ports(&self) -> (&P, &B) {
        (&self.parameters, &self.builds)
    }
}
