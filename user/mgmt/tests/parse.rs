//! The shell grammar and the CLI's VM commands: what each line becomes, and
//! the one error line each mistake gives.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

use mica_mgmt::command::{CreateArgs, VmCommand};
use mica_mgmt::parse::{HELP, Problem, Surface};
use mica_mgmt::{Command, parse_line, parse_vm};
use vm_manager::{ImageName, VmName};

fn name(text: &str) -> VmName {
    VmName::parse(text).unwrap()
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
            name: name("guest0")
        }
    );
    assert_eq!(ok("help"), Command::Help);
    assert_eq!(ok("halt"), Command::Halt);
    assert_eq!(ok("mem"), Command::Mem);
    assert_eq!(ok("  mem  "), Command::Mem);
}

#[test]
fn create_takes_options_in_any_order() {
    let full = Command::Vm(VmCommand::Create(CreateArgs {
        name: name("web"),
        template: Some(name("rtvm")),
        image: Some(ImageName::parse("linux-6.12").unwrap()),
        mem_mib: Some(256),
        vcpus: Some(2),
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
        Command::Vm(VmCommand::Create(CreateArgs {
            name: name("web"),
            template: None,
            image: None,
            mem_mib: None,
            vcpus: None,
        }))
    );
    // After `--`, a name may start with `--`.
    assert_eq!(
        ok("vm create --mem 1 -- --odd"),
        Command::Vm(VmCommand::Create(CreateArgs {
            name: name("--odd"),
            template: None,
            image: None,
            mem_mib: Some(1),
            vcpus: None,
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
        "missing command (one of list, info, create, start, pause, resume, reset, shutdown, \
         destroy, clone); type help for the commands"
    );
    assert_eq!(
        cli_err(&[]),
        "missing command (one of list, info, create, start, pause, resume, reset, shutdown, \
         destroy, clone); run mica --help for the commands"
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
    assert_eq!(err("console"), "missing NAME (usage: console NAME)");
    assert_eq!(
        err("console a b"),
        "unexpected argument \"b\" (usage: console NAME)"
    );
    assert_eq!(err("help me"), "unexpected argument \"me\" (usage: help)");
    assert_eq!(err("halt now"), "unexpected argument \"now\" (usage: halt)");
    assert_eq!(err("mem all"), "unexpected argument \"all\" (usage: mem)");
    assert_eq!(err("mem --mib"), "unknown option \"--mib\" (usage: mem)");
    assert_eq!(
        cli_err(&["info"]),
        "missing NAME (usage: mica --socket SOCKET info NAME)"
    );
}

#[test]
fn option_mistakes_are_named() {
    const CREATE: &str =
        "(usage: vm create NAME [--from TEMPLATE] [--image IMAGE] [--mem MiB] [--vcpus N])";
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
    for text in ["0", "17", "256", "two"] {
        assert_eq!(
            err(&format!("vm create a --vcpus {text}")),
            format!("--vcpus \"{text}\" is not valid: use a whole number of vCPUs from 1 to 16")
        );
    }
    assert!(parse_line("vm create a --vcpus 16 --mem 4294967295").is_ok());
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
        "start",
        "pause",
        "resume",
        "vm reset",
        "--new-genid",
        "vm shutdown",
        "vm destroy",
        "vm clone",
        "console NAME",
        "Ctrl-]",
        "mem",
        "help",
        "halt",
    ] {
        assert!(HELP.contains(word), "{word}");
    }
    assert!(HELP.lines().all(|line| line.len() <= 80));
}
