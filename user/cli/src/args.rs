//! The CLI's own options (`--socket`, `--json`, `--timeout`, `--help`),
//! accepted anywhere on the line; the remaining words are the VM command,
//! parsed by `mica_mgmt::parse_vm`, or `console NAME`, or `events
//! [--all]`. Without `--socket`, the socket is at its default path
//! (`mica_cli::socket_path`).

use std::path::PathBuf;
use std::time::Duration;

use ipc::vm::ConsolePort;
use mica_cli::socket_path;
use mica_mgmt::VmCommand;
use mica_mgmt::parse::{Surface, parse_console, parse_vm};
use vm_manager::VmName;

/// How long to wait for an answer unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `mica --help`.
pub const USAGE: &str = r#"usage: mica [--socket SOCKET] [--json] [--timeout SECS] COMMAND

Manages the VMs of a running Mica over its management socket, which
cargo xtask qemu opens at $MICA_SOCKET, else $XDG_RUNTIME_DIR/mica/mgmt.sock,
else ~/.cache/mica/mgmt.sock (or where cargo xtask qemu --mgmt SOCKET says).

commands:
  list                         list the VMs; a powered-off VM that ended says
                               why: powered-off (stopped: guest fault)
  info NAME                    show one VM: its last exit (why it last
                               stopped running), its guest exits by kind and
                               its I/O requests' round trips and time in the
                               services since it started, and each vCPU's
                               state (running, waiting for I/O, waiting,
                               stopped, held) and exits; for a dynamic VM
                               that ended lately (the last 8 are kept): no
                               VM named NAME (it ended: ...), exit status 1
  images                       list the guest images in the boot image: name,
                               kind (raw, Linux Image, initrd) and size
                               (--json: {"images":[{"name","kind","size"}]},
                               kind raw, linux_image or initrd, size in bytes)
  create NAME [--from TEMPLATE] [--image IMAGE] [--mem MiB] [--vcpus N]
         [--kernel IMAGE] [--initrd IMAGE] [--cmdline TEXT] [--disk N]
                               create a VM (a static one if NAME is configured;
                               another needs --image, --kernel or --from; a
                               missing or unknown image lists the images);
                               --kernel boots a Linux Image instead of --image,
                               with an initial ramdisk and a command line
                               (quote it: --cmdline "console=ttyS0 quiet");
                               --disk N gives it host disk N (0-7, one VM's at
                               a time) as a virtio-blk device; --vcpus N
                               gives it N vCPUs (1-8)
  start|pause|resume NAME      run, hold or continue a VM's vCPUs
  reset NAME [--new-genid]     reboot a VM (--new-genid: new generation ID)
  shutdown NAME                power a VM off
  destroy NAME                 tear a VM down, even while it runs
  clone SRC NEW                copy a paused VM into a new VM
  log NAME                     print the VM's recent console output (the
                               last 4096 bytes it wrote, kept while it
                               exists), control bytes shown as \xNN; when
                               older output is no longer kept, stderr says
                               how much
  console NAME [--hvc]         attach this terminal to a VM's console (its
                               UART; --hvc: its virtio console, Linux's
                               /dev/hvc0): typed bytes go to the guest, its
                               output is shown; Ctrl-] detaches. With stdin
                               not a terminal, sends stdin and ends at its end
  events [--all]               follow the VMs' state changes until Ctrl-C, one
                               line each: created, started, paused, resumed,
                               reset, and how a VM left running (powered off
                               or rebooted by its guest, stopped by Mica and
                               why, shut down, destroyed); --all first shows
                               the last 32 the hypervisor kept. --json: one
                               object a line, {"seq","vm","event","state"}
                               (+"exit","uptime_ms" for an exit), and
                               {"event":"lost","count":N} when some were missed

options:
  --socket SOCKET   the hypervisor's management socket (default: see above)
  --json            print JSON instead of text
  --timeout SECS    how long to wait for each answer (default 5)

A refusal is one line on stderr (with --json also {"error":{"code":N,
"message":...}} on stdout; the codes are ipc::Error's stable codes; about
a VM that ended, code 7 with "last_exit":{"kind":...,"detail":...}).

exit status: 0 done, 1 the hypervisor refused, 2 usage error,
             3 the hypervisor cannot be reached or speaks another protocol
"#;

/// A complete invocation.
#[derive(Debug)]
pub struct Invocation {
    /// The management socket.
    pub socket: PathBuf,
    /// Print JSON.
    pub json: bool,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// What to do.
    pub command: VmCommand,
}

/// `mica console NAME`.
#[derive(Debug)]
pub struct ConsoleInvocation {
    /// The management socket.
    pub socket: PathBuf,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// The VM to attach to.
    pub name: VmName,
    /// Which of its consoles typed bytes go to (`--hvc`: the virtio
    /// console).
    pub port: ConsolePort,
}

