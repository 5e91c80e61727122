//! The commands of a CodeBuild buildspec phase, read from the YAML text the way infra/buildspec.yml
//! writes them (no YAML library: the file uses two forms only), so that a test can run them.
//!
//! ```yaml
//! phases:
//!   build:
//!     commands:
//!       - echo one line
//!       - |
//!         a block
//!         of lines
//! ```

/// The commands of `phases.<phase>.commands`, each as the shell text CodeBuild runs: a one-line
/// item as written, a `|` block with its indentation removed. Comment lines are skipped.
pub fn phase_commands(text: &str, phase: &str) -> Result<Vec<String>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let significant = |line: &str| !line.trim().is_empty() && !line.trim_start().starts_with('#');
    let find = |from: usize, wanted: &str, at: usize| {
        (from..lines.len())
            .take_while(|&i| !significant(lines[i]) || indent(lines[i]) >= at)
            .find(|&i| indent(lines[i]) == at && lines[i].trim() == wanted)
    };

    let phases = find(0, "phases:", 0).ok_or("no `phases:`")?;
    let phase_at = find(phases + 1, &format!("{phase}:"), 2).ok_or_else(|| format!("no phase `{phase}`"))?;
    let commands = find(phase_at + 1, "commands:", 4).ok_or_else(|| format!("phase `{phase}` has no `commands:`"))?;

    let mut found = Vec::new();
    let mut i = commands + 1;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if !significant(line) {
            continue;
        }
        if indent(line) <= 4 {
            break;
        }
        let item = line
            .trim_start()
            .strip_prefix("- ")
            .filter(|_| indent(line) == 6)
            .ok_or_else(|| format!("line {i}: expected a `- ` command item at indentation 6: {line}"))?;
        if item != "|" {
            found.push(item.to_owned());
            continue;
        }
        let mut block = Vec::new();
        while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > 6) {
            block.push(lines[i]);
            i += 1;
        }
        while block.last().is_some_and(|line| line.trim().is_empty()) {
            block.pop();
        }
        let base = block.iter().filter(|line| !line.trim().is_empty()).map(|line| indent(line)).min().unwrap_or(0);
        let dedented: Vec<&str> = block.iter().map(|line| line.get(base..).unwrap_or_default()).collect();
        found.push(format!("{}\n", dedented.join("\n")));
    }
    Ok(found)
}

/// What a buildspec command did when run with [`run_with_stub_aws`].
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    /// The arguments of each `aws` call, one line per call.
    pub aws_calls: Vec<String>,
}

