//! Bounded, cancel-safe line reading for Stratum sockets (miners and pools).
//!
//! `tokio_util`'s `LinesCodec` would do, but a per-connection `FramedRead` starts with an 8 KiB
//! buffer. Pool sessions (a few per hub) read through a small `BufReader` with [`read_line`];
//! miner connections (10,000 per hub, mostly quiet between shares) read with [`SocketLines`]:
//! straight from the socket into one buffer that holds only what has not been consumed yet, and
//! that a quiet connection gives back ([`SocketLines::release_memory`]) — no read buffer sits
//! allocated per idle miner. Both are safe to use in `select!`: partial data lives in the
//! caller's buffer, and the only await point (`fill_buf`, `readable`) is cancel-safe.

use std::pin::Pin;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::tcp::OwnedReadHalf;

/// One read outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A complete line is in the buffer (without `\n`; a trailing `\r` is removed).
    Line,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
    /// The line exceeded the bound; the connection cannot be trusted to resync.
    TooLong,
}

/// Read one line into `buf` (cleared first). Lines longer than `max` bytes give
/// [`LineRead::TooLong`].
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    // A previous call may have returned a line: start fresh. A cancelled call leaves a partial
    // line, which must be kept; `LINE_DONE` marks the difference.
    if buf.last() == Some(&LINE_DONE) {
        buf.clear();
    }
    loop {
        let avail = reader.fill_buf().await?;
        if avail.is_empty() {
            buf.clear();
            return Ok(LineRead::Eof);
        }
        match avail.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                if buf.len() + pos > max {
                    reader.consume(pos + 1);
                    buf.clear();
                    return Ok(LineRead::TooLong);
                }
                buf.extend_from_slice(&avail[..pos]);
                reader.consume(pos + 1);
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                buf.push(LINE_DONE);
                return Ok(LineRead::Line);
            }
            None => {
                let n = avail.len();
                if buf.len() + n > max {
                    reader.consume(n);
                    buf.clear();
                    return Ok(LineRead::TooLong);
                }
                buf.extend_from_slice(avail);
                reader.consume(n);
            }
        }
    }
}

/// The next line into `buf` when a whole one is already in `reader`'s buffer (nothing is
/// read): a pool answers pipelined shares in bursts, handled in one turn. `None` when no
/// whole line is buffered; a partial line stays where it is for [`read_line`].
pub fn buffered_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> Option<LineRead> {
    if buf.last() != Some(&LINE_DONE) && !buf.is_empty() {
        // A cancelled read left part of a line in `buf`: only `read_line` may finish it.
        return None;
    }
    let avail = reader.buffer();
    let pos = avail.iter().position(|&b| b == b'\n')?;
    buf.clear();
    if pos > max {
        Pin::new(&mut *reader).consume(pos + 1);
        return Some(LineRead::TooLong);
    }
    buf.extend_from_slice(&avail[..pos]);
    Pin::new(&mut *reader).consume(pos + 1);
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    buf.push(LINE_DONE);
    Some(LineRead::Line)
}

/// Sentinel appended after a complete line (a `\n` never appears inside a line).
const LINE_DONE: u8 = b'\n';

/// The line just read (without the sentinel).
pub fn line(buf: &[u8]) -> &[u8] {
    match buf.split_last() {
        Some((&LINE_DONE, rest)) => rest,
        _ => buf,
    }
}

/// Bytes asked of the socket per read: a share line is ~150–250 bytes, and several pipelined
/// lines fit.
const READ_CHUNK: usize = 512;

/// Lines read straight from a socket into one buffer (see the module doc).
#[derive(Debug, Default)]
pub struct SocketLines {
    data: Vec<u8>,
    /// Bytes of `data` already handed out as lines (`\n` included): dropped from the front only
    /// before the next socket read, not line by line (a read often brings several lines).
    consumed: usize,
    /// The line last returned: `data[line_start..line_end]` (without `\r\n`).
    line_start: usize,
    line_end: usize,
}

