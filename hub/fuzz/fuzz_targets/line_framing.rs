//! The hub's line framing (`hub/src/lines.rs`): a byte stream cut into arbitrary reads gives
//! exactly the lines of a plain split on `\n` (one trailing `\r` removed), each within the bound;
//! the first line over the bound gives `TooLong` where it stands and nothing after it; a partial
//! last line is dropped at EOF; no panic. Both readers are checked the way the hub drives them:
//! `SocketLines` (miners) over a real TCP pair on 127.0.0.1, its `read_line` cancelled by a
//! housekeeping tick that gives memory back, as in `downstream.rs`; `read_line` +
//! `buffered_line` (pools) over a `BufReader` whose source returns each read as the input says,
//! cancelled or polled again when it waits, as in `upstream.rs`. Streams of up to 256 bytes are
//! also split in two at every position.
//!
//! Input: byte 0 picks the bound, byte 1 the pool reader's buffer size, bytes 2..6 seed the read
//! sizes and the cancellations; the rest is the stream.
#![no_main]

use hashsched_hub::lines::{self, LineRead, SocketLines};
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWriteExt, BufReader, ReadBuf};

/// Knob bytes before the stream.
const KNOBS: usize = 6;
/// Writes the TCP path makes at most (each costs a few syscalls and a turn of the runtime).
const MAX_SOCKET_WRITES: usize = 48;

/// One outcome of the framing: a line (its bytes), or how the stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Line(Vec<u8>),
    TooLong,
    Eof,
}

/// What the framing must give: the stream split on `\n`, one trailing `\r` off each line; the
/// first line (terminated or not) over `max` bytes (its `\r` counted) gives `TooLong` and ends
/// the stream; otherwise a partial last line is dropped at EOF.
fn reference(stream: &[u8], max: usize) -> Vec<Out> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..pos];
        if line.len() > max {
            out.push(Out::TooLong);
            return out;
        }
        out.push(Out::Line(line.strip_suffix(b"\r").unwrap_or(line).to_vec()));
        rest = &rest[pos + 1..];
    }
    out.push(if rest.len() > max {
        Out::TooLong
    } else {
        Out::Eof
    });
    out
}

/// xorshift32: read sizes and cancellations from the input's seed.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// A read size: mostly short, now and then long.
    fn chunk(&mut self) -> usize {
        let r = self.next();
        if r.is_multiple_of(8) {
            1 + (r >> 3) as usize % 4096
        } else {
            1 + (r >> 3) as usize % 64
        }
    }
}

/// Cuts `len` bytes into reads: (end, wait before it).
fn cuts(len: usize, rng: &mut Rng, most: usize) -> Vec<(usize, bool)> {
    let mut cuts = Vec::new();
    let mut at = 0;
    while at < len {
        at = if cuts.len() + 1 >= most {
            len
        } else {
            (at + rng.chunk()).min(len)
        };
        cuts.push((at, rng.next().is_multiple_of(4)));
    }
    cuts
}

/// A source that hands out the stream in the given reads, and waits (`Pending`, waking itself)
/// before the reads so marked: the reader's future is then cancelled or polled again.
struct Chunked<'a> {
    data: &'a [u8],
    cuts: Vec<(usize, bool)>,
    next: usize,
    at: usize,
    waited: bool,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let Some(&(end, wait)) = self.cuts.get(self.next) else {
            return Poll::Ready(Ok(())); // EOF
        };
        if wait && !self.waited {
            self.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = (end - self.at).min(buf.remaining());
        buf.put_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        if self.at == end {
            self.next += 1;
            self.waited = false;
        }
        Poll::Ready(Ok(()))
    }
}

/// The pool side (`upstream.rs`): `read_line`, then every line already buffered with
/// `buffered_line`; a wait cancels the read (dropped by `select!`) or polls it again.
fn pool_reader(
    stream: &[u8],
    cuts: Vec<(usize, bool)>,
    cap: usize,
    max: usize,
    rng: &mut Rng,
) -> Vec<Out> {
    let source = Chunked {
        data: stream,
        cuts,
        next: 0,
        at: 0,
        waited: false,
    };
    let mut reader = BufReader::with_capacity(cap, source);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let r = 'read: loop {
            let mut fut = pin!(lines::read_line(&mut reader, &mut buf, max));
            loop {
                match fut.as_mut().poll(&mut cx) {
                    Poll::Ready(r) => break 'read r,
                    // The source waits at most once per read: this ends.
                    Poll::Pending if rng.next().is_multiple_of(2) => continue 'read,
                    Poll::Pending => {}
                }
            }
        };
        match r.expect("an in-memory source does not fail") {
            LineRead::Line => {
                out.push(Out::Line(lines::line(&buf).to_vec()));
                while let Some(more) = lines::buffered_line(&mut reader, &mut buf, max) {
                    match more {
                        LineRead::Line => out.push(Out::Line(lines::line(&buf).to_vec())),
                        LineRead::TooLong => {
                            out.push(Out::TooLong);
                            return out;
                        }
                        LineRead::Eof => panic!("buffered_line gave Eof"),
                    }
                }
            }
            LineRead::TooLong => {
                out.push(Out::TooLong);
                return out;
            }
            LineRead::Eof => {
                out.push(Out::Eof);
                return out;
            }
        }
    }
}

