//! The bounded fuzz run of `cargo test` (and so of `cargo xtask test`):
//! every target replays its seed corpus and a fixed number of seeded
//! pseudo-random and mutated inputs on stable Rust.

use mica_fuzz_targets::replay::{self, Rng};
use mica_fuzz_targets::{TARGETS, Target, seeds};

/// Generated inputs per target: enough to get past the first layer of
/// every format, few enough that all targets take seconds in debug.
const RUNS: usize = 5000;

#[test]
fn every_target_survives_its_corpus_and_generated_inputs() {
    let mut findings = Vec::new();
    let mut total = 0;
    for (i, target) in TARGETS.iter().enumerate() {
        let corpus = replay::corpus(target.name);
        assert!(!corpus.is_empty(), "{} has no seeds", target.name);
        match replay::replay(*target, &corpus, RUNS, 0x6d69_6361 + i as u64) {
            Ok(n) => total += n,
            Err(finding) => findings.push(finding.to_string()),
        }
    }
    assert!(findings.is_empty(), "{}", findings.join("\n\n"));
    assert!(total >= TARGETS.len() * RUNS);
}

fn panics_on_0xab_0xcd(data: &[u8]) {
    assert!(
        !data.windows(2).any(|w| w == [0xab, 0xcd]),
        "found the pair"
    );
}

#[test]
fn the_replay_reports_a_target_that_panics_and_its_input() {
    let target = Target {
        name: "trap",
        run: panics_on_0xab_0xcd,
    };
    let corpus = vec![vec![0xab, 0xcc, 0x00], vec![0xcd]];
    let finding = replay::replay(target, &corpus, 200_000, 7).expect_err("the pair is found");
    assert_eq!(finding.target, "trap");
    assert!(finding.message.contains("found the pair"));
    assert!(finding.input.windows(2).any(|w| w == [0xab, 0xcd]));
    // A seed that panics is reported before any generated input.
    let seeded = replay::replay(target, &[vec![0xab, 0xcd]], 0, 1).expect_err("the seed panics");
    assert_eq!(seeded.input, [0xab, 0xcd]);
}

#[test]
fn the_generator_is_deterministic() {
    let (mut a, mut b) = (Rng::new(42), Rng::new(42));
    let base = b"hello, world".to_vec();
    for _ in 0..100 {
        assert_eq!(
            replay::mutate(&mut a, &base, b"other"),
            replay::mutate(&mut b, &base, b"other")
        );
    }
}

/// The seeds of the formats that have a notion of "valid" are valid, so
/// the corpus starts past the first check of each decoder.
#[test]
fn the_seeds_are_accepted_by_their_decoders() {
    for seed in seeds::generated("ipc_messages") {
        let (kind, body) = seed.split_first().expect("tagged");
        let ok = match kind {
            0 => ipc::decode::<ipc::vm::Request>(body).is_ok(),
            1 => ipc::decode::<ipc::vm::Response>(body).is_ok(),
            2 => ipc::decode::<ipc::ioreq::Request>(body).is_ok(),
            3 => ipc::decode::<ipc::ioreq::Response>(body).is_ok(),
            4 => ipc::decode::<ipc::devices::Request>(body).is_ok(),
            5 => ipc::decode::<ipc::devices::Response>(body).is_ok(),
            6 => ipc::decode::<ipc::devices::IrqEvent>(body).is_ok(),
            7 => ipc::decode::<ipc::Error>(body).is_ok(),
            8 => ipc::decode::<ipc::rng::Request>(body).is_ok(),
            9 => ipc::decode::<ipc::rng::Response>(body).is_ok(),
            10 => ipc::decode::<ipc::blk::Request>(body).is_ok(),
            _ => ipc::decode::<ipc::blk::Response>(body).is_ok(),
        };
        assert!(ok, "seed {seed:?}");
    }
    for seed in replay::valid_seeds("boot_image") {
        mica_boot::image::BootImage::parse(&seed).expect("the seed image parses");
    }
    for seed in replay::valid_seeds("dtb") {
        mica_boot::BootInfo::from_dtb(&seed).expect("the seed DTB reads");
    }
    for seed in replay::valid_seeds("scenario_file") {
        let text = String::from_utf8(seed).expect("UTF-8");
        vm_manager::scenario_file::parse(&text).expect("the seed scenario parses");
    }
    for (seed, machine) in seeds::generated("elf").iter().zip([243, 62]) {
        mica_kernel::elf::parse(seed, machine, 1 << 38).expect("the seed ELF parses");
    }
    for seed in seeds::generated("multiboot") {
        let mem = &seed[1..];
        struct Mem<'a>(&'a [u8]);
        impl mica_boot::multiboot::PhysMemory for Mem<'_> {
            fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
                let at =
                    usize::try_from(addr.checked_sub(mica_fuzz_targets::boot::MULTIBOOT_BASE)?)
                        .ok()?;
                self.0.get(at..at + len)
            }
        }
        let mem = Mem(mem);
        let info = mica_boot::multiboot::MultibootInfo::parse(
            &mem,
            mica_boot::multiboot::BOOTLOADER_MAGIC,
            mica_fuzz_targets::boot::MULTIBOOT_BASE,
        )
        .expect("the seed Multiboot information reads");
        assert_eq!(info.cmdline, "mica.vm_ids=3 quiet");
        assert_eq!(info.modules().len(), 2);
    }
    let header = &seeds::generated("linux_image")[0][1..];
    vm_manager::linux_image::parse_header(header, header.len() as u64).expect("the seed header");
    for seed in seeds::generated("shell_line") {
        let line = String::from_utf8(seed).expect("UTF-8");
        assert!(
            mica_mgmt::parse_line(&line).is_ok_and(|c| c.is_some()),
            "{line}"
        );
    }
}

/// `cargo xtask fuzz` runs the `fuzz/` crate's binaries by target name:
/// each target has one, and nothing else is there.
#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let fuzz = replay::repo_root().join("fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut bins = Vec::new();
    for line in manifest.lines() {
        if let Some(name) = line
            .strip_prefix("name = \"")
            .and_then(|s| s.strip_suffix('"'))
        {
            bins.push(name.to_owned());
        }
    }
    for target in TARGETS {
        assert!(
            bins.iter().any(|b| b == target.name),
            "no [[bin]] {}",
            target.name
        );
        let source = fuzz
            .join("fuzz_targets")
            .join(format!("{}.rs", target.name));
        let text = std::fs::read_to_string(&source).expect("the target's source");
        assert!(
            text.contains(&format!("::{}(data)", target.name)),
            "{} does not call its body",
            source.display()
        );
    }
    // The package's own name, then one [[bin]] per target.
    assert_eq!(bins.len(), TARGETS.len() + 1, "{bins:?}");
}
