//! The VM-control calls of `ipc::syscall` (12-19, 30-33, 35, 36, 38, 46, 47-49), one safe wrapper
//! each, the device service's `vm_set_external_irq` (29) and
//! `platform_info` (34, any task). They need the
//! VM_CONTROL kernel right (the vm-manager holds it; GUEST_IRQ for 29); a
//! VM is named by its vm-manager slot number, below `ipc::syscall::MAX_VMS`.

use ipc::syscall::{IMAGE_HEADER_BYTES, IPC_BUFFER_SIZE, MAX_VMS, Sysno, vm_adopt};
use ipc::{Error, MAX_MESSAGE_SIZE, VmId};

use crate::sys::{checked, with_buffer, with_page};

/// The VM number as the kernel takes it; `InvalidArgument` when it is out
/// of the kernel's range (no call is made).
pub(crate) fn vm_number(vm: VmId) -> Result<usize, Error> {
    let n = usize::from(vm.0);
    if n < MAX_VMS {
        Ok(n)
    } else {
        Err(Error::InvalidArgument)
    }
}

fn vm_call(call: Sysno, vm: VmId, a1: usize, a2: usize) -> Result<[usize; 3], Error> {
    checked(call, [vm_number(vm)?, a1, a2, 0, 0, 0])
}

/// Makes VM `vm` with `ram_mib` MiB of zeroed RAM and `vcpus` stopped vCPUs.
pub fn vm_create(vm: VmId, ram_mib: u32, vcpus: u8) -> Result<(), Error> {
    let ram_mib = usize::try_from(ram_mib).map_err(|_| Error::InvalidArgument)?;
    vm_call(Sysno::VmCreate, vm, ram_mib, usize::from(vcpus)).map(|_| ())
}

/// Puts `name` in the IPC buffer; returns its length.
fn put_name(name: &str) -> Result<usize, Error> {
    let name = name.as_bytes();
    if name.len() > MAX_MESSAGE_SIZE {
        return Err(Error::InvalidArgument);
    }
    with_buffer(|buf| buf[..name.len()].copy_from_slice(name));
    Ok(name.len())
}

fn offset_arg(offset: u64) -> Result<usize, Error> {
    usize::try_from(offset).map_err(|_| Error::InvalidArgument)
}

/// Copies boot-image guest number `image` (as [`image_name`] numbers them)
/// into `vm`'s RAM, `offset` bytes from its start; returns the image's
/// length.
pub fn vm_load(vm: VmId, image: usize, offset: u64) -> Result<usize, Error> {
    let offset = offset_arg(offset)?;
    vm_call(Sysno::VmLoad, vm, image, offset).map(|[len, ..]| len)
}

/// The length of boot-image guest number `image` (as [`image_name`]
/// numbers them) and its first [`IMAGE_HEADER_BYTES`] bytes (zero-filled
/// past its end).
pub fn image_info(image: usize) -> Result<(usize, [u8; IMAGE_HEADER_BYTES]), Error> {
    let [size, ..] = checked(Sysno::ImageInfo, [image, 0, 0, 0, 0, 0])?;
    let mut header = [0u8; IMAGE_HEADER_BYTES];
    with_buffer(|buf| header.copy_from_slice(&buf[..IMAGE_HEADER_BYTES]));
    Ok((size, header))
}

/// The name of boot-image guest number `index` (guest entries only, in
/// the image's order) and its length; `Error::UnknownImage` past the last.
/// The name is copied into `name`, which must hold 32 bytes; returns how
/// many bytes it took.
pub fn image_name(index: usize, name: &mut [u8; 32]) -> Result<(usize, usize), Error> {
    let [name_len, size, ..] = checked(Sysno::ImageName, [index, 0, 0, 0, 0, 0])?;
    let name_len = name_len.min(name.len());
    with_buffer(|buf| name[..name_len].copy_from_slice(&buf[..name_len]));
    Ok((name_len, size))
}

/// Copies `bytes` into `vm`'s RAM at `offset` from its start, a page at a
/// time through the IPC buffer page; the range must end at or below the
/// generation-ID page.
pub fn vm_write_ram(vm: VmId, offset: u64, bytes: &[u8]) -> Result<(), Error> {
    for (i, chunk) in bytes.chunks(IPC_BUFFER_SIZE).enumerate() {
        let at = offset
            .checked_add((i * IPC_BUFFER_SIZE) as u64)
            .ok_or(Error::InvalidArgument)?;
        let at = offset_arg(at)?;
        with_page(|page| page[..chunk.len()].copy_from_slice(chunk));
        vm_call(Sysno::VmWriteRam, vm, at, chunk.len())?;
    }
    Ok(())
}

