//! `cargo xtask fuzz [--target NAME]... [--seconds N]`: runs each fuzz
//! target of `mica-fuzz-targets` under cargo-fuzz (libFuzzer, nightly Rust:
//! the only command that uses nightly) for N seconds, then prints per
//! target the executions and the crashes found.
//!
//! Each target starts from the committed `fuzz/corpus/<target>/` (crash
//! regressions), the seeds `cargo test` replays (written to
//! `target/fuzz/seeds/<target>/`) and what earlier runs found, kept in
//! `target/fuzz/corpus/<target>/`, where libFuzzer adds new inputs. A
//! crash's input is saved under `fuzz/artifacts/<target>/`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use mica_fuzz_targets::{TARGETS, replay, seeds};

use crate::cmd::{describe, run, workspace_root};

/// Seconds per target unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// What `cargo xtask fuzz` was asked for.
#[derive(Debug, PartialEq, Eq)]
struct FuzzOptions {
    targets: Vec<&'static str>,
    seconds: u64,
}

fn usage_error(why: String) -> String {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    format!(
        "{why}\nusage: cargo xtask fuzz [--target NAME]... [--seconds N]\ntargets: {}",
        names.join(", ")
    )
}

fn parse(args: &[String]) -> Result<FuzzOptions, String> {
    let mut options = FuzzOptions {
        targets: Vec::new(),
        seconds: DEFAULT_SECONDS,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| usage_error(format!("{flag} needs a value")))
        };
        match arg.as_str() {
            "--target" => {
                let name = value("--target")?;
                let target = mica_fuzz_targets::target(name)
                    .ok_or_else(|| usage_error(format!("no fuzz target called `{name}`")))?;
                options.targets.push(target.name);
            }
            "--seconds" => {
                let text = value("--seconds")?;
                options.seconds = text.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    usage_error(format!("--seconds {text}: give a whole number above 0"))
                })?;
            }
            other => return Err(usage_error(format!("unknown option `{other}`"))),
        }
    }
    if options.targets.is_empty() {
        options.targets = TARGETS.iter().map(|t| t.name).collect();
    }
    Ok(options)
}

/// `cargo` of the nightly toolchain, free of the pinned toolchain's
/// environment.
fn nightly_cargo() -> Command {
    let mut command = Command::new("cargo");
    command
        .arg("+nightly")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("CARGO")
        .current_dir(workspace_root());
    command
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure nightly Rust and cargo-fuzz are there, installing them when
/// they are missing.
fn install() -> Result<(), String> {
    if !succeeds(nightly_cargo().arg("--version")) {
        println!("xtask: no nightly toolchain; installing it (cargo-fuzz needs nightly)");
        run(
            Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]),
            "install the nightly toolchain",
        )
        .map_err(|e| format!("{e}: cargo xtask fuzz needs `rustup toolchain install nightly`"))?;
    }
    if !succeeds(nightly_cargo().args(["fuzz", "--version"])) {
        println!("xtask: cargo-fuzz is missing; installing it");
        run(
            Command::new("cargo")
                .args(["install", "cargo-fuzz"])
                .env_remove("RUSTUP_TOOLCHAIN"),
            "install cargo-fuzz",
        )
        .map_err(|e| format!("{e}: cargo xtask fuzz needs `cargo install cargo-fuzz`"))?;
    }
    Ok(())
}

/// Writes `target`'s seeds (built-in and from its extra directories) into
/// `dir`, one file each.
fn write_seeds(target: &str, dir: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut seeds = seeds::generated(target);
    for extra in seeds::extra_dirs(target) {
        let dir = workspace_root().join(extra);
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                seeds.push(bytes);
            }
        }
    }
    for (i, seed) in seeds.iter().enumerate() {
        let path = dir.join(format!("seed-{i:03}"));
        std::fs::write(&path, seed).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(seeds.len())
}

/// What one target's run found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    executions: Option<u64>,
    crashes: Vec<String>,
}

/// Reads libFuzzer's output: the executions (`stat::number_of_executed_units`,
/// or the `#N DONE` line) and the inputs it saved for crashes.
fn scan(line: &str, outcome: &mut Outcome) {
    if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
        outcome.executions = n.trim().parse().ok().or(outcome.executions);
    } else if let Some(rest) = line.strip_prefix('#')
        && let Some((n, what)) = rest.split_once(char::is_whitespace)
        && what.trim_start().starts_with("DONE")
        && outcome.executions.is_none()
    {
        outcome.executions = n.parse().ok();
    }
    if let Some((_, path)) = line.split_once("Test unit written to ") {
        outcome.crashes.push(path.trim().to_owned());
    }
}

