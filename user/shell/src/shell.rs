//! The shell's command loop: typed bytes in, through the line editor, to
//! `vm ...` requests (`vm log NAME` reads a VM's recent output back),
//! `images`, `console NAME [--hvc]` attachment, `mem`, `help` and `halt`; every
//! result printed with mica-mgmt's formatters and every failure as one
//! `error: ...` line.
//!
//! While the console is attached to a VM, only that VM's lines are shown:
//! the shell gives it the console's focus (`ConsoleFocus`), so the device
//! service holds the other VMs' lines and prints them at detach.

use core::fmt::{self, Write};

use ipc::vm::{CONSOLE_INPUT_CHUNK, ConsolePort, GuestImage, Request, Response};
use ipc::{VmId, WireName};
use mica_mgmt::command::{Reply, ReplyError, check_stats, stats_request, wants_image_list};
use mica_mgmt::errors::ErrorMessage;
use mica_mgmt::images::{ImageChoices, ImageTable};
use mica_mgmt::log::{LogPart, LogReader};
use mica_mgmt::parse::HELP;
use mica_mgmt::table::{DoneLine, InfoBlock, MemoryLine, StatsBlock, VmTable};
use mica_mgmt::{Command, ImagesPager, ListPager, VmCommand, parse_line};

use crate::editor::{Key, LineEditor};

/// The prompt.
pub const PROMPT: &str = "mica> ";

/// What the shell needs from the machine.
pub trait Hypervisor {
    /// Sends `request` to the vm-manager and returns its answer (the only
    /// service the shell talks to: typed console bytes go as
    /// `ConsoleInput` too).
    fn vm(&mut self, request: &Request) -> Result<Response, ipc::Error>;
    /// Prints `text` on the console as it is (no newline added).
    fn print(&mut self, text: &str);
    /// The kernel's free and total frames (`mem_info`).
    fn memory(&mut self) -> Result<MemoryLine, ipc::Error>;
}

/// What the caller does after [`Shell::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read more input.
    Continue,
    /// `halt` was typed: power the machine off with status 0.
    Halt,
}

/// The VM the console is attached to, and the console of it typed bytes
/// go to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Attached {
    name: WireName,
    port: ConsolePort,
}

/// The shell: the line being typed, or the VM the console is attached to.
#[derive(Debug, Default)]
pub struct Shell {
    editor: LineEditor,
    attached: Option<Attached>,
}

/// Formats into a small buffer and prints it whole at each newline (so a
/// line reaches the console in one piece).
struct Out<'h, H: Hypervisor> {
    hv: &'h mut H,
    line: heapless::String<256>,
}

impl<H: Hypervisor> Out<'_, H> {
    fn flush(&mut self) {
        if !self.line.is_empty() {
            self.hv.print(&self.line);
            self.line.clear();
        }
    }
}

