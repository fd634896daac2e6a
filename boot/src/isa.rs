//! The RISC-V ISA string from the device tree (`riscv,isa`), e.g.
//! `rv64imafdch_zicsr_sstc`, and questions about which extensions it names.

/// A hart's ISA string as the firmware describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isa<'a>(&'a str);

impl<'a> Isa<'a> {
    /// Wraps a `riscv,isa` value (without its NUL).
    pub fn new(isa: &'a str) -> Self {
        Isa(isa)
    }

    /// The string as the firmware gave it.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The single-letter extensions after `rv32`/`rv64` (`imafdch` above).
    fn single_letters(&self) -> &'a str {
        let base = self.0.split('_').next().unwrap_or("");
        let lower_prefix = base
            .get(..4)
            .map(|p| p.eq_ignore_ascii_case("rv64") || p.eq_ignore_ascii_case("rv32"));
        match lower_prefix {
            Some(true) => base.get(4..).unwrap_or(""),
            _ => "",
        }
    }

    /// Whether a single-letter extension is present (`'g'` implies `imafd`).
    pub fn has_letter(&self, letter: char) -> bool {
        let letter = letter.to_ascii_lowercase();
        let letters = self.single_letters();
        letters.chars().any(|c| c.eq_ignore_ascii_case(&letter))
            || ("imafd".contains(letter) && letters.chars().any(|c| c.eq_ignore_ascii_case(&'g')))
    }

    /// Whether the hypervisor extension (H) is present.
    pub fn has_h(&self) -> bool {
        self.has_letter('h')
    }

    /// Whether a multi-letter extension such as `sstc` is named after a `_`.
    pub fn has_extension(&self, name: &str) -> bool {
        self.0
            .split('_')
            .skip(1)
            .any(|ext| ext.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::Isa;

    #[test]
    fn h_is_found_among_single_letters_only() {
        assert!(Isa::new("rv64imafdch_zicsr").has_h());
        assert!(
            !Isa::new("rv64imafdc_zicsr_zihintpause").has_h(),
            "the h in zihintpause is not H"
        );
        assert!(!Isa::new("rv64imafdc_shcounterenw").has_h());
        assert!(Isa::new("RV64GCH").has_h());
        assert!(!Isa::new("").has_h());
        assert!(!Isa::new("h").has_h(), "no rv prefix: not an ISA string");
    }

    #[test]
    fn g_implies_base_extensions() {
        let isa = Isa::new("rv64gc");
        assert!(isa.has_letter('m') && isa.has_letter('d') && isa.has_letter('c'));
        assert!(!isa.has_letter('v'));
    }

    #[test]
    fn multi_letter_extensions_match_whole_names() {
        let isa = Isa::new("rv64imafdch_zicsr_sstc");
        assert!(isa.has_extension("sstc"));
        assert!(!isa.has_extension("sst"));
        assert!(!isa.has_extension("rv64imafdch"));
    }
}
