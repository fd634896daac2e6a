//! Which VMs' console lines reach the hypervisor console: every VM's, or,
//! while the shell's console is attached to one VM, only that VM's
//! ([`ConsoleGate::focus`]). The other VMs' lines are held in a bounded
//! buffer ([`HELD_BYTES`]) and printed, in the order they came, when the
//! focus is taken away or moves; lines that did not fit are counted per VM
//! and said in one line each, pointing at `vm log NAME` (the VM's output
//! ring keeps its recent output whatever the focus). Nothing is dropped
//! without a word.

use heapless::{Deque, String, Vec};
use ipc::VmId;
use ipc::syscall::MAX_VMS;

use crate::console_lines::ConsoleSink;

/// Bytes of held lines (each with a one-byte separator); the oldest lines
/// give way when more come.
pub const HELD_BYTES: usize = 4096;

/// The longest held line: a VM's name, ` | `, and a shown line
/// (`crate::console_lines::LINE_LIMIT`); longer ones are cut.
const LINE_MAX: usize = 256;

/// The longest VM name (the naming rule's 31 bytes).
const NAME_MAX: usize = 31;

/// The console sink, with the focus and the lines held because of it.
#[derive(Debug)]
pub struct ConsoleGate<C> {
    sink: C,
    focus: Option<VmId>,
    /// The focused VM's name, for the line that introduces held lines.
    focus_name: String<NAME_MAX>,
    held: Deque<u8, HELD_BYTES>,
    held_lines: u32,
    /// Lines that gave way, per VM name (the part before ` | `).
    dropped: Vec<(String<NAME_MAX>, u32), MAX_VMS>,
}

/// The sink for one VM's lines: printed, or held while another VM has the
/// focus.
pub struct GatedSink<'a, C> {
    gate: &'a mut ConsoleGate<C>,
    vm: VmId,
}

impl<C: ConsoleSink> ConsoleSink for GatedSink<'_, C> {
    fn write_line(&mut self, line: &[u8]) {
        match self.gate.focus {
            Some(focus) if focus != self.vm => self.gate.hold(line),
            _ => self.gate.sink.write_line(line),
        }
    }
}

impl<C: ConsoleSink> ConsoleGate<C> {
    /// A gate that lets every line through to `sink`.
    pub const fn new(sink: C) -> Self {
        Self {
            sink,
            focus: None,
            focus_name: String::new(),
            held: Deque::new(),
            held_lines: 0,
            dropped: Vec::new(),
        }
    }

    /// The console sink.
    pub fn sink(&self) -> &C {
        &self.sink
    }

    /// The VM whose lines alone are printed, if any.
    pub fn focused(&self) -> Option<VmId> {
        self.focus
    }