/// Runs `script` with bash (CodeBuild's `shell: bash`) in an environment of exactly `env` plus a
/// PATH whose first entry holds an `aws` that answers `aws ssm get-parameter --name
/// <name>:<version> … --output text` from `parameters` (`("<name>:<version>", value)`) as the
/// CLI does (the value and a newline), and fails as the CLI does for any other selector.
pub fn run_with_stub_aws(label: &str, script: &str, env: &[(&str, &str)], parameters: &[(&str, &str)]) -> Run {
    let dir = std::env::temp_dir().join(format!("tagrelay-buildspec-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = dir.join("parameters");
    std::fs::create_dir_all(&store).unwrap_or_else(|err| panic!("{}: {err}", store.display()));
    // A selector is stored as a file name: '/' and ':' cannot be in one.
    let file_name = |selector: &str| selector.replace('/', "%").replace(':', "+");
    for (selector, value) in parameters {
        std::fs::write(store.join(file_name(selector)), value).expect("a stub parameter");
    }
    let aws = r#"#!/bin/sh
printf '%s\n' "$*" >> "$AWS_CALLS"
name=""
while [ $# -gt 0 ]; do
  if [ "$1" = "--name" ]; then name="$2"; shift; fi
  shift
done
file="$AWS_PARAMETERS/$(printf '%s' "$name" | tr '/:' '%+')"
if [ ! -f "$file" ]; then
  echo "An error occurred (ParameterVersionNotFound) when calling the GetParameter operation: Systems Manager could not find version of $name." >&2
  exit 254
fi
cat "$file"
echo
"#;
    run_with_aws(&dir, script, env, ("AWS_PARAMETERS", &store), aws)
}

/// Runs `script` like [`run_with_stub_aws`], with an `aws` that answers, as the CLI does with
/// `--output json`, `aws ssm get-parameter-history --name <name>` with `histories`' JSON for that
/// name and `aws ssm get-parameters --names <selector>…` with `{"Parameters":[…]}` of the
/// `parameters` objects (`("<name>:<version>", {"Name","Version","Value"})`) it has, leaving out
/// the others as SSM does (under `InvalidParameters`).
pub fn run_with_stub_ssm(
    label: &str,
    script: &str,
    env: &[(&str, &str)],
    histories: &[(&str, String)],
    parameters: &[(String, String)],
) -> Run {
    let dir = std::env::temp_dir().join(format!("tagrelay-buildspec-ssm-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = dir.join("ssm");
    std::fs::create_dir_all(&store).unwrap_or_else(|err| panic!("{}: {err}", store.display()));
    let file_name = |kind: &str, key: &str| format!("{kind}{}", key.replace('/', "%").replace(':', "+"));
    for (name, json) in histories {
        std::fs::write(store.join(file_name("history", name)), json).expect("a stub history");
    }
    for (selector, json) in parameters {
        std::fs::write(store.join(file_name("parameter", selector)), json).expect("a stub parameter");
    }
    let aws = r#"#!/bin/sh
printf '%s\n' "$*" >> "$AWS_CALLS"
key() { printf '%s' "$1" | tr '/:' '%+'; }
case "$2" in
  get-parameter-history)
    file="$AWS_SSM/history$(key "$4")"
    if [ ! -f "$file" ]; then echo "An error occurred (ParameterNotFound) when calling the GetParameterHistory operation: Parameter $4 not found." >&2; exit 254; fi
    cat "$file" ;;
  get-parameters)
    shift 3
    printf '{"Parameters":['
    sep=""
    while [ $# -gt 0 ] && [ "$1" != "--output" ]; do
      file="$AWS_SSM/parameter$(key "$1")"
      if [ -f "$file" ]; then printf '%s' "$sep"; cat "$file"; sep=","; fi
      shift
    done
    printf ']}\n' ;;
  *) echo "stub aws: unexpected call: $*" >&2; exit 2 ;;
esac
"#;
    // The interpreter itself, not a version manager's shim (pyenv's puts its own bin directory,
    // with a real `aws`, first on PATH): CodeBuild's python3 is a plain binary too.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap_or_else(|err| panic!("{}: {err}", bin.display()));
    let found = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs (CodeBuild's standard images have it)");
    let python = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    std::os::unix::fs::symlink(&python, bin.join("python3")).expect("python3 in the stubs' bin");
    run_with_aws(&dir, script, env, ("AWS_SSM", &store), aws)
}

/// Runs `script` with the stub `aws` in `dir`, which appends its arguments to `$AWS_CALLS` and
/// reads its answers under `store` (named by the variable `store.0`); removes `dir` after.
fn run_with_aws(
    dir: &std::path::Path,
    script: &str,
    env: &[(&str, &str)],
    store: (&str, &std::path::Path),
    aws: &str,
) -> Run {
    let calls = dir.join("aws-calls");
    let (calls_path, store_path) = (calls.display().to_string(), store.1.display().to_string());
    let mut full_env: Vec<(&str, &str)> = vec![("AWS_CALLS", &calls_path), (store.0, &store_path)];
    full_env.extend_from_slice(env);
    let output = bash_with_stubs(dir, script, &full_env, &[("aws", aws)]);
    let aws_calls = std::fs::read_to_string(&calls).unwrap_or_default().lines().map(str::to_owned).collect();
    let _ = std::fs::remove_dir_all(dir);
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        aws_calls,
    }
}

/// Runs `script` with bash, as CodeBuild's `shell: bash` does, in an environment of exactly `env`
/// plus a PATH whose first entry is `dir/bin`, holding the executable `stubs` (name, script).
pub fn bash_with_stubs(
    dir: &std::path::Path,
    script: &str,
    env: &[(&str, &str)],
    stubs: &[(&str, &str)],
) -> std::process::Output {
    use std::os::unix::fs::PermissionsExt;

    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap_or_else(|err| panic!("{}: {err}", bin.display()));
    for (name, body) in stubs {
        let stub = bin.join(name);
        std::fs::write(&stub, body).expect("the stub");
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", path)
        .envs(env.iter().copied())
        .output()
        .expect("bash runs")
}
