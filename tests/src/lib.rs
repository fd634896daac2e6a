//! Expect-style driving of an emulator for Mica's integration tests: start
//! it, wait for named console lines with a timeout, check its exit status.
//! A failure names what was awaited and shows the console transcript.
//!
//! Layer: test driver (`cargo xtask check-layers`): it links only `mica-boot`
//! (its tests: `ipc` too); nothing depends on it but the tools.

pub mod bench;
pub mod hostile;
pub mod linux;
pub mod riscv64;
pub mod steady;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// A running emulator whose console (stdout and stderr) is read line by line.
pub struct Session {
    child: Child,
    /// The emulator's stdin, when started with [`Session::spawn_with_stdin`].
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    transcript: Vec<String>,
    /// Index into `transcript` of the first line not yet matched.
    cursor: usize,
}

impl Session {
    /// Starts `command` with piped output; stdin is closed.
    pub fn spawn(command: Command) -> Result<Session, String> {
        Session::start(command, false)
    }

    /// Starts `command` with piped output and a stdin that [`Session::send`]
    /// writes to (the console's input).
    pub fn spawn_with_stdin(command: Command) -> Result<Session, String> {
        Session::start(command, true)
    }

    fn start(mut command: Command, with_stdin: bool) -> Result<Session, String> {
        let described = format!("{command:?}");
        let stdin = if with_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {described}: {e}"))?;
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            forward(stdout, sender.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            forward(stderr, sender);
        }
        Ok(Session {
            stdin: child.stdin.take(),
            child,
            lines,
            transcript: Vec::new(),
            cursor: 0,
        })
    }

    /// Types `text` at the console (stdin of a [`Session::spawn_with_stdin`]
    /// session).
    pub fn send(&mut self, text: &str) -> Result<(), String> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err("this session has no stdin: use Session::spawn_with_stdin".into());
        };
        match stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failure(&format!("cannot send {text:?}: {e}"))),
        }
    }

    /// The process id (to send it a signal: `kill -INT`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Index of the next transcript line `expect` looks at (everything
    /// before it was seen and matched past).
    pub fn position(&self) -> usize {
        self.cursor
    }

    /// Waits until a line containing each of `needles` has appeared after
    /// the last matched line, in any order (lines of VMs running side by
    /// side interleave as the scheduler lets them); matching then goes on
    /// after the last of them.
    pub fn expect_all(&mut self, needles: &[&str], timeout: Duration) -> Result<(), String> {
        let start = self.cursor;
        let mut last = start;
        for needle in needles {
            self.cursor = start;
            self.expect(needle, timeout)?;
            last = last.max(self.cursor);
        }
        self.cursor = last;
        Ok(())
    }

    /// Waits until a line containing one of `needles` appears (after the
    /// last matched line); returns which one and the line.
    pub fn expect_any(
        &mut self,
        needles: &[&str],
        timeout: Duration,
    ) -> Result<(usize, String), String> {
        let deadline = Instant::now() + timeout;
        // Lines before `from` were looked at already: each line is looked
        // at once (a trace of 60,000 lines took minutes, rescanned after
        // every line).
        let mut from = self.cursor;
        loop {
            let found = self.transcript[from..]
                .iter()
                .enumerate()
                .find_map(|(offset, line)| {
                    let which = needles.iter().position(|n| line.contains(n))?;
                    Some((offset, which))
                });
            if let Some((offset, which)) = found {
                let index = from + offset;
                self.cursor = index + 1;
                return Ok((which, self.transcript[index].clone()));
            }
            from = self.transcript.len();
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.transcript.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!(
                        "timed out after {timeout:?} waiting for {}",
                        Needles(needles)
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure(&format!("output ended before {}", Needles(needles))));
                }
            }
        }
    }

    /// Waits until a line containing `needle` appears (after the last matched
    /// line) and returns it.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.expect_any(&[needle], timeout).map(|(_, line)| line)
    }

    /// Waits for the emulator to exit and returns its status; kills it after
    /// `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.drain();
                    return Ok(status);
                }
                Ok(None) if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(self.failure(&format!("did not exit within {timeout:?}")));
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(self.failure(&format!("cannot wait: {e}"))),
            }
        }
    }

    /// Every line seen so far.
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.transcript.push(line);
        }
    }

    fn failure(&mut self, what: &str) -> String {
        self.drain();
        let mut text = format!("{what}\n--- console transcript ---\n");
        for line in &self.transcript {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("--- end of transcript ---");
        text
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a wait looked for: `"a"`, or `one of ["a", "b"]`.
struct Needles<'a>(&'a [&'a str]);

impl std::fmt::Display for Needles<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            [one] => write!(f, "{one:?}"),
            many => write!(f, "one of {many:?}"),
        }
    }
}

