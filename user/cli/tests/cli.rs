//! The real `mica` binary against a fake hypervisor: exact output for
//! people and scripts, and the exit status of every kind of failure.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers may panic on impossible values"
)]

mod common;

use common::{Behaviour, Fake, mica, mica_at, temp_dir};

const SOS: &str = "{\"name\":\"sos\",\"slot\":0,\"kind\":\"static\",\"state\":\"powered-off\",\
\"vcpus\":2,\"mem_mib\":512,\"generation_id\":\"00000000-0000-0000-0000-000000000000\",\"generation_id_random\":true,\"last_exit\":null,\"last_exit_uptime_ms\":null}";
const RTVM: &str = "{\"name\":\"rtvm\",\"slot\":1,\"kind\":\"static\",\"state\":\"powered-off\",\
\"vcpus\":1,\"mem_mib\":64,\"generation_id\":\"00000000-0000-0000-0000-000000000000\",\"generation_id_random\":true,\"last_exit\":null,\"last_exit_uptime_ms\":null}";

#[test]
fn list_json_is_exact() {
    let fake = Fake::start(Behaviour::Serve);
    let run = mica_at(&fake.socket, &["list", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(run.stdout, format!("{{\"vms\":[{SOS},{RTVM}]}}\n"));

    let run = mica_at(
        &fake.socket,
        &["create", "web", "--mem", "256", "--vcpus", "2"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = mica_at(&fake.socket, &["start", "web"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "web started\n"));

    let run = mica(&["--json", "list", "--socket", fake.socket.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "{{\"vms\":[{SOS},{RTVM},{{\"name\":\"web\",\"slot\":2,\"kind\":\"dynamic\",\
             \"state\":\"started\",\"vcpus\":2,\"mem_mib\":256,\
             \"generation_id\":\"00000000-0000-0000-0000-000000000001\",\"generation_id_random\":true,\"last_exit\":null,\"last_exit_uptime_ms\":null}}]}}\n"
        )
    );
}

#[test]
fn list_reads_every_page() {
    let fake = Fake::start(Behaviour::Serve);
    for index in 0..9 {
        let run = mica_at(&fake.socket, &["create", &format!("d{index}")]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let run = mica_at(&fake.socket, &["list"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{}", run.stdout);
    assert_eq!(
        lines[0],
        "NAME  SLOT  KIND     STATE        VCPUS  MEM(MiB)  GENERATION ID"
    );
    assert_eq!(
        lines[11],
        "d8      10  dynamic  created          1       128  00000000-0000-0000-0000-000000000009"
    );
}

#[test]
fn text_output_for_people() {
    let fake = Fake::start(Behaviour::Serve);
    let run = mica_at(&fake.socket, &["create", "rtvm"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "\
name:          rtvm
slot:          1
kind:          static
state:         created
vcpus:         1
memory:        64 MiB
disk:          none
generation id: 00000000-0000-0000-0000-000000000001
"
    );
    for (args, line) in [
        (&["start", "rtvm"][..], "rtvm started\n"),
        (&["pause", "rtvm"], "rtvm paused\n"),
        (&["resume", "rtvm"], "rtvm resumed\n"),
        (
            &["reset", "--new-genid", "rtvm"],
            "rtvm reset with a new generation ID\n",
        ),
        (&["shutdown", "rtvm"], "rtvm shut down\n"),
    ] {
        let run = mica_at(&fake.socket, args);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, line),
            "{args:?} {run:?}"
        );
    }
    let run = mica_at(&fake.socket, &["--json", "destroy", "sos"]);
    assert_eq!(run.code, 1, "{run:?}");
    let run = mica_at(&fake.socket, &["--json", "create", "x", "--vcpus", "3"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = mica_at(&fake.socket, &["--json", "destroy", "x"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "{\"ok\":true}\n"));
}

#[test]
fn create_boots_a_linux_kernel_with_the_command_line_as_given() {
    let fake = Fake::start(Behaviour::Serve);
    let run = mica_at(
        &fake.socket,
        &[
            "create",
            "lx",
            "--kernel",
            "linux",
            "--initrd",
            "linux-initrd",
            "--cmdline",
            "console=ttyS0 root=\"/dev/vda 1\" quiet",
        ],
    );
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    let manager = fake.manager.lock().unwrap();
    let (kernel, linux) = manager.platform().last_load.clone().unwrap();
    let linux = linux.unwrap();
    assert_eq!(kernel.as_str(), "linux");
    assert_eq!(linux.initrd.unwrap().as_str(), "linux-initrd");
    assert_eq!(
        linux.cmdline.as_str(),
        "console=ttyS0 root=\"/dev/vda 1\" quiet"
    );
}

#[test]
fn clone_and_info() {
    let fake = Fake::start(Behaviour::Serve);
    for args in [&["create", "a"][..], &["start", "a"], &["pause", "a"]] {
        assert_eq!(mica_at(&fake.socket, args).code, 0);
    }
    let run = mica_at(&fake.socket, &["--json", "clone", "a", "b"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "{\"name\":\"b\",\"slot\":3,\"kind\":\"dynamic\",\"state\":\"created\",\"vcpus\":1,\
         \"mem_mib\":128,\"generation_id\":\"00000000-0000-0000-0000-000000000002\",\"generation_id_random\":true,\"last_exit\":null,\"last_exit_uptime_ms\":null}\n"
    );
    let run = mica_at(&fake.socket, &["info", "b", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with("{\"name\":\"b\",\"slot\":3,"),
        "{run:?}"
    );
}

#[test]
fn a_refused_request_exits_1_with_the_error_line() {
    let fake = Fake::start(Behaviour::Serve);
    let run = mica_at(&fake.socket, &["start", "ghost"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "error: no VM named ghost\n");

    assert_eq!(mica_at(&fake.socket, &["create", "web"]).code, 0);
    let run = mica_at(&fake.socket, &["resume", "web"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: web is created: cannot resume it; start it instead\n"
    );
    let run = mica_at(&fake.socket, &["create", "web", "--json"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        "{\"error\":{\"code\":5,\"message\":\"a VM named web already exists: choose another name\"}}\n"
    );
    assert_eq!(
        run.stderr,
        "error: a VM named web already exists: choose another name\n"
    );
}

#[test]
fn no_free_slot_states_the_maximum() {
    let fake = Fake::start(Behaviour::Serve);
    for index in 0..14 {
        assert_eq!(
            mica_at(&fake.socket, &["create", &format!("d{index}")]).code,
            0
        );
    }
    let run = mica_at(&fake.socket, &["create", "one-too-many"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: no free VM slot (maximum is 16 VMs): destroy or shut down a dynamic VM first\n"
    );
}

#[test]
fn a_vm_that_ended_is_named_with_how_it_ended() {
    let fake = Fake::start(Behaviour::Serve);
    assert_eq!(mica_at(&fake.socket, &["create", "web"]).code, 0);
    assert_eq!(mica_at(&fake.socket, &["destroy", "web"]).code, 0);
    let run = mica_at(&fake.socket, &["info", "web"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert_eq!(
        run.stderr,
        "error: no VM named web (it ended: destroyed by the operator)\n"
    );
    let run = mica_at(&fake.socket, &["info", "web", "--json"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        "{\"error\":{\"code\":7,\"message\":\"no VM named web (it ended: destroyed by the operator)\",\
         \"last_exit\":{\"kind\":\"destroyed\",\"detail\":\"destroyed by the operator\"}}}\n"
    );
    // A static VM shut down keeps its last exit, in text and JSON.
    assert_eq!(mica_at(&fake.socket, &["create", "rtvm"]).code, 0);
    assert_eq!(mica_at(&fake.socket, &["shutdown", "rtvm"]).code, 0);
    let run = mica_at(&fake.socket, &["info", "rtvm"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("state:         powered-off\nlast exit:     shut down by the operator\n"),
        "{}",
        run.stdout
    );
    let run = mica_at(&fake.socket, &["list"]);
    assert!(
        run.stdout.contains("powered-off (shut down)"),
        "{}",
        run.stdout
    );
}

#[test]
fn usage_errors_exit_2_without_touching_the_socket() {
    let nowhere = temp_dir().join("absent.sock");
    let socket = nowhere.to_str().unwrap();
    let long = "x".repeat(257);
    let cases: [(&[&str], &str); 9] = [
        (
            &["--socket", socket],
            "error: missing command (one of list, images, info, create, start, pause, resume, reset, shutdown, destroy, clone, log); run mica --help for the commands\n",
        ),
        (
            &["--socket", socket, "strat", "a"],
            "error: unknown command \"strat\" (did you mean \"start\"?); run mica --help for the commands\n",
        ),
        (
            &["--socket", socket, "start"],
            "error: missing NAME (usage: mica start NAME)\n",
        ),
        (
            &["--socket", socket, "create", "a b"],
            "error: name \"a b\" is invalid: bad character ' '; use 1-31 of [A-Za-z0-9._-]\n",
        ),
        (
            &[
                "--socket", socket, "create", "a", "--kernel", "k", "--image", "i",
            ],
            "error: use --image for a raw guest or --kernel for a Linux Image, not both\n",
        ),
        (
            &["--socket", socket, "create", "a", "--cmdline", "quiet"],
            "error: --cmdline needs a Linux kernel: add --kernel IMAGE (or --from a template \
             that boots one)\n",
        ),
        (
            &[
                "--socket",
                socket,
                "create",
                "a",
                "--kernel",
                "k",
                "--cmdline",
                &long,
            ],
            "error: --cmdline is too long (257 bytes): the hypervisor takes at most 256\n",
        ),
        (
            &["--socket", socket, "list", "--timeout", "0"],
            "error: --timeout \"0\" is not valid: use whole seconds from 1 to 3600\n",
        ),
        (
            &["--socket", socket, "--socket", socket, "list"],
            "error: --socket is given twice\n",
        ),
    ];
    for (args, line) in cases {
        let run = mica(args);
        assert_eq!(
            (run.code, run.stderr.as_str(), run.stdout.as_str()),
            (2, line, ""),
            "{args:?}"
        );
    }
    let run = mica(&["--socket"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (2, "error: --socket needs a path\n")
    );
}

#[test]
fn help_prints_the_usage() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let run = mica(args);
        assert_eq!(run.code, 0);
        assert!(
            run.stdout
                .starts_with("usage: mica [--socket SOCKET] [--json] [--timeout SECS] COMMAND\n")
        );
        assert!(run.stdout.contains("reset NAME [--new-genid]"));
        assert!(
            run.stdout
                .contains("[--kernel IMAGE] [--initrd IMAGE] [--cmdline TEXT]")
        );
    }
}

#[test]
fn an_unreachable_socket_exits_3() {
    let dir = temp_dir();
    let path = dir.join("absent.sock");
    let run = mica_at(&path, &["list"]);
    assert_eq!(run.code, 3);
    assert_eq!(run.stdout, "");
    let shown = path.display();
    assert_eq!(
        run.stderr,
        format!(
            "error: cannot reach the hypervisor at {shown}: No such file or directory (os error 2) \
             (is it running with cargo xtask qemu --mgmt {shown}?)\n"
        )
    );
}

#[test]
fn a_peer_of_another_version_exits_3() {
    let fake = Fake::start(Behaviour::Version10);
    let run = mica_at(&fake.socket, &["list"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        "error: the peer speaks management protocol version 10, this side speaks version 9: use a matching mica\n"
    );
}

#[test]
fn a_silent_peer_times_out_with_exit_3() {
    let fake = Fake::start(Behaviour::Silent);
    let run = mica_at(&fake.socket, &["--timeout", "1", "info", "sos"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        "error: the hypervisor did not answer within 1 s\n"
    );

    let fake = Fake::start(Behaviour::Garbage);
    let run = mica_at(&fake.socket, &["--timeout", "1", "info", "sos"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        "error: the hypervisor did not answer within 1 s (it sent a bad frame: badly stuffed frame: the last block is cut short)\n"
    );
}

#[test]
fn an_answer_that_does_not_fit_exits_3() {
    let fake = Fake::start(Behaviour::AlwaysOk);
    let run = mica_at(&fake.socket, &["list"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        "error: the hypervisor's answer does not fit the request\n"
    );
    let run = mica_at(&fake.socket, &["start", "sos"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "sos started\n"));
}

#[test]
fn a_peer_that_hangs_up_exits_3() {
    let fake = Fake::start(Behaviour::Hangup);
    let run = mica_at(&fake.socket, &["info", "sos"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr,
        "error: the hypervisor closed the connection without answering\n"
    );
}

#[test]
fn info_shows_the_exit_and_io_figures_for_people_and_scripts() {
    let fake = Fake::start(Behaviour::Serve);
    for args in [&["create", "rtvm"][..], &["start", "rtvm"]] {
        assert_eq!(mica_at(&fake.socket, args).code, 0);
    }
    let run = mica_at(&fake.socket, &["info", "rtvm"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(
        run.stdout,
        "\
name:          rtvm
slot:          1
kind:          static
state:         started
vcpus:         1
memory:        64 MiB
disk:          none
generation id: 00000000-0000-0000-0000-000000000001
exits:         23711 device, 310 hypercall, 12 wait, 40 interrupt, 3 other
ioreq:         23702 round trips, 1.2 s in services (52.0 us each); 9 writes posted
network:       12 frames sent, 10 received, 2 dropped (0 malformed sent, 2 with no room)
vcpu 0:        waiting, 24076 exits, 23702 I/O round trips
"
    );
    let run = mica_at(&fake.socket, &["info", "rtvm", "--json"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(
        run.stdout,
        "{\"name\":\"rtvm\",\"slot\":1,\"kind\":\"static\",\"state\":\"started\",\"vcpus\":1,\
         \"mem_mib\":64,\"generation_id\":\"00000000-0000-0000-0000-000000000001\",\"generation_id_random\":true,\"last_exit\":null,\"last_exit_uptime_ms\":null,\"disk\":null,\
         \"stats\":{\"exits\":{\"device\":23711,\"hypercall\":310,\"wait\":12,\"interrupt\":40,\
         \"other\":3},\"ioreq_round_trips\":23702,\"service_ns\":1234567890,\"posted_writes\":9,\
         \"net\":{\"sent\":12,\"received\":10,\"tx_dropped\":0,\"rx_dropped\":2},\
         \"vcpus\":[{\"vcpu\":0,\"state\":\"waiting\",\"cpu\":null,\"exits\":24076,\"round_trips\":23702}]}}\n"
    );
    // A powered-off VM has no figures: `null`, and no line in the text.
    let run = mica_at(&fake.socket, &["info", "sos", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!("{},\"disk\":null,\"stats\":null}}\n", &SOS[..SOS.len() - 1])
    );
    let run = mica_at(&fake.socket, &["info", "sos"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert!(!run.stdout.contains("exits:"), "{run:?}");
}
