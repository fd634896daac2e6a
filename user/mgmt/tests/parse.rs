//! The shell grammar and the CLI's VM commands: what each line becomes, and
//! the one error line each mistake gives.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use ipc::vm::{ConsolePort, MAX_WIRE_CMDLINE, WireCmdline};
use mica_mgmt::command::{CreateArgs, VmCommand};
use mica_mgmt::help_lines::{line, synopses, typed_forms};
use mica_mgmt::parse::{HELP, MAX_LINE, Problem, Surface};
use mica_mgmt::{Command, parse_line, parse_vm};
use vm_manager::{ImageName, VmName};

fn name(text: &str) -> VmName {
    VmName::parse(text).unwrap()
}

fn image(text: &str) -> ImageName {
    ImageName::parse(text).unwrap()
}

/// `vm create NAME` with no option set.
fn bare_create(vm: &str) -> CreateArgs {
    CreateArgs {
        name: name(vm),
        template: None,
        image: None,
        mem_mib: None,
        vcpus: None,
        kernel: None,
        initrd: None,
        cmdline: None,
        disk: None,
    }
}

fn create_args(line: &str) -> CreateArgs {
    match ok(line) {
        Command::Vm(VmCommand::Create(args)) => args,
        other => panic!("{line:?}: {other:?}"),
    }
}

fn cmdline(text: &str) -> Option<WireCmdline> {
    Some(WireCmdline::try_from(text).unwrap())
}

fn cli_create(words: &[&str]) -> CreateArgs {
    match parse_vm(words.iter().copied(), Surface::CLI) {
        Ok(VmCommand::Create(args)) => args,
        other => panic!("{words:?}: {other:?}"),
    }
}

fn ok(line: &str) -> Command {
    parse_line(line)
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
        .unwrap()
}

fn err(line: &str) -> String {
    parse_line(line).unwrap_err().to_string()
}

fn cli_err(words: &[&str]) -> String {
    parse_vm(words.iter().copied(), Surface::CLI)
        .unwrap_err()
        .to_string()
}

#[test]
fn blank_lines_are_no_command() {
    assert_eq!(parse_line("").unwrap(), None);
    assert_eq!(parse_line("  \t ").unwrap(), None);
}

#[test]
fn every_command_parses() {
    let vm = |c| Command::Vm(c);
    assert_eq!(ok("vm list"), vm(VmCommand::List));
    assert_eq!(
        ok("  vm   info   web "),
        vm(VmCommand::Info { name: name("web") })
    );
    assert_eq!(ok("vm start a"), vm(VmCommand::Start { name: name("a") }));
    assert_eq!(ok("vm pause a"), vm(VmCommand::Pause { name: name("a") }));
    assert_eq!(ok("vm resume a"), vm(VmCommand::Resume { name: name("a") }));
    assert_eq!(
        ok("vm shutdown a"),
        vm(VmCommand::Shutdown { name: name("a") })
    );
    assert_eq!(
        ok("vm destroy a"),
        vm(VmCommand::Destroy { name: name("a") })
    );
    assert_eq!(
        ok("vm reset a"),
        vm(VmCommand::Reset {
            name: name("a"),
            new_generation_id: false
        })
    );
    for line in ["vm reset a --new-genid", "vm reset --new-genid a"] {
        assert_eq!(
            ok(line),
            vm(VmCommand::Reset {
                name: name("a"),
                new_generation_id: true
            }),
            "{line}"
        );
    }
    assert_eq!(
        ok("vm clone src new"),
        vm(VmCommand::Clone {
            source: name("src"),
            name: name("new")
        })
    );
    assert_eq!(
        ok("console guest0"),
        Command::Console {
            name: name("guest0"),
            port: ConsolePort::Serial,
        }
    );
    for line in ["console guest0 --hvc", "console --hvc guest0"] {
        assert_eq!(
            ok(line),
            Command::Console {
                name: name("guest0"),
                port: ConsolePort::Virtio,
            }
        );
    }
    assert_eq!(ok("help"), Command::Help);
    assert_eq!(ok("halt"), Command::Halt);
    assert_eq!(ok("mem"), Command::Mem);
    assert_eq!(ok("  mem  "), Command::Mem);
}