/// Sends each line read from `stream` (lossily decoded, `\r` removed) to
/// `sender` from a thread of its own.
fn forward(stream: impl Read + Send + 'static, sender: mpsc::Sender<String>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            match reader.read_until(b'\n', &mut bytes) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&bytes);
                    let line = line.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// Waits for the x86 `misbehave` guest's MSR report (SVM and VMX alike):
/// the ten MSRs it owns hold its values and SWAPGS swaps them; the MSRs it
/// does not own give it #GP, and EFER reads as a long-mode guest's (LME
/// and LMA, not SVME).
pub fn expect_x86_guest_msr_lines(s: &mut Session, wait: Duration) -> Result<(), String> {
    let owned = s.expect("vm1 | misbehave: 10 of 10", wait)?;
    let refused = s.expect("vm1 | misbehave: rdmsr", wait)?;
    let expected = [
        "vm1 | misbehave: 10 of 10 MSRs hold the guest's values, swapgs swaps them",
        "vm1 | misbehave: rdmsr VM_HSAVE_PA: #GP, wrmsr EFER=0: #GP, EFER 0x500",
    ];
    if [owned.as_str(), refused.as_str()] != expected {
        return Err(format!("the guest's MSR report: {owned:?}, {refused:?}"));
    }
    Ok(())
}

/// Waits for the x86 `smp` guest (scenario `x86-smp`, SVM and VMX alike)
/// to greet with its 4 vCPUs, have its refused calls answered as such (in
/// vCPU 0's order), start vCPUs 1-3 (their `up` lines interleave with vCPU
/// 0's) and have each take IPI 0x40 (maybe before vCPU 0 says it sent it).
pub fn expect_x86_smp_guest_ipis(s: &mut Session, wait: Duration) -> Result<(), String> {
    s.expect("vm-manager: scenario x86-smp", wait)?;
    s.expect("smp | hello from smp (4 vcpus)", wait)?;
    for line in [
        "smp | vcpu 0: start of vcpu 4 refused (invalid)",
        "smp | vcpu 0: start of vcpu 0 refused (already started)",
        "smp | vcpu 0: ipi vector 0x10 refused (invalid)",
        "smp | vcpu 0: vcpu 1 is stopped",
    ] {
        s.expect(line, wait)?;
    }
    s.expect_all(
        &[
            "smp | vcpu 0: started vcpu 1",
            "smp | vcpu 0: vcpu 1 is started",
            "smp | vcpu 0: started vcpu 2",
            "smp | vcpu 0: vcpu 2 is started",
            "smp | vcpu 0: started vcpu 3",
            "smp | vcpu 0: vcpu 3 is started",
            "smp | vcpu 1: up",
            "smp | vcpu 2: up",
            "smp | vcpu 3: up",
        ],
        wait,
    )?;
    s.expect_all(
        &[
            "smp | vcpu 0: sent ipi 0x40 to 3 vcpus",
            "smp | vcpu 1: ipi received",
            "smp | vcpu 2: ipi received",
            "smp | vcpu 3: ipi received",
        ],
        wait,
    )?;
    s.expect("smp | vcpu 0: every vcpu took its ipi", wait)?;
    Ok(())
}

/// The `smp` guest's lines so far that say something went wrong: an
/// answer it did not expect, or Mica stopping its VM.
pub fn x86_smp_guest_troubles(s: &Session) -> Vec<String> {
    s.transcript()
        .iter()
        .filter(|l| l.contains("UNEXPECTED") || l.contains("stopped by Mica"))
        .cloned()
        .collect()
}

/// The tick numbers of `vm`'s `<vm>: tick N` lines in the transcript, in
/// order (a line cut short by a dying device service is skipped).
pub fn tick_numbers(s: &Session, vm: &str) -> Vec<u64> {
    let prefix = format!("{vm} | {vm}: tick ");
    s.transcript()
        .iter()
        .filter_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
        .collect()
}

/// The figures of the kernel's `mica: task N (NAME) loaded again: F
/// frames of the dead copy freed, R frames free` line.
fn reload_figures(line: &str) -> Option<(u64, u64)> {
    let (_, rest) = line.split_once(" loaded again: ")?;
    let (freed, rest) = rest.split_once(" frames of the dead copy freed, ")?;
    let free = rest.strip_suffix(" frames free")?;
    Some((freed.parse().ok()?, free.parse().ok()?))
}

/// The kernel command line of the recovery tests ([`expect_recovery`]):
/// the ioreq and device services killed in turn every 700 ms.
pub const RECOVERY_CHAOS: &str = "mica.chaos=ioreq,devices@700";

/// Booted with [`RECOVERY_CHAOS`], VMs `vm0` and `vm1` greeting and then
/// ticking: checks the kernel named the fault injection and both guests
/// greeted, then waits for `rounds` deaths of each service, each followed
/// by the kernel's line that it loaded the service again (the dead copy's
/// frames freed: the free count is the same at each reload of the same
/// service, so nothing leaks per restart) and init's line that the
/// vm-manager handed the fresh copy its VMs again; then both guests must
/// tick twice more, counting on from where they were (a restart never
/// resets a guest), and neither init nor the kernel may report trouble.
/// Returns the free frame count after each reload, per round.
pub fn expect_recovery(
    s: &mut Session,
    rounds: usize,
    wait: Duration,
) -> Result<Vec<[u64; 2]>, String> {
    s.expect(
        "mica: chaos: killing ioreq,devices in turn every 700 ms (mica.chaos)",
        wait,
    )?;
    s.expect_all(&["vm0 | hello from vm0", "vm1 | hello from vm1"], wait)?;
    let mut free = Vec::new();
    for round in 0..rounds {
        let mut this_round = [0; 2];
        for (i, (service, endpoint)) in [("ioreq", 2), ("devices", 3)].into_iter().enumerate() {
            let killed = format!("({service}) killed by fault injection (mica.chaos)");
            s.expect(&killed, wait)
                .map_err(|e| format!("round {round}: {e}"))?;
            let reloaded = s
                .expect(&format!("({service}) loaded again: "), wait)
                .map_err(|e| format!("round {round}: {e}"))?;
            let (freed, left) = reload_figures(&reloaded)
                .ok_or_else(|| format!("round {round}: unreadable {reloaded:?}"))?;
            if freed == 0 {
                return Err(format!("round {round}: nothing freed: {reloaded:?}"));
            }
            this_round[i] = left;
            let handed = format!("init: the vm-manager handed endpoint {endpoint} its VMs again");
            s.expect(&handed, wait)
                .map_err(|e| format!("round {round}: {e}"))?;
        }
        free.push(this_round);
    }
    if free.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!(
            "frames free after each reload of ioreq and devices changed: {free:?}"
        ));
    }
    both_count_on(s, wait)?;
    no_trouble(s, |l| l.starts_with("init: WARN"))?;
    Ok(free)
}

