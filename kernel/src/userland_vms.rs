//! The VM calls on the running kernel: [`VmHost`] over the arch's
//! `GuestVm`s (RAM, G-stage, ioreq page), the boot image's guest entries
//! and the tasks' address spaces (IPC buffer reads, the ioreq page mapped
//! at `IOREQ_PAGES + vm * 4096`, the posted-write ring at `POSTED_PAGES +
//! vm * 4096`).

extern crate alloc;

use alloc::boxed::Box;

use ipc::console_text::Checked;
use ipc::syscall::{
    IMAGE_HEADER_BYTES, IOREQ_PAGES, IPC_BUFFER, IPC_BUFFER_SIZE, MAX_VMS, POSTED_PAGES,
};
use ipc::{Error, Space};
use mica_boot::image::{EntryKind, ImageEntry};

use super::Tasks;
use crate::arch::GuestVm;
use crate::klog;
use crate::kmain::FRAMES;
use crate::obj::ids::TaskId;
use crate::syscall_vm::VmHost;
use crate::vm::ioreq_path;
use crate::vm::stats::{VcpuStats, VmFigures};
use crate::vm::tlb_tag::TlbTag;
use crate::vm::{VmName, numbered_name};
use ipc::syscall::vm_exit::ExitRecord;

/// Every VM's arch state, by number.
pub(super) struct Guests {
    pub(super) vms: [Option<Box<GuestVm>>; MAX_VMS],
}

impl Guests {
    pub(super) const fn new() -> Self {
        Guests {
            vms: [const { None }; MAX_VMS],
        }
    }
}

/// Whether `guest`'s vCPU `vcpu` waits on an access whose slot is
/// PROCESSING: the ioreq service took it and may hand it to a client
/// (`ioreq_forward`, on the general path and the fast one).
#[inline(always)]
pub(super) fn forwardable(guest: &mut GuestVm, vcpu: usize) -> bool {
    guest
        .submitted(vcpu)
        .is_some_and(|submitted| ioreq_path::forwardable(guest.io.page(), submitted.vcpu))
}

fn page_addr(vm: usize) -> usize {
    IOREQ_PAGES + vm * 4096
}

/// Where VM `vm`'s posted-write ring is mapped in the ioreq task.
fn ring_addr(vm: usize) -> usize {
    POSTED_PAGES + vm * 4096
}

/// Copies between `area` (guest RAM, a device-state area) and the start
/// of `task`'s IPC buffer page: the page into `area` when `into_area`,
/// else `area` into the page.
fn ipc_copy(
    slots: &[Option<super::Slot>],
    task: TaskId,
    area: &mut [u8],
    into_area: bool,
) -> Result<(), Error> {
    let slot = slots.get(task.slot()).and_then(Option::as_ref);
    let space = &slot.ok_or(Error::InvalidArgument)?.space;
    if !into_area {
        space.write_ipc(area);
    } else if !space.read_user(IPC_BUFFER, area) {
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

impl Tasks {
    fn guest(&mut self, vm: usize) -> Result<&mut GuestVm, Error> {
        self.guests
            .vms
            .get_mut(vm)
            .and_then(Option::as_mut)
            .map(|b| &mut **b)
            .ok_or(Error::UnknownVm)
    }

    /// Reads `len` bytes of `task`'s IPC buffer page into `out`.
    fn read_ipc<'a>(&self, task: TaskId, len: usize, out: &'a mut [u8]) -> Result<&'a [u8], Error> {
        let buf = out.get_mut(..len).ok_or(Error::MessageTooLarge)?;
        match self.slot(task) {
            Some(slot) if slot.space.read_user(IPC_BUFFER, buf) => Ok(buf),
            _ => Err(Error::InvalidArgument),
        }
    }

    /// Boot-image guest entry number `index` (guest entries only, in the
    /// image's order): the vm-manager turns names into these numbers.
    fn guest_entry(&self, index: usize) -> Result<ImageEntry<'static>, Error> {
        self.boot
            .as_ref()
            .and_then(|b| {
                b.image
                    .entries()
                    .filter(|e| e.spec.kind == EntryKind::Guest)
                    .nth(index)
            })
            .ok_or(Error::UnknownImage)
    }

    fn unmap_ioreq(&self, task: Option<TaskId>, vm: usize) {
        let slot = task.and_then(|t| {
            self.slots
                .get(t.slot())
                .copied()
                .flatten()
                .filter(|s| s.id == t)
        });
        if let Some(slot) = slot {
            slot.space.unmap(page_addr(vm) as u64);
            slot.space.unmap(ring_addr(vm) as u64);
        }
    }
}

