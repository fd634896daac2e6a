//! A minimal flattened-device-tree writer for building test blobs.

const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const END: u32 = 9;

#[derive(Default)]
pub struct DtbBuilder {
    structs: Vec<u8>,
    strings: Vec<u8>,
}

impl DtbBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn word(&mut self, w: u32) {
        self.structs.extend_from_slice(&w.to_be_bytes());
    }

    fn pad(&mut self) {
        while !self.structs.len().is_multiple_of(4) {
            self.structs.push(0);
        }
    }

    pub fn begin(&mut self, name: &str) -> &mut Self {
        self.word(BEGIN_NODE);
        self.structs.extend_from_slice(name.as_bytes());
        self.structs.push(0);
        self.pad();
        self
    }

    pub fn end(&mut self) -> &mut Self {
        self.word(END_NODE);
        self
    }

    pub fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.word(PROP);
        self.word(value.len() as u32);
        self.word(offset);
        self.structs.extend_from_slice(value);
        self.pad();
        self
    }

    pub fn prop_u32(&mut self, name: &str, value: u32) -> &mut Self {
        self.prop(name, &value.to_be_bytes())
    }

    pub fn prop_str(&mut self, name: &str, value: &str) -> &mut Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.prop(name, &bytes)
    }

    /// The blob: header, reservation block, structure block, strings.
    pub fn finish(&mut self, reservations: &[(u64, u64)]) -> Vec<u8> {
        self.word(END);
        let off_rsvmap = 40u32;
        let rsv_len = 16 * (reservations.len() as u32 + 1);
        let off_struct = off_rsvmap + rsv_len;
        let off_strings = off_struct + self.structs.len() as u32;
        let total = off_strings + self.strings.len() as u32;
        let mut out = Vec::new();
        for w in [
            0xd00d_feed,
            total,
            off_struct,
            off_strings,
            off_rsvmap,
            17,
            16,
            0,
        ] {
            out.extend_from_slice(&u32::to_be_bytes(w));
        }
        out.extend_from_slice(&(self.strings.len() as u32).to_be_bytes());
        out.extend_from_slice(&(self.structs.len() as u32).to_be_bytes());
        for &(a, s) in reservations.iter().chain(&[(0, 0)]) {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&s.to_be_bytes());
        }
        out.extend_from_slice(&self.structs);
        out.extend_from_slice(&self.strings);
        out
    }
}
