//! The shell as a user at the console sees it, against mica-mgmt's
//! stand-in vm-manager (VMs `sos` and `rtvm`, powered off).

use std::string::String;
use std::vec::Vec;

use super::*;
use mica_mgmt::testing::{FakeManager, manager};

struct Fake {
    manager: FakeManager,
    printed: String,
    /// Every request sent to the vm-manager.
    sent: Vec<Request>,
    /// What `mem_info` answers.
    memory: Result<MemoryLine, ipc::Error>,
    /// The VMs have no virtio console (virtio input is `NoDevice`).
    no_hvc: bool,
}

impl Hypervisor for Fake {
    fn vm(&mut self, request: &Request) -> Result<Response, ipc::Error> {
        self.sent.push(request.clone());
        if self.no_hvc
            && matches!(
                request,
                Request::ConsoleInput {
                    port: ConsolePort::Virtio,
                    ..
                }
            )
        {
            return Ok(Response::Err(ipc::Error::NoDevice));
        }
        Ok(self.manager.handle(request.clone()))
    }
    fn print(&mut self, text: &str) {
        self.printed.push_str(text);
    }
    fn memory(&mut self) -> Result<MemoryLine, ipc::Error> {
        self.memory
    }
}

/// The console input the shell sent to the serial port: (VM name, bytes)
/// per request.
fn typed_input(hv: &Fake) -> Vec<(String, Vec<u8>)> {
    typed_input_at(hv, ConsolePort::Serial)
}

/// The console input the shell sent to `port`.
fn typed_input_at(hv: &Fake, to: ConsolePort) -> Vec<(String, Vec<u8>)> {
    hv.sent
        .iter()
        .filter_map(|request| match request {
            Request::ConsoleInput { name, port, bytes } if *port == to && !bytes.is_empty() => {
                Some((name.as_str().into(), bytes.to_vec()))
            }
            _ => None,
        })
        .collect()
}

fn fake() -> Fake {
    Fake {
        manager: manager(),
        printed: String::new(),
        sent: Vec::new(),
        memory: Ok(MemoryLine {
            free_frames: 65_536,
            total_frames: 131_072,
        }),
        no_hvc: false,
    }
}

/// Types `text` and returns what the console showed since the last call.
fn typed(shell: &mut Shell, hv: &mut Fake, text: &str) -> (Flow, String) {
    hv.printed.clear();
    let flow = shell.feed(text.as_bytes(), hv);
    (flow, core::mem::take(&mut hv.printed))
}

#[test]
fn the_prompt_echo_and_a_vm_list_table() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    shell.start(&mut hv);
    assert_eq!(hv.printed, "mica> ");
    let (flow, shown) = typed(&mut shell, &mut hv, "vm create sos\nvm list\n");
    assert_eq!(flow, Flow::Continue);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "vm create sos");
    assert_eq!(lines[1], "sos created");
    assert_eq!(lines[2], "mica> vm list");
    assert!(lines[3].starts_with("NAME  SLOT  KIND"), "{shown}");
    assert!(
        lines[4].starts_with("sos      0  static   created"),
        "{shown}"
    );
    assert!(shown.ends_with("mica> "), "{shown}");
}

#[test]
fn failures_are_one_error_line_each() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    let cases = [
        ("vm create 'bad name'\n", "error: name"),
        ("vm start ghost\n", "error: no VM named ghost"),
        (
            "vm pause sos\n",
            "error: sos is powered-off: cannot pause it",
        ),
        (
            "vm create rtvm\nvm create rtvm\n",
            "error: a VM named rtvm already exists",
        ),
        ("frobnicate\n", "error: unknown command"),
        (
            "vm create lx --kernel k --cmdline \"quiet\n",
            "error: a quote is not closed",
        ),
        (
            "vm create lx --cmdline quiet\n",
            "error: --cmdline needs a Linux kernel: add --kernel IMAGE",
        ),
        (
            "vm create c --from rtvm --initrd rd\n",
            "error: --initrd needs a Linux kernel and rtvm boots none: add --kernel IMAGE",
        ),
    ];
    for (line, error) in cases {
        let (_, shown) = typed(&mut shell, &mut hv, line);
        let errors: Vec<&str> = shown.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{line}: {shown}");
        assert!(errors[0].starts_with(error), "{line}: {shown}");
    }
}