impl VmHost for Tasks {
    fn tlb_tags(&mut self) -> u16 {
        crate::arch::guest_tlb_tags()
    }

    fn vm_create(
        &mut self,
        vm: usize,
        ram_bytes: u64,
        vcpus: usize,
        tag: TlbTag,
    ) -> Result<(), Error> {
        let mut name = [0u8; 4];
        let name = VmName::new(numbered_name(vm, &mut name)).ok_or(Error::InvalidArgument)?;
        let guest = GuestVm::create(&mut FRAMES.lock(), name, ram_bytes, vcpus, tag)?;
        let slot = self.guests.vms.get_mut(vm).ok_or(Error::InvalidArgument)?;
        *slot = Some(Box::new(guest));
        Ok(())
    }

    fn vm_load(&mut self, vm: usize, image: usize, offset: u64) -> Result<usize, Error> {
        let data = self.guest_entry(image)?.spec.data;
        self.guest(vm)?.load_at(offset, data)?;
        Ok(data.len())
    }

    fn image_info(&mut self, task: TaskId, image: usize) -> Result<usize, Error> {
        let data = self.guest_entry(image)?.spec.data;
        let mut header = [0u8; IMAGE_HEADER_BYTES];
        let n = data.len().min(IMAGE_HEADER_BYTES);
        header[..n].copy_from_slice(&data[..n]);
        let slot = self.slot(task).ok_or(Error::InvalidArgument)?;
        slot.space.write_ipc(&header);
        Ok(data.len())
    }

    fn image_name(&mut self, task: TaskId, index: usize) -> Result<(usize, usize), Error> {
        let entry = self.guest_entry(index)?;
        let name = entry.spec.name.as_bytes();
        let slot = self.slot(task).ok_or(Error::InvalidArgument)?;
        slot.space.write_ipc(name);
        Ok((name.len(), entry.spec.data.len()))
    }

    fn vm_write_ram(
        &mut self,
        task: TaskId,
        vm: usize,
        offset: u64,
        len: usize,
    ) -> Result<(), Error> {
        let mut buf = [0u8; IPC_BUFFER_SIZE];
        let bytes = self.read_ipc(task, len, &mut buf)?;
        self.guest(vm)?.write_ram(offset, bytes)
    }

    fn vm_ram_copy(
        &mut self,
        task: TaskId,
        vm: usize,
        gpa: u64,
        len: usize,
        to_guest: bool,
    ) -> Result<(), Error> {
        let guest = self.guests.vms.get_mut(vm).and_then(Option::as_mut);
        let window = guest.ok_or(Error::UnknownVm)?.dma_window(gpa, len)?;
        ipc_copy(&self.slots, task, window, to_guest)
    }

    fn vm_state_copy(
        &mut self,
        task: TaskId,
        vm: usize,
        offset: usize,
        len: usize,
        to_state: bool,
    ) -> Result<(), Error> {
        let guest = self.guests.vms.get_mut(vm).and_then(Option::as_mut);
        let area = guest
            .ok_or(Error::UnknownVm)?
            .vm
            .device_state
            .window(offset, len)?;
        ipc_copy(&self.slots, task, area, to_state)
    }

    fn vm_set_dtb(&mut self, task: TaskId, vm: usize, len: usize) -> Result<u64, Error> {
        let mut buf = [0u8; IPC_BUFFER_SIZE];
        let dtb = self.read_ipc(task, len, &mut buf)?;
        self.guest(vm)?.set_dtb(dtb)
    }

