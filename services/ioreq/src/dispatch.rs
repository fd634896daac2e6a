//! One VM's dispatcher: drains its PENDING slots into forwards to the I/O
//! clients, and turns a client's answer into a COMPLETE slot and a vCPU
//! resume. The library does no I/O: it returns [`Actions`] for the task
//! binary to carry out.

use ipc::devices::wire::Access;
use ipc::ioreq::ClientId;
use ipc::{Error, VmId};

use crate::clients::ClientRegistry;
use crate::counters::IoreqCounters;
use crate::page::{IoreqPage, SLOT_COUNT};
use crate::slot::{self, Direction, IoRequest, SlotError, SlotEvent, SlotState};

/// The value a read returns when no device answers: all-ones, as on a real
/// bus (cut to the access width).
pub const UNCLAIMED_READ: u64 = u64::MAX;

/// A request handed to a client: send `request` to `client`; its answer
/// comes back as `ioreq::Request::Complete { vm, vcpu, .. }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The device task that emulates the access.
    pub client: ClientId,
    /// The vCPU (slot) whose access it is.
    pub vcpu: u8,
    /// The access, sent as a `devices::Request::Read` or `Write`
    /// ([`Access::request`]).
    pub request: Access,
}

/// Something the task binary must do after a request was handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a request to a client.
    Forward(Forward),
    /// The vCPU's slot is COMPLETE: ask the kernel to resume the vCPU (the
    /// kernel takes the result and frees the slot).
    ResumeVcpu {
        /// The VM.
        vm: VmId,
        /// The vCPU.
        vcpu: u8,
    },
}

/// The actions produced by one call: at most one per slot, kept in slot
/// order, so there is always room for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    by_slot: [Option<Action>; SLOT_COUNT],
}

impl Actions {
    /// No actions.
    pub fn new() -> Self {
        Self::default()
    }

    fn set(&mut self, vcpu: u8, action: Action) {
        if let Some(entry) = self.by_slot.get_mut(usize::from(vcpu)) {
            *entry = Some(action);
        }
    }

    /// The actions, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Action> {
        self.by_slot.iter().flatten()
    }

    /// Just the forwards, in slot order.
    pub fn forwards(&self) -> impl Iterator<Item = &Forward> {
        self.iter().filter_map(|action| match action {
            Action::Forward(forward) => Some(forward),
            Action::ResumeVcpu { .. } => None,
        })
    }

    /// How many actions there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What became of a PENDING slot the service took.
pub(crate) enum Taken {
    /// PROCESSING: `request` is to go to `client`.
    Forward {
        /// Who emulates it.
        client: ClientId,
        /// The validated request (the service's own copy).
        request: IoRequest,
    },
    /// Finished at once (COMPLETE): the vCPU is to be resumed.
    Resume,
    /// Refused and left as it was (counted).
    Nothing,
}

/// A request this service forwarded and is waiting to hear back about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The request as decoded at dispatch (the service's own copy).
    pub request: IoRequest,
    /// The client it went to.
    pub client: ClientId,
}

/// Everything the service keeps for one VM: its ioreq page (`P` owns it on
/// the host, or is a kernel-granted `&mut IoreqPage`), its clients, the
/// requests in flight and the counters.
#[derive(Debug)]
pub struct VmIoreq<P> {
    vm: VmId,
    vcpus: u8,
    page: P,
    clients: ClientRegistry,
    in_flight: [Option<InFlight>; SLOT_COUNT],
    counters: IoreqCounters,
    /// Reattached after a restart and not yet activated: nothing is
    /// dispatched (its client ranges are still arriving).
    held: bool,
}

/// The device access of `vm`'s validated `request`.
#[inline]
pub fn device_access(vm: VmId, request: &IoRequest) -> Access {
    Access {
        vm,
        space: request.space,
        addr: request.addr,
        size: request.size,
        write: match request.direction {
            Direction::Read => None,
            Direction::Write => Some(request.value),
        },
    }
}