#[test]
fn a_linux_vm_takes_a_quoted_command_line_of_the_full_wire_length() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    // 256 bytes: spaces, and an escaped quote pair the kernel sees as typed.
    let cmdline = format!("console=ttyS0 dyndbg=\"+p\" {}", "x".repeat(230));
    assert_eq!(cmdline.len(), ipc::vm::MAX_WIRE_CMDLINE);
    let quoted = cmdline.replace('"', "\\\"");
    let line = format!("vm create lx --kernel linux --initrd rd --cmdline \"{quoted}\"\n");
    let (_, shown) = typed(&mut shell, &mut hv, &line);
    assert!(shown.contains("\nlx created\n"), "{shown}");
    let (kernel, linux) = hv.manager.platform().last_load.clone().unwrap();
    let linux = linux.unwrap();
    assert_eq!(kernel.as_str(), "linux");
    assert_eq!(linux.initrd.unwrap().as_str(), "rd");
    assert_eq!(linux.cmdline.as_str(), cmdline);
}

#[test]
fn mem_shows_the_free_frames_or_one_error_line() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    let (_, shown) = typed(&mut shell, &mut hv, "mem\n");
    assert_eq!(
        shown,
        "mem\nmemory: 65536 free of 131072 frames (256 MiB free)\nmica> "
    );
    hv.memory = Err(ipc::Error::PermissionDenied);
    let (_, shown) = typed(&mut shell, &mut hv, "mem\n");
    let errors: Vec<&str> = shown.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{shown}");
    assert!(
        shown.contains("error: cannot read the memory counts: "),
        "{shown}"
    );
    assert!(!shown.contains(" free of "), "{shown}");
}

#[test]
fn help_prints_the_commands_and_halt_stops() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    let (_, shown) = typed(&mut shell, &mut hv, "help\r\n");
    assert!(shown.contains(HELP), "{shown}");
    let (flow, shown) = typed(&mut shell, &mut hv, "halt\r\nvm list\n");
    assert_eq!(flow, Flow::Halt);
    assert_eq!(shown, "halt\nmica: halting\n");
}

#[test]
fn console_attaches_forwards_typed_bytes_and_detaches_at_ctrl_bracket() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    typed(&mut shell, &mut hv, "vm create rtvm\n");
    let (_, shown) = typed(&mut shell, &mut hv, "console rtvm\nls\r");
    assert!(
        shown.contains("console attached to rtvm's UART: type Ctrl-] to detach\n"),
        "{shown}"
    );
    assert!(
        !shown.ends_with("mica> "),
        "no prompt while attached: {shown}"
    );
    let (_, shown) = typed(&mut shell, &mut hv, "x\x1dvm list\n");
    // Through the vm-manager, the only service the shell may call.
    assert_eq!(
        typed_input(&hv),
        [
            ("rtvm".into(), b"ls\r".to_vec()),
            ("rtvm".into(), b"x".to_vec())
        ]
    );
    assert!(
        shown.starts_with("\nconsole detached\nmica> vm list\n"),
        "{shown}"
    );
}

#[test]
fn console_hvc_sends_typed_bytes_to_the_virtio_console() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    typed(&mut shell, &mut hv, "vm create rtvm\n");
    let (_, shown) = typed(&mut shell, &mut hv, "console rtvm --hvc\necho hi\r");
    assert!(
        shown.contains("console attached to rtvm's virtio console (hvc0): type Ctrl-] to detach\n"),
        "{shown}"
    );
    typed(&mut shell, &mut hv, "\x1d");
    assert_eq!(
        typed_input_at(&hv, ConsolePort::Virtio),
        [("rtvm".into(), b"echo hi\r".to_vec())]
    );
    assert!(typed_input(&hv).is_empty(), "nothing reached the UART");
}

#[test]
fn console_hvc_of_a_vm_without_a_virtio_console_is_refused_before_attaching() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    hv.no_hvc = true;
    typed(&mut shell, &mut hv, "vm create rtvm\n");
    let (_, shown) = typed(&mut shell, &mut hv, "console rtvm --hvc\nls\n");
    assert!(
        shown.contains(
            "error: rtvm has no virtio console (hvc0): attach to its UART without --hvc\nmica> ls\n"
        ),
        "{shown}"
    );
    assert!(!shown.contains("console attached"), "{shown}");
    assert!(typed_input_at(&hv, ConsolePort::Virtio).is_empty());
}

