//! Runs one VM command against the hypervisor and prints the outcome: a
//! table (of VMs or guest images), an info block with the VM's exit and
//! I/O figures, a VM's log (its recent console output) or a confirmation
//! line (JSON with `--json`), or the refusal on stderr (a `create` refused
//! for its image with the images there are).

use std::io::Write;

use ipc::vm::{GuestImage, VmInfo, VmStats};
use mica_mgmt::command::{Reply, ReplyError, check_stats, stats_request, wants_image_list};
use mica_mgmt::errors::ErrorMessage;
use mica_mgmt::images::{ImageChoices, ImageTable};
use mica_mgmt::json;
use mica_mgmt::log::{LogPart, LogReader};
use mica_mgmt::table::{DoneLine, InfoBlock, StatsBlock, VmTable};
use mica_mgmt::{ImageList, PagedList, Pager, VmCommand, VmList};

use crate::args::Invocation;
use crate::link::{Link, LinkError};

/// The exit status of the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Done = 0,
    /// The hypervisor refused.
    Refused = 1,
    /// The command line is wrong.
    Usage = 2,
    /// The hypervisor cannot be reached, does not answer, or speaks
    /// another protocol.
    Unreachable = 3,
}

/// What came back for a command.
enum Outcome {
    List(Vec<VmInfo>),
    Images(Vec<GuestImage>),
    Reply(Reply),
    /// `info`: the VM, and its figures (`None` when it has none) or why
    /// they could not be read (boxed: with eight vCPUs' figures they
    /// outweigh every other outcome).
    Info(VmInfo, Result<Option<Box<VmStats>>, ReplyError>),
    /// `log`: the bytes no longer kept, and the lines shown.
    Log(u64, Vec<String>),
}

/// Runs `invocation`, printing to `out` and `err`.
pub fn run(invocation: &Invocation, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let command = &invocation.command;
    let mut link = None;
    let outcome = Link::connect(&invocation.socket, invocation.timeout)
        .and_then(|connected| ask(link.insert(connected), command));
    let result = match outcome {
        Ok(Ok(outcome)) => show(invocation.json, command, &outcome, out)
            .and_then(|()| figures_refused(command, &outcome, err))
            .map(|()| Status::Done),
        Ok(Err(ReplyError::Unexpected)) => {
            let message = ErrorMessage {
                command,
                error: ReplyError::Unexpected,
            };
            writeln!(err, "error: {message}").map(|()| Status::Unreachable)
        }
        Ok(Err(error @ (ReplyError::Refused(_) | ReplyError::Ended(_)))) => {
            // The list is a help: without it the refusal is still said.
            let choices = match link.as_mut() {
                Some(link) if wants_image_list(command, &error) => {
                    read_images(link).ok().and_then(Result::ok)
                }
                _ => None,
            };
            let message = ErrorMessage { command, error };
            refused(invocation.json, &message, choices.as_deref(), out, err)
        }
        Err(error) => writeln!(err, "error: {error}").map(|()| Status::Unreachable),
    };
    // A closed stdout (`mica list | head -0`) is not worth a second error.
    result.unwrap_or(Status::Unreachable)
}

/// Sends the command's request(s); the outer error is the link's, the
/// inner one the hypervisor's.
fn ask(link: &mut Link, command: &VmCommand) -> Result<Result<Outcome, ReplyError>, LinkError> {
    if let VmCommand::Info { name } = command {
        let response = link.call(&command.request())?;
        let info = match command.check_reply(response) {
            Ok(Reply::Info(info)) => info,
            other => return Ok(other.map(Outcome::Reply)),
        };
        let stats = check_stats(link.call(&stats_request(name))?).map(|s| s.map(Box::new));
        return Ok(Ok(Outcome::Info(info, stats)));
    }
    if *command == VmCommand::Images {
        return Ok(read_images(link)?.map(Outcome::Images));
    }
    if let VmCommand::Log { name } = command {
        return read_log(link, name);
    }
    if *command != VmCommand::List {
        let response = link.call(&command.request())?;
        return Ok(command.check_reply(response).map(Outcome::Reply));
    }
    Ok(read_all::<VmList>(link)?.map(Outcome::List))
}

/// Every guest image, page by page.
fn read_images(link: &mut Link) -> Result<Result<Vec<GuestImage>, ReplyError>, LinkError> {
    read_all::<ImageList>(link)
}