/// Lets the tasks serving the endpoints in `endpoints` (bit `n` =
/// endpoint number `n`: device models) read and write `vm`'s RAM
/// (`vm_ram_read`, `vm_ram_write`) until the VM is reset or destroyed; 0
/// revokes the grant.
pub fn vm_grant_ram(vm: VmId, endpoints: u64) -> Result<(), Error> {
    let mask = usize::try_from(endpoints).map_err(|_| Error::InvalidArgument)?;
    vm_call(Sysno::VmGrantRam, vm, mask, 0).map(|_| ())
}

fn gpa_arg(gpa: u64, done: usize) -> Result<usize, Error> {
    gpa.checked_add(done as u64)
        .ok_or(Error::InvalidRange)
        .and_then(|at| usize::try_from(at).map_err(|_| Error::InvalidRange))
}

/// Reads `out.len()` bytes of `vm`'s RAM at guest-physical `gpa` (a page at
/// a time, through the IPC buffer page: whatever it held is gone). Needs a
/// `vm_grant_ram` naming the endpoint this task serves.
pub fn vm_ram_read(vm: VmId, gpa: u64, out: &mut [u8]) -> Result<(), Error> {
    for (i, chunk) in out.chunks_mut(IPC_BUFFER_SIZE).enumerate() {
        let at = gpa_arg(gpa, i * IPC_BUFFER_SIZE)?;
        vm_call(Sysno::VmRamRead, vm, at, chunk.len())?;
        with_page(|page| chunk.copy_from_slice(&page[..chunk.len()]));
    }
    Ok(())
}

/// Writes `data` to `vm`'s RAM at guest-physical `gpa` (a page at a time,
/// through the IPC buffer page). Needs a `vm_grant_ram` naming the
/// endpoint this task serves.
pub fn vm_ram_write(vm: VmId, gpa: u64, data: &[u8]) -> Result<(), Error> {
    for (i, chunk) in data.chunks(IPC_BUFFER_SIZE).enumerate() {
        let at = gpa_arg(gpa, i * IPC_BUFFER_SIZE)?;
        with_page(|page| page[..chunk.len()].copy_from_slice(chunk));
        vm_call(Sysno::VmRamWrite, vm, at, chunk.len())?;
    }
    Ok(())
}

/// Reads `out.len()` bytes of `vm`'s device-state area at `offset` (what
/// this task, or the one that served its endpoint before it, kept there
/// with [`vm_state_write`]), through the IPC buffer page. Needs a
/// `vm_grant_ram` naming the endpoint this task serves.
pub fn vm_state_read(vm: VmId, offset: usize, out: &mut [u8]) -> Result<(), Error> {
    if out.len() > IPC_BUFFER_SIZE {
        return Err(Error::MessageTooLarge);
    }
    vm_call(Sysno::VmStateRead, vm, offset, out.len())?;
    with_page(|page| out.copy_from_slice(&page[..out.len()]));
    Ok(())
}

/// Writes `data` into `vm`'s device-state area at `offset`, which the
/// kernel keeps until the VM is reset or destroyed, through the IPC
/// buffer page. Needs a `vm_grant_ram` naming the endpoint this task
/// serves.
pub fn vm_state_write(vm: VmId, offset: usize, data: &[u8]) -> Result<(), Error> {
    if data.len() > IPC_BUFFER_SIZE {
        return Err(Error::MessageTooLarge);
    }
    with_page(|page| page[..data.len()].copy_from_slice(data));
    vm_call(Sysno::VmStateWrite, vm, offset, data.len()).map(|_| ())
}

/// The host's timer frequency in Hz and its `PLATFORM_*` feature bits.
pub fn platform_info() -> Result<(u64, usize), Error> {
    checked(Sysno::PlatformInfo, [0; 6]).map(|[hz, flags, _]| (hz as u64, flags))
}

/// Gives `vm` its device tree (at most one page); returns the guest-physical
/// address the vCPUs will find it at (their a1). The bytes travel in the
/// IPC buffer page.
pub fn vm_set_dtb(vm: VmId, dtb: &[u8]) -> Result<u64, Error> {
    if dtb.len() > IPC_BUFFER_SIZE {
        return Err(Error::InvalidArgument);
    }
    with_page(|page| page[..dtb.len()].copy_from_slice(dtb));
    vm_call(Sysno::VmSetDtb, vm, dtb.len(), 0).map(|[gpa, ..]| gpa as u64)
}