impl<P: AsRef<IoreqPage> + AsMut<IoreqPage>> VmIoreq<P> {
    /// State for `vm` with `vcpus` vCPUs (checked by the caller: 1..=16)
    /// over `page`.
    pub fn new(vm: VmId, vcpus: u8, page: P) -> Self {
        Self {
            vm,
            vcpus,
            page,
            clients: ClientRegistry::new(),
            in_flight: [None; SLOT_COUNT],
            counters: IoreqCounters::default(),
            held: false,
        }
    }

    /// Holds the VM's requests, undispatched, and forgets its client
    /// ranges (a restarted service's vm-manager is sending them again).
    pub fn hold(&mut self) {
        self.held = true;
        self.clients = ClientRegistry::new();
    }

    /// The client `vcpu`'s request went to does not serve the VM (it
    /// restarted, and the vm-manager has yet to hand it the VM's devices):
    /// the request stays PROCESSING, and the VM is held, its client ranges
    /// kept, until the vm-manager activates it
    /// ([`activate`](Self::activate) sends the request again).
    pub(crate) fn wait_for_client(&mut self, vcpu: u8) {
        if let Some(entry) = self.in_flight.get_mut(usize::from(vcpu)) {
            *entry = None;
        }
        self.held = true;
    }

    /// Whether the VM's requests are held ([`hold`](Self::hold)).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Ends a [`hold`](Self::hold): a slot that a dead predecessor took
    /// (PROCESSING, not in flight here) goes to its client again (a
    /// forward; finished at once if no client claims it, or untouched if
    /// it no longer decodes), and a COMPLETE one has its vCPU resumed.
    /// PENDING slots are left for the next drain. Returns how many slots
    /// were adopted.
    pub fn activate(&mut self, actions: &mut Actions) -> u8 {
        self.held = false;
        let mut adopted: u8 = 0;
        for vcpu in 0..self.vcpus {
            let action = match slot::state(self.page(), vcpu) {
                Ok(SlotState::Processing) if self.in_flight(vcpu).is_none() => self.adopt(vcpu),
                Ok(SlotState::Complete) => Some(Action::ResumeVcpu { vm: self.vm, vcpu }),
                _ => None,
            };
            if let Some(action) = action {
                adopted = adopted.saturating_add(1);
                actions.set(vcpu, action);
            }
        }
        adopted
    }

    /// A PROCESSING slot nobody here forwarded: sent again, or finished.
    fn adopt(&mut self, vcpu: u8) -> Option<Action> {
        let request = match slot::adopt(self.page(), vcpu) {
            Ok(request) => request,
            Err(error) => {
                self.counters.record(error);
                return match slot::give_up(self.page.as_mut(), vcpu) {
                    Ok(()) => Some(Action::ResumeVcpu { vm: self.vm, vcpu }),
                    Err(error) => {
                        self.counters.record(error);
                        None
                    }
                };
            }
        };
        let Some(client) = self
            .clients
            .route(request.space, request.addr, request.size)
        else {
            return match self.finish_unclaimed(&request) {
                Taken::Resume => Some(Action::ResumeVcpu { vm: self.vm, vcpu }),
                Taken::Forward { .. } | Taken::Nothing => None,
            };
        };
        if let Some(entry) = self.in_flight.get_mut(usize::from(vcpu)) {
            *entry = Some(InFlight { request, client });
        }
        Some(Action::Forward(Forward {
            client,
            vcpu,
            request: device_access(self.vm, &request),
        }))
    }

    /// The VM.
    pub fn vm(&self) -> VmId {
        self.vm
    }

    /// Its vCPU count.
    pub fn vcpus(&self) -> u8 {
        self.vcpus
    }

    /// The ioreq page.
    pub fn page(&self) -> &IoreqPage {
        self.page.as_ref()
    }

    /// The ioreq page, writable (the kernel's side, in host tests).
    pub fn page_mut(&mut self) -> &mut IoreqPage {
        self.page.as_mut()
    }

    /// Gives the page storage back (e.g. to return a kernel grant).
    pub fn into_page(self) -> P {
        self.page
    }

    /// The client registry.
    pub fn clients(&self) -> &ClientRegistry {
        &self.clients
    }

    /// The client registry, writable.
    pub fn clients_mut(&mut self) -> &mut ClientRegistry {
        &mut self.clients
    }

