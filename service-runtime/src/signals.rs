//! The signals a service answers. Unix: SIGINT (Ctrl+C) and SIGTERM ask it
//! to stop; SIGHUP never kills it, and means what the service says it means
//! (A re-reads its config at once; B says it reads its config only at start, and names
//! the keys of its file that changed).
//! Windows: Ctrl+C and Ctrl+Break ask it to stop (Ctrl+Break is what
//! `cargo lab up` sends a service it started in its own process group, as
//! Windows has no SIGTERM), and so do closing its console window, logging
//! off and shutting down, which Windows follows with a kill a few seconds
//! later anyway. Windows has no SIGHUP; A's config is re-read when saved.
//!
//! The handlers are installed by [`install`], first thing at start, so that no
//! signal finds the default disposition (which for SIGHUP is to die) while the
//! service is still loading its config or binding.

#[cfg(not(any(unix, windows)))]
pub use other::{install, until_stop};
#[cfg(unix)]
pub use unix::{install, until_stop};
#[cfg(windows)]
pub use windows::{install, until_stop};

#[cfg(unix)]
mod unix {
    use std::sync::Mutex;

    use async_signal::{Signal, Signals};
    use smol::stream::StreamExt as _;

    /// The installed handlers, until [`until_stop`] takes them.
    static INSTALLED: Mutex<Option<Signals>> = Mutex::new(None);

    /// Installs the handlers for SIGINT, SIGTERM and SIGHUP; signals that
    /// arrive before [`until_stop`] runs wait for it.
    pub fn install() {
        let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        if installed.is_none() {
            *installed = Signals::new([Signal::Int, Signal::Term, Signal::Hup]).ok();
        }
    }

    /// Completes when the process receives SIGINT or SIGTERM, with the
    /// signal's name; calls `on_hangup` for each SIGHUP meanwhile.
    ///
    /// If the handlers cannot be installed (never seen on Linux) this never
    /// completes, and the default dispositions stay in force.
    pub async fn until_stop(on_hangup: impl Fn()) -> &'static str {
        install();
        let taken = INSTALLED.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut signals) = taken else {
            return std::future::pending().await;
        };
        loop {
            match signals.next().await {
                Some(Ok(Signal::Int)) => return "SIGINT",
                Some(Ok(Signal::Term)) => return "SIGTERM",
                Some(Ok(_)) => on_hangup(),
                Some(Err(_)) => {}
                None => return std::future::pending().await,
            }
        }
    }
}

/// async-signal answers only Ctrl+C on Windows (asking it for more fails
/// after its console handler is installed), so Windows has its own: ctrlc's
/// console handler, which answers every console event, Ctrl+Break included.
#[cfg(windows)]
mod windows {
    use std::sync::Mutex;

    use smol::channel::{Receiver, Sender};

    /// The channel the console handler sends on, until [`until_stop`] takes
    /// its receiver; `None` inside if the handler could not be installed.
    static INSTALLED: Mutex<Option<Option<Receiver<()>>>> = Mutex::new(None);

    /// Installs the console handler; a Ctrl+C or Ctrl+Break that arrives
    /// before [`until_stop`] runs waits for it.
    pub fn install() {
        let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        if installed.is_none() {
            let (tx, rx): (Sender<()>, Receiver<()>) = smol::channel::bounded(1);
            let set = ctrlc::set_handler(move || {
                let _ = tx.try_send(());
            });
            *installed = Some(set.ok().map(|()| rx));
        }
    }

    /// Completes when the console sends Ctrl+C or Ctrl+Break (or close,
    /// logoff, shutdown). ctrlc does not say which; the line says both.
    /// `on_hangup` is never called: Windows has no SIGHUP.
    ///
    /// If the handler cannot be installed this never completes, and Windows'
    /// default (exit at once) stays in force.
    pub async fn until_stop(_on_hangup: impl Fn()) -> &'static str {
        install();
        let taken = INSTALLED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .and_then(Option::take);
        match taken {
            Some(rx) if rx.recv().await.is_ok() => "CTRL_C_OR_BREAK",
            _ => std::future::pending().await,
        }
    }
}

/// Neither unix nor Windows (e.g. WASI): no signals to answer; the service
/// runs until it is killed.
#[cfg(not(any(unix, windows)))]
mod other {
    /// Nothing to install.
    pub fn install() {}

    /// Never completes.
    pub async fn until_stop(_on_hangup: impl Fn()) -> &'static str {
        std::future::pending().await
    }
}
