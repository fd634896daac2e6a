//! The command grammar: a shell line ([`parse_line`]) or the CLI's words
//! ([`parse_vm`]) into a [`Command`], and one clear line for each mistake
//! ([`ParseError`]). A shell line is split into words by the quoting rule
//! of [`crate::words`]; the CLI's words come already split by the host's
//! shell.
#![allow(
    clippy::result_large_err,
    reason = "a ParseError quotes the user's word (136 bytes); the shell task has no heap to box it, and it lives briefly on the stack"
)]

use core::fmt;

use ipc::blk::MAX_DISKS;
use ipc::vm::{ConsolePort, MAX_WIRE_CMDLINE, WireCmdline};
use vm_manager::{ImageName, InvalidName, MAX_VCPUS, VmName};

use crate::command::{Command, CreateArgs, VmCommand};
use crate::text::Quoted;
use crate::words::{SplitError, Words};

pub use crate::words::MAX_LINE;

/// The shell's `help` text.
pub const HELP: &str = "\
vm list                      list the VMs; a powered-off VM that ended says
                             why: powered-off (stopped: guest fault)
vm info NAME                 show one VM: its last exit (why it last stopped
                             running), its guest exits by kind and its I/O
                             round trips and time in the services, and each
                             vCPU's state (running, waiting for I/O,
                             waiting, stopped, held) and exits; for a
                             dynamic VM that ended lately (the last 8 are
                             kept): no VM named NAME (it ended: ...)
vm create NAME [--from TEMPLATE] [--image IMAGE] [--mem MiB] [--vcpus N]
          [--kernel IMAGE] [--initrd IMAGE] [--cmdline TEXT] [--disk N]
                             create a VM (a static one if NAME is configured;
                             another needs --image, --kernel or --from);
                             --kernel boots a Linux Image instead of --image,
                             with an initial ramdisk and a command line;
                             --disk N gives it host disk N (0-7, one VM's at
                             a time) as a virtio-blk device; --vcpus N gives
                             it N vCPUs (1-8)
vm start|pause|resume NAME   run, hold or continue a VM's vCPUs
vm reset NAME [--new-genid]  reboot a VM (--new-genid: new generation ID)
vm shutdown NAME             power a VM off
vm destroy NAME              tear a VM down, even while it runs
vm clone SRC NEW             copy a paused VM into a new VM
vm log NAME                  print the VM's recent console output (the last
                             4096 bytes it wrote, kept while it exists)
images                       list the guest images in the boot image: name,
                             kind (raw, Linux Image, initrd) and size
console NAME [--hvc]         attach the console to a VM's UART (--hvc: its
                             virtio console, Linux's /dev/hvc0): typed bytes
                             go there, only its output is shown, the other
                             VMs' lines are held and shown at detach;
                             Ctrl-] detaches
mem                          show the hypervisor's free memory
help                         this text
halt                         stop the hypervisor
Double quotes keep spaces in a word: --cmdline \"console=ttyS0 quiet\"; inside
them, write \\\" for a quote and \\\\ for a backslash.
";

/// Where a command was typed; decides how errors refer to usage and help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Surface {
    /// What precedes a VM command in a usage line (`vm `, `mica `).
    pub vm_prefix: &'static str,
    /// Where to find the list of commands.
    pub help_hint: &'static str,
}

impl Surface {
    /// The hypervisor console's shell.
    pub const SHELL: Surface = Surface {
        vm_prefix: "vm ",
        help_hint: "type help for the commands",
    };
    /// The host `mica` CLI.
    pub const CLI: Surface = Surface {
        vm_prefix: "mica ",
        help_hint: "run mica --help for the commands",
    };
}

