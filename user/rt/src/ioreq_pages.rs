//! The ioreq calls of `ipc::syscall` (20, 21, 37, 39, 52) and the accessors to
//! a VM's mapped ioreq page and posted-write ring. Only the task holding the IOREQ right (the ioreq
//! service) uses them.
//!
//! [`ioreq_page`] hands out the page of an attached VM as a
//! `&'static mut IoreqPage` at most once at a time: a bit per VM records
//! that the kernel mapped it ([`ioreq_attach`] succeeded) and another that
//! a reference is out; [`give_back`] ends the loan.

use core::sync::atomic::{AtomicU32, Ordering};

use ipc::ioreq_abi::page::IoreqPage;
use ipc::ioreq_abi::posted::PostedPage;
use ipc::syscall::{IOREQ_PAGES, MAX_VMS, POSTED_PAGES, Sysno};
use ipc::{Error, Space, VmId};

use crate::Received;
use crate::sys::checked;
use crate::vm::vm_number;

/// Bytes between two VMs' pages in the ioreq window.
const PAGE_STRIDE: usize = 4096;

// One bit per VM number: the kernel mapped its page / a reference is out.
const _: () = assert!(MAX_VMS <= 32);
static MAPPED: AtomicU32 = AtomicU32::new(0);
static LENT: AtomicU32 = AtomicU32::new(0);

/// Where VM number `n`'s ioreq page is mapped.
pub const fn page_address(n: usize) -> usize {
    IOREQ_PAGES + n * PAGE_STRIDE
}

/// Maps `vm`'s ioreq page into this task (at [`page_address`]) and routes
/// its I/O exits to this task's `recv`; returns the page's address.
/// `KernelRefused` if the kernel reports any other address.
pub fn ioreq_attach(vm: VmId) -> Result<usize, Error> {
    let n = vm_number(vm)?;
    let [addr, ..] = checked(Sysno::IoreqAttach, [n, 0, 0, 0, 0, 0])?;
    if addr != page_address(n) {
        return Err(Error::KernelRefused);
    }
    MAPPED.fetch_or(1 << n, Ordering::AcqRel);
    Ok(addr)
}

/// Tells the kernel the request in `vcpu`'s slot of `vm` is COMPLETE: it
/// takes the value, frees the slot and lets the vCPU run.
#[inline]
pub fn ioreq_resume(vm: VmId, vcpu: u8) -> Result<(), Error> {
    let n = vm_number(vm)?;
    checked(Sysno::IoreqResume, [n, usize::from(vcpu), 0, 0, 0, 0]).map(|_| ())
}

/// [`ioreq_resume`] and then a receive on endpoint slot `ep` in one call
/// (`ioreq_complete_recv`): the vCPU runs at once, and this returns with
/// the next ioreq wake-up or message. On a refused resume the error comes
/// back at once, without receiving.
pub fn ioreq_complete_recv(vm: VmId, vcpu: u8, ep: usize) -> Result<Received, Error> {
    let n = vm_number(vm)?;
    checked(
        Sysno::IoreqCompleteRecv,
        [n, usize::from(vcpu), ep, 0, 0, 0],
    )
    .map(|[len, badge, vms]| Received::from_registers(len, badge, vms))
}

/// Hands the access of `vm`'s vCPU `vcpu` (its slot PROCESSING), the
/// first `len` bytes of the IPC buffer, to the task waiting to receive on
/// endpoint slot `ep` (`ioreq_forward` with `NO_RECV`): the kernel
/// completes the slot with that client's plain answer and resumes the
/// vCPU, and hands back any other answer. `KernelRefused` while the
/// client is busy, `BadSlotState` for an access handed back once,
/// `Forwarded` for one a client holds already: nothing was done then.
#[inline]
pub fn ioreq_forward(ep: usize, len: usize, vm: VmId, vcpu: u8) -> Result<(), Error> {
    let n = vm_number(vm)?;
    let args = [ep, len, n, usize::from(vcpu), ipc::syscall::NO_RECV, 0];
    checked(Sysno::IoreqForward, args).map(|_| ())
}

/// [`ioreq_forward`] and then a receive on endpoint slot `recv` in one
/// call: the client runs at once, and this returns with the next ioreq
/// wake-up or message. A refused hand-over's error comes back at once,
/// without receiving.
#[inline]
pub fn ioreq_forward_recv(
    ep: usize,
    len: usize,
    vm: VmId,
    vcpu: u8,
    recv: usize,
) -> Result<Received, Error> {
    let n = vm_number(vm)?;
    checked(
        Sysno::IoreqForward,
        [ep, len, n, usize::from(vcpu), recv, 0],
    )
    .map(|[len, badge, vms]| Received::from_registers(len, badge, vms))
}