/// The kernel command line of the watchdog tests
/// ([`expect_hang_recovery`]): the device service hangs, then 4 s later
/// the ioreq service.
pub const HANG_CHAOS: &str = "mica.chaos=hang:devices,hang:ioreq@4000x2";

/// Booted with [`HANG_CHAOS`], VMs `vm0` and `vm1` greeting and then
/// ticking: for each service in turn, the kernel says it hangs, init's
/// watchdog names it and kills it, it is loaded again and the vm-manager
/// hands it its VMs again; then both guests tick twice more, counting on
/// (their I/O waited for the restarted service, it was not lost), and the
/// kernel reports nothing fatal.
pub fn expect_hang_recovery(s: &mut Session, wait: Duration) -> Result<(), String> {
    s.expect(
        "mica: chaos: faulting hang:devices,hang:ioreq in turn every 4000 ms, 2 times (mica.chaos)",
        wait,
    )?;
    s.expect_all(&["vm0 | hello from vm0", "vm1 | hello from vm1"], wait)?;
    // The second hang may come while the first service is still being
    // handed its VMs: wait for every step, then check that each
    // service's steps came in order.
    let services = [
        ("devices", "device service", 3),
        ("ioreq", "ioreq service", 2),
    ];
    let steps: Vec<[String; 4]> = services
        .iter()
        .map(|(service, name, endpoint)| {
            [
                format!("({service}) hangs (mica.chaos)"),
                format!("init: WARN: the {name} did not answer within 2000 ms; killed it"),
                format!("({service}) loaded again: "),
                format!("init: the vm-manager handed endpoint {endpoint} its VMs again"),
            ]
        })
        .collect();
    let needles: Vec<&str> = steps.iter().flatten().map(String::as_str).collect();
    s.expect_all(&needles, wait)?;
    for ((service, ..), steps) in services.iter().zip(&steps) {
        let at: Vec<Option<usize>> = steps
            .iter()
            .map(|step| {
                s.transcript()
                    .iter()
                    .position(|l| l.contains(step.as_str()))
            })
            .collect();
        if at.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("{service}: steps out of order at lines {at:?}"));
        }
    }
    both_count_on(s, wait)?;
    // The watchdog's own warnings are expected here.
    no_trouble(s, |_| false)
}

