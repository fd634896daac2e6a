//! Tests of `entropy`: the sources' plumbing and their order, with fake
//! kernel draws and fake rng services.

use super::*;

#[test]
fn kernel_words_fill_bytes_little_endian_and_odd_lengths() {
    let mut words = [0x0807_0605_0403_0201u64, 0x100f_0e0d_0c0b_0a09].into_iter();
    let mut source = KernelEntropy::with_draw(|| words.next().ok_or(Error::NoEntropy));
    let mut id = [0u8; 11];
    assert_eq!(source.fill(&mut id), Ok(()));
    assert_eq!(id, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
}

#[test]
fn without_a_source_fill_fails_and_the_prefix_is_empty() {
    let mut source = KernelEntropy::with_draw(|| Err(Error::NoEntropy));
    let mut id = [0u8; 16];
    assert_eq!(source.fill(&mut id), Err(Error::NoEntropy));
    assert_eq!(source.fill_prefix(&mut id), 0);
    assert_eq!(id, [0; 16], "no byte was made up");
}

#[test]
fn a_source_that_fails_midway_gives_only_what_it_drew() {
    let mut left = 2;
    let mut source = KernelEntropy::with_draw(|| {
        if left == 0 {
            return Err(Error::NoEntropy);
        }
        left -= 1;
        Ok(u64::MAX)
    });
    let mut buf = [0u8; 20];
    assert_eq!(source.fill_prefix(&mut buf), 16);
    assert_eq!(buf[..16], [0xff; 16]);
    assert_eq!(buf[16..], [0; 4]);
}

/// An rng service that answers `byte`s, at most `per_answer` a time,
/// and counts the requests.
fn service(
    byte: u8,
    per_answer: usize,
    asked: &mut usize,
) -> impl FnMut(&rng::Request) -> Result<rng::Response, Error> + '_ {
    move |request| {
        *asked += 1;
        let rng::Request::Fill { len } = *request;
        let n = usize::from(len).min(per_answer);
        Ok(rng::Response::Bytes(
            heapless::Vec::from_slice(&vec![byte; n]).unwrap(),
        ))
    }
}

fn no_service(_: &rng::Request) -> Result<rng::Response, Error> {
    Ok(rng::Response::Err(Error::NoEntropy))
}

fn no_hardware() -> Result<u64, Error> {
    Err(Error::NoEntropy)
}

#[test]
fn the_hardware_comes_first_and_the_service_is_not_asked() {
    let mut asked = 0;
    let mut source = HardwareOrCounters::with_sources(
        || Ok(0x1111_1111_1111_1111),
        service(7, 256, &mut asked),
        0,
    );
    let mut id = [0u8; 16];
    assert!(source.fill(&mut id));
    assert_eq!(id, [0x11; 16]);
    assert_eq!(source.origin(), Some(Origin::Hardware));
    drop(source);
    assert_eq!(asked, 0);
}

#[test]
fn without_hardware_the_service_gives_random_ids() {
    let mut asked = 0;
    let mut source =
        HardwareOrCounters::with_sources(no_hardware, service(0x5a, 256, &mut asked), 0);
    assert!(
        source.probe(),
        "the probe names the service as a real source"
    );
    let mut id = [0u8; 16];
    assert!(source.fill(&mut id), "virtio-rng bytes are random");
    assert_eq!(id, [0x5a; 16]);
    assert_eq!(source.origin(), Some(Origin::RngService));
    assert_eq!(source.failure(), None);
    drop(source);
    assert_eq!(asked, 2, "one request per fill");
}

#[test]
fn with_neither_the_counters_take_over_and_stay() {
    let mut asked = 0;
    let mut draws = 0;
    let mut source = HardwareOrCounters::with_sources(
        || {
            draws += 1;
            Err(Error::NoEntropy)
        },
        |_: &rng::Request| {
            asked += 1;
            Ok(rng::Response::Err(Error::NoEntropy))
        },
        0,
    );
    assert!(!source.probe());
    let failure = source.failure().unwrap();
    assert_eq!(failure.hardware, Error::NoEntropy);
    assert_eq!(failure.service, Error::NoEntropy);
    let text = failure.to_string();
    assert!(text.starts_with("no hardware entropy source"), "{text}");
    assert!(
        text.ends_with("and the host has no virtio-rng device"),
        "{text}"
    );
    let (mut b, mut c) = ([0u8; 16], [0u8; 16]);
    assert!(!source.fill(&mut b), "the counters' bytes are not random");
    assert!(!source.fill(&mut c));
    assert_ne!(b, [0; 16], "IDs stay distinct from the all-zero NONE");
    assert_ne!(b, c, "successive fallback IDs differ");
    assert_eq!(source.origin(), None);
    assert_eq!((draws, asked), (1, 1), "failed sources are not asked again");
}

#[test]
fn a_hardware_failure_midway_moves_on_to_the_service() {
    let mut left = 1;
    let mut asked = 0;
    let mut source = HardwareOrCounters::with_sources(
        || {
            if left == 0 {
                return Err(Error::NoEntropy);
            }
            left -= 1;
            Ok(u64::MAX)
        },
        service(3, 256, &mut asked),
        0,
    );
    let mut a = [0u8; 8];
    assert!(source.fill(&mut a));
    assert_eq!(a, [0xff; 8]);
    let mut b = [0u8; 16];
    assert!(source.fill(&mut b), "the service's bytes");
    assert_eq!(b, [3; 16]);
    assert_eq!(source.origin(), Some(Origin::RngService));
    drop(source);
    assert_eq!(asked, 1);
}