/// Starts vCPU 0 of `vm` at `entry` with a0 = 0 and a1 = the device tree
/// at `dtb` (both offsets from the start of its RAM).
pub fn vm_start(vm: VmId, entry: u64, dtb: u64) -> Result<(), Error> {
    vm_call(Sysno::VmStart, vm, offset_arg(entry)?, offset_arg(dtb)?).map(|_| ())
}

/// Holds every vCPU of `vm`.
pub fn vm_pause(vm: VmId) -> Result<(), Error> {
    vm_call(Sysno::VmPause, vm, 0, 0).map(|_| ())
}

/// Lets a paused `vm` run again.
pub fn vm_resume(vm: VmId) -> Result<(), Error> {
    vm_call(Sysno::VmResume, vm, 0, 0).map(|_| ())
}

/// Stops every vCPU of `vm`, drops its I/O in flight and zeroes its RAM;
/// load, set the device tree and start it again afterwards.
pub fn vm_reset(vm: VmId) -> Result<(), Error> {
    vm_call(Sysno::VmReset, vm, 0, 0).map(|_| ())
}

/// Tears `vm` down from any state and returns its memory.
pub fn vm_destroy(vm: VmId) -> Result<(), Error> {
    vm_call(Sysno::VmDestroy, vm, 0, 0).map(|_| ())
}

/// Writes `vm`'s generation ID (16 bytes, little-endian) into its
/// generation-ID page; returns the page's guest-physical address.
pub fn vm_write_genid(vm: VmId, id: [u8; 16]) -> Result<u64, Error> {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&id[..8]);
    hi.copy_from_slice(&id[8..]);
    let (lo, hi) = (u64::from_le_bytes(lo), u64::from_le_bytes(hi));
    let lo = usize::try_from(lo).map_err(|_| Error::InvalidArgument)?;
    let hi = usize::try_from(hi).map_err(|_| Error::InvalidArgument)?;
    vm_call(Sysno::VmWriteGenid, vm, lo, hi).map(|[gpa, ..]| gpa as u64)
}

/// Copies all of the held `src`'s RAM over the start of `dst`'s (both
/// created and not running, `dst` at least as large).
pub fn vm_clone_ram(src: VmId, dst: VmId) -> Result<(), Error> {
    vm_call(Sysno::VmCloneRam, src, vm_number(dst)?, 0).map(|_| ())
}

/// Raises or lowers the supervisor external interrupt of `vm`'s vCPU
/// `vcpu`, i.e. PLIC context `vcpu` (the device service's PLIC output;
/// GUEST_IRQ right). `InvalidArgument` for a vCPU the VM lacks.
pub fn vm_set_external_irq(vm: VmId, raised: bool, vcpu: usize) -> Result<(), Error> {
    vm_call(Sysno::VmSetExternalIrq, vm, usize::from(raised), vcpu).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_numbers_beyond_the_kernel_table_are_refused_before_any_call() {
        assert_eq!(vm_number(VmId(0)), Ok(0));
        assert_eq!(vm_number(VmId(15)), Ok(15));
        assert_eq!(vm_number(VmId(16)), Err(Error::InvalidArgument));
        assert_eq!(vm_start(VmId(16), 0, 0), Err(Error::InvalidArgument));
        assert_eq!(vm_clone_ram(VmId(0), VmId(16)), Err(Error::InvalidArgument));
    }

    #[test]
    fn oversized_arguments_are_refused_before_touching_the_buffer() {
        let long = [b'a'; MAX_MESSAGE_SIZE + 1];
        let long = core::str::from_utf8(&long).unwrap();
        assert_eq!(vm_set_name(VmId(0), long), Err(Error::InvalidArgument));
        assert_eq!(
            vm_set_dtb(VmId(0), &[0; IPC_BUFFER_SIZE + 1]),
            Err(Error::InvalidArgument)
        );
    }
}

/// Where VM `vm` is as the kernel sees it: an `ipc::syscall::vm_status`
/// value and how it left running, the exit record the kernel wrote into
/// the IPC buffer (asked after the kernel said the VM ended).
pub fn vm_status(vm: VmId) -> Result<(usize, ipc::syscall::vm_exit::ExitRecord), Error> {
    let [status, ..] = vm_call(Sysno::VmStatus, vm, 0, 0)?;
    let record = with_buffer(|buf| ipc::syscall::vm_exit::ExitRecord::from_bytes(buf));
    Ok((status, record.unwrap_or_default()))
}