/// What is wrong with a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The first word is no command; `suggestion` is a close one.
    UnknownCommand {
        /// The word typed.
        word: Quoted,
        /// The command that was probably meant.
        suggestion: Option<&'static str>,
    },
    /// `vm` (or the CLI) without a command.
    MissingCommand,
    /// A required argument is missing; `what` names it (`NAME`).
    MissingArgument {
        /// The missing argument.
        what: &'static str,
    },
    /// A word the command does not take.
    ExtraArgument {
        /// The word.
        arg: Quoted,
    },
    /// An option the command does not know.
    UnknownOption {
        /// The option.
        option: Quoted,
    },
    /// An option without its value.
    MissingValue {
        /// The option.
        option: &'static str,
    },
    /// An option given twice.
    RepeatedOption {
        /// The option.
        option: &'static str,
    },
    /// An option's value is not a number in range.
    BadNumber {
        /// The option.
        option: &'static str,
        /// The value typed.
        text: Quoted,
        /// What it must be.
        rule: &'static str,
    },
    /// A VM, template or image name breaks the naming rule.
    InvalidName(InvalidName),
    /// A shell line longer than [`MAX_LINE`] bytes.
    LineTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A `"` opens a quoted word that does not end.
    UnclosedQuote,
    /// `--kernel` and `--image` together.
    KernelAndImage,
    /// `--initrd` or `--cmdline` without a Linux kernel to go with: no
    /// `--kernel`, and a raw `--image` or no `--from` template that might
    /// have one.
    NeedsKernel {
        /// The option (`--initrd` or `--cmdline`).
        option: &'static str,
        /// `--image` names a raw guest.
        raw_image: bool,
    },
    /// A `--cmdline` longer than the vm-manager takes
    /// ([`MAX_WIRE_CMDLINE`] bytes).
    CmdlineTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A `--cmdline` with a control character (NUL, tab, newline ...).
    CmdlineControl {
        /// The character.
        ch: char,
    },
}

/// A command that could not be parsed, with what is wrong and how the
/// command is used. Displays as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    problem: Problem,
    usage: Option<Usage>,
    surface: Surface,
}

/// A command's usage line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Usage {
    text: &'static str,
    /// A VM command (shown after the surface's prefix).
    vm: bool,
}

impl ParseError {
    /// What is wrong.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::UnknownCommand { word, suggestion } => {
                write!(f, "unknown command {word}")?;
                if let Some(suggestion) = suggestion {
                    write!(f, " (did you mean \"{suggestion}\"?)")?;
                }
                write!(f, "; {}", self.surface.help_hint)?;
            }
            Problem::MissingCommand => {
                f.write_str("missing command (one of")?;
                for (at, verb) in VM_COMMANDS.iter().enumerate() {
                    let separator = if at == 0 { " " } else { ", " };
                    write!(f, "{separator}{verb}")?;
                }
                write!(f, "); {}", self.surface.help_hint)?;
            }
            Problem::MissingArgument { what } => write!(f, "missing {what}")?,
            Problem::ExtraArgument { arg } => write!(f, "unexpected argument {arg}")?,
            Problem::UnknownOption { option } => write!(f, "unknown option {option}")?,
            Problem::MissingValue { option } => write!(f, "{option} needs a value")?,
            Problem::RepeatedOption { option } => write!(f, "{option} is given twice")?,
            Problem::BadNumber { option, text, rule } => {
                write!(f, "{option} {text} is not valid: {rule}")?
            }
            Problem::InvalidName(invalid) => write!(f, "{invalid}")?,
            Problem::LineTooLong { len } => write!(
                f,
                "the line is too long ({len} bytes): use at most {MAX_LINE}"
            )?,
            Problem::UnclosedQuote => f.write_str(
                "a quote is not closed: end the quoted text with \" \
                 (inside quotes, write \\\" for a quote and \\\\ for a backslash)",
            )?,
            Problem::KernelAndImage => {
                f.write_str("use --image for a raw guest or --kernel for a Linux Image, not both")?
            }
            Problem::NeedsKernel {
                option,
                raw_image: true,
            } => write!(
                f,
                "{option} is for a Linux kernel, not a raw --image: \
                 use --kernel IMAGE instead of --image"
            )?,
            Problem::NeedsKernel {
                option,
                raw_image: false,
            } => write!(
                f,
                "{option} needs a Linux kernel: add --kernel IMAGE \
                 (or --from a template that boots one)"
            )?,
            Problem::CmdlineTooLong { len } => write!(
                f,
                "--cmdline is too long ({len} bytes): the hypervisor takes \
                 at most {MAX_WIRE_CMDLINE}"
            )?,
            Problem::CmdlineControl { ch } => write!(
                f,
                "--cmdline contains the control character {ch:?}: \
                 use printable characters and spaces"
            )?,
        }
        if let Some(usage) = self.usage {
            let prefix = if usage.vm { self.surface.vm_prefix } else { "" };
            write!(f, " (usage: {prefix}{})", usage.text)?;
        }
        Ok(())
    }
}

