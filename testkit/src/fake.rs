//! A fake A that misbehaves the ways a real peer or network can, for B's tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// What the fake does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Reads the request and never answers.
    Hang,
    /// Sends a head promising 20 bytes, then nothing.
    StallBody,
    /// Sends a head promising 20 bytes, then one byte every 100 ms.
    Trickle,
    /// Closes with the request unread: the kernel answers with a reset (RST).
    Reset,
    /// Reads the request and closes (FIN) without a byte.
    CloseEarly,
    /// Sends half a body, then closes.
    CloseMidBody,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// Answers `200` with a body that is not the JSON B expects.
    NotJson,
}

/// A fake A on a free loopback port; it lives as long as the test process.
#[derive(Debug)]
pub struct FakeA {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl FakeA {
    /// Starts a fake that treats every connection with `how`.
    pub fn start(how: Misbehaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake A");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || serve(stream, how));
            }
        });
        Self { url }
    }
}

/// A URL where nothing listens: a port that was free a moment ago.
pub fn refused_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

const HEAD_20: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n";

fn serve(mut stream: TcpStream, how: Misbehaviour) {
    if how == Misbehaviour::Reset {
        // Wait until the request is in our buffer, then close without reading it.
        thread::sleep(Duration::from_millis(20));
        return;
    }
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
    let _ = match how {
        Misbehaviour::Hang => {
            thread::sleep(Duration::from_secs(30));
            Ok(())
        }
        Misbehaviour::StallBody => stream.write_all(HEAD_20).map(|()| thread::sleep(Duration::from_secs(30))),
        Misbehaviour::Trickle => (|| {
            stream.write_all(HEAD_20)?;
            for _ in 0..20 {
                thread::sleep(Duration::from_millis(100));
                stream.write_all(b" ")?;
            }
            Ok(())
        })(),
        Misbehaviour::CloseEarly | Misbehaviour::Reset => Ok(()),
        Misbehaviour::CloseMidBody => stream.write_all(HEAD_20).and_then(|()| stream.write_all(b"{\"echo\":")),
        Misbehaviour::Garbage => stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
        Misbehaviour::NotJson => stream.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 15\r\n\r\n<html>hi</html>",
        ),
    };
}