    fn vm_start(&mut self, vm: usize, entry: u64, dtb: u64) -> Result<(), Error> {
        self.guest(vm)?.start_at(entry, dtb)
    }

    fn vm_quiesce(&mut self, vm: usize) {
        if let Some(guest) = self.guests.vms.get(vm).and_then(Option::as_ref) {
            guest.quiesce();
        }
    }

    fn vm_reset(&mut self, vm: usize) {
        if let Ok(guest) = self.guest(vm) {
            guest.reset();
        }
    }

    fn vm_destroy(&mut self, vm: usize, ioreq: Option<TaskId>) {
        self.unmap_ioreq(ioreq, vm);
        if let Some(guest) = self.guests.vms.get_mut(vm).and_then(Option::take) {
            guest.destroy(&mut FRAMES.lock());
        }
    }

    fn ioreq_attach(
        &mut self,
        task: TaskId,
        vm: usize,
        previous: Option<TaskId>,
    ) -> Result<usize, Error> {
        let guest = self.guest(vm)?;
        let (frame, ring) = (guest.io.ioreq, guest.io.posted);
        let slot = self
            .slots
            .get(task.slot())
            .copied()
            .flatten()
            .ok_or(Error::InvalidArgument)?;
        if previous != Some(task) {
            self.unmap_ioreq(previous, vm);
        }
        let frames = &mut FRAMES.lock();
        slot.space
            .map_shared(frames, page_addr(vm) as u64, frame)
            .and_then(|()| slot.space.map_shared(frames, ring_addr(vm) as u64, ring))
            .map_err(|_| Error::OutOfMemory)?;
        Ok(page_addr(vm))
    }

    fn ioreq_resume(&mut self, vm: usize, vcpu: usize) -> Result<(), Error> {
        let guest = self.guest(vm)?;
        guest.resume_io(vcpu)?;
        guest.io_resumed_at(crate::arch::timer_now());
        Ok(())
    }

    fn ioreq_forwardable(&mut self, vm: usize, vcpu: usize) -> Result<(), Error> {
        if forwardable(self.guest(vm)?, vcpu) {
            Ok(())
        } else {
            Err(Error::BadSlotState)
        }
    }

    fn ioreq_answer(
        &mut self,
        vm: usize,
        vcpu: usize,
        answer: Option<ipc::devices::Response>,
    ) -> Result<bool, Error> {
        let guest = self.guest(vm)?;
        let submitted = guest.submitted(vcpu).ok_or(Error::BadSlotState)?;
        if !guest.take_answer(vcpu, answer)? {
            ipc::ioreq_abi::slot::hand_back(guest.io.page(), submitted.vcpu)?;
            return Ok(false);
        }
        guest.io_resumed_at(crate::arch::timer_now());
        Ok(true)
    }

    fn read_message(&mut self, task: TaskId, out: &mut [u8]) -> bool {
        self.slot(task).is_some_and(|slot| slot.space.read_ipc(out))
    }

    fn ioreq_post(&mut self, vm: usize, space: Space, start: u64, len: u64) -> Result<(), Error> {
        let guest = self.guest(vm)?;
        if guest.io.posting.leased() {
            // A run posts under the old ranges: it leaves its guest and
            // gives them back first.
            guest.quiesce();
            guest.io.settle_any();
        }
        guest.io.posting.set(space, start, len)
    }

    fn console_raw(&mut self, line: &[u8]) {
        // The devices service escapes guest text; a line that still holds
        // a control byte is escaped here rather than printed.
        klog::print(format_args!("{}\n", Checked(line)));
    }

    fn vm_set_external_irq(&mut self, vm: usize, vcpu: usize, raised: bool) -> Result<(), Error> {
        self.guest(vm)?.set_external_irq(vcpu, raised)
    }

    fn vm_write_genid(&mut self, vm: usize, id: [u8; 16]) -> Result<u64, Error> {
        let guest = self.guest(vm)?;
        let gpa = guest.write_genid(id)?;
        guest.vm.generation_id = id;
        Ok(gpa)
    }