/// The VM command words [`parse_vm`] takes (after `vm` in the shell, first
/// in the CLI), each [`VmCommand::verb`] of its command.
pub const VM_COMMANDS: [&str; 12] = [
    "list", "images", "info", "create", "start", "pause", "resume", "reset", "shutdown", "destroy",
    "clone", "log",
];

/// The first words [`parse_line`] takes.
pub const SHELL_COMMANDS: [&str; 6] = ["vm", "console", "images", "mem", "help", "halt"];

const MEM_RULE: &str = "use a whole number of MiB from 1 to 4294967295";
const VCPUS_RULE: &str = "use a whole number of vCPUs from 1 to 8";
const _: () = assert!(MAX_VCPUS == 8, "VCPUS_RULE and HELP say vCPUs 1-8");
const DISK_RULE: &str = "use a disk number from 0 to 7";
const _: () = assert!(MAX_DISKS == 8, "DISK_RULE and HELP say disks 0-7");

fn vm_usage(verb: &str) -> &'static str {
    match verb {
        "create" => {
            "create NAME [--from TEMPLATE] [--image IMAGE] [--mem MiB] [--vcpus N] \
             [--kernel IMAGE] [--initrd IMAGE] [--cmdline TEXT] [--disk N]"
        }
        "reset" => "reset NAME [--new-genid]",
        "clone" => "clone SRC NEW",
        "list" => "list",
        "images" => "images",
        "info" => "info NAME",
        "start" => "start NAME",
        "pause" => "pause NAME",
        "resume" => "resume NAME",
        "shutdown" => "shutdown NAME",
        "log" => "log NAME",
        _ => "destroy NAME",
    }
}

/// Parses one shell line, split into words by the quoting rule of
/// [`crate::words`]. An empty (or all-blank) line is `Ok(None)`.
pub fn parse_line(line: &str) -> Result<Option<Command>, ParseError> {
    let surface = Surface::SHELL;
    let split = Words::split(line).map_err(|e| ParseError {
        problem: match e {
            SplitError::TooLong { len } => Problem::LineTooLong { len },
            SplitError::UnclosedQuote => Problem::UnclosedQuote,
        },
        usage: None,
        surface,
    })?;
    let mut words = split.iter();
    let Some(first) = words.next() else {
        return Ok(None);
    };
    let plain = |text: &'static str| Usage { text, vm: false };
    let command = match first {
        "vm" => Command::Vm(parse_vm(words, surface)?),
        "console" => {
            let (name, port) = parse_console(words, surface)?;
            Command::Console { name, port }
        }
        "images" => {
            Args::new(words, plain("images"), surface).finish()?;
            Command::Vm(VmCommand::Images)
        }
        "mem" => {
            Args::new(words, plain("mem"), surface).finish()?;
            Command::Mem
        }
        "help" => {
            Args::new(words, plain("help"), surface).finish()?;
            Command::Help
        }
        "halt" => {
            Args::new(words, plain("halt"), surface).finish()?;
            Command::Halt
        }
        other => {
            // `list`, `start` ... without `vm` get the full command proposed.
            let suggestion = VM_COMMANDS
                .iter()
                .position(|verb| *verb == other || close(other, verb))
                .and_then(|at| VM_FULL.get(at).copied())
                .or_else(|| suggest(other, &SHELL_COMMANDS));
            return Err(ParseError {
                problem: Problem::UnknownCommand {
                    word: Quoted::new(other),
                    suggestion,
                },
                usage: None,
                surface,
            });
        }
    };
    Ok(Some(command))
}

const VM_FULL: [&str; 12] = [
    "vm list",
    "images",
    "vm info",
    "vm create",
    "vm start",
    "vm pause",
    "vm resume",
    "vm reset",
    "vm shutdown",
    "vm destroy",
    "vm clone",
    "vm log",
];