#[test]
fn console_of_an_unknown_vm_stays_at_the_prompt() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    let (_, shown) = typed(&mut shell, &mut hv, "console ghost\nls\n");
    assert!(
        shown.contains("error: no VM named ghost\nmica> ls\n"),
        "{shown}"
    );
    assert!(typed_input(&hv).is_empty());
}

#[test]
fn vm_info_shows_the_exit_and_io_figures_of_a_vm_that_runs() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    typed(&mut shell, &mut hv, "vm create rtvm\nvm start rtvm\n");
    let (_, shown) = typed(&mut shell, &mut hv, "vm info rtvm\n");
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[0], "vm info rtvm");
    assert_eq!(lines[1], "name:          rtvm");
    assert_eq!(lines[4], "state:         started");
    assert_eq!(lines[7], "disk:          none");
    assert_eq!(
        &lines[9..13],
        [
            "exits:         23711 device, 310 hypercall, 12 wait, 40 interrupt, 3 other",
            "ioreq:         23702 round trips, 1.2 s in services (52.0 us each); 9 writes posted",
            "network:       12 frames sent, 10 received, 2 dropped (0 malformed sent, 2 with no room)",
            "vcpu 0:        waiting, 24076 exits, 23702 I/O round trips",
        ],
        "{shown}"
    );
    assert_eq!(lines[13], "mica> ");
    // A powered-off VM has no figures: the settings alone.
    let (_, shown) = typed(&mut shell, &mut hv, "vm info sos\n");
    assert!(shown.contains("state:         powered-off\n"), "{shown}");
    assert!(!shown.contains("exits:"), "{shown}");
    assert!(!shown.contains("error"), "{shown}");
}

#[test]
fn a_vm_info_whose_figures_are_refused_says_so_in_one_line() {
    struct NoFigures(Fake);
    impl Hypervisor for NoFigures {
        fn vm(&mut self, request: &Request) -> Result<Response, ipc::Error> {
            match request {
                Request::Stats { .. } => Ok(Response::Err(ipc::Error::KernelRefused)),
                other => self.0.vm(other),
            }
        }
        fn print(&mut self, text: &str) {
            self.0.print(text);
        }
        fn memory(&mut self) -> Result<MemoryLine, ipc::Error> {
            self.0.memory()
        }
    }
    let (mut shell, mut hv) = (Shell::new(), NoFigures(fake()));
    shell.feed(b"vm create rtvm\n", &mut hv);
    hv.0.printed.clear();
    shell.feed(b"vm info rtvm\n", &mut hv);
    let shown = core::mem::take(&mut hv.0.printed);
    assert!(shown.contains("generation id: "), "{shown}");
    let errors: Vec<&str> = shown.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{shown}");
    assert!(
        errors[0].starts_with("error: cannot read rtvm's exit figures: "),
        "{shown}"
    );
}

#[test]
fn a_vm_that_ended_says_how_in_info_and_list() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    shell.start(&mut hv);
    let (_, shown) = typed(
        &mut shell,
        &mut hv,
        "vm create web\nvm destroy web\nvm info web\n",
    );
    assert!(
        shown.contains("\nerror: no VM named web (it ended: destroyed by the operator)\n"),
        "{shown}"
    );
    let (_, shown) = typed(
        &mut shell,
        &mut hv,
        "vm create sos\nvm start sos\nvm shutdown sos\nvm info sos\nvm list\n",
    );
    assert!(
        shown.contains("state:         powered-off\nlast exit:     shut down by the operator\n"),
        "{shown}"
    );
    assert!(
        shown.contains("\nsos      0  static   powered-off (shut down)  "),
        "{shown}"
    );
}

fn fake_with_images() -> Fake {
    Fake {
        manager: mica_mgmt::testing::manager_with_images(),
        ..fake()
    }
}

