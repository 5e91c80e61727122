//! The trigger-deploy handler's state: the validated configuration and its ports. Its
//! behaviour: `observe.rs` (the reads and the verdict on one environment), `handler.rs` (an
//! event, and acting on the verdict).

use crate::config::Config;

/// `P`: SSM (the image-tag parameters, the release records), `B`: CodeBuild, `E`: ECS (the
/// rollouts to verify), `I`: ECR (the digests a release records).
pub struct Deployer<P, B, E, I> {
    pub(super) config: Config,
    pub(super) parameters: P,
    pub(super) builds: B,
    pub(super) ecs: E,
    pub(super) images: I,
}

impl<P, B, E, I> Deployer<P, B, E, I> {
    pub fn new(config: Config, parameters: P, builds: B, ecs: E, images: I) -> Self {
        Self { config, parameters, builds, ecs, images }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ports, for inspection in tests.
    pub fn ports(&self) -> (&P, &B) {
        (&self.parameters, &self.builds)
    }

    /// The ECS and ECR ports, for inspection in tests.
    pub fn verification_ports(&self) -> (&E, &I) {
        (&self.ecs, &self.images)
    }
}