impl SocketLines {
    /// Read one line (see [`SocketLines::line`]). Lines longer than `max` bytes give
    /// [`LineRead::TooLong`]; bytes after the last complete line at EOF are dropped.
    pub async fn read_line(
        &mut self,
        sock: &OwnedReadHalf,
        max: usize,
    ) -> std::io::Result<LineRead> {
        if let Some(done) = self.buffered_line(max) {
            return Ok(done);
        }
        // No whole line left: drop what was handed out, keep the partial line.
        if self.consumed > 0 {
            self.data.drain(..self.consumed);
            self.consumed = 0;
            self.line_start = 0;
            self.line_end = 0;
        }
        let mut scanned = self.data.len();
        loop {
            if let Some(found) = memchr::memchr(b'\n', &self.data[scanned..]) {
                return Ok(self.take_line(scanned + found, max));
            }
            if self.data.len() > max {
                self.data.clear();
                return Ok(LineRead::TooLong);
            }
            scanned = self.data.len();
            sock.readable().await?;
            self.data.reserve(READ_CHUNK);
            match sock.try_read_buf(&mut self.data) {
                Ok(0) => {
                    self.data.clear();
                    return Ok(LineRead::Eof);
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line when a whole one is already buffered (the socket is not read): a miner
    /// pipelines its shares, and one read often brings several lines, which the connection
    /// handles in one go.
    pub fn buffered_line(&mut self, max: usize) -> Option<LineRead> {
        let rest = self.data.get(self.consumed..)?;
        let found = memchr::memchr(b'\n', rest)?;
        Some(self.take_line(self.consumed + found, max))
    }

    /// The line from `consumed` to the `\n` at `pos`, or [`LineRead::TooLong`].
    fn take_line(&mut self, pos: usize, max: usize) -> LineRead {
        let start = self.consumed;
        if pos - start > max {
            self.data.clear();
            self.consumed = 0;
            self.line_start = 0;
            self.line_end = 0;
            return LineRead::TooLong;
        }
        self.line_start = start;
        self.line_end = if pos > start && self.data[pos - 1] == b'\r' {
            pos - 1
        } else {
            pos
        };
        self.consumed = pos + 1;
        LineRead::Line
    }

    /// The line the last read returned (empty before any).
    pub fn line(&self) -> &[u8] {
        self.data
            .get(self.line_start..self.line_end)
            .unwrap_or_default()
    }

    /// Give the buffer's memory back when nothing unread is in it (a quiet connection).
    pub fn release_memory(&mut self) {
        if self.consumed >= self.data.len() && self.data.capacity() > 0 {
            *self = SocketLines::default();
        }
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    /// A pool's burst of answers: the lines after the first are taken from the buffer without
    /// a read; a partial line stays for `read_line`, and a line past the bound is refused.
    #[tokio::test]
    async fn buffered_lines_are_taken_without_a_read_and_partial_ones_left() {
        let data: &[u8] = b"one\ntwo\r\n0123456789abc\nthr";
        let mut reader = BufReader::new(data);
        let mut buf = Vec::new();
        assert_eq!(
            buffered_line(&mut reader, &mut buf, 10),
            None,
            "nothing read yet"
        );
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line(&buf), b"one");
        assert_eq!(
            buffered_line(&mut reader, &mut buf, 10),
            Some(LineRead::Line)
        );
        assert_eq!(line(&buf), b"two");
        assert_eq!(
            buffered_line(&mut reader, &mut buf, 10),
            Some(LineRead::TooLong)
        );
        assert_eq!(
            buffered_line(&mut reader, &mut buf, 10),
            None,
            "partial line"
        );
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.unwrap(),
            LineRead::Eof
        );
    }

    #[tokio::test]
    async fn reads_lines_bounds_and_eof() {
        let data: &[u8] = b"{\"a\":1}\r\nsecond\n0123456789abcdef\nlast-no-newline";
        let mut r = BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut r, &mut buf, 10).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line(&buf), b"{\"a\":1}");
        assert_eq!(
            read_line(&mut r, &mut buf, 10).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line(&buf), b"second");
        assert_eq!(
            read_line(&mut r, &mut buf, 10).await.unwrap(),
            LineRead::TooLong
        );
        let data: &[u8] = b"ok
last-no-newline";
        let mut r = BufReader::with_capacity(4, data);
        assert_eq!(
            read_line(&mut r, &mut buf, 100).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line(&buf), b"ok");
        assert_eq!(
            read_line(&mut r, &mut buf, 100).await.unwrap(),
            LineRead::Eof
        );
    }

    /// A connected pair on 127.0.0.1: the client's write half and the server's read half.
    async fn pair() -> (tokio::net::TcpStream, OwnedReadHalf) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = l.accept().await.unwrap();
        let (r, w) = server.into_split();
        std::mem::forget(w); // keep the server's write side open
        (client, r)
    }