#[test]
fn create_takes_options_in_any_order() {
    let full = Command::Vm(VmCommand::Create(CreateArgs {
        template: Some(name("rtvm")),
        image: Some(image("linux-6.12")),
        mem_mib: Some(256),
        vcpus: Some(2),
        ..bare_create("web")
    }));
    assert_eq!(
        ok("vm create web --from rtvm --image linux-6.12 --mem 256 --vcpus 2"),
        full
    );
    assert_eq!(
        ok("vm create --vcpus 2 --mem 256 web --image linux-6.12 --from rtvm"),
        full
    );
    assert_eq!(
        ok("vm create web"),
        Command::Vm(VmCommand::Create(bare_create("web")))
    );
    // After `--`, a name may start with `--`.
    assert_eq!(
        ok("vm create --mem 1 -- --odd"),
        Command::Vm(VmCommand::Create(CreateArgs {
            mem_mib: Some(1),
            ..bare_create("--odd")
        }))
    );
}

#[test]
fn unknown_commands_suggest_the_right_one() {
    assert_eq!(
        err("vn list"),
        "unknown command \"vn\" (did you mean \"vm\"?); type help for the commands"
    );
    assert_eq!(
        err("list"),
        "unknown command \"list\" (did you mean \"vm list\"?); type help for the commands"
    );
    assert_eq!(
        err("strat vm0"),
        "unknown command \"strat\" (did you mean \"vm start\"?); type help for the commands"
    );
    assert_eq!(
        err("mme"),
        "unknown command \"mme\" (did you mean \"mem\"?); type help for the commands"
    );
    assert_eq!(
        err("frobnicate"),
        "unknown command \"frobnicate\"; type help for the commands"
    );
    assert_eq!(
        err("vm destory vm0"),
        "unknown command \"destory\" (did you mean \"destroy\"?); type help for the commands"
    );
    assert_eq!(
        err("vm xyzzy"),
        "unknown command \"xyzzy\"; type help for the commands"
    );
    assert_eq!(
        cli_err(&["lsit"]),
        "unknown command \"lsit\" (did you mean \"list\"?); run mica --help for the commands"
    );
}

#[test]
fn vm_without_a_command_lists_them() {
    assert_eq!(
        err("vm"),
        "missing command (one of list, images, info, create, start, pause, resume, reset, shutdown, \
         destroy, clone, log); type help for the commands"
    );
    assert_eq!(
        cli_err(&[]),
        "missing command (one of list, images, info, create, start, pause, resume, reset, shutdown, \
         destroy, clone, log); run mica --help for the commands"
    );
}

#[test]
fn missing_and_extra_arguments_show_the_usage() {
    assert_eq!(err("vm start"), "missing NAME (usage: vm start NAME)");
    assert_eq!(
        err("vm start a b"),
        "unexpected argument \"b\" (usage: vm start NAME)"
    );
    assert_eq!(
        err("vm list all"),
        "unexpected argument \"all\" (usage: vm list)"
    );
    assert_eq!(err("vm clone a"), "missing NEW (usage: vm clone SRC NEW)");
    assert_eq!(err("vm clone"), "missing SRC (usage: vm clone SRC NEW)");
    assert_eq!(
        err("vm reset"),
        "missing NAME (usage: vm reset NAME [--new-genid])"
    );
    assert_eq!(
        err("vm reset a b"),
        "unexpected argument \"b\" (usage: vm reset NAME [--new-genid])"
    );
    assert_eq!(err("console"), "missing NAME (usage: console NAME [--hvc])");
    assert_eq!(
        err("console a b"),
        "unexpected argument \"b\" (usage: console NAME [--hvc])"
    );
    assert_eq!(
        err("console a --hvc --hvc"),
        "--hvc is given twice (usage: console NAME [--hvc])"
    );
    assert_eq!(
        err("console a --uart"),
        "unknown option \"--uart\" (usage: console NAME [--hvc])"
    );
    assert_eq!(err("help me"), "unexpected argument \"me\" (usage: help)");
    assert_eq!(err("halt now"), "unexpected argument \"now\" (usage: halt)");
    assert_eq!(err("mem all"), "unexpected argument \"all\" (usage: mem)");
    assert_eq!(err("mem --mib"), "unknown option \"--mib\" (usage: mem)");
    assert_eq!(cli_err(&["info"]), "missing NAME (usage: mica info NAME)");
}