impl<H: Hypervisor> Write for Out<'_, H> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for ch in s.chars() {
            if self.line.push(ch).is_err() {
                self.flush();
                let _ = self.line.push(ch);
            }
            if ch == '\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Shell {
    /// A shell with an empty line, not attached.
    pub const fn new() -> Self {
        Shell {
            editor: LineEditor::new(),
            attached: None,
        }
    }

    /// Prints the prompt (at start).
    pub fn start<H: Hypervisor>(&mut self, hv: &mut H) {
        hv.print(PROMPT);
    }

    /// Starts as the supervisor's new copy of a shell that died, perhaps
    /// while attached: the console focus is taken back first, so the
    /// other VMs' held lines are printed and every VM's show again.
    pub fn start_again<H: Hypervisor>(&mut self, hv: &mut H) {
        if let Err(e) = focus(hv, None) {
            let mut out = Out {
                hv,
                line: heapless::String::new(),
            };
            let _ = writeln!(out, "error: cannot show every VM's lines again: {e}");
        }
        self.start(hv);
    }

    /// Takes typed `bytes`: edits the line and runs it at Enter, or, while
    /// attached, forwards them to the VM until the escape byte.
    pub fn feed<H: Hypervisor>(&mut self, bytes: &[u8], hv: &mut H) -> Flow {
        let mut rest = bytes;
        while !rest.is_empty() {
            if let Some(attached) = self.attached.clone() {
                rest = self.forward(&attached, rest, hv);
                continue;
            }
            let (&byte, tail) = match rest.split_first() {
                Some(split) => split,
                None => break,
            };
            rest = tail;
            match self.editor.key(byte) {
                Key::Nothing => {}
                Key::Echo(text) => hv.print(core::str::from_utf8(text).unwrap_or("")),
                Key::EchoByte(b) => {
                    let mut buf = [0u8; 4];
                    hv.print(char::from(b).encode_utf8(&mut buf));
                }
                Key::Cancel => {
                    hv.print("^C\n");
                    hv.print(PROMPT);
                }
                Key::Enter => {
                    hv.print("\n");
                    let line = self.editor.take_line();
                    let text = core::str::from_utf8(&line).unwrap_or("");
                    if self.run_line(text, hv) == Flow::Halt {
                        return Flow::Halt;
                    }
                    if self.attached.is_none() {
                        hv.print(PROMPT);
                    }
                }
            }
        }
        Flow::Continue
    }

    /// Forwards bytes to the attached VM up to the escape byte; returns
    /// what is left after it (the shell reads that as typed lines).
    fn forward<'b, H: Hypervisor>(
        &mut self,
        to: &Attached,
        bytes: &'b [u8],
        hv: &mut H,
    ) -> &'b [u8] {
        let escape = bytes
            .iter()
            .position(|&b| b == mica_mgmt::command::CONSOLE_ESCAPE);
        let (data, rest) = match escape {
            Some(at) => (&bytes[..at], bytes.get(at + 1..).unwrap_or_default()),
            None => (bytes, &[][..]),
        };
        for chunk in data.chunks(CONSOLE_INPUT_CHUNK) {
            let request = Request::ConsoleInput {
                name: to.name.clone(),
                port: to.port,
                // Never too long: chunks of the vector's capacity.
                bytes: heapless::Vec::from_slice(chunk).unwrap_or_default(),
            };
            let delivered = match hv.vm(&request) {
                Ok(Response::Ok) => Ok(()),
                Ok(Response::Err(e)) | Err(e) => Err(e),
                Ok(_) => Err(ipc::Error::Malformed),
            };
            if let Err(e) = delivered {
                let mut out = Out {
                    hv,
                    line: heapless::String::new(),
                };
                let _ = writeln!(out, "error: the console input was not delivered: {e}");
            }
        }
        if escape.is_some() {
            self.attached = None;
            hv.print("\nconsole detached\n");
            // The other VMs' lines held meanwhile are printed now.
            if let Err(e) = focus(hv, None) {
                let mut out = Out {
                    hv,
                    line: heapless::String::new(),
                };
                let _ = writeln!(
                    out,
                    "error: the other VMs' lines may still be held: {e}; attach and detach again"
                );
            }
            hv.print(PROMPT);
        }
        rest
    }

    /// Runs one typed line.
    fn run_line<H: Hypervisor>(&mut self, line: &str, hv: &mut H) -> Flow {
        let mut out = Out {
            hv,
            line: heapless::String::new(),
        };
        let command = match parse_line(line) {
            Ok(Some(command)) => command,
            Ok(None) => return Flow::Continue,
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
                return Flow::Continue;
            }
        };
        match command {
            Command::Help => {
                let _ = out.write_str(HELP);
            }
            Command::Mem => match out.hv.memory() {
                Ok(line) => {
                    let _ = writeln!(out, "{line}");
                }
                Err(e) => {
                    let _ = writeln!(out, "error: cannot read the memory counts: {e}");
                }
            },
            Command::Halt => {
                let _ = writeln!(out, "mica: halting");
                return Flow::Halt;
            }
            Command::Vm(VmCommand::List) => list(&mut out),
            Command::Vm(VmCommand::Images) => images(&mut out),
            Command::Vm(command @ VmCommand::Log { .. }) => log(&command, &mut out),
            Command::Vm(command) => {
                let _ = run_vm(&command, &mut out, true);
            }
            Command::Console { name, port } => {
                let info = VmCommand::Info { name: name.clone() };
                if run_vm(&info, &mut out, false).is_some()
                    && has_port(&mut out, name.to_wire(), port)
                {
                    self.attached = Some(Attached {
                        name: name.to_wire(),
                        port,
                    });
                    let device = match port {
                        ConsolePort::Serial => "UART",
                        ConsolePort::Virtio => "virtio console (hvc0)",
                    };
                    let _ = writeln!(
                        out,
                        "console attached to {name}'s {device}: type Ctrl-] to detach"
                    );
                    out.flush();
                    if let Err(e) = focus(out.hv, Some(name.to_wire())) {
                        let _ = writeln!(
                            out,
                            "error: the other VMs' lines cannot be held while attached: {e}"
                        );
                    }
                }
            }
        }
        out.flush();
        Flow::Continue
    }
}