    fn vm_set_note(&mut self, task: TaskId, vm: usize, len: usize) -> Result<(), Error> {
        let mut buf = [0u8; ipc::syscall::vm_adopt::NOTE_MAX];
        let note = self.read_ipc(task, len, &mut buf)?;
        self.guest(vm)?.vm.note = crate::vm::Note::new(note).ok_or(Error::InvalidArgument)?;
        Ok(())
    }

    fn vm_describe(&mut self, task: TaskId, vm: usize) -> Result<u64, Error> {
        use ipc::syscall::vm_adopt;
        let guest = self.guest(vm)?;
        let (name, id, ram) = (guest.vm.name, guest.vm.generation_id, guest.vm.ram_bytes);
        let note = guest.vm.note;
        let (name, note) = (name.as_str().as_bytes(), note.as_bytes());
        let mut out = [0u8; vm_adopt::NOTE + vm_adopt::NOTE_MAX];
        let end = vm_adopt::NOTE + note.len();
        let too_long = |_| Error::InvalidArgument;
        out.get_mut(vm_adopt::GENID)
            .ok_or(Error::InvalidArgument)?
            .copy_from_slice(&id);
        out[vm_adopt::NAME_LEN] = u8::try_from(name.len()).map_err(too_long)?;
        out.get_mut(vm_adopt::NAME..vm_adopt::NAME + name.len())
            .ok_or(Error::InvalidArgument)?
            .copy_from_slice(name);
        let note_len = u16::try_from(note.len()).map_err(too_long)?;
        out[vm_adopt::NOTE_LEN].copy_from_slice(&note_len.to_le_bytes());
        out.get_mut(vm_adopt::NOTE..end)
            .ok_or(Error::InvalidArgument)?
            .copy_from_slice(note);
        let slot = self.slot(task).ok_or(Error::InvalidArgument)?;
        slot.space.write_ipc(&out[..end]);
        Ok(ram)
    }

    fn vm_set_name(&mut self, task: TaskId, vm: usize, len: usize) -> Result<(), Error> {
        let mut buf = [0u8; 32];
        let name = self.read_ipc(task, len, &mut buf)?;
        let name = core::str::from_utf8(name)
            .ok()
            .and_then(VmName::new)
            .ok_or(Error::InvalidArgument)?;
        self.guest(vm)?.vm.name = name;
        Ok(())
    }

    fn vm_exit(&mut self, vm: usize) -> Option<(usize, ExitRecord)> {
        let vm = &self.guest(vm).ok()?.vm;
        Some((vm.state().status()?, vm.exit_record()))
    }

    fn write_ipc(&mut self, task: TaskId, bytes: &[u8]) {
        if let Some(slot) = self.slot(task) {
            slot.space.write_ipc(bytes);
        }
    }

    fn vm_stats(&mut self, vm: usize) -> Result<VmFigures, Error> {
        let guest = self.guest(vm)?;
        let vcpus = guest.vcpus.all_stats();
        Ok(guest.vm.stats.figures(crate::ticks::clock_hz(), vcpus))
    }

    fn vcpu_stats(&mut self, vm: usize, vcpu: usize) -> Result<VcpuStats, Error> {
        self.guest(vm)?
            .vcpus
            .stats(vcpu)
            .ok_or(Error::InvalidArgument)
    }

    fn vm_clone_ram(&mut self, src: usize, dst: usize) -> Result<(), Error> {
        if src == dst {
            return Err(Error::InvalidArgument);
        }
        // Two distinct slots of the table, borrowed at once.
        let (low, high) = self.guests.vms.split_at_mut(src.max(dst));
        let first = low.get_mut(src.min(dst)).and_then(Option::as_mut);
        let second = high.first_mut().and_then(Option::as_mut);
        let (Some(first), Some(second)) = (first, second) else {
            return Err(Error::UnknownVm);
        };
        let (from, to) = if src < dst {
            (first, second)
        } else {
            (second, first)
        };
        to.clone_ram_from(from)
    }
}