#[test]
fn option_mistakes_are_named() {
    const CREATE: &str = "(usage: vm create NAME [--from TEMPLATE] [--image IMAGE] [--mem MiB] \
         [--vcpus N] [--kernel IMAGE] [--initrd IMAGE] [--cmdline TEXT] [--disk N])";
    assert_eq!(err("vm create"), format!("missing NAME {CREATE}"));
    assert_eq!(
        err("vm create a b"),
        format!("unexpected argument \"b\" {CREATE}")
    );
    assert_eq!(
        err("vm create a --cpus 2"),
        format!("unknown option \"--cpus\" {CREATE}")
    );
    assert_eq!(
        err("vm create a --mem"),
        format!("--mem needs a value {CREATE}")
    );
    assert_eq!(
        err("vm create a --mem 1 --mem 2"),
        format!("--mem is given twice {CREATE}")
    );
    assert_eq!(
        err("vm start a --force"),
        "unknown option \"--force\" (usage: vm start NAME)"
    );
    assert_eq!(
        err("vm start --force"),
        "unknown option \"--force\" (usage: vm start NAME)"
    );
    assert_eq!(
        err("vm reset a --new-genid --new-genid"),
        "--new-genid is given twice (usage: vm reset NAME [--new-genid])"
    );
    assert_eq!(
        err("vm reset a --hard"),
        "unknown option \"--hard\" (usage: vm reset NAME [--new-genid])"
    );
}

#[test]
fn bad_numbers_state_the_range() {
    for text in ["abc", "0", "-1", "4294967296", "1.5"] {
        assert_eq!(
            err(&format!("vm create a --mem {text}")),
            format!(
                "--mem \"{text}\" is not valid: use a whole number of MiB from 1 to 4294967295"
            )
        );
    }
    for text in ["0", "9", "17", "256", "two"] {
        assert_eq!(
            err(&format!("vm create a --vcpus {text}")),
            format!("--vcpus \"{text}\" is not valid: use a whole number of vCPUs from 1 to 8")
        );
    }
    assert!(parse_line("vm create a --vcpus 8 --mem 4294967295").is_ok());
    for text in ["8", "-1", "256", "one", ""] {
        assert_eq!(
            err(&format!("vm create a --image hello --disk \"{text}\"")),
            format!("--disk \"{text}\" is not valid: use a disk number from 0 to 7")
        );
    }
}

#[test]
fn create_takes_a_disk_in_the_shell_and_the_cli() {
    let expected = CreateArgs {
        image: Some(image("hello")),
        disk: Some(7),
        ..bare_create("d1")
    };
    assert_eq!(create_args("vm create d1 --image hello --disk 7"), expected);
    assert_eq!(
        cli_create(&["create", "d1", "--disk", "7", "--image", "hello"]),
        expected
    );
    assert_eq!(create_args("vm create d1 --disk 0").disk, Some(0));
    assert_eq!(
        err("vm create d1 --disk 1 --disk 2"),
        format!(
            "--disk is given twice (usage: vm create NAME [--from TEMPLATE] [--image IMAGE] \
             [--mem MiB] [--vcpus N] [--kernel IMAGE] [--initrd IMAGE] [--cmdline TEXT] [--disk N])"
        )
    );
    let Command::Vm(command) = ok("vm create d1 --image hello --disk 3") else {
        panic!("not a VM command")
    };
    let ipc::vm::Request::Create { options, .. } = command.request() else {
        panic!("not a create request")
    };
    assert_eq!(options.disk, Some(3));
}