    /// The counters of refused and unclaimed events.
    pub fn counters(&self) -> &IoreqCounters {
        &self.counters
    }

    /// The request forwarded from `vcpu`'s slot and not yet completed.
    pub fn in_flight(&self, vcpu: u8) -> Option<&InFlight> {
        self.in_flight.get(usize::from(vcpu))?.as_ref()
    }

    /// Drains every PENDING slot: each valid request goes to the client
    /// whose range holds it (else the default client) and its slot becomes
    /// PROCESSING; returns how many were forwarded.
    ///
    /// Slots the service cannot hand to anyone are finished at once so that
    /// no vCPU waits forever: an access nobody claims completes with reads
    /// returning all-ones (writes dropped), a request that does not decode
    /// completes untouched, and both are counted and resumed. A PENDING slot
    /// past the VM's vCPU count and a slot with an unknown state word are
    /// counted and left alone (there is no vCPU to resume / no owner to
    /// trust). Every slot is looked at, once.
    pub fn dispatch(&mut self, actions: &mut Actions) -> u8 {
        if self.held {
            return 0;
        }
        let mut forwarded: u8 = 0;
        for index in 0..SLOT_COUNT {
            let vcpu = match self.dispatch_next(index) {
                Some(Action::Forward(forward)) => {
                    forwarded = forwarded.saturating_add(1);
                    let vcpu = forward.vcpu;
                    actions.set(vcpu, Action::Forward(forward));
                    continue;
                }
                Some(Action::ResumeVcpu { vcpu, .. }) => vcpu,
                None => continue,
            };
            actions.set(vcpu, Action::ResumeVcpu { vm: self.vm, vcpu });
        }
        forwarded
    }

    /// [`dispatch`](Self::dispatch) for the one slot `index`: what is to be
    /// done for it, if it was PENDING and could be handed on (a forward) or
    /// finished at once (a resume). (The ioreq task's work loop,
    /// [`drain`](Self::drain), takes the same steps without building an
    /// [`Action`].)
    pub fn dispatch_next(&mut self, index: usize) -> Option<Action> {
        let vcpu = self.pending_vcpu(index)?;
        self.dispatch_slot(vcpu)
    }

    /// The vCPU of slot `index` if the slot is PENDING and the VM has that
    /// vCPU; an unknown state word and a PENDING slot past the VM's vCPU
    /// count are counted.
    #[inline]
    pub(crate) fn pending_vcpu(&mut self, index: usize) -> Option<u8> {
        let raw = self.page().slot(index)?.state_hint();
        let vcpu = u8::try_from(index).ok()?;
        match SlotState::from_raw(raw) {
            Err(error) => self.counters.record(error),
            Ok(SlotState::Pending) if vcpu >= self.vcpus => {
                self.counters.record(SlotError::NoSuchSlot(vcpu));
            }
            Ok(SlotState::Pending) => return Some(vcpu),
            Ok(SlotState::Free | SlotState::Processing | SlotState::Complete) => {}
        }
        None
    }

    /// Dispatches one PENDING slot: a forward to its client, or a resume
    /// if the slot was finished at once; `None` if it could not even be
    /// finished (counted).
    fn dispatch_slot(&mut self, vcpu: u8) -> Option<Action> {
        match self.take_pending(vcpu) {
            Taken::Forward { client, request } => {
                if let Some(entry) = self.in_flight.get_mut(usize::from(vcpu)) {
                    *entry = Some(InFlight { request, client });
                }
                Some(Action::Forward(Forward {
                    client,
                    vcpu,
                    request: device_access(self.vm, &request),
                }))
            }
            Taken::Resume => Some(Action::ResumeVcpu { vm: self.vm, vcpu }),
            Taken::Nothing => None,
        }
    }