/// Every entry of list `L`, page by page.
fn read_all<L: PagedList>(link: &mut Link) -> Result<Result<Vec<L::Entry>, ReplyError>, LinkError> {
    let mut pager = Pager::<L>::new();
    let mut entries = Vec::new();
    while let Some(request) = pager.next_request() {
        match pager.accept(link.call(&request)?) {
            Ok(page) => entries.extend(page),
            Err(error) => return Ok(Err(error)),
        }
    }
    Ok(Ok(entries))
}

/// A VM's log, chunk by chunk.
fn read_log(
    link: &mut Link,
    name: &vm_manager::VmName,
) -> Result<Result<Outcome, ReplyError>, LinkError> {
    let mut reader = LogReader::new(name.clone());
    let (mut lost, mut lines) = (0, Vec::new());
    while let Some(request) = reader.next_request() {
        let response = link.call(&request)?;
        let shown = reader.accept(response, &mut |part| match part {
            LogPart::Lost(n) => lost = n,
            LogPart::Line(text) => lines.push(text.to_string()),
        });
        if let Err(error) = shown {
            return Ok(Err(error));
        }
    }
    Ok(Ok(Outcome::Log(lost, lines)))
}

fn show(
    as_json: bool,
    command: &VmCommand,
    outcome: &Outcome,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut text = String::new();
    let written = match (outcome, as_json) {
        (Outcome::List(vms), false) => fmt_into(&mut text, VmTable(vms)),
        (Outcome::List(vms), true) => json::write_list(&mut text, vms),
        (Outcome::Images(images), false) => fmt_into(&mut text, ImageTable(images)),
        (Outcome::Images(images), true) => json::write_images(&mut text, images),
        (Outcome::Reply(Reply::Info(vm)), false) => fmt_into(&mut text, InfoBlock(vm)),
        (Outcome::Reply(Reply::Info(vm)), true) => json::write_vm(&mut text, vm),
        (Outcome::Reply(Reply::Done), false) => fmt_into(&mut text, DoneLine(command)),
        (Outcome::Reply(Reply::Done), true) => json::write_ok(&mut text),
        (Outcome::Info(vm, stats), false) => {
            let figures = stats.as_ref().ok().and_then(Option::as_deref);
            fmt_into(&mut text, InfoBlock(vm))
                .and_then(|()| figures.map_or(Ok(()), |s| fmt_into(&mut text, StatsBlock(s))))
        }
        (Outcome::Info(vm, stats), true) => {
            let figures = stats.as_ref().ok().and_then(Option::as_deref);
            json::write_vm_info(&mut text, vm, figures)
        }
        // `--json` is refused for `log` when the arguments are read.
        (Outcome::Log(_, lines), _) => {
            if lines.is_empty() {
                return Ok(());
            }
            text = lines.join("\n");
            Ok(())
        }
    };
    written.map_err(std::io::Error::other)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    out.write_all(text.as_bytes())
}

/// `info` still shows the VM when its figures cannot be read; the reason
/// is one line on stderr. So is a note that a log's oldest output is gone.
fn figures_refused(
    command: &VmCommand,
    outcome: &Outcome,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    match (command, outcome) {
        (VmCommand::Info { name }, Outcome::Info(_, Err(error))) => {
            writeln!(err, "error: cannot read {name}'s exit figures: {error}")
        }
        (VmCommand::Log { name }, Outcome::Log(lost, _)) if *lost > 0 => writeln!(
            err,
            "note: the first {lost} bytes of {name}'s output are no longer kept"
        ),
        _ => Ok(()),
    }
}

/// Prints a refusal; `choices`, the guest images there are, end the
/// message when a create was refused for its image.
fn refused(
    as_json: bool,
    message: &ErrorMessage<'_>,
    choices: Option<&[GuestImage]>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<Status> {
    let mut line = String::new();
    fmt_into(&mut line, message).map_err(std::io::Error::other)?;
    if let Some(images) = choices {
        fmt_into(&mut line, ImageChoices(images)).map_err(std::io::Error::other)?;
    }
    if as_json {
        let mut text = String::new();
        let ended = match &message.error {
            ReplyError::Ended(exit) => Some(exit),
            _ => None,
        };
        json::write_error_with(&mut text, message.error.code(), &line, ended)
            .map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
    }
    writeln!(err, "error: {line}")?;
    Ok(Status::Refused)
}

fn fmt_into(text: &mut String, value: impl std::fmt::Display) -> std::fmt::Result {
    use std::fmt::Write as _;
    write!(text, "{value}")
}
