//! Targets for the management channel: the COBS stuffing, the versioned
//! frames a client sends over the socket, and the shell's command lines.

use ipc::vm;
use mica_mgmt::cobs;
use mica_mgmt::frame::{self, FrameBuf, FrameDecoder, MAX_FRAME, MAX_PAYLOAD};

/// COBS: anything encodes to bytes without a zero that decode back, and
/// whatever decodes re-encodes to bytes that decode the same.
pub fn cobs(data: &[u8]) {
    let mut stuffed = vec![0u8; cobs::max_encoded_len(data.len())];
    let len = cobs::encode(data, &mut stuffed).expect("max_encoded_len is enough");
    stuffed.truncate(len);
    assert!(!stuffed.contains(&0), "a zero inside stuffed bytes");
    let decoded_len = cobs::decode_in_place(&mut stuffed).expect("our own stuffing decodes");
    assert_eq!(&stuffed[..decoded_len], data);

    let mut buf = data.to_vec();
    if let Ok(len) = cobs::decode_in_place(&mut buf) {
        assert!(
            len <= data.len(),
            "decoding grew {} bytes to {len}",
            data.len()
        );
        let decoded = buf[..len].to_vec();
        let mut again = vec![0u8; cobs::max_encoded_len(len)];
        let n = cobs::encode(&decoded, &mut again).expect("max_encoded_len is enough");
        again.truncate(n);
        let n = cobs::decode_in_place(&mut again).expect("our own stuffing decodes");
        assert_eq!(&again[..n], &decoded[..]);
    }
}

/// Checks one frame payload the decoder handed out: any message in it
/// travels again, as a frame of ours, to the same message.
fn check_payload(payload: &[u8]) {
    assert!(payload.len() <= MAX_PAYLOAD);
    if let Ok(request) = frame::decode::<vm::Request>(payload) {
        assert_eq!(reframe::<vm::Request>(&request), request);
    }
    if let Ok(response) = frame::decode::<vm::Response>(payload) {
        assert_eq!(reframe::<vm::Response>(&response), response);
        check_shown(&response);
    }
}

/// What a user or a script sees of a response (the CLI's tables, info
/// block and JSON, an ended VM's sentence, the images a refused create
/// lists) holds no control character but
/// the table's line ends, and the JSON is one line.
fn check_shown(response: &vm::Response) {
    use mica_mgmt::json;
    use mica_mgmt::table::{InfoBlock, VmTable};
    let printable = |text: &str| text.chars().all(|c| c == '\n' || !c.is_control());
    let vms: &[vm::VmInfo] = match response {
        vm::Response::Info(info) => core::slice::from_ref(info),
        vm::Response::List { vms, .. } => vms,
        vm::Response::Images { images, .. } => {
            use mica_mgmt::images::{ImageChoices, ImageTable};
            let table = ImageTable(images).to_string();
            assert!(printable(&table), "{table:?}");
            let choices = ImageChoices(images).to_string();
            assert!(
                printable(&choices) && !choices.contains('\n'),
                "{choices:?}"
            );
            let mut line = String::new();
            json::write_images(&mut line, images).expect("writes to a String");
            assert!(!line.chars().any(char::is_control), "{line:?}");
            return;
        }
        vm::Response::Events(page) => {
            check_events(page);
            return;
        }
        vm::Response::Ended(exit) => {
            let text = format!("{exit} / {}", exit.short());
            assert!(printable(&text) && !text.contains('\n'), "{text:?}");
            let mut line = String::new();
            json::write_last_exit(&mut line, exit).expect("writes to a String");
            assert!(!line.chars().any(char::is_control), "{line:?}");
            return;
        }
        _ => return,
    };
    let table = VmTable(vms).to_string();
    assert!(printable(&table), "{table:?}");
    for vm in vms {
        let block = InfoBlock(vm).to_string();
        assert!(printable(&block), "{block:?}");
        let mut line = String::new();
        json::write_vm(&mut line, vm).expect("writes to a String");
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
}

/// A page of events as `mica events` shows it: each a line of text without
/// a control character and a line of JSON; and a reader takes the page,
/// or refuses it, without panicking, wherever it stood.
fn check_events(page: &vm::EventPage) {
    use mica_mgmt::events::{EventCursor, EventLine, write_event};
    for event in &page.events {
        let text = EventLine(event).to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        let mut line = String::new();
        write_event(&mut line, event).expect("writes to a String");
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    for mut cursor in [EventCursor::from_now(), EventCursor::from_oldest()] {
        let response = vm::Response::Events(page.clone());
        if cursor.accept(response.clone()).is_ok() {
            let _ = cursor.accept(response);
        }
    }
}

/// `message` encoded as a frame and read back by a fresh decoder.
fn reframe<T>(message: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut out: FrameBuf = [0; MAX_FRAME];
    let bytes = frame::encode(message, &mut out).expect("a decoded message fits a frame");
    let mut decoder = FrameDecoder::new();
    let (last, body) = bytes.split_last().expect("a frame ends in its terminator");
    assert_eq!(*last, 0);
    for &b in body {
        assert!(decoder.push(b).is_none(), "a frame ended early");
    }
    let payload = decoder
        .push(0)
        .expect("the terminator ends the frame")
        .expect("our own frame decodes");
    frame::decode(payload).expect("our own message decodes")
}

/// A byte stream from a management client, cut anywhere: the decoder
/// never panics, holds at most one frame, and every frame it accepts
/// carries a message that goes round again unchanged.
pub fn mgmt_frames(data: &[u8]) {
    let mut decoder = FrameDecoder::new();
    for &byte in data {
        if let Some(Ok(payload)) = decoder.push(byte) {
            check_payload(payload);
        }
        if byte == 0 {
            assert!(!decoder.in_frame(), "a terminator leaves no frame open");
        }
    }
}

/// A line typed at the `mica>` shell (or sent through `mica` as words):
/// parsed into a command or refused with a message, never a panic.
pub fn shell_line(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    if let Err(e) = mica_mgmt::parse_line(&line) {
        // The refusal is shown to the user; making it must not panic.
        let _ = e.to_string();
    }
}
