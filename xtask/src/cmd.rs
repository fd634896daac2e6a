//! Running child processes with a printed command line and a clear error.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A `cargo` command run from the workspace root, with the same toolchain
/// that runs xtask.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root());
    command
}

/// Builds the kernel (release) for `target`; `what` names the step.
pub fn build_kernel_for(target: &str, what: &str) -> Result<(), String> {
    run(
        cargo().args([
            "build",
            "--release",
            "-p",
            "mica-kernel",
            "--target",
            target,
        ]),
        what,
    )
}

/// Runs `command`, echoing it first; a non-zero exit becomes an error naming
/// what failed.
pub fn run(command: &mut Command, what: &str) -> Result<(), String> {
    println!("xtask: {what}: {}", describe(command));
    run_quiet(command, what)
}

/// Runs `command` without echoing it: a sub-step of a step that said
/// what it does in one line (each of a dozen small tool runs would be
/// noise). A failure names the command.
pub fn run_quiet(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("{what}: cannot start {}: {e}", describe(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status}): {}", describe(command)))
    }
}

/// The command line as a person would type it.
pub fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Whether an executable of this name is on the PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
