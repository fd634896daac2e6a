//! What a user can ask for ([`Command`], [`VmCommand`]), the `ipc::vm`
//! request each VM command sends, and how its response is checked
//! ([`VmCommand::check_reply`], [`ListPager`] for `list` and
//! [`ImagesPager`] for `images`, page by page;
//! [`stats_request`] and [`check_stats`] for the figures `info` shows
//! after the VM's settings).

use core::fmt;

use ipc::vm::{
    ConsolePort, CreateOptions, GuestImage, IMAGES_PAGE, LIST_PAGE, LastExit, Request, Response,
    VmInfo, VmState, VmStats, WireCmdline,
};
use vm_manager::{ImageName, VmName};

/// One line of the shell.
#[allow(
    clippy::large_enum_variant,
    reason = "`create` carries a kernel command line (256 bytes); the shell task has no heap to box it, and a command lives briefly on the stack"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `vm ...`: a request to the vm-manager.
    Vm(VmCommand),
    /// `console NAME [--hvc]`: attach the console to the VM's UART (or,
    /// with `--hvc`, its virtio console) until the escape byte
    /// ([`CONSOLE_ESCAPE`]).
    Console {
        /// Which VM.
        name: VmName,
        /// Which of its consoles typed bytes go to.
        port: ConsolePort,
    },
    /// `mem`: the hypervisor's free and total memory
    /// ([`crate::table::MemoryLine`]).
    Mem,
    /// `help`: print [`crate::parse::HELP`].
    Help,
    /// `halt`: stop the hypervisor.
    Halt,
}

/// The byte that detaches the console from a VM: Ctrl-] (as in telnet).
pub const CONSOLE_ESCAPE: u8 = 0x1d;

/// The settings of `vm create`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateArgs {
    /// The new VM's name.
    pub name: VmName,
    /// `--from TEMPLATE`: copy this static VM's configuration.
    pub template: Option<VmName>,
    /// `--image IMAGE`: boot this guest image.
    pub image: Option<ImageName>,
    /// `--mem MiB`.
    pub mem_mib: Option<u32>,
    /// `--vcpus N`: 1 to `vm_manager::MAX_VCPUS` (the kernel's 8).
    pub vcpus: Option<u8>,
    /// `--kernel IMAGE`: boot this Linux kernel Image (never with `image`).
    pub kernel: Option<ImageName>,
    /// `--initrd IMAGE`: the kernel's initial ramdisk.
    pub initrd: Option<ImageName>,
    /// `--cmdline TEXT`: the kernel command line (printable, at most
    /// [`ipc::vm::MAX_WIRE_CMDLINE`] bytes).
    pub cmdline: Option<WireCmdline>,
    /// `--disk N`: the host disk (the block service's number) the VM gets
    /// as a virtio-blk device.
    pub disk: Option<u8>,
}

/// A request to the vm-manager, as the shell's `vm ...` and the CLI take it.
#[allow(
    clippy::large_enum_variant,
    reason = "`create` carries a kernel command line (256 bytes); the shell task has no heap to box it, and a command lives briefly on the stack"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmCommand {
    /// `list`: every VM, read page by page.
    List,
    /// `images`: the boot image's guest images, read page by page.
    Images,
    /// `info NAME`.
    Info {
        /// Which VM.
        name: VmName,
    },
    /// `create NAME [--from T] [--image I] [--mem MiB] [--vcpus N]
    /// [--kernel K] [--initrd I] [--cmdline TEXT] [--disk N]`.
    Create(CreateArgs),
    /// `start NAME`.
    Start {
        /// Which VM.
        name: VmName,
    },
    /// `pause NAME`.
    Pause {
        /// Which VM.
        name: VmName,
    },
    /// `resume NAME`.
    Resume {
        /// Which VM.
        name: VmName,
    },
    /// `reset NAME [--new-genid]`.
    Reset {
        /// Which VM.
        name: VmName,
        /// Draw a new generation ID.
        new_generation_id: bool,
    },
    /// `shutdown NAME`.
    Shutdown {
        /// Which VM.
        name: VmName,
    },
    /// `destroy NAME`.
    Destroy {
        /// Which VM.
        name: VmName,
    },
    /// `clone SRC NEW`.
    Clone {
        /// The paused VM to copy.
        source: VmName,
        /// The copy's name.
        name: VmName,
    },
    /// `log NAME`: the VM's recent console output, read chunk by chunk
    /// ([`crate::log::LogReader`]).
    Log {
        /// Which VM.
        name: VmName,
    },
}

/// What a successful VM command produced (other than `list`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Done, nothing to show.
    Done,
    /// The VM as it is now (`create`, `clone`, `info`).
    Info(VmInfo),
}

