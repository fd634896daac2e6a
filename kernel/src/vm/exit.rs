//! Why a vCPU left the guest, in architecture-free terms: each backend
//! (SVM's exit code and exit information, later VMX's exit reason and
//! qualification) decodes its hardware exit into a [`GuestExit`], and the
//! generic side decides. A port access becomes the same [`IoRequest`] an
//! ioreq slot carries, so the ioreq path serves PIO like MMIO.

use ipc::Space;
use ipc::ioreq_abi::posted::PostedWrite;
use ipc::ioreq_abi::slot::{Direction, IoRequest};

use super::GuestAccess;

/// A trapped guest port access (`in`/`out`, one element, no `rep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PioExit {
    /// The port.
    pub port: u16,
    /// Bytes accessed: 1, 2 or 4.
    pub size: u8,
    /// The value written, or `None` for a read.
    pub write: Option<u32>,
}

impl PioExit {
    /// The ioreq slot request for this access by `vcpu`.
    pub fn request(&self, vcpu: u8) -> IoRequest {
        IoRequest {
            vcpu,
            space: Space::Pio,
            addr: u64::from(self.port),
            size: self.size,
            direction: if self.write.is_some() {
                Direction::Write
            } else {
                Direction::Read
            },
            value: u64::from(self.write.unwrap_or(0)),
        }
    }

    /// Whether the access reaches past the last port, 0xffff (a word or
    /// doubleword `in`/`out` near the top): no ioreq slot takes it and no
    /// device answers there.
    pub fn past_last_port(&self) -> bool {
        u32::from(self.port) + u32::from(self.size) > 0x1_0000
    }

    /// The write as the posted-write ring carries it; `None` for a read.
    pub fn posted(&self) -> Option<PostedWrite> {
        self.write.map(|value| PostedWrite {
            space: Space::Pio,
            addr: u64::from(self.port),
            size: self.size,
            value: u64::from(value),
        })
    }

    /// What an `in` reads where no device answers: all ones of its width
    /// (a PC's floating bus).
    pub fn open_bus(&self) -> u64 {
        port_mask(self.size)
    }
}

/// All ones in the bytes a port access of `size` (1, 2 or 4) moves.
#[inline]
pub fn port_mask(size: u8) -> u64 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    }
}

/// What a guest access that faulted in the nested tables tried, from the
/// fault's fetch and write bits (SVM's NPF error code, VMX's EPT
/// qualification): a fetch, else a store, else a load.
#[inline]
pub fn fault_access(fetch: bool, write: bool) -> GuestAccess {
    if fetch {
        GuestAccess::Fetch
    } else if write {
        GuestAccess::Store
    } else {
        GuestAccess::Load
    }
}

/// A decoded guest exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExit {
    /// A port access to emulate.
    Pio(PioExit),
    /// The guest halted.
    Halt,
    /// The guest called the hypervisor.
    Hypercall,
    /// The guest asked which CPU it runs on.
    Cpuid,
    /// The guest read or wrote a model-specific register the backend
    /// intercepts (x86 RDMSR/WRMSR: ECX names it, EDX:EAX the value).
    Msr {
        /// WRMSR rather than RDMSR.
        write: bool,
    },
    /// The guest read a hardware performance counter (x86 RDPMC): none is
    /// virtualised, so the guest gets the fault of a CPU without it.
    PerfCounterRead,
    /// The guest wrote a control register whose bits the backend owns
    /// some of (x86 MOV to CR4).
    ControlRegisterWrite {
        /// The source register (x86 numbering), when the hardware names
        /// it; `None`: the backend decodes the instruction.
        gpr: Option<u8>,
    },
    /// A host interrupt arrived while the guest ran; just resume it.
    HostInterrupt,
    /// A guest-physical access that is neither RAM nor a device.
    GuestPageFault {
        /// What the access was.
        access: GuestAccess,
        /// The guest-physical address.
        gpa: u64,
    },
    /// The guest shut itself down (a triple fault).
    Shutdown,
    /// An exit the kernel does not handle, by the backend's number.
    Unhandled {
        /// The backend's exit number.
        code: u64,
        /// Its first piece of exit information.
        info: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_past_port_ffff_is_no_slot_request_and_reads_all_ones() {
        use ipc::ioreq_abi::slot::validate;
        let at = |port, size| PioExit {
            port,
            size,
            write: None,
        };
        // A byte at 0xffff and a word at 0xfffe are ordinary accesses.
        for pio in [at(0xffff, 1), at(0xfffe, 2), at(0xfffc, 4)] {
            assert!(!pio.past_last_port(), "{pio:?}");
            assert_eq!(validate(&pio.request(0)), Ok(()));
        }
        // A word at 0xffff (found by the `x86_exit` fuzz target) and a
        // doubleword at 0xfffd reach past the last port: the slot refuses
        // them, so the backend answers them itself.
        for pio in [at(0xffff, 2), at(0xfffd, 4), at(0xffff, 4)] {
            assert!(pio.past_last_port(), "{pio:?}");
            assert!(validate(&pio.request(0)).is_err());
        }
        assert_eq!(at(0xffff, 2).open_bus(), 0xffff);
        assert_eq!(at(0xffff, 4).open_bus(), 0xffff_ffff);
    }

    #[test]
    fn port_accesses_become_ioreq_requests() {
        let out = PioExit {
            port: 0x3f8,
            size: 1,
            write: Some(0x68),
        };
        let r = out.request(0);
        assert_eq!((r.space, r.addr, r.size), (Space::Pio, 0x3f8, 1));
        assert_eq!((r.direction, r.value), (Direction::Write, 0x68));
        let read = PioExit {
            port: 0x3fd,
            size: 1,
            write: None,
        };
        assert_eq!(read.request(2).direction, Direction::Read);
        assert_eq!(read.request(2).vcpu, 2);
    }
}