/// Parses the words after `console`: the VM's name, and `--hvc` for its
/// virtio console instead of its UART.
pub fn parse_console<'a>(
    words: impl IntoIterator<Item = &'a str>,
    surface: Surface,
) -> Result<(VmName, ConsolePort), ParseError> {
    // The CLI shows its own prefix (`mica console NAME`).
    let usage = Usage {
        text: "console NAME [--hvc]",
        vm: surface == Surface::CLI,
    };
    let mut args = Args::new(words.into_iter(), usage, surface);
    let mut name = None;
    let mut port = ConsolePort::Serial;
    while let Some(word) = args.next_word() {
        match word {
            Word::Option("--hvc") if port == ConsolePort::Serial => port = ConsolePort::Virtio,
            Word::Option("--hvc") => return Err(args.repeated("--hvc")),
            Word::Option(other) => return Err(args.unknown_option(other)),
            Word::Positional(text) if name.is_none() => name = Some(args.vm_name(text)?),
            Word::Positional(text) => return Err(args.extra(text)),
        }
    }
    let name = name.ok_or_else(|| args.missing("NAME"))?;
    Ok((name, port))
}

/// Parses a VM command from its words (`start vm0`, `create web --mem 256`):
/// what follows `vm` in the shell, or the CLI's arguments after its global
/// options.
pub fn parse_vm<'a>(
    words: impl IntoIterator<Item = &'a str>,
    surface: Surface,
) -> Result<VmCommand, ParseError> {
    let mut words = words.into_iter();
    let error = |problem| ParseError {
        problem,
        usage: None,
        surface,
    };
    let verb = words.next().ok_or(error(Problem::MissingCommand))?;
    let Some(verb) = VM_COMMANDS.iter().copied().find(|known| *known == verb) else {
        return Err(error(Problem::UnknownCommand {
            word: Quoted::new(verb),
            suggestion: suggest(verb, &VM_COMMANDS),
        }));
    };
    let usage = Usage {
        text: vm_usage(verb),
        vm: true,
    };
    let mut args = Args::new(words, usage, surface);
    let command = match verb {
        "list" => VmCommand::List,
        "images" => VmCommand::Images,
        "create" => parse_create(&mut args)?,
        "reset" => {
            let mut new_generation_id = false;
            let mut name = None;
            while let Some(word) = args.next_word() {
                match word {
                    Word::Option("--new-genid") if !new_generation_id => new_generation_id = true,
                    Word::Option("--new-genid") => return Err(args.repeated("--new-genid")),
                    Word::Option(other) => return Err(args.unknown_option(other)),
                    Word::Positional(text) if name.is_none() => name = Some(args.vm_name(text)?),
                    Word::Positional(text) => return Err(args.extra(text)),
                }
            }
            let name = name.ok_or_else(|| args.missing("NAME"))?;
            VmCommand::Reset {
                name,
                new_generation_id,
            }
        }
        "clone" => {
            let source = args.name("SRC")?;
            let name = args.name("NEW")?;
            VmCommand::Clone { source, name }
        }
        _ => {
            let name = args.name("NAME")?;
            match verb {
                "info" => VmCommand::Info { name },
                "start" => VmCommand::Start { name },
                "pause" => VmCommand::Pause { name },
                "resume" => VmCommand::Resume { name },
                "shutdown" => VmCommand::Shutdown { name },
                "log" => VmCommand::Log { name },
                _ => VmCommand::Destroy { name },
            }
        }
    };
    args.finish()?;
    Ok(command)
}