#[test]
fn the_hardware_failure_is_said_plainly() {
    assert_eq!(
        HardwareFailure(Error::NoEntropy).to_string(),
        "the CPU has no entropy source (RISC-V Zkr, x86 RDSEED/RDRAND)"
    );
    assert!(
        HardwareFailure(Error::PermissionDenied)
            .to_string()
            .starts_with("the kernel's entropy call failed: ")
    );
}

#[test]
fn a_task_without_the_service_names_that_and_falls_back() {
    let mut source = HardwareOrCounters::with_sources(
        no_hardware,
        |_: &rng::Request| Err(Error::InvalidArgument),
        0,
    );
    assert!(!source.probe());
    let text = source.failure().unwrap().to_string();
    assert!(
        text.ends_with("and there is no rng service (virtio-rng) to ask"),
        "{text}"
    );
}

#[test]
fn large_fills_take_several_requests_and_short_answers_are_topped_up() {
    let mut asked = 0;
    let mut source = RngService::with_call(service(9, 100, &mut asked));
    let mut buf = [0u8; 600];
    assert_eq!(source.fill_from(&mut buf), (600, None));
    assert_eq!(buf, [9; 600]);
    drop(source);
    assert_eq!(asked, 6, "at most 100 bytes an answer");
    let mut requests = Vec::new();
    let mut source = RngService::with_call(|r: &rng::Request| {
        requests.push(r.clone());
        let rng::Request::Fill { len } = *r;
        let bytes = vec![1; usize::from(len)];
        Ok(rng::Response::Bytes(
            heapless::Vec::from_slice(&bytes).unwrap(),
        ))
    });
    let mut buf = [0u8; 300];
    assert_eq!(source.fill_from(&mut buf), (300, None));
    assert_eq!(
        requests,
        [
            rng::Request::Fill { len: 256 },
            rng::Request::Fill { len: 44 }
        ]
    );
}

#[test]
fn a_bad_answer_is_malformed_and_a_dead_service_is_asked_once_more() {
    // More bytes than asked for, or none: the service is not trusted.
    let mut too_many = RngService::with_call(|_: &rng::Request| {
        Ok(rng::Response::Bytes(
            heapless::Vec::from_slice(&[1; 20]).unwrap(),
        ))
    });
    let mut buf = [0u8; 16];
    assert_eq!(too_many.fill_from(&mut buf), (0, Some(Error::Malformed)));
    assert_eq!(buf, [0; 16]);
    let mut empty =
        RngService::with_call(|_: &rng::Request| Ok(rng::Response::Bytes(heapless::Vec::new())));
    assert_eq!(empty.fill_from(&mut buf), (0, Some(Error::Malformed)));
    // Died once: init restarted it, the next answer counts.
    let mut calls = 0;
    let mut restarted = RngService::with_call(|_: &rng::Request| {
        calls += 1;
        if calls == 1 {
            return Err(Error::ServerDied);
        }
        Ok(rng::Response::Bytes(
            heapless::Vec::from_slice(&[4; 16]).unwrap(),
        ))
    });
    assert_eq!(restarted.fill_from(&mut buf), (16, None));
    // Died twice: given up.
    let mut dead = RngService::with_call(|_: &rng::Request| Err(Error::ServerDied));
    assert_eq!(dead.fill_from(&mut buf), (0, Some(Error::ServerDied)));
}

#[test]
fn guest_bytes_are_real_or_none() {
    // Hardware for the first 8 bytes, the service for the rest.
    let mut left = 1;
    let mut asked = 0;
    let mut source = RealEntropy::with_sources(
        || {
            if left == 0 {
                return Err(Error::NoEntropy);
            }
            left -= 1;
            Ok(u64::MAX)
        },
        service(2, 256, &mut asked),
    );
    let mut buf = [0u8; 20];
    assert_eq!(source.fill_prefix(&mut buf), 20);
    assert_eq!(buf[..8], [0xff; 8]);
    assert_eq!(buf[8..], [2; 12]);
    // Neither: nothing is made up.
    let mut none = RealEntropy::with_sources(no_hardware, no_service);
    let mut buf = [0u8; 20];
    assert_eq!(none.fill_prefix(&mut buf), 0);
    assert_eq!(buf, [0; 20]);
    assert_eq!(none.origin(), None);
}

#[test]
fn on_the_host_the_kernel_call_is_refused() {
    let mut id = [0u8; 16];
    assert_eq!(
        KernelEntropy::new().fill(&mut id),
        Err(Error::KernelRefused)
    );
}

#[test]
fn splitmix_matches_the_reference_values() {
    // splitmix64 seeded with 0: the first output of the reference code
    // (state += GOLDEN, then mix).
    assert_eq!(splitmix64(GOLDEN), 0xe220_a839_7b1d_cdaf);
}

#[test]
fn successive_fills_differ_and_cover_every_byte() {
    let mut source = CounterEntropy::new(0);
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    source.fill(&mut a);
    source.fill(&mut b);
    assert_ne!(a, b);
    assert_ne!(a, [0; 16]);
    let mut odd = [0u8; 5];
    source.fill(&mut odd);
    assert_ne!(odd, [0; 5]);
}

#[test]
fn different_salts_give_different_streams() {
    let mut a = CounterEntropy::new(1);
    let mut b = CounterEntropy::new(2);
    assert_ne!(a.next_u64(), b.next_u64());
}
