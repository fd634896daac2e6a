//! The host terminal while `mica console` is attached: raw input (every
//! key, Ctrl-C included, goes to the guest at once, unechoed), restored on
//! every way out. The [`RawTerminal`] guard restores it when dropped (a
//! detach or an error); a panic hook restores it too, since the workspace
//! builds with `panic = "abort"` and no drop runs on a panic; and SIGINT,
//! SIGTERM and SIGHUP only set a flag ([`stop_requested`]) that the console
//! loop checks, so it ends through the guard as well.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

/// The settings to put back, for the panic hook: (descriptor, settings).
static SAVED: Mutex<Option<(RawFd, libc::termios)>> = Mutex::new(None);

/// Set by a caught signal.
static STOP: AtomicBool = AtomicBool::new(false);

/// The terminal on `fd` in raw mode; dropping it restores the settings it
/// had before.
pub struct RawTerminal {
    fd: RawFd,
    saved: libc::termios,
}

impl RawTerminal {
    /// Puts the terminal on `fd` in raw mode. Output processing stays as it
    /// was (a guest's lone `\n` still starts a new line at the left).
    pub fn enter(fd: RawFd) -> io::Result<RawTerminal> {
        // SAFETY: `termios` is a plain C struct of integers and arrays, for
        // which all-zero bytes are a valid value.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid, writable termios for the call's
        // duration; tcgetattr only writes it.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw only changes the flags of the termios it is
        // given, which is valid and writable.
        unsafe { libc::cfmakeraw(&mut raw) };
        raw.c_oflag = saved.c_oflag;
        if let Ok(mut slot) = SAVED.lock() {
            *slot = Some((fd, saved));
        }
        install_panic_hook();
        set(fd, &raw)?;
        Ok(RawTerminal { fd, saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // Nothing better to do if the terminal went away meanwhile.
        let _ = set(self.fd, &self.saved);
        if let Ok(mut slot) = SAVED.lock() {
            *slot = None;
        }
    }
}

/// Applies `settings` to the terminal on `fd`.
fn set(fd: RawFd, settings: &libc::termios) -> io::Result<()> {
    // SAFETY: `settings` is a valid termios, only read by tcsetattr.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, settings) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restores the saved settings before the default panic message.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // try_lock: a panic while the lock is held must not hang.
            if let Ok(slot) = SAVED.try_lock()
                && let Some((fd, saved)) = slot.as_ref()
            {
                let _ = set(*fd, saved);
            }
            previous(info);
        }));
    });
}

extern "C" fn on_signal(_signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    STOP.store(true, Ordering::SeqCst);
}

/// From now on SIGINT, SIGTERM and SIGHUP end the console session (see
/// [`stop_requested`]) instead of the process.
pub fn catch_stop_signals() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe, and lives for the whole program.
        unsafe { libc::signal(signal, handler as libc::sighandler_t) };
    }
}

/// Whether a caught signal asked the session to end.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
