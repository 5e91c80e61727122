//! Runs the `tagrelay` binary as an operator would, against a local AWS.

use std::process::Command;

use serde_json::Value;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}\n{}", self.stdout, self.stderr))
    }
}

/// `tagrelay <args>` with exactly `env` (plus PATH): no AWS setting leaks in from the machine.
pub fn tagrelay(env: &[(String, String)], args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_tagrelay"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        // One attempt: a test of a failing call should not wait for the SDK's backoff.
        .env("AWS_MAX_ATTEMPTS", "1")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("the tagrelay binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