/// Both guests, `vm0` and `vm1`, tick twice more, counting on from where
/// they were (a restart never resets a guest).
fn both_count_on(s: &mut Session, wait: Duration) -> Result<(), String> {
    let before = [tick_numbers(s, "vm0").len(), tick_numbers(s, "vm1").len()];
    for _ in 0..2 {
        s.expect_all(&["vm0 | vm0: tick", "vm1 | vm1: tick"], wait)?;
    }
    for (vm, seen) in ["vm0", "vm1"].into_iter().zip(before) {
        let ticks = tick_numbers(s, vm);
        if ticks.len() < seen + 2 || !ticks.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!("{vm} must count on: {ticks:?}"));
        }
    }
    Ok(())
}

/// Fails on a line saying init gave a service up, a fatal kernel line, or
/// a line `also` flags.
fn no_trouble(s: &Session, also: impl Fn(&str) -> bool) -> Result<(), String> {
    let troubles: Vec<_> = s
        .transcript()
        .iter()
        .filter(|l| also(l) || l.contains("leaving it down") || l.contains("fatal"))
        .collect();
    if troubles.is_empty() {
        Ok(())
    } else {
        Err(format!("trouble while recovering: {troubles:?}"))
    }
}

/// Where host program `name` is: on `PATH`, else in `/usr/sbin` or `/sbin`
/// (system tools such as `mkfs.ext4`, which a user's `PATH` may lack).
pub fn host_tool(name: &str) -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>());
    on_path
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir: std::path::PathBuf| dir.join(name))
        .find(|path| path.is_file())
}

/// Lines of `s`'s transcript from line `from` on that contain `needle`.
pub fn count_since(s: &Session, from: usize, needle: &str) -> usize {
    s.transcript()[from..]
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[cfg(test)]
mod tests {
    use super::Session;
    use std::process::Command;
    use std::time::Duration;

    fn shell(script: &str) -> Session {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        Session::spawn(command).unwrap()
    }

    #[test]
    fn finds_lines_in_order_and_reports_the_exit_status() {
        let mut s = shell("echo 'a: one'; echo 'b: two' >&2; echo 'c: three'; exit 3");
        assert_eq!(s.expect("one", Duration::from_secs(5)).unwrap(), "a: one");
        assert_eq!(
            s.expect("three", Duration::from_secs(5)).unwrap(),
            "c: three"
        );
        assert_eq!(s.wait_exit(Duration::from_secs(5)).unwrap().code(), Some(3));
    }

    #[test]
    fn a_line_is_matched_only_once() {
        let mut s = shell("echo hello; exit 0");
        s.expect("hello", Duration::from_secs(5)).unwrap();
        let error = s.expect("hello", Duration::from_secs(5)).unwrap_err();
        assert!(error.contains("output ended before \"hello\""), "{error}");
        assert!(
            error.contains("--- console transcript ---\nhello\n"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_line_times_out_with_the_transcript() {
        let mut s = shell("echo started; sleep 5");
        let error = s.expect("never", Duration::from_millis(300)).unwrap_err();
        assert!(error.starts_with("timed out after"), "{error}");
        assert!(error.contains("started"), "{error}");
    }

    #[test]
    fn sent_text_reaches_the_program_and_needs_a_stdin() {
        let mut command = Command::new("sh");
        command.args(["-c", "read line; echo \"got $line\""]);
        let mut s = Session::spawn_with_stdin(command).unwrap();
        s.send("vm list\n").unwrap();
        s.expect("got vm list", Duration::from_secs(5)).unwrap();
        let mut closed = shell("exit 0");
        assert!(closed.send("x").unwrap_err().contains("no stdin"));
    }

    #[test]
    fn a_hung_process_is_killed_at_the_exit_timeout() {
        let mut s = shell("sleep 5");
        let error = s.wait_exit(Duration::from_millis(200)).unwrap_err();
        assert!(error.starts_with("did not exit within"), "{error}");
    }
}
