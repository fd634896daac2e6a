//! Every way a VM command can fail once the hypervisor answered, as one
//! line that says what happened and what to do. The shell and the CLI print
//! it after `error: `; a `create` refused for its image also lists the
//! images there are (`crate::images::ImageChoices`, when
//! `crate::command::wants_image_list`).

use core::fmt;

use ipc::vm::VmState;
use vm_manager::{MAX_VCPUS, VmName};

use crate::command::{CreateArgs, ReplyError, VmCommand};

/// The message (without the `error: ` prefix) for `error`, the outcome of
/// `command`.
pub struct ErrorMessage<'a> {
    /// The command that failed.
    pub command: &'a VmCommand,
    /// How it failed.
    pub error: ReplyError,
}

/// What could not be done, as it reads after "cannot ".
fn action(command: &VmCommand) -> &'static str {
    match command {
        VmCommand::List => "list it",
        VmCommand::Images => "list them",
        VmCommand::Info { .. } => "show it",
        VmCommand::Create(_) => "create it",
        VmCommand::Start { .. } => "start it",
        VmCommand::Pause { .. } => "pause it",
        VmCommand::Resume { .. } => "resume it",
        VmCommand::Reset { .. } => "reset it",
        VmCommand::Shutdown { .. } => "shut it down",
        VmCommand::Destroy { .. } => "destroy it",
        VmCommand::Clone { .. } => "clone it",
        VmCommand::Log { .. } => "show its log",
    }
}

/// What to do instead when `command` found the VM in `state`.
fn transition_hint(command: &VmCommand, state: VmState) -> Option<&'static str> {
    match (command, state) {
        (VmCommand::Create(_), _) => Some("it already exists"),
        (_, VmState::PoweredOff) => Some("create it first"),
        (VmCommand::Start { .. }, VmState::Paused) => Some("resume it instead"),
        (VmCommand::Resume { .. }, VmState::Created) => Some("start it instead"),
        (VmCommand::Clone { .. }, _) => Some("pause it first"),
        _ => None,
    }
}

impl fmt::Display for ErrorMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let command = self.command;
        let error = match self.error {
            ReplyError::Refused(error) => error,
            ReplyError::Ended(exit) => {
                return match command.target() {
                    Some(name) => write!(f, "no VM named {name} (it ended: {exit})"),
                    None => write!(f, "{}", self.error),
                };
            }
            ReplyError::Unexpected => return write!(f, "{}", self.error),
        };
        // The VM a name error is about: the new one for create and clone.
        let new_name = match command {
            VmCommand::Create(args) => Some(&args.name),
            VmCommand::Clone { name, .. } => Some(name),
            _ => None,
        };
        let target = command.target();
        match (error, target) {
            (ipc::Error::DuplicateName, _) if new_name.is_some() => {
                if let Some(name) = new_name {
                    write!(f, "a VM named {name} already exists: choose another name")?;
                }
                Ok(())
            }
            (ipc::Error::NoFreeSlot { max }, _) => write!(
                f,
                "no free VM slot (maximum is {max} VMs): destroy or shut down a dynamic VM first"
            ),
            (ipc::Error::UnknownVm, Some(name)) => write!(f, "no VM named {name}"),
            (ipc::Error::IllegalTransition { state }, Some(name)) => {
                write!(f, "{name} is {state}: cannot {}", action(command))?;
                match transition_hint(command, state) {
                    Some(hint) => write!(f, "; {hint}"),
                    None => Ok(()),
                }
            }
            (ipc::Error::OutOfMemory, _) if matches!(command, VmCommand::Clone { .. }) => {
                write!(f, "not enough memory for the copy: free memory first")
            }
            (ipc::Error::OutOfMemory, Some(name)) => write!(
                f,
                "not enough memory for {name}: ask for less with --mem or free memory first"
            ),
            (ipc::Error::UnknownImage, _) => unknown_image(f, command),
            (ipc::Error::DiskInUse, _) => match asked_disk(command) {
                Some(disk) => write!(
                    f,
                    "disk {disk} is attached to another VM: destroy that VM first \
                     or choose another --disk"
                ),
                None => f.write_str("that disk is attached to another VM: destroy that VM first"),
            },
            // The block service has no such disk (or the board has no
            // place for one: x86).
            (ipc::Error::NoDevice, _) if asked_disk(command).is_some() => {
                if let Some(disk) = asked_disk(command) {
                    write!(
                        f,
                        "no disk {disk} on this machine: the disks are the host files the \
                         scenario's disk = or --guest ...,disk= gave QEMU, numbered from 0"
                    )?;
                }
                Ok(())
            }
            (ipc::Error::NoImageGiven, _) => match new_name {
                Some(name) => write!(
                    f,
                    "no guest image for {name}: name an image with --image IMAGE or a \
                     template with --from VM; `images` lists them"
                ),
                None => write!(f, "{error}"),
            },
            // A new VM the kernel could not hold: every VM identifier
            // (VMID, ASID) is in use, or another kernel table is full.
            (ipc::Error::KernelRefused, _) if new_name.is_some() => {
                if let Some(name) = new_name {
                    write!(
                        f,
                        "the hypervisor has no VM identifier or kernel room left for {name}: \
                         destroy a VM first"
                    )?;
                }
                Ok(())
            }
            // The name is a static VM's, kept while it is powered off.
            (ipc::Error::StaticSettings, _) => match new_name {
                Some(name) => write!(
                    f,
                    "{name} is a static VM and the scenario fixes its settings: \
                     create it with no options to boot it again, or choose another \
                     name for a new VM"
                ),
                None => write!(f, "{error}"),
            },
            (ipc::Error::InvalidArgument, _) if template_without_kernel(command).is_some() => {
                if let Some((option, template)) = template_without_kernel(command) {
                    write!(
                        f,
                        "{option} needs a Linux kernel and {template} boots none: \
                         add --kernel IMAGE"
                    )?;
                }
                Ok(())
            }
            (ipc::Error::InvalidArgument, _) => write!(
                f,
                "argument out of range: use 1-{MAX_VCPUS} vCPUs and at least 1 MiB of memory"
            ),
            (ipc::Error::ServerDied, _) => f.write_str(
                "the vm-manager restarted while handling the request: list the VMs and retry",
            ),
            (ipc::Error::Malformed, _) => f.write_str(
                "the hypervisor could not decode the request: use a matching mica and hypervisor",
            ),
            (ipc::Error::MessageTooLarge, _) => {
                f.write_str("the request is too large for the hypervisor")
            }
            (
                ipc::Error::InvalidName
                | ipc::Error::ServiceDown { .. }
                | ipc::Error::ServiceHung { .. },
                _,
            ) => write!(f, "{error}"),
            (other, _) => write!(f, "{other} (code {})", other.code()),
        }
    }
}

