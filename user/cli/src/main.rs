//! `mica`: manages the VMs of a running Mica hypervisor from the host, over
//! the management socket (`cargo xtask qemu --mgmt SOCKET`), with the same
//! `ipc::vm` messages as the shell, in versioned COBS frames; `mica
//! console NAME` attaches the terminal to a VM's console, `mica events`
//! follows the VMs' state changes. Without `--socket` it connects to the
//! default socket (`mica_cli::socket_path`).
//!
//! Layer: host CLI (`cargo xtask check-layers`): it links only `ipc`, `mica-
//! mgmt` and vm-manager's validated name types.
#![deny(unsafe_code)]

mod args;
mod console;
mod events;
mod link;
mod run;
#[allow(
    unsafe_code,
    reason = "termios and signal calls for the console's raw mode; each block has its SAFETY"
)]
mod terminal;

use std::io::Write;
use std::process::ExitCode;

use args::Parsed;
use run::Status;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let status = match args::parse(&argv) {
        Ok(Parsed::Help) => match stdout.lock().write_all(args::USAGE.as_bytes()) {
            Ok(()) => Status::Done,
            Err(_) => Status::Unreachable,
        },
        Ok(Parsed::Run(invocation)) => {
            run::run(&invocation, &mut stdout.lock(), &mut stderr.lock())
        }
        Ok(Parsed::Console(invocation)) => {
            console::run(&invocation, &mut stdout.lock(), &mut stderr.lock())
        }
        Ok(Parsed::Events(invocation)) => {
            events::run(&invocation, &mut stdout.lock(), &mut stderr.lock())
        }
        Err(line) => {
            // Nothing more to do if stderr is gone.
            let _ = writeln!(stderr.lock(), "error: {line}");
            Status::Usage
        }
    };
    ExitCode::from(status as u8)
}
