use super::*;

const A: VmId = VmId(1);
const B: VmId = VmId(2);
const C: VmId = VmId(3);

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

fn frame(dst: [u8; 6], src: [u8; 6]) -> std::vec::Vec<u8> {
    let mut bytes = dst.to_vec();
    bytes.extend_from_slice(&src);
    bytes.extend_from_slice(&[0x08, 0x00, 0x45]);
    bytes
}

const BROADCAST: [u8; 6] = [0xff; 6];

#[test]
fn broadcast_floods_then_the_reply_goes_to_the_learned_port_only() {
    let mut switch = Switch::new();
    assert_eq!(switch.forward(A, &frame(BROADCAST, mac(1))), Forward::Flood);
    assert_eq!(switch.forward(B, &frame(mac(1), mac(2))), Forward::Port(A));
    assert_eq!(switch.forward(A, &frame(mac(2), mac(1))), Forward::Port(B));
}

#[test]
fn unknown_unicast_and_multicast_flood() {
    let mut switch = Switch::new();
    assert_eq!(switch.forward(A, &frame(mac(9), mac(1))), Forward::Flood);
    let ipv6_multicast = [0x33, 0x33, 0, 0, 0, 1];
    switch.forward(B, &frame(BROADCAST, mac(2)));
    assert_eq!(
        switch.forward(A, &frame(ipv6_multicast, mac(1))),
        Forward::Flood
    );
}

#[test]
fn a_frame_for_an_address_on_its_own_port_goes_nowhere() {
    let mut switch = Switch::new();
    switch.forward(A, &frame(BROADCAST, mac(1)));
    switch.forward(A, &frame(BROADCAST, mac(5)));
    assert_eq!(switch.forward(A, &frame(mac(5), mac(1))), Forward::Drop);
}

#[test]
fn a_runt_frame_is_dropped_and_teaches_nothing() {
    let mut switch = Switch::new();
    assert_eq!(switch.forward(A, &[0xff; 13]), Forward::Drop);
    assert_eq!(switch.forward(A, &[]), Forward::Drop);
    assert_eq!(switch.known(), 0);
}

#[test]
fn multicast_or_zero_sources_are_not_learned() {
    let mut switch = Switch::new();
    switch.forward(A, &frame(BROADCAST, BROADCAST));
    switch.forward(A, &frame(BROADCAST, [0; 6]));
    assert_eq!(switch.known(), 0);
    assert_eq!(switch.forward(B, &frame(BROADCAST, mac(2))), Forward::Flood);
}

#[test]
fn an_address_that_moves_is_followed() {
    let mut switch = Switch::new();
    switch.forward(A, &frame(BROADCAST, mac(7)));
    switch.forward(C, &frame(BROADCAST, mac(7)));
    assert_eq!(switch.forward(B, &frame(mac(7), mac(2))), Forward::Port(C));
    assert_eq!(switch.known(), 2);
}

#[test]
fn a_forgotten_port_is_flooded_for_again() {
    let mut switch = Switch::new();
    switch.forward(A, &frame(BROADCAST, mac(1)));
    switch.forward(B, &frame(BROADCAST, mac(2)));
    switch.forget_port(A);
    assert_eq!(switch.port_of(&mac(1)), None);
    assert_eq!(switch.port_of(&mac(2)), Some(B));
    assert_eq!(switch.forward(B, &frame(mac(1), mac(2))), Forward::Flood);
}

#[test]
fn a_full_table_replaces_the_address_learned_longest_ago() {
    let mut switch = Switch::new();
    for n in 0..u8::try_from(TABLE_SIZE).unwrap() {
        switch.forward(A, &frame(BROADCAST, mac(n)));
    }
    // Address 0 is refreshed, so 1 is now the oldest.
    switch.forward(A, &frame(BROADCAST, mac(0)));
    switch.forward(B, &frame(BROADCAST, mac(200)));
    assert_eq!(switch.known(), TABLE_SIZE);
    assert_eq!(switch.port_of(&mac(200)), Some(B));
    assert_eq!(switch.port_of(&mac(0)), Some(A));
    assert_eq!(switch.port_of(&mac(1)), None);
    assert_eq!(switch.port_of(&mac(2)), Some(A));
}
