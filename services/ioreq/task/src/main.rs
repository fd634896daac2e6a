//! `ioreq`: the ioreq service task. It maps each attached VM's ioreq page
//! from the kernel and runs one loop on its endpoint: a message (from the
//! vm-manager: attach, detach, client ranges) is handled and answered; an
//! ioreq wake-up (`Received::IoreqPending`) drains the named VMs through
//! `ioreq::worker`: each PENDING slot is forwarded to its client (the
//! device service by default) with a synchronous call, completed with the
//! answer, and its vCPU resumed. The wake-up path allocates nothing and
//! logs only problems.
//!
//! Layer: service task (`cargo xtask check-layers`): it links only `ipc`, the
//! user runtime and its own service library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod task {
    use ioreq::dispatch::device_access;
    use ioreq::page::IoreqPage;
    use ioreq::posted::PostedPage;
    use ioreq::problem_log::{ProblemLog, Verdict};
    use ioreq::{Actions, IoreqEffects, IoreqService, PageSource, Problem};
    use ipc::devices::wire::{self, Access};
    use ipc::devices::{BatchWrite, WaitedAccess};
    use ipc::ioreq::{ClientId, Request, Response};
    use ipc::ioreq_abi::slot::IoRequest;
    use ipc::server::{Service, encode_reply};
    use ipc::syscall::{MAX_VMS, slots};
    use ipc::{Error, Space, VmId, decode, devices};
    use log::{info, warn};
    use mica_rt::ioreq_pages::{
        give_back, ioreq_attach, ioreq_complete_recv, ioreq_forward, ioreq_forward_recv,
        ioreq_page, ioreq_post, ioreq_resume, posted_ring,
    };
    use mica_rt::{Received, Start, StaticSlot, call_with, sys};

    type Ioreq = IoreqService<KernelPages, MAX_VMS>;

    /// Ioreq pages granted by the kernel: attach maps the VM's page, the
    /// loan of its `&'static mut` ends when the VM is detached.
    struct KernelPages;

    impl PageSource for KernelPages {
        type Page = &'static mut IoreqPage;
        type Ring = &'static PostedPage;

        fn page_for(&mut self, vm: VmId) -> Result<Self::Page, Error> {
            ioreq_attach(vm)?;
            ioreq_page(vm)
        }

        fn ring_for(&mut self, vm: VmId) -> Result<Self::Ring, Error> {
            posted_ring(vm)
        }

        fn post_writes(
            &mut self,
            vm: VmId,
            space: Space,
            start: u64,
            len: u64,
        ) -> Result<(), Error> {
            ioreq_post(vm, space, start, len)
        }

        fn release(&mut self, vm: VmId, page: Self::Page) {
            give_back(vm, page);
        }
    }

    /// What the task still has to do with its next wait: resume a vCPU
    /// (`ioreq_complete_recv`: the kernel switches straight into the guest)
    /// or hand an access to its client (`ioreq_forward` with a receive:
    /// straight into the client; its request is `Effects::handed`).
    #[derive(Clone, Copy)]
    enum Owed {
        Resume(VmId, u8),
        HandOver { client: ClientId, vm: VmId },
    }

    /// The most refused hand-overs kept for serving by call: one per slot
    /// of a drain (each is served before the next wait).
    const REFUSED: usize = 16;

    /// What fills the unused entries of `Effects::refused` (and
    /// `Effects::handed` while no hand-over is owed).
    const UNUSED: IoRequest = IoRequest {
        vcpu: 0,
        space: ipc::Space::Mmio,
        addr: 0,
        size: 1,
        direction: ipc::ioreq_abi::slot::Direction::Read,
        value: 0,
    };

    /// Clients are reached through the call right of the endpoint with
    /// their number; the kernel resumes vCPUs and carries hand-overs. The
    /// last resume or hand-over of a wake-up is owed until the loop waits
    /// again, so that it goes with the wait; an earlier one owed is made at
    /// once, before any other call. A hand-over the kernel refuses (the
    /// client was busy) is kept in `refused`, and the loop serves it with
    /// a call before it waits.
    struct Effects {
        owed: Option<Owed>,
        /// The request of an owed hand-over (`Owed::HandOver`). Kept apart
        /// from `owed`: inside the enum, whose tag shares a byte with the
        /// request's fields, the request was copied in and out with calls
        /// to `memcpy`, byte by byte; here it is three aligned words.
        handed: IoRequest,
        /// The first `refused_len` entries are the hand-overs refused.
        refused: [(VmId, ClientId, IoRequest); REFUSED],
        refused_len: usize,
        /// The problems logged so far, per VM (a guest cannot flood the
        /// console through them).
        problems: ProblemLog<MAX_VMS>,
    }

    impl Effects {
        /// Makes the step owed (if any) now, on its own. Nothing is owed
        /// before a wake-up's first hand-over or resume: that check is all
        /// the hot path pays.
        #[inline(always)]
        fn settle(&mut self) {
            if self.owed.is_some() {
                self.settle_owed();
            }
        }

        /// [`settle`](Self::settle) with a step owed.
        #[inline(never)]
        fn settle_owed(&mut self) {
            match self.owed.take() {
                Some(Owed::Resume(vm, vcpu)) => {
                    if let Err(error) = ioreq_resume(vm, vcpu) {
                        self.problem(Problem::ResumeRefused { vm, vcpu, error });
                    }
                }
                Some(Owed::HandOver { client, vm }) => {
                    let request = self.handed;
                    let handed = encode_access(vm, &request)
                        .and_then(|len| ioreq_forward(client_slot(client), len, vm, request.vcpu));
                    if let Err(error) = handed {
                        self.refuse(vm, client, request, error);
                    }
                }
                None => {}
            }
        }

        /// Keeps a hand-over the kernel refused with `error` for the loop
        /// to serve by call; but an access a client holds already
        /// (`Error::Forwarded`: one a dead predecessor handed over) is
        /// left to that client's answer.
        fn refuse(&mut self, vm: VmId, client: ClientId, request: IoRequest, error: Error) {
            if error == Error::Forwarded {
                return;
            }
            match self.refused.get_mut(self.refused_len) {
                Some(free) => {
                    *free = (vm, client, request);
                    self.refused_len += 1;
                }
                // Never more than a drain's slots; the vCPU would wait for
                // good, so say so.
                None => warn!("{vm:?}: a refused hand-over is lost"),
            }
        }

        /// The wait of the work loop, with the step owed: the next wake-up
        /// or message. `None` if an owed hand-over was refused (nothing
        /// was received: the loop serves it and waits again).
        #[inline]
        fn wait(&mut self, reply_len: usize) -> Option<Result<Received, Error>> {
            // Nothing else is owed with a step: a reply is only owed after
            // a message that produced none.
            match self.owed.take() {
                None => Some(sys::reply_recv(slots::SERVE, reply_len)),
                Some(Owed::Resume(vm, vcpu)) => Some(
                    ioreq_complete_recv(vm, vcpu, slots::SERVE).or_else(|error| {
                        self.problem(Problem::ResumeRefused { vm, vcpu, error });
                        sys::reply_recv(slots::SERVE, reply_len)
                    }),
                ),
                Some(Owed::HandOver { client, vm }) => {
                    let request = self.handed;
                    let received = encode_access(vm, &request).and_then(|len| {
                        let slot = client_slot(client);
                        ioreq_forward_recv(slot, len, vm, request.vcpu, slots::SERVE)
                    });
                    if let Err(error) = received {
                        self.refuse(vm, client, request, error);
                        return None;
                    }
                    Some(received)
                }
            }
        }
    }

    /// Encodes `vm`'s access `request` into the IPC buffer as a client
    /// takes it; returns its length.
    #[inline]
    fn encode_access(vm: VmId, request: &IoRequest) -> Result<usize, Error> {
        let access = device_access(vm, request);
        sys::with_buffer(|buf| wire::encode_access(&access, buf))
    }

    /// The call capability slot of `client`.
    fn client_slot(client: ClientId) -> usize {
        slots::call(usize::from(client.0))
    }

    impl IoreqEffects for Effects {
        #[inline]
        fn forward(
            &mut self,
            client: ClientId,
            access: &Access,
        ) -> Result<devices::Response, Error> {
            self.settle();
            call_with(
                client_slot(client),
                |buf| wire::encode_access(access, buf),
                wire::decode_response,
            )
        }

        fn post(
            &mut self,
            client: ClientId,
            vm: VmId,
            writes: &[BatchWrite],
            then: Option<&WaitedAccess>,
        ) -> Result<devices::Response, Error> {
            self.settle();
            call_with(
                client_slot(client),
                |buf| wire::encode_write_batch(vm, writes, then, buf),
                wire::decode_response,
            )
        }

        #[inline]
        fn hand_over(
            &mut self,
            client: ClientId,
            vm: VmId,
            request: &IoRequest,
        ) -> Result<(), Error> {
            self.settle();
            self.handed = *request;
            self.owed = Some(Owed::HandOver { client, vm });
            Ok(())
        }

        #[inline]
        fn resume(&mut self, vm: VmId, vcpu: u8) -> Result<(), Error> {
            self.settle();
            self.owed = Some(Owed::Resume(vm, vcpu));
            Ok(())
        }

        fn problem(&mut self, problem: Problem) {
            match self.problems.note(problem.vm()) {
                Verdict::Show => warn!("{problem:?}"),
                Verdict::ShowLast => {
                    warn!("{problem:?}");
                    warn!("{:?}: further problems are not shown", problem.vm());
                }
                Verdict::Quiet => {}
            }
        }
    }

    /// One message through the service, keeping the actions it returned
    /// and the VMs it asked to drain.
    struct Step<'a> {
        service: &'a mut Ioreq,
        actions: Actions,
        drain: u64,
    }

    impl Service for Step<'_> {
        type Request = Request;
        type Response = Response;

        fn handle(&mut self, request: Request) -> Response {
            let handled = self.service.handle(request);
            self.actions = handled.actions;
            self.drain = handled.drain;
            handled.response
        }

        fn refusal(error: Error) -> Response {
            Response::Err(error)
        }
    }

    /// Answers the message of `len` bytes in the IPC buffer; returns the
    /// length of the reply still owed (0 if it was sent already) and the
    /// VMs to drain next (an `Activate`'s), which the work loop drains as
    /// it drains a wake-up's. The request is decoded from the buffer and
    /// the reply encoded into it; the buffer is not borrowed while the
    /// service handles the request (an attach makes system calls).
    fn answer(service: &mut Ioreq, effects: &mut Effects, len: usize) -> (usize, u64) {
        let mut step = Step {
            service,
            actions: Actions::new(),
            drain: 0,
        };
        let response =
            match sys::with_buffer(|buf| decode::<Request>(buf.get(..len).unwrap_or_default())) {
                Ok(request) => step.handle(request),
                Err(error) => Step::refusal(error),
            };
        let n = match sys::with_buffer(|buf| encode_reply::<Step>(&response, buf)) {
            Ok(n) => n,
            Err(e) => {
                warn!("cannot answer: {e}");
                return (0, 0);
            }
        };
        let Step {
            service,
            actions,
            drain,
        } = step;
        if actions.is_empty() && drain == 0 {
            return (n, 0);
        }
        // A request that produced forwards (a `Dispatch` or `Complete` sent
        // as a message, or an `Activate`): answer first, so no call is made
        // while a reply is owed, then carry them out.
        if let Err(e) = sys::reply(n) {
            warn!("reply failed: {e}");
        }
        service.carry_out(&actions, effects);
        (0, drain)
    }

    /// The service state (tens of KiB: kept off the 64 KiB stack).
    static SERVICE: StaticSlot<Ioreq> = StaticSlot::new();

    fn main(_start: Start) -> u32 {
        let Some(service) = SERVICE.init_with(|| Ioreq::new(KernelPages)) else {
            warn!("service state already in use");
            return 1;
        };
        let mut reply_len = 0;
        let mut effects = Effects {
            owed: None,
            handed: UNUSED,
            refused: [(VmId(0), ClientId(0), UNUSED); REFUSED],
            refused_len: 0,
            problems: ProblemLog::new(),
        };
        info!("serving ioreq");
        loop {
            // Hand-overs the kernel refused are served by call first.
            while effects.refused_len > 0 {
                effects.refused_len -= 1;
                let (vm, client, request) = effects.refused[effects.refused_len];
                service.serve_refused(vm, client, &request, &mut effects);
            }
            let Some(received) = effects.wait(reply_len) else {
                continue;
            };
            // One place drains, for a wake-up and for an `Activate` alike
            // (a second call site costs the hot path its inlining).
            let drain;
            (reply_len, drain) = match received {
                Ok(Received::IoreqPending { vms }) => (0, vms),
                Ok(Received::Message { len, .. }) => answer(service, &mut effects, len),
                Err(e) => {
                    warn!("reply_recv failed: {e}");
                    (0, 0)
                }
            };
            service.drain(drain, &mut effects);
        }
    }

    mica_rt::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    mica_rt::refuse_to_run_on_the_host("mica-ioreq");
}