#[test]
fn invalid_names_state_the_rule() {
    assert_eq!(
        err("vm start a/b"),
        "name \"a/b\" is invalid: bad character '/'; use 1-31 of [A-Za-z0-9._-]"
    );
    let long = "v".repeat(40);
    assert_eq!(
        err(&format!("vm info {long}")),
        format!(
            "name \"{}\"... is invalid: too long (40 bytes); use 1-31 of [A-Za-z0-9._-]",
            "v".repeat(32)
        )
    );
    assert_eq!(
        err("vm create ok --from b@d"),
        "name \"b@d\" is invalid: bad character '@'; use 1-31 of [A-Za-z0-9._-]"
    );
    assert_eq!(
        err("vm create ok --image a:b"),
        "name \"a:b\" is invalid: bad character ':'; use 1-31 of [A-Za-z0-9._-]"
    );
    assert_eq!(
        err("vm clone good b!d"),
        "name \"b!d\" is invalid: bad character '!'; use 1-31 of [A-Za-z0-9._-]"
    );
    assert!(matches!(
        parse_line("console \u{e9}").unwrap_err().problem(),
        Problem::InvalidName(_)
    ));
}

#[test]
fn long_words_are_quoted_shortened() {
    let word = "x".repeat(50);
    assert_eq!(
        err(&word),
        format!(
            "unknown command \"{}\"...; type help for the commands",
            "x".repeat(32)
        )
    );
}

#[test]
fn help_mentions_every_command_and_the_console_escape() {
    for word in [
        "vm list",
        "vm info",
        "vm create",
        "--from",
        "--image",
        "--mem",
        "--vcpus",
        "--kernel IMAGE",
        "--initrd IMAGE",
        "--cmdline TEXT",
        "Double quotes",
        "start",
        "pause",
        "resume",
        "vm reset",
        "--new-genid",
        "vm shutdown",
        "vm destroy",
        "vm clone",
        "console NAME [--hvc]",
        "images",
        "--image, --kernel or --from",
        "Ctrl-]",
        "mem",
        "help",
        "halt",
    ] {
        assert!(HELP.contains(word), "{word}");
    }
    assert!(HELP.lines().all(|line| line.len() <= 80));
}

#[test]
fn create_boots_a_linux_kernel_with_its_initrd_and_command_line() {
    let linux = CreateArgs {
        kernel: Some(image("linux")),
        initrd: Some(image("linux-initrd")),
        cmdline: cmdline("console=ttyS0 quiet"),
        mem_mib: Some(256),
        ..bare_create("lx")
    };
    for line in [
        "vm create lx --kernel linux --initrd linux-initrd --cmdline \"console=ttyS0 quiet\" \
         --mem 256",
        "vm create --cmdline \"console=ttyS0 quiet\" --mem 256 --initrd linux-initrd lx \
         --kernel linux",
    ] {
        assert_eq!(create_args(line), linux, "{line}");
    }
    assert_eq!(
        cli_create(&[
            "create",
            "lx",
            "--kernel",
            "linux",
            "--initrd",
            "linux-initrd",
            "--cmdline",
            "console=ttyS0 quiet",
            "--mem",
            "256",
        ]),
        linux
    );
    assert_eq!(
        create_args("vm create lx --kernel linux"),
        CreateArgs {
            kernel: Some(image("linux")),
            ..bare_create("lx")
        }
    );
    // A template may have the kernel: its initrd and command line are
    // replaced (`""` is an empty command line).
    assert_eq!(
        create_args("vm create copy --from sos --initrd rd2 --cmdline \"\""),
        CreateArgs {
            template: Some(name("sos")),
            initrd: Some(image("rd2")),
            cmdline: cmdline(""),
            ..bare_create("copy")
        }
    );
    // The longest command line the hypervisor takes fits, typed or quoted.
    let longest = "x".repeat(MAX_WIRE_CMDLINE);
    let line = format!("vm create lx --kernel k --cmdline \"{longest}\"");
    assert_eq!(create_args(&line).cmdline, cmdline(&longest));
}