/// Whether the VM called `name` has console `port` (the UART always
/// counts: a VM without one takes serial input on its virtio console);
/// says why not. Asked with an empty input, which feeds nothing.
fn has_port<H: Hypervisor>(out: &mut Out<'_, H>, name: WireName, port: ConsolePort) -> bool {
    if port == ConsolePort::Serial {
        return true;
    }
    let probe = Request::ConsoleInput {
        name: name.clone(),
        port,
        bytes: heapless::Vec::new(),
    };
    match out.hv.vm(&probe) {
        Ok(Response::Ok) => true,
        Ok(Response::Err(ipc::Error::NoDevice)) => {
            let _ = writeln!(
                out,
                "error: {name} has no virtio console (hvc0): attach to its UART without --hvc"
            );
            false
        }
        Ok(Response::Err(e)) | Err(e) => {
            let _ = writeln!(out, "error: cannot attach to {name}'s virtio console: {e}");
            false
        }
        Ok(_) => {
            let _ = writeln!(
                out,
                "error: cannot attach to {name}'s virtio console: malformed answer"
            );
            false
        }
    }
}

/// Gives the console's focus to the VM called `name` (only its lines are
/// shown), or takes it away (`None`: every VM's, the held lines first).
fn focus<H: Hypervisor>(hv: &mut H, name: Option<WireName>) -> Result<(), ipc::Error> {
    match hv.vm(&Request::ConsoleFocus { name })? {
        Response::Ok => Ok(()),
        Response::Err(e) => Err(e),
        _ => Err(ipc::Error::Malformed),
    }
}

/// Runs a VM command other than `list` and prints its outcome (only a
/// failure unless `show`); returns the VM's slot when the answer carried
/// its info.
fn run_vm<H: Hypervisor>(command: &VmCommand, out: &mut Out<'_, H>, show: bool) -> Option<VmId> {
    let answer = out.hv.vm(&command.request());
    let reply = match answer {
        Ok(response) => command.check_reply(response),
        Err(e) => {
            let _ = writeln!(out, "error: cannot reach the vm-manager: {e}");
            return None;
        }
    };
    match reply {
        Ok(Reply::Done) => {
            if show {
                let _ = writeln!(out, "{}", DoneLine(command));
            }
            None
        }
        Ok(Reply::Info(info)) => {
            match command {
                _ if !show => {}
                VmCommand::Info { name } => {
                    let _ = write!(out, "{}", InfoBlock(&info));
                    show_stats(name, &stats_request(name), out);
                }
                _ => {
                    let _ = writeln!(out, "{}", DoneLine(command));
                }
            }
            Some(info.id)
        }
        Err(error) if wants_image_list(command, &error) => {
            let message = ErrorMessage { command, error };
            match read_images(out.hv) {
                Ok(images) => {
                    let _ = writeln!(out, "error: {message}{}", ImageChoices(&images));
                }
                // The refusal is what matters; the list is a help.
                Err(_) => {
                    let _ = writeln!(out, "error: {message}");
                }
            }
            None
        }
        Err(error) => {
            refused(out, command, error);
            None
        }
    }
}

/// How many guest images the shell lists: as many as a boot image holds
/// entries (`mica_boot::image::MAX_ENTRIES`).
const MAX_IMAGES: usize = 32;