/// Why a command did not succeed once the hypervisor answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// The vm-manager refused; nothing changed.
    Refused(ipc::Error),
    /// No VM has the name: a dynamic VM of that name ended lately, as
    /// this says (`Response::Ended`); nothing changed.
    Ended(LastExit),
    /// The answer does not fit the request (a wrong response kind, or a
    /// list that does not move forward).
    Unexpected,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Refused(error) => write!(f, "{error}"),
            ReplyError::Ended(exit) => write!(f, "no such VM (it ended: {exit})"),
            ReplyError::Unexpected => {
                f.write_str("the hypervisor's answer does not fit the request")
            }
        }
    }
}

impl ReplyError {
    /// The stable `ipc::Error` code scripts see (`Ended` is a kind of
    /// `UnknownVm`); 0 for an answer that does not fit the request.
    pub fn code(&self) -> u32 {
        match self {
            ReplyError::Refused(error) => error.code(),
            ReplyError::Ended(_) => ipc::Error::UnknownVm.code(),
            ReplyError::Unexpected => 0,
        }
    }
}

impl VmCommand {
    /// The command word (`start`, `create` ...).
    pub fn verb(&self) -> &'static str {
        match self {
            VmCommand::List => "list",
            VmCommand::Images => "images",
            VmCommand::Info { .. } => "info",
            VmCommand::Create(_) => "create",
            VmCommand::Start { .. } => "start",
            VmCommand::Pause { .. } => "pause",
            VmCommand::Resume { .. } => "resume",
            VmCommand::Reset { .. } => "reset",
            VmCommand::Shutdown { .. } => "shutdown",
            VmCommand::Destroy { .. } => "destroy",
            VmCommand::Clone { .. } => "clone",
            VmCommand::Log { .. } => "log",
        }
    }

    /// The VM the command acts on (the source of a clone); `None` for
    /// `list` and `images`.
    pub fn target(&self) -> Option<&VmName> {
        match self {
            VmCommand::List | VmCommand::Images => None,
            VmCommand::Create(args) => Some(&args.name),
            VmCommand::Clone { source, .. } => Some(source),
            VmCommand::Info { name }
            | VmCommand::Start { name }
            | VmCommand::Pause { name }
            | VmCommand::Resume { name }
            | VmCommand::Reset { name, .. }
            | VmCommand::Shutdown { name }
            | VmCommand::Destroy { name }
            | VmCommand::Log { name } => Some(name),
        }
    }

    /// The request to send (for `list` and `images`, the first page's;
    /// use a [`ListPager`] or an [`ImagesPager`] to read them all; for
    /// `log`, the first chunk's: use a [`crate::log::LogReader`]).
    pub fn request(&self) -> Request {
        match self {
            VmCommand::List => Request::List { from: 0 },
            VmCommand::Images => Request::Images { from: 0 },
            VmCommand::Info { name } => Request::Info {
                name: name.to_wire(),
            },
            VmCommand::Create(args) => Request::Create {
                name: args.name.to_wire(),
                options: CreateOptions {
                    template: args.template.as_ref().map(VmName::to_wire),
                    image: args.image.as_ref().map(ImageName::to_wire),
                    mem_mib: args.mem_mib,
                    vcpus: args.vcpus,
                    kernel: args.kernel.as_ref().map(ImageName::to_wire),
                    initrd: args.initrd.as_ref().map(ImageName::to_wire),
                    cmdline: args.cmdline.clone(),
                    disk: args.disk,
                },
            },
            VmCommand::Start { name } => Request::Start {
                name: name.to_wire(),
            },
            VmCommand::Pause { name } => Request::Pause {
                name: name.to_wire(),
            },
            VmCommand::Resume { name } => Request::Resume {
                name: name.to_wire(),
            },
            VmCommand::Reset {
                name,
                new_generation_id,
            } => Request::Reset {
                name: name.to_wire(),
                new_generation_id: *new_generation_id,
            },
            VmCommand::Shutdown { name } => Request::Shutdown {
                name: name.to_wire(),
            },
            VmCommand::Destroy { name } => Request::Destroy {
                name: name.to_wire(),
            },
            VmCommand::Clone { source, name } => Request::Clone {
                source: source.to_wire(),
                name: name.to_wire(),
            },
            VmCommand::Log { name } => Request::ConsoleOutput {
                name: name.to_wire(),
                from: 0,
            },
        }
    }

    /// Checks the response to [`VmCommand::request`] (not for `list`,
    /// `images` or `log`):
    /// `create`, `clone` and `info` expect the VM's info, the others `Ok`.
    pub fn check_reply(&self, response: Response) -> Result<Reply, ReplyError> {
        let wants_info = matches!(
            self,
            VmCommand::Create(_) | VmCommand::Clone { .. } | VmCommand::Info { .. }
        );
        match response {
            Response::Err(error) => Err(ReplyError::Refused(error)),
            Response::Ended(exit) => Err(ReplyError::Ended(exit)),
            Response::Ok
                if !wants_info
                    && !matches!(
                        self,
                        VmCommand::List | VmCommand::Images | VmCommand::Log { .. }
                    ) =>
            {
                Ok(Reply::Done)
            }
            Response::Info(info) if wants_info => Ok(Reply::Info(info)),
            _ => Err(ReplyError::Unexpected),
        }
    }
}