#[test]
fn images_lists_the_guest_images_with_kind_and_size() {
    let (mut shell, mut hv) = (Shell::new(), fake_with_images());
    let (_, shown) = typed(&mut shell, &mut hv, "images\n");
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines[1], "NAME     KIND         SIZE", "{shown}");
    assert_eq!(lines[2], "hello    raw          8 KiB");
    assert_eq!(lines[3], "vmlinux  Linux Image  24 MiB");
    assert_eq!(lines[4], "initrd   initrd       3 MiB");
    assert_eq!(lines[5], "linux    raw          64 KiB");
    assert_eq!(lines[6], "zephyr   raw          300 bytes");
    assert_eq!(lines[7], "mica> ");
    // `vm images` is the same command.
    let (_, again) = typed(&mut shell, &mut hv, "vm images\n");
    assert_eq!(again.lines().nth(2), Some("hello    raw          8 KiB"));
    // An empty boot image says so.
    let (mut shell, mut hv) = (Shell::new(), fake());
    let (_, shown) = typed(&mut shell, &mut hv, "images\n");
    assert_eq!(
        shown.lines().nth(1),
        Some("the boot image holds no guest images")
    );
}

#[test]
fn a_create_without_a_known_image_lists_the_images() {
    let (mut shell, mut hv) = (Shell::new(), fake_with_images());
    let (_, shown) = typed(&mut shell, &mut hv, "vm create web --image nope\n");
    assert_eq!(
        shown.lines().nth(1),
        Some(
            format!(
                "error: no guest image named nope: check --image; the images are: {}",
                mica_mgmt::testing::EXAMPLE_IMAGES
            )
            .as_str()
        ),
        "{shown}"
    );
    let (_, shown) = typed(&mut shell, &mut hv, "vm create web\n");
    assert_eq!(
        shown.lines().nth(1),
        Some(
            format!(
                "error: no guest image for web: name an image with --image IMAGE or a template \
                 with --from VM; `images` lists them; the images are: {}",
                mica_mgmt::testing::EXAMPLE_IMAGES
            )
            .as_str()
        ),
        "{shown}"
    );
    // With an image that exists it is made; a static VM needs none.
    let (_, shown) = typed(&mut shell, &mut hv, "vm create web --image hello\n");
    assert_eq!(shown.lines().nth(1), Some("web created"), "{shown}");
    let (_, shown) = typed(&mut shell, &mut hv, "vm create sos\n");
    assert_eq!(shown.lines().nth(1), Some("sos created"), "{shown}");
}

#[test]
fn vm_log_prints_the_vms_recent_output_and_refuses_an_unknown_vm() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    typed(&mut shell, &mut hv, "vm create rtvm\n");
    // The stand-in's console echoes what is typed at it: a guest's output.
    typed(&mut shell, &mut hv, "console rtvm\nhello\r\n\x1b[2J$ \x1d");
    let (_, shown) = typed(&mut shell, &mut hv, "vm log rtvm\n");
    assert_eq!(
        shown,
        "vm log rtvm\nrtvm log | hello\nrtvm log | \\x1b[2J$ \nrtvm log: end\nmica> "
    );
    let (_, shown) = typed(&mut shell, &mut hv, "vm log ghost\n");
    assert_eq!(shown, "vm log ghost\nerror: no VM named ghost\nmica> ");
    let (_, shown) = typed(&mut shell, &mut hv, "vm log sos\n");
    assert!(
        shown.contains("error: sos is powered-off: cannot show its log"),
        "{shown}"
    );
}

#[test]
fn an_attached_console_has_the_focus_until_it_detaches() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    typed(&mut shell, &mut hv, "vm create rtvm\n");
    let focus = |hv: &Fake| -> Vec<Option<String>> {
        hv.sent
            .iter()
            .filter_map(|request| match request {
                Request::ConsoleFocus { name } => Some(name.as_ref().map(|n| n.as_str().into())),
                _ => None,
            })
            .collect()
    };
    typed(&mut shell, &mut hv, "console ghost\n");
    assert!(focus(&hv).is_empty(), "no focus for a VM that is not there");
    typed(&mut shell, &mut hv, "console rtvm\n");
    assert_eq!(focus(&hv), [Some("rtvm".into())]);
    let (_, shown) = typed(&mut shell, &mut hv, "\x1d");
    assert_eq!(focus(&hv), [Some("rtvm".into()), None]);
    assert_eq!(shown, "\nconsole detached\nmica> ");
}

#[test]
fn a_restarted_shell_takes_the_console_focus_back_before_its_prompt() {
    let (mut shell, mut hv) = (Shell::new(), fake());
    shell.start_again(&mut hv);
    assert_eq!(hv.sent, [Request::ConsoleFocus { name: None }]);
    assert_eq!(hv.printed, "mica> ");
}
