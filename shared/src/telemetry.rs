//! Logging. Lambda's advanced logging controls set `AWS_LAMBDA_LOG_FORMAT=JSON`, and the
//! runtime's default subscriber then writes one JSON object per line; `AWS_LAMBDA_LOG_LEVEL`
//! (or `RUST_LOG`) sets the level.

pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