/// The request for `name`'s exits and I/O figures (`info` sends it after
/// [`VmCommand::request`]).
pub fn stats_request(name: &VmName) -> Request {
    Request::Stats {
        name: name.to_wire(),
    }
}

/// Checks the answer to [`stats_request`]: the figures, or `None` for a
/// powered-off VM, which has no kernel VM to count for it.
pub fn check_stats(response: Response) -> Result<Option<VmStats>, ReplyError> {
    match response {
        Response::Stats(stats) => Ok(Some(stats)),
        Response::Err(ipc::Error::IllegalTransition {
            state: VmState::PoweredOff,
        }) => Ok(None),
        Response::Err(error) => Err(ReplyError::Refused(error)),
        Response::Ended(exit) => Err(ReplyError::Ended(exit)),
        _ => Err(ReplyError::Unexpected),
    }
}

/// A list the vm-manager gives out page by page ([`VmList`], [`ImageList`]).
pub trait PagedList {
    /// One entry of the list.
    type Entry;
    /// One page of the list.
    type Page: IntoIterator<Item = Self::Entry>;
    /// The request for the page that starts at entry `from`.
    fn request(from: u16) -> Request;
    /// The page in `response` and where the next one starts (`None` after
    /// the last), or `None` when `response` is no page of this list.
    fn page(response: Response) -> Option<(Self::Page, Option<u16>)>;
}

/// The VMs (`list`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmList;

impl PagedList for VmList {
    type Entry = VmInfo;
    type Page = heapless::Vec<VmInfo, LIST_PAGE>;

    fn request(from: u16) -> Request {
        Request::List { from }
    }

    fn page(response: Response) -> Option<(Self::Page, Option<u16>)> {
        // Every other response named, so that a new one is looked at here.
        match response {
            Response::List { vms, next } => Some((vms, next)),
            Response::Ok
            | Response::Err(_)
            | Response::Info(_)
            | Response::ConsoleOutput(_)
            | Response::Stats(_)
            | Response::Ended(_)
            | Response::Images { .. }
            | Response::Events(_) => None,
        }
    }
}

/// The guest images (`images`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageList;

impl PagedList for ImageList {
    type Entry = GuestImage;
    type Page = heapless::Vec<GuestImage, IMAGES_PAGE>;

    fn request(from: u16) -> Request {
        Request::Images { from }
    }

    fn page(response: Response) -> Option<(Self::Page, Option<u16>)> {
        match response {
            Response::Images { images, next } => Some((images, next)),
            _ => None,
        }
    }
}

/// Reads a [`PagedList`] page by page: send [`Pager::next_request`], give
/// the response to [`Pager::accept`], until `next_request` is `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pager<L> {
    from: Option<u16>,
    list: core::marker::PhantomData<L>,
}

/// Reads the VM list.
pub type ListPager = Pager<VmList>;
/// Reads the guest images.
pub type ImagesPager = Pager<ImageList>;

impl<L: PagedList> Default for Pager<L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: PagedList> Pager<L> {
    /// A pager at the first entry.
    pub const fn new() -> Self {
        Pager {
            from: Some(0),
            list: core::marker::PhantomData,
        }
    }

    /// The next page's request, or `None` when the list is complete.
    pub fn next_request(&self) -> Option<Request> {
        self.from.map(L::request)
    }

    /// Takes the answer to the last request and returns its entries. A
    /// page whose `next` does not move forward is
    /// [`ReplyError::Unexpected`] (so that a confused peer cannot make the
    /// reader loop forever); the pager is finished after any error.
    pub fn accept(&mut self, response: Response) -> Result<L::Page, ReplyError> {
        let from = self.from.take().ok_or(ReplyError::Unexpected)?;
        if let Response::Err(error) = response {
            return Err(ReplyError::Refused(error));
        }
        let (page, next) = L::page(response).ok_or(ReplyError::Unexpected)?;
        if let Some(next) = next {
            if next <= from {
                return Err(ReplyError::Unexpected);
            }
            self.from = Some(next);
        }
        Ok(page)
    }
}

/// Whether a failed `command` is best answered with the list of images
/// too: a create that named an image that does not exist, or none.
pub fn wants_image_list(command: &VmCommand, error: &ReplyError) -> bool {
    matches!(command, VmCommand::Create(_))
        && matches!(
            error,
            ReplyError::Refused(ipc::Error::UnknownImage | ipc::Error::NoImageGiven)
        )
}
