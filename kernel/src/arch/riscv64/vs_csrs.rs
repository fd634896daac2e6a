//! A vCPU's VS-level CSRs, kept in memory while another context runs, and
//! their load into and save from the hart.

use super::{csr, timer};

/// The VS-level CSRs of a vCPU, kept while another context runs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct VsCsrs {
    pub(super) vsstatus: usize,
    pub(super) vsie: usize,
    pub(super) vstvec: usize,
    vsscratch: usize,
    pub(super) vsepc: usize,
    pub(super) vscause: usize,
    pub(super) vstval: usize,
    pub(super) vsatp: usize,
    pub(super) hvip: usize,
    pub(super) vstimecmp: usize,
}

impl VsCsrs {
    pub(super) fn load(&self) {
        csr::vsstatus::write(self.vsstatus);
        csr::vsie::write(self.vsie);
        csr::vstvec::write(self.vstvec);
        csr::vsscratch::write(self.vsscratch);
        csr::vsepc::write(self.vsepc);
        csr::vscause::write(self.vscause);
        csr::vstval::write(self.vstval);
        csr::vsatp::write(self.vsatp);
        csr::hvip::write(self.hvip);
        if timer::uses_sstc() {
            csr::vstimecmp::write(self.vstimecmp);
        }
    }

    pub(super) fn save(&mut self) {
        self.vsstatus = csr::vsstatus::read();
        self.vsie = csr::vsie::read();
        self.vstvec = csr::vstvec::read();
        self.vsscratch = csr::vsscratch::read();
        self.vsepc = csr::vsepc::read();
        self.vscause = csr::vscause::read();
        self.vstval = csr::vstval::read();
        self.vsatp = csr::vsatp::read();
        self.hvip = csr::hvip::read();
        if timer::uses_sstc() {
            self.vstimecmp = csr::vstimecmp::read();
        }
    }
}