/// `mica events [--all]`.
#[derive(Debug)]
pub struct EventsInvocation {
    /// The management socket.
    pub socket: PathBuf,
    /// One JSON object a line.
    pub json: bool,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// Show what the hypervisor kept before the new events.
    pub all: bool,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Talk to the hypervisor (boxed: a `create` carries its kernel
    /// command line).
    Run(Box<Invocation>),
    /// Attach to a VM's console.
    Console(ConsoleInvocation),
    /// Follow the VMs' state changes.
    Events(EventsInvocation),
    /// Print [`USAGE`].
    Help,
}

/// Parses the arguments (without the program name). An error is the one
/// line to print after `error: `.
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut socket = None;
    let mut json = false;
    let mut timeout = None;
    let mut rest: Vec<&str> = Vec::new();
    let mut words = args.iter().map(String::as_str);
    while let Some(word) = words.next() {
        match word {
            "--help" | "-h" | "help" if rest.is_empty() => return Ok(Parsed::Help),
            "--json" if !json => json = true,
            "--socket" if socket.is_none() => {
                let path = words.next().ok_or("--socket needs a path")?;
                socket = Some(PathBuf::from(path));
            }
            "--timeout" if timeout.is_none() => {
                let text = words.next().ok_or("--timeout needs a number of seconds")?;
                let secs = text
                    .parse::<u64>()
                    .ok()
                    .filter(|secs| (1..=3600).contains(secs))
                    .ok_or_else(|| {
                        format!("--timeout {text:?} is not valid: use whole seconds from 1 to 3600")
                    })?;
                timeout = Some(Duration::from_secs(secs));
            }
            "--json" | "--socket" | "--timeout" => return Err(format!("{word} is given twice")),
            "--" => {
                rest.push(word);
                rest.extend(words.by_ref());
            }
            _ => rest.push(word),
        }
    }
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let socket = move || match socket {
        Some(path) => Ok(path),
        None => socket_path::from_env().map_err(|e| e.to_string()),
    };
    match rest.first() {
        Some(&"console") => {
            let (name, port) =
                parse_console(rest.into_iter().skip(1), Surface::CLI).map_err(|e| e.to_string())?;
            if json {
                return Err("--json does not apply to console: its output is the guest's".into());
            }
            return Ok(Parsed::Console(ConsoleInvocation {
                socket: socket()?,
                timeout,
                port,
                name,
            }));
        }
        Some(&"events") => {
            let all = match rest.get(1..).unwrap_or_default() {
                [] => false,
                ["--all"] => true,
                [other, ..] => {
                    return Err(format!(
                        "events does not take {other:?} (usage: mica events [--all])"
                    ));
                }
            };
            return Ok(Parsed::Events(EventsInvocation {
                socket: socket()?,
                json,
                timeout,
                all,
            }));
        }
        _ => {}
    }
    let command = parse_vm(rest, Surface::CLI).map_err(|e| e.to_string())?;
    if json && matches!(command, VmCommand::Log { .. }) {
        return Err("--json does not apply to log: its output is the guest's".into());
    }
    let socket = socket()?;
    Ok(Parsed::Run(Box::new(Invocation {
        socket,
        json,
        timeout,
        command,
    })))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use mica_mgmt::help_lines::{line, synopses, typed_forms};
    use mica_mgmt::parse::VM_COMMANDS;

    use super::*;

    /// The commands part of [`USAGE`].
    fn commands() -> &'static str {
        let start = USAGE.find("commands:\n").unwrap() + "commands:\n".len();
        let end = USAGE.find("\noptions:").unwrap();
        &USAGE[start..end]
    }

    #[test]
    fn every_command_in_the_usage_parses_and_every_command_parsed_is_in_it() {
        let entries = synopses(commands(), 2);
        assert!(entries.len() >= 10, "{entries:?}");
        let mut in_usage = BTreeSet::new();
        for synopsis in &entries {
            for (words, bare) in typed_forms(synopsis) {
                let mut argv: Vec<String> = vec!["--socket".into(), "/tmp/s".into()];
                argv.extend(words.iter().cloned());
                match parse(&argv) {
                    Ok(Parsed::Run(invocation)) => {
                        in_usage.insert(invocation.command.verb());
                    }
                    Ok(Parsed::Console(_)) => {
                        in_usage.insert("console");
                    }
                    Ok(Parsed::Events(_)) => {
                        in_usage.insert("events");
                    }
                    other if bare => panic!(
                        "--help shows {synopsis:?}, but `mica {}` gives {other:?}",
                        line(&words)
                    ),
                    Ok(Parsed::Help) => panic!("{words:?} is help"),
                    Err(e) => assert!(
                        !["unknown", "unexpected", "missing", "needs a value"]
                            .iter()
                            .any(|word| e.contains(word)),
                        "--help shows {synopsis:?}, but `mica {}`: {e}",
                        line(&words)
                    ),
                }
            }
        }
        let parsed: BTreeSet<&str> = VM_COMMANDS
            .iter()
            .copied()
            .chain(["console", "events"])
            .collect();
        assert_eq!(in_usage, parsed, "--help and the parser disagree");
    }
}