    #[tokio::test]
    async fn socket_lines_split_pipelined_and_partial_lines() {
        use tokio::io::AsyncWriteExt;
        let (mut c, r) = pair().await;
        let mut lines = SocketLines::default();
        // Two lines in one write, the second with CRLF, then a line in three pieces.
        c.write_all(b"{\"id\":1}\nsecond\r\nthi").await.unwrap();
        assert_eq!(lines.read_line(&r, 100).await.unwrap(), LineRead::Line);
        assert_eq!(lines.line(), b"{\"id\":1}");
        assert_eq!(lines.read_line(&r, 100).await.unwrap(), LineRead::Line);
        assert_eq!(lines.line(), b"second");
        let write_rest = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            c.write_all(b"rd-").await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            c.write_all(b"line\n\nlast-without-newline").await.unwrap();
            c
        };
        let (read, mut c) = tokio::join!(lines.read_line(&r, 100), write_rest);
        assert_eq!(read.unwrap(), LineRead::Line);
        assert_eq!(lines.line(), b"third-line");
        // An empty line is a line.
        assert_eq!(lines.read_line(&r, 100).await.unwrap(), LineRead::Line);
        assert_eq!(lines.line(), b"");
        // A partial last line at EOF is dropped.
        c.shutdown().await.unwrap();
        drop(c);
        assert_eq!(lines.read_line(&r, 100).await.unwrap(), LineRead::Eof);
    }

    #[tokio::test]
    async fn socket_lines_bound_a_line_with_or_without_its_newline() {
        use tokio::io::AsyncWriteExt;
        let (mut c, r) = pair().await;
        let mut lines = SocketLines::default();
        c.write_all(b"0123456789\n").await.unwrap();
        assert_eq!(lines.read_line(&r, 10).await.unwrap(), LineRead::Line);
        assert_eq!(lines.line(), b"0123456789");
        c.write_all(b"0123456789a\n").await.unwrap();
        assert_eq!(lines.read_line(&r, 10).await.unwrap(), LineRead::TooLong);
        // An endless line is cut at the bound without waiting for its newline.
        let (mut c, r) = pair().await;
        c.write_all(&[b'x'; 5000]).await.unwrap();
        assert_eq!(lines.read_line(&r, 1000).await.unwrap(), LineRead::TooLong);
    }

    #[tokio::test]
    async fn socket_lines_survive_cancellation_and_give_memory_back_when_quiet() {
        use tokio::io::AsyncWriteExt;
        let (mut c, r) = pair().await;
        let mut lines = SocketLines::default();
        c.write_all(b"par").await.unwrap();
        // Cancelled while waiting for the rest: the partial line is kept.
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            lines.read_line(&r, 100),
        )
        .await;
        assert!(waited.is_err(), "no complete line yet");
        // Unread bytes are not given back.
        lines.release_memory();
        assert!(lines.capacity() > 0);
        c.write_all(b"tial\n").await.unwrap();
        assert_eq!(lines.read_line(&r, 100).await.unwrap(), LineRead::Line);
        assert_eq!(lines.line(), b"partial");
        lines.release_memory();
        assert_eq!(lines.capacity(), 0);
        c.write_all(b"next\n").await.unwrap();
        assert_eq!(lines.read_line(&r, 100).await.unwrap(), LineRead::Line);
        assert_eq!(lines.line(), b"next");
    }
}