/// A current-thread runtime and a listener on 127.0.0.1, made once per fuzzing process.
struct Net {
    rt: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
}

fn net() -> &'static Net {
    static NET: std::sync::OnceLock<Net> = std::sync::OnceLock::new();
    NET.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("listener on 127.0.0.1");
        Net { rt, listener }
    })
}

/// The miner side (`downstream.rs`): `SocketLines::read_line`, then every line already buffered
/// with `buffered_line`, in a `select!` whose housekeeping tick (here: when the writer says so)
/// cancels the read and gives memory back. The stream goes over a real TCP pair, one write per
/// cut (the writer yields after each, so the reader mostly sees the cuts as they are).
fn miner_reader(stream: &[u8], cuts: &[(usize, bool)], max: usize) -> Vec<Out> {
    let net = net();
    net.rt.block_on(async {
        let addr = net.listener.local_addr().expect("local address");
        let (client, server) =
            tokio::join!(tokio::net::TcpStream::connect(addr), net.listener.accept());
        let mut client = client.expect("connect to 127.0.0.1");
        let (server, _) = server.expect("accept");
        client.set_nodelay(true).expect("nodelay");
        // Closed with a reset once both sides are done (below): no TIME_WAIT per input, which
        // at thousands of inputs a second would hold every ephemeral port of the machine.
        client.set_zero_linger().expect("linger");
        let (rd, wr) = server.into_split();
        let tick = tokio::sync::Notify::new();
        let writer = async {
            let mut at = 0;
            for &(end, tick_after) in cuts {
                // (The reader takes everything, even after TooLong: no error expected.)
                if client.write_all(&stream[at..end]).await.is_err() {
                    return;
                }
                at = end;
                if tick_after {
                    tick.notify_one();
                }
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
            }
            let _ = client.shutdown().await;
        };
        let reader = async {
            let mut lines = SocketLines::default();
            let mut out = Vec::new();
            loop {
                let r = tokio::select! {
                    biased;
                    r = lines.read_line(&rd, max) => r,
                    _ = tick.notified() => {
                        lines.release_memory();
                        continue;
                    }
                };
                match r.expect("a read on 127.0.0.1") {
                    LineRead::Line => {
                        out.push(Out::Line(lines.line().to_vec()));
                        while let Some(more) = lines.buffered_line(max) {
                            match more {
                                LineRead::Line => out.push(Out::Line(lines.line().to_vec())),
                                LineRead::TooLong => {
                                    out.push(Out::TooLong);
                                    break;
                                }
                                LineRead::Eof => panic!("buffered_line gave Eof"),
                            }
                        }
                        if out.last() == Some(&Out::TooLong) {
                            break;
                        }
                    }
                    LineRead::TooLong => {
                        out.push(Out::TooLong);
                        break;
                    }
                    LineRead::Eof => {
                        out.push(Out::Eof);
                        break;
                    }
                }
            }
            // The hub drops the connection here: after TooLong nothing more is read.
            assert_eq!(
                lines.buffered_line(max),
                None,
                "a line handed out after the end"
            );
            // Take the rest, so the writer finishes (and closes first, see above).
            let mut rest = [0u8; 4096];
            while rd.readable().await.is_ok() {
                match rd.try_read(&mut rest) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            (out, rd, wr)
        };
        let ((), (out, rd, wr)) = tokio::join!(writer, reader);
        drop(client);
        drop((rd, wr));
        out
    })
}

fn check(data: &[u8]) {
    if data.len() < KNOBS {
        return;
    }
    // Bounds from nothing to a few hundred bytes (TooLong within reach of short inputs), and
    // the hub's default for miners.
    let max = match data[0] {
        b @ 0..=0xef => usize::from(b) * 4,
        _ => hashsched_hub::protocol::DEFAULT_MAX_LINE_BYTES,
    };
    // The pool reader's buffer: tiny to the hub's 8 KiB.
    let cap = match data[1] {
        b @ 0..=0x7f => 1 + usize::from(b),
        _ => 8 * 1024,
    };
    let mut rng = Rng(u32::from_le_bytes([data[2], data[3], data[4], data[5]]) | 1);
    let stream = &data[KNOBS..];
    let want = reference(stream, max);

    let pool_cuts = cuts(stream.len(), &mut rng, usize::MAX);
    let got = pool_reader(stream, pool_cuts.clone(), cap, max, &mut rng);
    assert_eq!(
        got, want,
        "pool reader, max {max}, buffer {cap}, cuts {pool_cuts:?}"
    );

    let socket_cuts = cuts(stream.len(), &mut rng, MAX_SOCKET_WRITES);
    let got = miner_reader(stream, &socket_cuts, max);
    assert_eq!(got, want, "miner reader, max {max}, writes {socket_cuts:?}");
    // (Equal to the reference, so every line is within the bound and holds no `\n`.)

    // Split in two at every position: the same lines as unsplit.
    if stream.len() <= 256 {
        for at in 1..stream.len() {
            let wait = rng.next().is_multiple_of(2);
            let got = pool_reader(
                stream,
                vec![(at, false), (stream.len(), wait)],
                cap,
                max,
                &mut rng,
            );
            assert_eq!(
                got, want,
                "pool reader, max {max}, buffer {cap}, split at {at}"
            );
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