/// Three of VM `vm`'s accounting counters: `group` is one of
/// `ipc::syscall::vm_stats`'s, which says which.
pub fn vm_stats(vm: VmId, group: usize) -> Result<[u64; 3], Error> {
    vm_call(Sysno::VmStats, vm, group, 0).map(|values| values.map(|v| v as u64))
}

/// Every vCPU of VM `vm`: its state, exits and I/O round trips (the
/// `vm_stats` groups `VCPU + n`, read until the kernel says there are no
/// more); `Error::Malformed` for a state code this side does not know.
pub fn vm_vcpu_stats(vm: VmId) -> Result<ipc::vm::VcpuList, Error> {
    ipc::vm::read_vcpus(|group| vm_stats(vm, group))
}

/// Gives VM `vm` its name for the kernel's lines about it.
pub fn vm_set_name(vm: VmId, name: &str) -> Result<(), Error> {
    let len = put_name(name)?;
    vm_call(Sysno::VmSetName, vm, len, 0).map(|_| ())
}

/// What the kernel hands over with a VM (`vm_adopt`).
#[derive(Clone, Debug)]
pub struct AdoptedVm {
    /// Its `ipc::syscall::vm_status`.
    pub status: usize,
    /// RAM in MiB.
    pub ram_mib: u32,
    /// vCPUs.
    pub vcpus: u8,
    /// The generation ID last written into it.
    pub generation_id: [u8; 16],
    name: [u8; 32],
    name_len: usize,
    note: [u8; vm_adopt::NOTE_MAX],
    note_len: usize,
}

impl AdoptedVm {
    /// Its name; `None` if the kernel's bytes are not UTF-8.
    pub fn name(&self) -> Option<&str> {
        core::str::from_utf8(self.name.get(..self.name_len)?).ok()
    }

    /// The note kept with it (`vm_set_note`).
    pub fn note(&self) -> &[u8] {
        self.note.get(..self.note_len).unwrap_or_default()
    }
}

/// Takes over VM `vm` as its controller (told from now on when its guest
/// ends) and reads what the kernel knows of it.
pub fn vm_adopt(vm: VmId) -> Result<AdoptedVm, Error> {
    let [status, ram_mib, vcpus] = vm_call(Sysno::VmAdopt, vm, 0, 0)?;
    let mut adopted = AdoptedVm {
        status,
        ram_mib: u32::try_from(ram_mib).map_err(|_| Error::InvalidArgument)?,
        vcpus: u8::try_from(vcpus).map_err(|_| Error::InvalidArgument)?,
        generation_id: [0; 16],
        name: [0; 32],
        name_len: 0,
        note: [0; vm_adopt::NOTE_MAX],
        note_len: 0,
    };
    with_buffer(|buf| {
        adopted.generation_id.copy_from_slice(&buf[vm_adopt::GENID]);
        let name_len = usize::from(buf[vm_adopt::NAME_LEN]).min(adopted.name.len());
        adopted.name[..name_len].copy_from_slice(&buf[vm_adopt::NAME..vm_adopt::NAME + name_len]);
        adopted.name_len = name_len;
        let note_len = u16::from_le_bytes([
            buf[vm_adopt::NOTE_LEN.start],
            buf[vm_adopt::NOTE_LEN.start + 1],
        ]);
        let note_len = usize::from(note_len).min(vm_adopt::NOTE_MAX);
        if let Some(note) = buf.get(vm_adopt::NOTE..vm_adopt::NOTE + note_len) {
            adopted.note[..note_len].copy_from_slice(note);
            adopted.note_len = note_len;
        }
    });
    Ok(adopted)
}

/// Keeps `note` (at most `vm_adopt::NOTE_MAX` bytes) with VM `vm` for
/// whoever adopts it later.
pub fn vm_set_note(vm: VmId, note: &[u8]) -> Result<(), Error> {
    if note.len() > vm_adopt::NOTE_MAX {
        return Err(Error::MessageTooLarge);
    }
    with_buffer(|buf| buf[..note.len()].copy_from_slice(note));
    vm_call(Sysno::VmSetNote, vm, note.len(), 0).map(|_| ())
}