fn parse_create<'a, I: Iterator<Item = &'a str>>(
    args: &mut Args<'a, I>,
) -> Result<VmCommand, ParseError> {
    let mut name = None;
    let mut template = None;
    let mut image = None;
    let mut mem_mib = None;
    let mut vcpus = None;
    let mut kernel = None;
    let mut initrd = None;
    let mut cmdline = None;
    let mut disk = None;
    while let Some(word) = args.next_word() {
        match word {
            Word::Positional(text) if name.is_none() => name = Some(args.vm_name(text)?),
            Word::Positional(text) => return Err(args.extra(text)),
            Word::Option("--from") => {
                let text = args.value("--from", template.is_some())?;
                template = Some(args.vm_name(text)?);
            }
            Word::Option("--image") => {
                let text = args.value("--image", image.is_some())?;
                image = Some(args.image_name(text)?);
            }
            Word::Option("--kernel") => {
                let text = args.value("--kernel", kernel.is_some())?;
                kernel = Some(args.image_name(text)?);
            }
            Word::Option("--initrd") => {
                let text = args.value("--initrd", initrd.is_some())?;
                initrd = Some(args.image_name(text)?);
            }
            Word::Option("--cmdline") => {
                let text = args.value("--cmdline", cmdline.is_some())?;
                cmdline = Some(args.cmdline(text)?);
            }
            Word::Option("--mem") => {
                let text = args.value("--mem", mem_mib.is_some())?;
                let mem = text.parse::<u32>().ok().filter(|mem| *mem > 0);
                mem_mib = Some(mem.ok_or_else(|| args.bad_number("--mem", text, MEM_RULE))?);
            }
            Word::Option("--vcpus") => {
                let text = args.value("--vcpus", vcpus.is_some())?;
                let count = text
                    .parse::<u8>()
                    .ok()
                    .filter(|count| (1..=MAX_VCPUS).contains(count));
                vcpus = Some(count.ok_or_else(|| args.bad_number("--vcpus", text, VCPUS_RULE))?);
            }
            Word::Option("--disk") => {
                let text = args.value("--disk", disk.is_some())?;
                let number = text
                    .parse::<u8>()
                    .ok()
                    .filter(|number| usize::from(*number) < MAX_DISKS);
                disk = Some(number.ok_or_else(|| args.bad_number("--disk", text, DISK_RULE))?);
            }
            Word::Option(other) => return Err(args.unknown_option(other)),
        }
    }
    let name = name.ok_or_else(|| args.missing("NAME"))?;
    if kernel.is_none() {
        // The vm-manager would refuse these; say why before asking it.
        let linux_only = match (&initrd, &cmdline) {
            (Some(_), _) => Some("--initrd"),
            (None, Some(_)) => Some("--cmdline"),
            (None, None) => None,
        };
        if let Some(option) = linux_only {
            let raw_image = image.is_some();
            if raw_image || template.is_none() {
                return Err(args.without_usage(Problem::NeedsKernel { option, raw_image }));
            }
        }
    } else if image.is_some() {
        return Err(args.without_usage(Problem::KernelAndImage));
    }
    Ok(VmCommand::Create(CreateArgs {
        name,
        template,
        image,
        mem_mib,
        vcpus,
        kernel,
        initrd,
        cmdline,
        disk,
    }))
}

/// A word of a command: an option (`--mem`) or anything else. After `--`
/// every word is positional (a VM may be named `--odd`).
enum Word<'a> {
    Option(&'a str),
    Positional(&'a str),
}

/// The words after the command word, and how to report their mistakes.
struct Args<'a, I: Iterator<Item = &'a str>> {
    words: I,
    options_done: bool,
    usage: Usage,
    surface: Surface,
}

impl<'a, I: Iterator<Item = &'a str>> Args<'a, I> {
    fn new(words: I, usage: Usage, surface: Surface) -> Self {
        Args {
            words,
            options_done: false,
            usage,
            surface,
        }
    }

    fn error(&self, problem: Problem) -> ParseError {
        ParseError {
            problem,
            usage: Some(self.usage),
            surface: self.surface,
        }
    }

    fn next_word(&mut self) -> Option<Word<'a>> {
        let word = self.words.next()?;
        if self.options_done || !word.starts_with("--") {
            return Some(Word::Positional(word));
        }
        if word == "--" {
            self.options_done = true;
            return self.next_word();
        }
        Some(Word::Option(word))
    }

    /// The next word as a VM name; `what` names it when it is missing.
    fn name(&mut self, what: &'static str) -> Result<VmName, ParseError> {
        match self.next_word() {
            Some(Word::Positional(text)) => self.vm_name(text),
            Some(Word::Option(option)) => Err(self.unknown_option(option)),
            None => Err(self.missing(what)),
        }
    }

    /// The value of `option` (given twice when `repeated`).
    fn value(&mut self, option: &'static str, repeated: bool) -> Result<&'a str, ParseError> {
        if repeated {
            return Err(self.repeated(option));
        }
        self.words
            .next()
            .ok_or_else(|| self.error(Problem::MissingValue { option }))
    }

    /// Fails when words are left over.
    fn finish(mut self) -> Result<(), ParseError> {
        match self.next_word() {
            None => Ok(()),
            Some(Word::Positional(text)) => Err(self.extra(text)),
            Some(Word::Option(option)) => Err(self.unknown_option(option)),
        }
    }

    fn vm_name(&self, text: &str) -> Result<VmName, ParseError> {
        VmName::parse(text).map_err(|e| self.invalid(e))
    }

    fn image_name(&self, text: &str) -> Result<ImageName, ParseError> {
        ImageName::parse(text).map_err(|e| self.invalid(e))
    }

    /// `text` as a kernel command line: printable, and short enough for the
    /// vm-manager's `Create` message.
    fn cmdline(&self, text: &str) -> Result<WireCmdline, ParseError> {
        if let Some(ch) = text.chars().find(|ch| ch.is_control()) {
            return Err(self.without_usage(Problem::CmdlineControl { ch }));
        }
        WireCmdline::try_from(text)
            .map_err(|_| self.without_usage(Problem::CmdlineTooLong { len: text.len() }))
    }

    /// A problem whose message says what to do, without the usage line.
    fn without_usage(&self, problem: Problem) -> ParseError {
        ParseError {
            problem,
            usage: None,
            surface: self.surface,
        }
    }

    fn invalid(&self, invalid: InvalidName) -> ParseError {
        ParseError {
            problem: Problem::InvalidName(invalid),
            usage: None,
            surface: self.surface,
        }
    }

    fn missing(&self, what: &'static str) -> ParseError {
        self.error(Problem::MissingArgument { what })
    }

    fn extra(&self, text: &str) -> ParseError {
        self.error(Problem::ExtraArgument {
            arg: Quoted::new(text),
        })
    }

    fn unknown_option(&self, option: &str) -> ParseError {
        self.error(Problem::UnknownOption {
            option: Quoted::new(option),
        })
    }

    fn repeated(&self, option: &'static str) -> ParseError {
        self.error(Problem::RepeatedOption { option })
    }

    fn bad_number(&self, option: &'static str, text: &str, rule: &'static str) -> ParseError {
        ParseError {
            problem: Problem::BadNumber {
                option,
                text: Quoted::new(text),
                rule,
            },
            usage: None,
            surface: self.surface,
        }
    }
}