/// The disk a `create` asked for with `--disk`.
fn asked_disk(command: &VmCommand) -> Option<u8> {
    match command {
        VmCommand::Create(args) => args.disk,
        _ => None,
    }
}

/// For a create that gives `--initrd` or `--cmdline` and `--from` but no
/// `--kernel` (which the vm-manager refuses when the template boots a raw
/// image): the first such option and the template.
fn template_without_kernel(command: &VmCommand) -> Option<(&'static str, &VmName)> {
    let VmCommand::Create(args) = command else {
        return None;
    };
    let option = match (&args.initrd, &args.cmdline) {
        (Some(_), _) => "--initrd",
        (None, Some(_)) => "--cmdline",
        (None, None) => return None,
    };
    match (&args.kernel, &args.template) {
        (None, Some(template)) => Some((option, template)),
        _ => None,
    }
}

fn unknown_image(f: &mut fmt::Formatter<'_>, command: &VmCommand) -> fmt::Result {
    let VmCommand::Create(args) = command else {
        return f.write_str("no such guest image");
    };
    if args.kernel.is_some() || args.initrd.is_some() {
        return unknown_linux_image(f, args);
    }
    match (&args.image, &args.template) {
        (Some(image), Some(template)) => write!(
            f,
            "no guest image {image} or no static VM {template} to copy: check --image and --from"
        ),
        (Some(image), None) => write!(f, "no guest image named {image}: check --image"),
        (None, Some(template)) => write!(f, "no static VM {template} to copy: check --from"),
        (None, None) => write!(
            f,
            "the guest image for {} does not exist: name one with --image",
            args.name
        ),
    }
}

/// An unknown image for a Linux create: any of the kernel, the initrd or
/// the template may be the one missing.
fn unknown_linux_image(f: &mut fmt::Formatter<'_>, args: &CreateArgs) -> fmt::Result {
    f.write_str("no guest image ")?;
    let images = [&args.kernel, &args.initrd];
    for (at, image) in images.into_iter().flatten().enumerate() {
        let separator = if at == 0 { "" } else { " or " };
        write!(f, "{separator}{image}")?;
    }
    if let Some(template) = &args.template {
        write!(f, " or no static VM {template} to copy")?;
    }
    f.write_str(": check")?;
    let options = [
        args.kernel.as_ref().map(|_| "--kernel"),
        args.initrd.as_ref().map(|_| "--initrd"),
        args.template.as_ref().map(|_| "--from"),
    ];
    let count = options.iter().flatten().count();
    for (at, option) in options.into_iter().flatten().enumerate() {
        let separator = match at {
            0 => " ",
            _ if at + 1 == count => " and ",
            _ => ", ",
        };
        write!(f, "{separator}{option}")?;
    }
    Ok(())
}