    /// Takes `vcpu`'s PENDING slot (checked by the caller: a slot the VM
    /// has): PROCESSING with the decoded request and the client to send it
    /// to, or finished at once (unclaimed, or a request that does not
    /// decode; counted), or refused outright (counted).
    #[inline(always)]
    pub(crate) fn take_pending(&mut self, vcpu: u8) -> Taken {
        // Matched by reference: moving the request out of the `Result`
        // copied it byte by byte (the error's bytes overlap it).
        let begun = slot::begin_processing(self.page.as_mut(), vcpu);
        let request = match &begun {
            Ok(request) => request,
            Err(error) => return self.abandon(vcpu, *error),
        };
        match self
            .clients
            .route(request.space, request.addr, request.size)
        {
            Some(client) => Taken::Forward {
                client,
                request: *request,
            },
            None => self.finish_unclaimed(request),
        }
    }

    /// A PENDING slot whose request does not decode: completed untouched.
    #[cold]
    #[inline(never)]
    fn abandon(&mut self, vcpu: u8, error: SlotError) -> Taken {
        self.counters.record(error);
        match slot::abandon(self.page.as_mut(), vcpu) {
            Ok(()) => Taken::Resume,
            Err(error) => {
                self.counters.record(error);
                Taken::Nothing
            }
        }
    }

    /// An access no client claims: reads get all-ones, writes are dropped.
    #[cold]
    #[inline(never)]
    fn finish_unclaimed(&mut self, request: &IoRequest) -> Taken {
        self.counters.record_unclaimed();
        match slot::finish(self.page.as_mut(), request, UNCLAIMED_READ) {
            Ok(()) => Taken::Resume,
            Err(error) => {
                self.counters.record(error);
                Taken::Nothing
            }
        }
    }

    /// The work loop's completion of a request it forwarded itself (and
    /// did not record in flight, since nothing runs between the forward and
    /// this): the same checks, errors and counting as
    /// [`complete_now`](Self::complete_now), and on refusal the request is
    /// left in flight, as `complete_now` leaves it.
    #[inline]
    pub(crate) fn complete_taken(
        &mut self,
        client: ClientId,
        request: &IoRequest,
        value: u64,
    ) -> Result<(), Error> {
        slot::finish(self.page.as_mut(), request, value).map_err(|error| {
            self.counters.record(error);
            if let Some(entry) = self.in_flight.get_mut(usize::from(request.vcpu)) {
                *entry = Some(InFlight {
                    request: *request,
                    client,
                });
            }
            error.into()
        })
    }

    /// A client finished `vcpu`'s request: a read's `value` (cut to the
    /// access width) goes into the slot, which becomes COMPLETE, and the
    /// vCPU is to be resumed. A write's `value` is ignored.
    ///
    /// Errors (each counted, the slot untouched): [`Error::InvalidArgument`]
    /// for a vCPU the VM does not have; [`Error::BadSlotState`] if the slot
    /// is not PROCESSING with a request this service forwarded.
    pub fn complete(&mut self, vcpu: u8, value: u64, actions: &mut Actions) -> Result<(), Error> {
        self.complete_now(vcpu, value)?;
        actions.set(vcpu, Action::ResumeVcpu { vm: self.vm, vcpu });
        Ok(())
    }

    /// [`complete`](Self::complete) without the list of actions: `Ok` means
    /// the slot is COMPLETE and the vCPU is to be resumed (the work loop
    /// does it at once). Same checks, same errors, same counting.
    pub fn complete_now(&mut self, vcpu: u8, value: u64) -> Result<(), Error> {
        self.try_complete(vcpu, value).map_err(|error| {
            self.counters.record(error);
            error.into()
        })
    }

    fn try_complete(&mut self, vcpu: u8, value: u64) -> Result<(), SlotError> {
        if vcpu >= self.vcpus {
            return Err(SlotError::NoSuchSlot(vcpu));
        }
        let entry = self
            .in_flight
            .get_mut(usize::from(vcpu))
            .ok_or(SlotError::NoSuchSlot(vcpu))?;
        let Some(in_flight) = *entry else {
            return Err(match slot::state(self.page.as_ref(), vcpu)? {
                SlotState::Processing => SlotError::NotDispatched,
                found => SlotError::IllegalTransition {
                    found,
                    event: SlotEvent::Complete,
                },
            });
        };
        slot::finish(self.page.as_mut(), &in_flight.request, value)?;
        *entry = None;
        Ok(())
    }
}