/// Runs one target for `seconds`; its whole output goes to `log`.
fn fuzz_one(target: &str, seconds: u64, log: &Path) -> Result<Outcome, String> {
    let root = workspace_root();
    let grown = root.join("target").join("fuzz").join("corpus").join(target);
    let committed = replay::corpus_dir(target);
    let seeds = root.join("target").join("fuzz").join("seeds").join(target);
    for dir in [&grown, &committed] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_seeds(target, &seeds)?;
    let mut command = nightly_cargo();
    command
        .args(["fuzz", "run", target])
        // libFuzzer writes new inputs into the first directory only.
        .arg(&grown)
        .arg(&committed)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    println!(
        "xtask: fuzz {target} for {seconds} s: {}",
        describe(&command)
    );
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", describe(&command)))?;
    let mut file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut outcome = Outcome::default();
    // libFuzzer writes to stderr; cargo's build output too. stdout is
    // drained by a thread so neither pipe fills.
    let stdout = child.stdout.take();
    let drain = std::thread::spawn(move || {
        let mut lines = Vec::new();
        if let Some(out) = stdout {
            lines.extend(BufReader::new(out).lines().map_while(Result::ok));
        }
        lines
    });
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
            scan(&line, &mut outcome);
            if line.contains("panicked at") || line.contains("ERROR: libFuzzer") {
                eprintln!("  {line}");
            }
        }
    }
    for line in drain.join().unwrap_or_default() {
        let _ = writeln!(file, "{line}");
        scan(&line, &mut outcome);
    }
    let status = child.wait().map_err(|e| format!("{target}: {e}"))?;
    if !status.success() && outcome.crashes.is_empty() {
        return Err(format!(
            "cargo fuzz run {target} failed ({status}) without a crash input: see {}",
            log.display()
        ));
    }
    Ok(outcome)
}

pub fn run_command(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    install()?;
    let logs = workspace_root().join("target").join("fuzz").join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let mut results = Vec::new();
    for &target in &options.targets {
        let log = logs.join(format!("{target}.log"));
        let outcome = fuzz_one(target, options.seconds, &log)?;
        results.push((target, outcome));
    }
    println!("\n{:<16} {:>14}  crashes", "target", "executions");
    let mut crashed = 0;
    for (target, outcome) in &results {
        let executions = outcome
            .executions
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        println!("{target:<16} {executions:>14}  {}", outcome.crashes.len());
        for path in &outcome.crashes {
            println!("{:<16} {:>14}  {path}", "", "");
        }
        crashed += outcome.crashes.len();
    }
    let total: u64 = results.iter().filter_map(|(_, o)| o.executions).sum();
    println!(
        "xtask: fuzz: {} targets, {total} executions in {} s each, {crashed} crashes",
        results.len(),
        options.seconds
    );
    if crashed > 0 {
        return Err(format!(
            "{crashed} crash(es): reproduce one with `cargo +nightly fuzz run TARGET PATH`, \
             fix it, and add the input to fuzz/corpus/TARGET/ (replayed by `cargo test -p mica-fuzz-targets`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_default_to_every_target_for_a_minute() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.targets.len(), TARGETS.len());
        assert_eq!(options.seconds, 60);
    }

    #[test]
    fn options_pick_targets_and_seconds() {
        let options = parse(&args(&[
            "--target",
            "dtb",
            "--seconds",
            "5",
            "--target",
            "plic",
        ]))
        .unwrap();
        assert_eq!(
            options,
            FuzzOptions {
                targets: vec!["dtb", "plic"],
                seconds: 5
            }
        );
    }

    #[test]
    fn bad_options_are_refused_with_the_target_list() {
        let err = parse(&args(&["--target", "nope"])).unwrap_err();
        assert!(err.contains("no fuzz target called `nope`") && err.contains("uart16550"));
        assert!(parse(&args(&["--seconds", "0"])).is_err());
        assert!(parse(&args(&["--seconds"])).is_err());
        assert!(parse(&args(&["--jobs", "2"])).is_err());
    }

    #[test]
    fn executions_and_crashes_are_read_from_libfuzzer_output() {
        let mut outcome = Outcome::default();
        for line in [
            "#1048576\tpulse  cov: 812 ft: 2100 corp: 90/4Kb exec/s: 52428 rss: 60Mb",
            "#1234567\tDONE   cov: 812 ft: 2100 corp: 90/4Kb lim: 4096 exec/s: 41152 rss: 61Mb",
            "Done 1234567 runs in 31 second(s)",
            "stat::number_of_executed_units: 1234568",
        ] {
            scan(line, &mut outcome);
        }
        assert_eq!(outcome.executions, Some(1_234_568));
        assert!(outcome.crashes.is_empty());
        scan(
            "artifact_prefix='fuzz/artifacts/dtb/'; Test unit written to fuzz/artifacts/dtb/crash-abc",
            &mut outcome,
        );
        assert_eq!(outcome.crashes, ["fuzz/artifacts/dtb/crash-abc"]);
    }

    #[test]
    fn the_done_line_counts_when_there_are_no_final_stats() {
        let mut outcome = Outcome::default();
        scan("#4096\tDONE   cov: 10 ft: 10 corp: 1/1b", &mut outcome);
        assert_eq!(outcome.executions, Some(4096));
    }
}
