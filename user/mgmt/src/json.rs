//! JSON output for scripts (`mica --json`), written by hand: keys in a
//! fixed order, one line, no trailing newline. Strings from the peer are
//! escaped.

use core::fmt::{self, Write};

use ipc::vm::{GuestImage, LastExit, VmInfo, VmStats};

use crate::table::{GenerationIdText, kind_text, state_text};

/// Writes text into a JSON string (without the quotes), escaping what
/// JSON requires and every other control character too (DEL and the C1
/// controls, which a terminal would act on: `\u009b` is CSI), so a line
/// of `--json` output never carries one raw.
pub struct Escaped<'w, W: Write + ?Sized>(pub &'w mut W);

impl<W: Write + ?Sized> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for ch in text.chars() {
            match ch {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                ch if ch.is_control() => write!(self.0, "\\u{:04x}", u32::from(ch))?,
                ch => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

/// Writes `value` as a JSON string.
pub fn write_string<W: Write + ?Sized>(out: &mut W, value: impl fmt::Display) -> fmt::Result {
    out.write_char('"')?;
    write!(Escaped(out), "{value}")?;
    out.write_char('"')
}

/// One VM: `{"name":..,"slot":..,"kind":..,"state":..,"vcpus":..,
/// "mem_mib":..,"generation_id":..,"generation_id_random":..,
/// "last_exit":..}` (`generation_id_random` `false`: drawn without a
/// hardware entropy source, guessable; `last_exit` [`write_last_exit`]'s
/// object, or `null` when the VM has not left running since it was made
/// or last started; `last_exit_uptime_ms` when, in milliseconds since
/// Mica booted, or `null` when the kernel did not say: the operator's
/// shutdown and destroy).
pub fn write_vm<W: Write + ?Sized>(out: &mut W, vm: &VmInfo) -> fmt::Result {
    write_vm_fields(out, vm)?;
    out.write_char('}')
}

/// `mica info --json`: the VM as [`write_vm`] writes it with two more
/// keys at the end: `"disk"`, its host disk's number or `null` without
/// one, and `"stats"`: [`write_stats`]'s object, or `null` for a VM
/// without figures (powered off).
pub fn write_vm_info<W: Write + ?Sized>(
    out: &mut W,
    vm: &VmInfo,
    stats: Option<&VmStats>,
) -> fmt::Result {
    write_vm_fields(out, vm)?;
    out.write_str(",\"disk\":")?;
    match vm.disk {
        Some(disk) => write!(out, "{disk}")?,
        None => out.write_str("null")?,
    }
    out.write_str(",\"stats\":")?;
    match stats {
        Some(stats) => write_stats(out, stats)?,
        None => out.write_str("null")?,
    }
    out.write_char('}')
}

/// A VM's figures: `{"exits":{"device":..,"hypercall":..,"wait":..,
/// "interrupt":..,"other":..},"ioreq_round_trips":..,"service_ns":..,
/// "posted_writes":..,"net":{"sent":..,"received":..,"tx_dropped":..,
/// "rx_dropped":..},"vcpus":[{"vcpu":0,"state":..,"exits":..,
/// "round_trips":..},..]}` (`"net":null` for a VM without a network
/// card; `"state"` one of `running`, `io`, `waiting`, `stopped`, `held`).
pub fn write_stats<W: Write + ?Sized>(out: &mut W, stats: &VmStats) -> fmt::Result {
    write!(
        out,
        "{{\"exits\":{{\"device\":{},\"hypercall\":{},\"wait\":{},\"interrupt\":{},\
         \"other\":{}}},\"ioreq_round_trips\":{},\"service_ns\":{},\"posted_writes\":{},\"net\":",
        stats.device_exits,
        stats.hypercall_exits,
        stats.wait_exits,
        stats.interrupt_exits,
        stats.other_exits,
        stats.ioreq_round_trips,
        stats.service_ns,
        stats.posted_writes
    )?;
    match stats.net {
        Some(net) => write!(
            out,
            "{{\"sent\":{},\"received\":{},\"tx_dropped\":{},\"rx_dropped\":{}}}",
            net.sent, net.received, net.tx_dropped, net.rx_dropped
        )?,
        None => out.write_str("null")?,
    }
    out.write_str(",\"vcpus\":")?;
    write_array(out, &stats.vcpus, |out, n, vcpu| {
        write!(
            out,
            "{{\"vcpu\":{n},\"state\":\"{}\",\"cpu\":",
            vcpu.state.key()
        )?;
        match vcpu.cpu {
            Some(cpu) => write!(out, "{cpu}")?,
            None => out.write_str("null")?,
        }
        write!(
            out,
            ",\"exits\":{},\"round_trips\":{}}}",
            vcpu.exits, vcpu.round_trips
        )
    })?;
    out.write_char('}')
}

/// `[...]`: each of `items` as `write_item` writes it (given its index),
/// separated by commas.
fn write_array<W: Write + ?Sized, T>(
    out: &mut W,
    items: &[T],
    mut write_item: impl FnMut(&mut W, usize, &T) -> fmt::Result,
) -> fmt::Result {
    out.write_char('[')?;
    for (n, item) in items.iter().enumerate() {
        if n != 0 {
            out.write_char(',')?;
        }
        write_item(out, n, item)?;
    }
    out.write_char(']')
}

/// [`write_vm`] without the closing brace.
fn write_vm_fields<W: Write + ?Sized>(out: &mut W, vm: &VmInfo) -> fmt::Result {
    out.write_str("{\"name\":")?;
    write_string(out, vm.name.as_str())?;
    write!(out, ",\"slot\":{},\"kind\":", vm.id.0)?;
    write_string(out, kind_text(vm.kind))?;
    out.write_str(",\"state\":")?;
    write_string(out, state_text(vm.state))?;
    write!(
        out,
        ",\"vcpus\":{},\"mem_mib\":{},\"generation_id\":",
        vm.vcpus, vm.mem_mib
    )?;
    write_string(out, GenerationIdText(vm.generation_id))?;
    write!(out, ",\"generation_id_random\":{}", vm.generation_id_random)?;
    out.write_str(",\"last_exit\":")?;
    match &vm.last_exit {
        Some(exit) => write_last_exit(out, exit)?,
        None => out.write_str("null")?,
    }
    out.write_str(",\"last_exit_uptime_ms\":")?;
    match vm.last_exit_uptime_ms {
        Some(ms) => write!(out, "{ms}"),
        None => out.write_str("null"),
    }
}

/// How a VM last left running: `{"kind":..,"detail":..}` with `kind` one
/// of `powered_off`, `rebooted` (by the guest), `stopped` (by Mica),
/// `shut_down`, `destroyed` (by the operator) and `detail` the sentence
/// `vm info` shows; a stop adds `"cause"` (`guest_page_fault`,
/// `undecodable_mmio`, `virtual_instruction`, `bad_io_completion`,
/// `unhandled_exception`, `other`) and `"pc"` (the guest's, a number), a
/// guest's power-off or reboot its SBI reset `"reason"` (a number).
pub fn write_last_exit<W: Write + ?Sized>(out: &mut W, exit: &LastExit) -> fmt::Result {
    out.write_str("{\"kind\":")?;
    write_string(out, exit.key())?;
    out.write_str(",\"detail\":")?;
    write_string(out, exit)?;
    match exit {
        LastExit::Stopped { cause, pc } => {
            out.write_str(",\"cause\":")?;
            write_string(out, cause.key())?;
            write!(out, ",\"pc\":{pc}")?;
        }
        LastExit::PoweredOff { reason } | LastExit::Rebooted { reason, .. } => {
            write!(out, ",\"reason\":{reason}")?;
        }
        LastExit::ShutDown | LastExit::Destroyed => {}
    }
    out.write_char('}')
}

/// The VM list: `{"vms":[...]}`.
pub fn write_list<W: Write + ?Sized>(out: &mut W, vms: &[VmInfo]) -> fmt::Result {
    out.write_str("{\"vms\":")?;
    write_array(out, vms, |out, _, vm| write_vm(out, vm))?;
    out.write_char('}')
}

/// The guest images: `{"images":[{"name":"hello","kind":"raw",
/// "size":8192},...]}` (`kind`: `raw`, `linux_image` or `initrd`; `size`
/// in bytes).
pub fn write_images<W: Write + ?Sized>(out: &mut W, images: &[GuestImage]) -> fmt::Result {
    out.write_str("{\"images\":")?;
    write_array(out, images, |out, _, image| {
        out.write_str("{\"name\":")?;
        write_string(out, &image.name)?;
        write!(
            out,
            ",\"kind\":\"{}\",\"size\":{}}}",
            image.kind.key(),
            image.size
        )
    })?;
    out.write_char('}')
}

/// A command that succeeded without data: `{"ok":true}`.
pub fn write_ok<W: Write + ?Sized>(out: &mut W) -> fmt::Result {
    out.write_str("{\"ok\":true}")
}

/// A refusal: `{"error":{"code":7,"message":"no VM named vm9"}}`; `code` is
/// the stable `ipc::Error` code, 0 when the answer did not fit the request.
pub fn write_error<W: Write + ?Sized>(
    out: &mut W,
    code: u32,
    message: impl fmt::Display,
) -> fmt::Result {
    write_error_with(out, code, message, None)
}

/// [`write_error`], with `"last_exit"` ([`write_last_exit`]'s object)
/// after the message when the VM asked about ended lately:
/// `{"error":{"code":7,"message":"no VM named web (it ended: ...)",
/// "last_exit":{...}}}`.
pub fn write_error_with<W: Write + ?Sized>(
    out: &mut W,
    code: u32,
    message: impl fmt::Display,
    ended: Option<&LastExit>,
) -> fmt::Result {
    write!(out, "{{\"error\":{{\"code\":{code},\"message\":")?;
    write_string(out, message)?;
    if let Some(exit) = ended {
        out.write_str(",\"last_exit\":")?;
        write_last_exit(out, exit)?;
    }
    out.write_str("}}")
}