#[test]
fn double_quotes_keep_spaces_and_backslash_escapes_quotes() {
    let line = |quoted: &str| {
        let line = format!("vm create lx --kernel k --cmdline {quoted}");
        create_args(&line).cmdline.unwrap()
    };
    assert_eq!(
        line(r#""dyndbg=\"file a.c +p\" quiet""#),
        r#"dyndbg="file a.c +p" quiet"#
    );
    assert_eq!(line(r#""a\\b""#), r"a\b");
    // Other backslashes, and everything outside quotes, stay as typed.
    assert_eq!(line(r#""a\nb""#), r"a\nb");
    assert_eq!(line(r"a\b"), r"a\b");
    // Quoted and plain text next to each other are one word.
    assert_eq!(line(r#"console="ttyS0 quiet"x"#), "console=ttyS0 quietx");
    assert_eq!(line("'single'"), "'single'");
    // Quotes work for every word; a space still breaks a name.
    assert_eq!(
        ok("vm \"start\" \"a\""),
        Command::Vm(VmCommand::Start { name: name("a") })
    );
    assert_eq!(
        err("vm start \"a b\""),
        "name \"a b\" is invalid: bad character ' '; use 1-31 of [A-Za-z0-9._-]"
    );
}

#[test]
fn an_unclosed_quote_or_an_overlong_line_is_refused() {
    const UNCLOSED: &str = "a quote is not closed: end the quoted text with \" \
        (inside quotes, write \\\" for a quote and \\\\ for a backslash)";
    for line in [
        "vm create lx --kernel k --cmdline \"console=ttyS0 quiet",
        r#"vm create lx --kernel k --cmdline "quiet\""#,
        "vm start \"",
    ] {
        assert_eq!(err(line), UNCLOSED, "{line}");
    }
    let long = format!("vm start {}", "a".repeat(MAX_LINE));
    assert_eq!(
        err(&long),
        format!(
            "the line is too long ({} bytes): use at most {MAX_LINE}",
            long.len()
        )
    );
}

#[test]
fn kernel_options_that_cannot_work_say_what_to_change() {
    assert_eq!(
        err("vm create lx --image raw --kernel linux"),
        "use --image for a raw guest or --kernel for a Linux Image, not both"
    );
    assert_eq!(
        err("vm create lx --initrd rd"),
        "--initrd needs a Linux kernel: add --kernel IMAGE (or --from a template that boots one)"
    );
    assert_eq!(
        err("vm create lx --cmdline quiet --mem 64"),
        "--cmdline needs a Linux kernel: add --kernel IMAGE (or --from a template that boots one)"
    );
    for line in [
        "vm create lx --image raw --cmdline quiet",
        "vm create lx --image raw --from sos --cmdline quiet",
    ] {
        assert_eq!(
            err(line),
            "--cmdline is for a Linux kernel, not a raw --image: use --kernel IMAGE instead of \
             --image",
            "{line}"
        );
    }
    assert_eq!(
        cli_err(&["create", "lx", "--initrd", "rd", "--image", "raw"]),
        "--initrd is for a Linux kernel, not a raw --image: use --kernel IMAGE instead of --image"
    );
}

#[test]
fn a_command_line_must_fit_the_wire_and_be_printable() {
    let long = "y".repeat(MAX_WIRE_CMDLINE + 1);
    let too_long = format!(
        "--cmdline is too long ({} bytes): the hypervisor takes at most {MAX_WIRE_CMDLINE}",
        MAX_WIRE_CMDLINE + 1
    );
    assert_eq!(
        err(&format!("vm create lx --kernel k --cmdline \"{long}\"")),
        too_long
    );
    assert_eq!(
        cli_err(&["create", "lx", "--kernel", "k", "--cmdline", &long]),
        too_long
    );
    for (text, shown) in [("a\tb", r"'\t'"), ("a\0", r"'\0'"), ("x\ny", r"'\n'")] {
        assert_eq!(
            cli_err(&["create", "lx", "--kernel", "k", "--cmdline", text]),
            format!(
                "--cmdline contains the control character {shown}: use printable characters and \
                 spaces"
            ),
            "{text:?}"
        );
    }
    assert_eq!(
        err("vm create lx --kernel k --cmdline \"a\tb\""),
        "--cmdline contains the control character '\\t': use printable characters and spaces"
    );
}

#[test]
fn kernel_option_mistakes_follow_the_usual_rules() {
    const CREATE: &str = "(usage: vm create NAME [--from TEMPLATE] [--image IMAGE] [--mem MiB] \
         [--vcpus N] [--kernel IMAGE] [--initrd IMAGE] [--cmdline TEXT] [--disk N])";
    for option in ["--kernel", "--initrd", "--cmdline"] {
        assert_eq!(
            err(&format!("vm create lx --kernel k {option} a {option} b")),
            format!("{option} is given twice {CREATE}")
        );
        assert_eq!(
            err(&format!("vm create lx {option}")),
            format!("{option} needs a value {CREATE}")
        );
    }
    assert_eq!(
        err("vm create lx --kernel a:b"),
        "name \"a:b\" is invalid: bad character ':'; use 1-31 of [A-Za-z0-9._-]"
    );
    assert_eq!(
        err("vm create lx --kernel k --initrd \"rd 1\""),
        "name \"rd 1\" is invalid: bad character ' '; use 1-31 of [A-Za-z0-9._-]"
    );
}

/// What a parsed command is, by its word (`vm images` and `images` are
/// one command).
fn kind(command: &Command) -> &'static str {
    match command {
        Command::Vm(vm) => vm.verb(),
        Command::Console { .. } => "console",
        Command::Mem => "mem",
        Command::Help => "help",
        Command::Halt => "halt",
    }
}

#[test]
fn every_command_in_help_parses_and_every_command_parsed_is_in_help() {
    use mica_mgmt::parse::{SHELL_COMMANDS, VM_COMMANDS};
    let entries = synopses(HELP, 0);
    assert!(entries.len() >= 12, "{entries:?}");
    let mut in_help = std::collections::BTreeSet::new();
    for synopsis in &entries {
        for (words, bare) in typed_forms(synopsis) {
            let line = line(&words);
            match parse_line(&line) {
                Ok(Some(command)) => {
                    in_help.insert(kind(&command));
                }
                other if bare => panic!("help shows {synopsis:?}, but {line:?} gives {other:?}"),
                // An option alone may be refused for what it needs with
                // it (--initrd needs --kernel), never as unknown.
                Err(e) => assert!(
                    !matches!(
                        e.problem(),
                        Problem::UnknownCommand { .. }
                            | Problem::UnknownOption { .. }
                            | Problem::ExtraArgument { .. }
                            | Problem::MissingArgument { .. }
                            | Problem::MissingValue { .. }
                    ),
                    "help shows {synopsis:?}, but {line:?}: {e}"
                ),
                Ok(None) => panic!("{line:?} is blank"),
            }
        }
    }
    let parsed: std::collections::BTreeSet<&str> = VM_COMMANDS
        .iter()
        .chain(SHELL_COMMANDS.iter().filter(|w| **w != "vm"))
        .copied()
        .collect();
    assert_eq!(in_help, parsed, "help and the parser disagree");
}

#[test]
fn log_takes_one_vm_name_in_the_shell_and_the_cli() {
    assert_eq!(
        ok("vm log web"),
        Command::Vm(VmCommand::Log { name: name("web") })
    );
    assert_eq!(
        parse_vm(["log", "web"], Surface::CLI),
        Ok(VmCommand::Log { name: name("web") })
    );
    assert_eq!(err("vm log"), "missing NAME (usage: vm log NAME)");
    assert!(err("vm log a b").starts_with("unexpected argument"));
    assert!(cli_err(&["log"]).ends_with("(usage: mica log NAME)"));
    assert!(err("log web").contains("did you mean \"vm log\"?"));
}