/// The mapped ioreq page of `vm`. `UnknownVm` before [`ioreq_attach`]
/// succeeded for it; `InvalidArgument` while the previous reference is
/// still out (see [`give_back`]).
pub fn ioreq_page(vm: VmId) -> Result<&'static mut IoreqPage, Error> {
    let n = vm_number(vm)?;
    let bit = 1 << n;
    if MAPPED.load(Ordering::Acquire) & bit == 0 {
        return Err(Error::UnknownVm);
    }
    if LENT.fetch_or(bit, Ordering::AcqRel) & bit != 0 {
        return Err(Error::InvalidArgument);
    }
    let page = page_address(n) as *mut IoreqPage;
    // SAFETY:
    // 1. The kernel mapped exactly `vm`'s 4 KiB ioreq page read-write at
    //    `page_address(n)` when `ioreq_attach(vm)` returned that address (the
    //    MAPPED bit), and never unmaps it while the task lives; the address
    //    is page-aligned, as `IoreqPage` (align 4096, size 4096) needs.
    // 2. `IoreqPage` is `repr(C)` and made only of `u32`s, `u64`s and one
    //    `AtomicU32` per slot, so every bit pattern the kernel leaves there
    //    is a valid value.
    // 3. The LENT bit makes this the only reference to the page in the task
    //    until `give_back` takes it back; no other code forms one (the
    //    window lies outside the image, heap, stack and IPC buffer).
    // 4. The kernel writes the page only while this single-threaded task is
    //    inside a system call or not running (one hart), and every `ecall`
    //    is a compiler barrier for memory, so the compiler never caches a
    //    slot across a kernel write. With the kernel on other harts, each
    //    slot's state word is atomic and `ipc::ioreq_abi::slot` touches the
    //    rest of a slot only while its state makes it this task's (the
    //    ownership rule in that module's doc).
    Ok(unsafe { &mut *page })
}

/// Where VM number `n`'s posted-write ring is mapped.
pub const fn ring_address(n: usize) -> usize {
    POSTED_PAGES + n * PAGE_STRIDE
}

/// The posted-write ring of `vm`, mapped by the same [`ioreq_attach`] as
/// its page. `UnknownVm` before that attach succeeded.
pub fn posted_ring(vm: VmId) -> Result<&'static PostedPage, Error> {
    let n = vm_number(vm)?;
    if MAPPED.load(Ordering::Acquire) & (1 << n) == 0 {
        return Err(Error::UnknownVm);
    }
    let ring = ring_address(n) as *const PostedPage;
    // SAFETY: the kernel mapped `vm`'s 4 KiB ring read-write at
    // `ring_address(n)` with its ioreq page (the MAPPED bit) and never
    // unmaps it while the task lives; the address is page-aligned as
    // `PostedPage` (align 4096, size 4096) needs. `PostedPage` is atomics
    // only: every bit pattern is valid, shared references may alias, and
    // the kernel's concurrent writes go through the same atomics.
    Ok(unsafe { &*ring })
}

/// Lets the kernel post `vm`'s writes to `[start, start + len)` of `space`
/// (`ioreq_post`; MMIO or port I/O).
pub fn ioreq_post(vm: VmId, space: Space, start: u64, len: u64) -> Result<(), Error> {
    let n = vm_number(vm)?;
    let space = match space {
        Space::Mmio => 0,
        Space::Pio => 1,
        Space::PciConfig => return Err(Error::InvalidArgument),
    };
    let (start, len) = (
        usize::try_from(start).map_err(|_| Error::InvalidRange)?,
        usize::try_from(len).map_err(|_| Error::InvalidRange)?,
    );
    checked(Sysno::IoreqPost, [n, space, start, len, 0, 0]).map(|_| ())
}

/// Ends the loan of `vm`'s page taken with [`ioreq_page`] (the VM was
/// detached); the page may be handed out again later. A reference that is
/// not `vm`'s page is dropped without changing anything.
pub fn give_back(vm: VmId, page: &'static mut IoreqPage) {
    let Ok(n) = vm_number(vm) else { return };
    if core::ptr::from_mut(page) as usize == page_address(n) {
        LENT.fetch_and(!(1 << n), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_laid_out_one_per_vm_number_from_the_window_base() {
        assert_eq!(page_address(0), IOREQ_PAGES);
        assert_eq!(page_address(3), IOREQ_PAGES + 3 * 4096);
        assert_eq!(ring_address(0), POSTED_PAGES);
        assert_eq!(ring_address(3), POSTED_PAGES + 3 * 4096);
    }

    #[test]
    fn a_page_is_only_lent_after_its_attach_succeeded() {
        // Host builds have no kernel: the attach is refused and nothing is
        // mapped, so no reference can be formed.
        assert_eq!(ioreq_attach(VmId(2)), Err(Error::KernelRefused));
        assert_eq!(ioreq_page(VmId(2)).err(), Some(Error::UnknownVm));
        assert_eq!(ioreq_page(VmId(99)).err(), Some(Error::InvalidArgument));
        assert_eq!(posted_ring(VmId(2)).err(), Some(Error::UnknownVm));
    }
}