/// The candidate closest to `word` if it is close enough to be a typo.
fn suggest(word: &str, candidates: &[&'static str]) -> Option<&'static str> {
    candidates
        .iter()
        .copied()
        .find(|candidate| close(word, candidate))
}

/// Whether `word` is a typo of `candidate`: at most one edit for short
/// words, two for longer ones (an edit inserts, deletes, replaces or swaps
/// two neighbouring characters).
fn close(word: &str, candidate: &str) -> bool {
    let limit = if candidate.len() <= 4 { 1 } else { 2 };
    edit_distance(word, candidate).is_some_and(|d| d <= limit)
}

/// The optimal-string-alignment distance of two words of at most 15
/// characters (`None` for longer words).
fn edit_distance(a: &str, b: &str) -> Option<usize> {
    const MAX: usize = 15;
    let mut a_chars = ['\0'; MAX];
    let mut b_chars = ['\0'; MAX];
    let a_len = fill(a, &mut a_chars)?;
    let b_len = fill(b, &mut b_chars)?;
    // rows[i % 3][j]: distance between a[..i] and b[..j].
    let mut rows = [[0usize; MAX + 1]; 3];
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a_len {
        let (cur, prev, prev2) = (i % 3, (i + 2) % 3, (i + 1) % 3);
        rows[cur][0] = i;
        for j in 1..=b_len {
            let cost = usize::from(a_chars[i - 1] != b_chars[j - 1]);
            let mut best = (rows[prev][j] + 1)
                .min(rows[cur][j - 1] + 1)
                .min(rows[prev][j - 1] + cost);
            if i > 1
                && j > 1
                && a_chars[i - 1] == b_chars[j - 2]
                && a_chars[i - 2] == b_chars[j - 1]
            {
                best = best.min(rows[prev2][j - 2] + 1);
            }
            rows[cur][j] = best;
        }
    }
    Some(rows[a_len % 3][b_len])
}

fn fill(word: &str, out: &mut [char]) -> Option<usize> {
    let mut len = 0;
    for ch in word.chars() {
        *out.get_mut(len)? = ch;
        len += 1;
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("strat", "start"), Some(1));
        assert_eq!(edit_distance("destory", "destroy"), Some(1));
        assert_eq!(edit_distance("", "vm"), Some(2));
        assert_eq!(edit_distance("kitten", "sitting"), Some(3));
        assert_eq!(edit_distance("a-very-long-word-indeed", "vm"), None);
    }
}
