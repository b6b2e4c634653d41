//! Bounded, cancel-safe line reading for Stratum sockets (miners and pools).
//!
//! `tokio_util`'s `LinesCodec` would do, but a per-connection `FramedRead` starts with an 8 KiB
//! buffer; with 10,000 miners at ≤ 16 KiB each the hub reads through a small `BufReader` and one
//! reusable line buffer instead. The function is safe to use in `select!`: partial data lives in
//! the caller's buffer, and the only await point is `fill_buf`, which is cancel-safe.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

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

/// Sentinel appended after a complete line (a `\n` never appears inside a line).
const LINE_DONE: u8 = b'\n';

/// The line just read (without the sentinel).
pub fn line(buf: &[u8]) -> &[u8] {
    match buf.split_last() {
        Some((&LINE_DONE, rest)) => rest,
        _ => buf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

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
}