/// Why the images could not be read.
enum ImagesFailure {
    /// The vm-manager could not be reached.
    Link(ipc::Error),
    /// It answered with a refusal or nonsense.
    Reply(ReplyError),
}

/// Every guest image, page by page.
fn read_images<H: Hypervisor>(
    hv: &mut H,
) -> Result<heapless::Vec<GuestImage, MAX_IMAGES>, ImagesFailure> {
    let mut pager = ImagesPager::new();
    let mut images = heapless::Vec::new();
    while let Some(request) = pager.next_request() {
        let response = hv.vm(&request).map_err(ImagesFailure::Link)?;
        for image in pager.accept(response).map_err(ImagesFailure::Reply)? {
            // More than a boot image holds: the rest is not shown.
            let _ = images.push(image);
        }
    }
    Ok(images)
}

/// `images`: every page, then one table.
fn images<H: Hypervisor>(out: &mut Out<'_, H>) {
    match read_images(out.hv) {
        Ok(images) => {
            let _ = write!(out, "{}", ImageTable(&images));
        }
        Err(ImagesFailure::Link(e)) => {
            let _ = writeln!(out, "error: cannot reach the vm-manager: {e}");
        }
        Err(ImagesFailure::Reply(error)) => refused(out, &VmCommand::Images, error),
    }
}

/// The one `error:` line for `command` refused with `error`.
fn refused<H: Hypervisor>(out: &mut Out<'_, H>, command: &VmCommand, error: ReplyError) {
    let _ = writeln!(out, "error: {}", ErrorMessage { command, error });
}

/// The exit and I/O figures after `vm info`'s block (nothing for a VM
/// without them); a failure to read them is one `error:` line.
fn show_stats<H: Hypervisor>(name: &dyn fmt::Display, request: &Request, out: &mut Out<'_, H>) {
    let reply = match out.hv.vm(request) {
        Ok(response) => check_stats(response),
        Err(e) => {
            let _ = writeln!(out, "error: cannot reach the vm-manager: {e}");
            return;
        }
    };
    match reply {
        Ok(Some(stats)) => {
            let _ = write!(out, "{}", StatsBlock(&stats));
        }
        Ok(None) => {}
        Err(error) => {
            let _ = writeln!(out, "error: cannot read {name}'s exit figures: {error}");
        }
    }
}

/// `vm log NAME`: the VM's recent output, a line each as `NAME log | ...`
/// (told apart from its live `NAME | ...` lines, which may come between
/// them), then `NAME log: end`.
fn log<H: Hypervisor>(command: &VmCommand, out: &mut Out<'_, H>) {
    let VmCommand::Log { name } = command else {
        return;
    };
    let mut reader = LogReader::new(name.clone());
    while let Some(request) = reader.next_request() {
        let response = match out.hv.vm(&request) {
            Ok(response) => response,
            Err(e) => {
                let _ = writeln!(out, "error: cannot reach the vm-manager: {e}");
                return;
            }
        };
        let shown = reader.accept(response, &mut |part| {
            let _ = match part {
                LogPart::Lost(n) => writeln!(
                    out,
                    "{name} log: the first {n} bytes of its output are no longer kept"
                ),
                LogPart::Line(text) => writeln!(out, "{name} log | {text}"),
            };
        });
        if let Err(error) = shown {
            refused(out, command, error);
            return;
        }
    }
    let _ = writeln!(out, "{name} log: end");
}

/// `vm list`: every page, then one table.
fn list<H: Hypervisor>(out: &mut Out<'_, H>) {
    let mut pager = ListPager::new();
    let mut vms: heapless::Vec<ipc::vm::VmInfo, { ipc::syscall::MAX_VMS }> = heapless::Vec::new();
    while let Some(request) = pager.next_request() {
        match out.hv.vm(&request).map(|response| pager.accept(response)) {
            Ok(Ok(page)) => {
                for vm in page {
                    let _ = vms.push(vm);
                }
            }
            Ok(Err(error)) => {
                refused(out, &VmCommand::List, error);
                return;
            }
            Err(e) => {
                let _ = writeln!(out, "error: cannot reach the vm-manager: {e}");
                return;
            }
        }
    }
    let _ = write!(out, "{}", VmTable(&vms));
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