    /// Where `vm`'s lines go.
    pub fn for_vm(&mut self, vm: VmId) -> GatedSink<'_, C> {
        GatedSink { gate: self, vm }
    }

    /// Prints only `vm`'s lines from now on (`name` is its name), or every
    /// VM's (`None`). The lines held so far are printed first (so a move
    /// from one VM to another shows what the new one printed meanwhile).
    pub fn focus(&mut self, vm: Option<(VmId, &str)>) {
        self.release();
        self.focus = vm.map(|(id, _)| id);
        self.focus_name.clear();
        if let Some((_, name)) = vm {
            // A VM name fits; a longer one would only shorten the notice.
            let _ = self
                .focus_name
                .push_str(name.get(..NAME_MAX).unwrap_or(name));
        }
    }

    /// `vm` is gone: if it had the focus, every VM's lines are printed
    /// again, the held ones first.
    pub fn vm_removed(&mut self, vm: VmId) {
        if self.focus == Some(vm) {
            self.focus(None);
        }
    }

    fn hold(&mut self, line: &[u8]) {
        let needed = line.len() + 1;
        if needed > HELD_BYTES {
            self.count_dropped(line);
            return;
        }
        while HELD_BYTES - self.held.len() < needed {
            self.drop_oldest();
        }
        for &byte in line {
            // Room was made above.
            let _ = self.held.push_back(byte);
        }
        let _ = self.held.push_back(b'\n');
        self.held_lines += 1;
    }

    fn drop_oldest(&mut self) {
        let mut line: Vec<u8, LINE_MAX> = Vec::new();
        while let Some(byte) = self.held.pop_front() {
            if byte == b'\n' {
                break;
            }
            let _ = line.push(byte);
        }
        self.held_lines = self.held_lines.saturating_sub(1);
        self.count_dropped(&line);
    }

    fn count_dropped(&mut self, line: &[u8]) {
        let name = line
            .windows(3)
            .position(|w| w == b" | ")
            .and_then(|at| line.get(..at))
            .and_then(|name| core::str::from_utf8(name).ok())
            .unwrap_or("?");
        if let Some((_, count)) = self.dropped.iter_mut().find(|(n, _)| n == name) {
            *count = count.saturating_add(1);
            return;
        }
        let mut key = String::new();
        let _ = key.push_str(name.get(..NAME_MAX).unwrap_or(name));
        // More names than VMs cannot come; should they, the first stay.
        let _ = self.dropped.push((key, 1));
    }

    /// Prints what was held: a line saying so, the lines, then one line
    /// per VM whose lines did not all fit.
    fn release(&mut self) {
        if self.held_lines > 0 || !self.dropped.is_empty() {
            let mut intro: String<160> = String::new();
            let _ = core::fmt::write(
                &mut intro,
                format_args!(
                    "devices: the other VMs' lines held while the console was attached to {} ({}):",
                    self.focus_name, self.held_lines
                ),
            );
            self.sink.write_line(intro.as_bytes());
        }
        let mut line: Vec<u8, LINE_MAX> = Vec::new();
        while let Some(byte) = self.held.pop_front() {
            if byte == b'\n' {
                self.sink.write_line(&line);
                line.clear();
            } else {
                let _ = line.push(byte);
            }
        }
        self.held_lines = 0;
        for (name, count) in core::mem::take(&mut self.dropped) {
            let mut notice: String<224> = String::new();
            let _ = core::fmt::write(
                &mut notice,
                format_args!(
                    "devices: {count} of {name}'s held lines did not fit and were dropped: `vm log {name}` shows its recent output"
                ),
            );
            self.sink.write_line(notice.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::{String as Text, ToString};
    use std::vec::Vec as List;

    #[derive(Default)]
    struct Lines(List<Text>);

    impl ConsoleSink for Lines {
        fn write_line(&mut self, line: &[u8]) {
            self.0.push(core::str::from_utf8(line).unwrap().to_string());
        }
    }

    const VM0: VmId = VmId(0);
    const VM1: VmId = VmId(1);
    const VM2: VmId = VmId(2);

    fn print(gate: &mut ConsoleGate<Lines>, vm: VmId, line: &str) {
        gate.for_vm(vm).write_line(line.as_bytes());
    }

    fn shown(gate: &mut ConsoleGate<Lines>) -> List<Text> {
        core::mem::take(&mut gate.sink.0)
    }

    #[test]
    fn without_a_focus_every_line_is_printed() {
        let mut gate = ConsoleGate::new(Lines::default());
        print(&mut gate, VM0, "vm0 | a");
        print(&mut gate, VM1, "vm1 | b");
        assert_eq!(shown(&mut gate), ["vm0 | a", "vm1 | b"]);
    }

    #[test]
    fn while_focused_only_that_vm_prints_and_the_rest_follows_in_order() {
        let mut gate = ConsoleGate::new(Lines::default());
        gate.focus(Some((VM0, "vm0")));
        print(&mut gate, VM1, "vm1 | tick 1");
        print(&mut gate, VM0, "vm0 | $ ls");
        print(&mut gate, VM2, "vm2 | tick 7");
        print(&mut gate, VM1, "vm1 | tick 2");
        assert_eq!(shown(&mut gate), ["vm0 | $ ls"]);
        gate.focus(None);
        assert_eq!(
            shown(&mut gate),
            [
                "devices: the other VMs' lines held while the console was attached to vm0 (3):",
                "vm1 | tick 1",
                "vm2 | tick 7",
                "vm1 | tick 2"
            ]
        );
        print(&mut gate, VM1, "vm1 | tick 3");
        assert_eq!(shown(&mut gate), ["vm1 | tick 3"]);
        // Nothing held: nothing said.
        gate.focus(Some((VM0, "vm0")));
        gate.focus(None);
        assert!(shown(&mut gate).is_empty());
    }

    #[test]
    fn a_focus_that_moves_shows_what_the_new_vm_printed_meanwhile() {
        let mut gate = ConsoleGate::new(Lines::default());
        gate.focus(Some((VM0, "vm0")));
        print(&mut gate, VM1, "vm1 | while vm0 had it");
        gate.focus(Some((VM1, "vm1")));
        assert_eq!(shown(&mut gate)[1], "vm1 | while vm0 had it");
        print(&mut gate, VM0, "vm0 | held now");
        assert!(shown(&mut gate).is_empty());
        // The focused VM goes away: the console shows every VM again.
        gate.vm_removed(VM0);
        assert_eq!(gate.focused(), Some(VM1));
        gate.vm_removed(VM1);
        assert_eq!(gate.focused(), None);
        assert_eq!(shown(&mut gate)[1], "vm0 | held now");
    }

    #[test]
    fn lines_that_do_not_fit_are_counted_per_vm_and_said() {
        let mut gate = ConsoleGate::new(Lines::default());
        gate.focus(Some((VM0, "vm0")));
        let line = |vm: &str, n: usize| format!("{vm} | {n:0>90}");
        // 100 lines of 96 bytes (97 held): 42 fit in 4096 bytes.
        for n in 0..50 {
            print(&mut gate, VM1, &line("vm1", n));
            print(&mut gate, VM2, &line("vm2", n));
        }
        gate.focus(None);
        let lines = shown(&mut gate);
        let kept = HELD_BYTES / 97;
        assert_eq!(
            lines[0],
            format!(
                "devices: the other VMs' lines held while the console was attached to vm0 ({kept}):"
            )
        );
        assert_eq!(lines.len(), 1 + kept + 2, "{lines:?}");
        // The newest are kept, in order.
        assert_eq!(lines[kept], line("vm2", 49));
        let dropped1 = 50 - lines.iter().filter(|l| l.starts_with("vm1 |")).count();
        let dropped2 = 50 - lines.iter().filter(|l| l.starts_with("vm2 |")).count();
        assert_eq!(
            &lines[kept + 1..],
            [
                format!(
                    "devices: {dropped1} of vm1's held lines did not fit and were dropped: `vm log vm1` shows its recent output"
                ),
                format!(
                    "devices: {dropped2} of vm2's held lines did not fit and were dropped: `vm log vm2` shows its recent output"
                ),
            ]
        );
    }
}
