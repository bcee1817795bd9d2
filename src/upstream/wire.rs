//! HTTP/1.1 on one upstream connection: the request head and body encoded into one buffer
//! (one TLS record, one write), the answer read and framed by `Content-Length`, chunked
//! transfer coding, or the end of the connection.
//!
//! The request comes from a protocol module, already checked; the answer comes from a
//! partner and is trusted in nothing: its head is bounded, its body capped, and anything
//! that is not plain HTTP/1.x is a [`WireError::Protocol`].

use super::AnswerHeaders;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most header lines an answer may carry.
const MAX_HEADERS: usize = 64;
/// The largest answer head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How much is read from the connection at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Why an answer could not be read.
#[derive(Debug)]
pub(super) enum WireError {
    /// The connection failed.
    Io(std::io::Error),
    /// The connection ended before a complete answer.
    Eof,
    /// The bytes are not a valid HTTP/1.1 answer.
    Protocol(String),
    /// The body exceeds the cap.
    TooLarge,
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> WireError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::Eof
        } else {
            WireError::Io(e)
        }
    }
}

/// A complete answer as read off the wire.
#[derive(Debug)]
pub(super) struct Read {
    pub status: StatusCode,
    /// Empty unless [`AnswerHeaders::All`] was asked for.
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the connection may carry another request.
    pub reusable: bool,
}

/// Headers the hub sets itself on the upstream request, whatever the protocol passed on.
pub(super) fn framing_header(name: &HeaderName) -> bool {
    name == HOST || name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION
}

/// Encodes `request` (absolute URI) as an HTTP/1.1 request into `out`.
pub(super) fn encode(request: &Request<Bytes>, out: &mut Vec<u8>) {
    let body = request.body();
    let uri = request.uri();
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    if let Some(authority) = uri.authority() {
        out.extend_from_slice(authority.as_str().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in request.headers() {
        if framing_header(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::DELETE
    );
    if !body.is_empty() || !bodiless {
        // `itoa`, not `write!`: the formatting machinery cost about 330 instructions here.
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Reads one answer from `io`, using and leaving unread bytes in `buf`. Its framing is read
/// off the head's lines whatever `headers` asks for.
pub(super) async fn read<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    head_request: bool,
    max_body: usize,
    headers: AnswerHeaders,
) -> Result<Read, WireError> {
    let head = loop {
        let head = read_head(io, buf, headers).await?;
        // Interim answers (100 Continue, 103 Early Hints) precede the real one.
        if !head.status.is_informational() || head.status == StatusCode::SWITCHING_PROTOCOLS {
            break head;
        }
    };
    let Head {
        status,
        headers,
        framing,
        http10,
    } = head;
    let mut reusable = !http10 && !framing.close;
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let body = if no_body {
        Bytes::new()
    } else if framing.encoded {
        if framing.chunked {
            read_chunked(io, buf, max_body).await?
        } else {
            reusable = false;
            read_to_end(io, buf, max_body).await?
        }
    } else if let Some(length) = framing.length {
        if length > max_body as u64 {
            return Err(WireError::TooLarge);
        }
        read_exact(io, buf, length as usize).await?
    } else {
        reusable = false;
        read_to_end(io, buf, max_body).await?
    };
    // Bytes beyond the answer were never asked for: the connection is out of step.
    reusable &= buf.is_empty();
    Ok(Read {
        status,
        headers,
        body,
        reusable,
    })
}

struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    http10: bool,
}

/// What an answer's head says about how its body is framed and whether its connection stays
/// open.
#[derive(Default)]
struct Framing {
    /// `Connection: close`.
    close: bool,
    /// A `Transfer-Encoding` is present.
    encoded: bool,
    /// Its last coding is `chunked`.
    chunked: bool,
    /// The one `Content-Length`.
    length: Option<u64>,
}

impl Framing {
    /// Read off the head's lines by name: no header map needed, and several `Content-Length`
    /// values that disagree are an error.
    fn of(lines: &[httparse::Header<'_>]) -> Result<Framing, WireError> {
        let mut framing = Framing::default();
        for line in lines {
            let name = line.name.as_bytes();
            if name.eq_ignore_ascii_case(b"connection") {
                framing.close |= parts(line.value).any(|t| t.eq_ignore_ascii_case(b"close"));
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                framing.encoded = true;
                framing.chunked = parts(line.value)
                    .last()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"content-length") {
                for part in parts(line.value) {
                    let parsed = std::str::from_utf8(part)
                        .ok()
                        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| WireError::Protocol("invalid content-length".into()))?;
                    match framing.length {
                        Some(l) if l != parsed => {
                            return Err(WireError::Protocol("conflicting content-length".into()))
                        }
                        _ => framing.length = Some(parsed),
                    }
                }
            }
        }
        Ok(framing)
    }
}

/// A header value's comma-separated parts, trimmed.
fn parts(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

async fn fill<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut) -> Result<(), WireError> {
    buf.reserve(READ_CHUNK);
    match io.read_buf(buf).await? {
        0 => Err(WireError::Eof),
        _ => Ok(()),
    }
}

async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    headers: AnswerHeaders,
) -> Result<Head, WireError> {
    loop {
        if !buf.is_empty() {
            if let Some((head, length)) = parse_head(buf, headers)? {
                buf.advance(length);
                return Ok(head);
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err(WireError::Protocol(format!(
                    "answer head longer than {MAX_HEAD_BYTES} bytes"
                )));
            }
        }
        fill(io, buf).await?;
    }
}

fn parse_head(buf: &[u8], keep: AnswerHeaders) -> Result<Option<(Head, usize)>, WireError> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut lines);
    let length = match response.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WireError::Protocol(format!("answer head: {e}"))),
    };
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code)
        .map_err(|_| WireError::Protocol(format!("status code {code}")))?;
    let framing = Framing::of(response.headers)?;
    let mut headers = HeaderMap::new();
    if keep == AnswerHeaders::All {
        headers.reserve(response.headers.len());
        for line in response.headers.iter() {
            let name = HeaderName::from_bytes(line.name.as_bytes())
                .map_err(|_| WireError::Protocol(format!("header name {:?}", line.name)))?;
            let value = HeaderValue::from_bytes(line.value)
                .map_err(|_| WireError::Protocol(format!("value of header {name}")))?;
            headers.append(name, value);
        }
    }
    let http10 = response.version == Some(0);
    Ok(Some((
        Head {
            status,
            headers,
            framing,
            http10,
        },
        length,
    )))
}

async fn read_exact<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    length: usize,
) -> Result<Bytes, WireError> {
    while buf.len() < length {
        buf.reserve(length - buf.len());
        fill(io, buf).await?;
    }
    Ok(buf.split_to(length).freeze())
}

async fn read_to_end<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    max_body: usize,
) -> Result<Bytes, WireError> {
    loop {
        if buf.len() > max_body {
            return Err(WireError::TooLarge);
        }
        match fill(io, buf).await {
            Ok(()) => {}
            Err(WireError::Eof) => return Ok(buf.split().freeze()),
            Err(e) => return Err(e),
        }
    }
}

/// Decodes a chunked body; trailers are read and dropped.
async fn read_chunked<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    max_body: usize,
) -> Result<Bytes, WireError> {
    let mut body = BytesMut::new();
    loop {
        let line = read_line(io, buf).await?;
        let size = chunk_size(&line)?;
        if size == 0 {
            // Trailer lines up to an empty one.
            while !read_line(io, buf).await?.is_empty() {}
            return Ok(body.freeze());
        }
        if body.len() as u64 + size > max_body as u64 {
            return Err(WireError::TooLarge);
        }
        let size = size as usize;
        while buf.len() < size + 2 {
            fill(io, buf).await?;
        }
        body.extend_from_slice(&buf[..size]);
        if &buf[size..size + 2] != b"\r\n" {
            return Err(WireError::Protocol("chunk not followed by CRLF".into()));
        }
        buf.advance(size + 2);
    }
}

/// One CRLF-terminated line, without its CRLF.
async fn read_line<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
) -> Result<BytesMut, WireError> {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let mut line = buf.split_to(end + 2);
            line.truncate(end);
            return Ok(line);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(WireError::Protocol("chunk line too long".into()));
        }
        fill(io, buf).await?;
    }
}

fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(WireError::Protocol("invalid chunk size".into()));
    }
    digits.iter().try_fold(0u64, |size, &b| {
        let digit = (b as char)
            .to_digit(16)
            .ok_or_else(|| WireError::Protocol("invalid chunk size".into()))?;
        Ok(size * 16 + u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_with(
        wire: &[u8],
        max_body: usize,
        headers: AnswerHeaders,
    ) -> Result<(Read, BytesMut), WireError> {
        let mut io = wire;
        let mut buf = BytesMut::new();
        let read = read(&mut io, &mut buf, false, max_body, headers).await?;
        Ok((read, buf))
    }

    /// Reads `wire` keeping all headers, and checks that without them the answer is framed
    /// the same: status, body, reuse, leftover bytes, or the same kind of error.
    async fn read_all(wire: &[u8], max_body: usize) -> Result<(Read, BytesMut), WireError> {
        let all = read_with(wire, max_body, AnswerHeaders::All).await;
        let none = read_with(wire, max_body, AnswerHeaders::None).await;
        match (&all, &none) {
            (Ok((a, a_rest)), Ok((n, n_rest))) => {
                assert_eq!(a.status, n.status);
                assert_eq!(a.body, n.body);
                assert_eq!(a.reusable, n.reusable);
                assert_eq!(a_rest, n_rest);
                assert!(n.headers.is_empty(), "no headers kept: {:?}", n.headers);
            }
            (Err(a), Err(n)) => {
                assert_eq!(
                    std::mem::discriminant(a),
                    std::mem::discriminant(n),
                    "{a:?} / {n:?}"
                )
            }
            _ => panic!("framed differently: {all:?} / {none:?}"),
        }
        all
    }

    #[tokio::test]
    async fn a_content_length_answer_is_read_and_the_connection_kept() {
        let (read, _) = read_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            1024,
        )
        .await
        .unwrap();
        assert_eq!(read.status, 200);
        assert_eq!(&read.body[..], b"{}");
        assert_eq!(read.headers["content-type"], "application/json");
        assert!(read.reusable);
    }

    #[tokio::test]
    async fn a_chunked_answer_with_trailers_and_an_interim_answer_is_decoded() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nx-trailer: y\r\n\r\n";
        let (read, _) = read_all(wire, 1024).await.unwrap();
        assert_eq!(read.status, 201);
        assert_eq!(&read.body[..], b"{\"a\":1}");
        assert!(read.reusable);
    }

    #[tokio::test]
    async fn an_answer_without_length_is_read_to_the_end_and_the_connection_dropped() {
        let (read, _) = read_all(b"HTTP/1.1 200 OK\r\n\r\nhello", 1024)
            .await
            .unwrap();
        assert_eq!(&read.body[..], b"hello");
        assert!(!read.reusable);
        let (read, _) = read_all(
            b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
            1024,
        )
        .await
        .unwrap();
        assert!(read.body.is_empty());
        assert!(!read.reusable, "connection: close");
    }

    #[tokio::test]
    async fn framing_headers_are_read_in_any_case_and_over_several_lines() {
        // The last coding decides; names in any case; `close` among other tokens.
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: x, Chunked\r\nCONNECTION: keep-alive, Close\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        let (read, _) = read_all(wire, 1024).await.unwrap();
        assert_eq!(&read.body[..], b"{}");
        assert!(!read.reusable, "connection: close");
        assert_eq!(read.headers.get_all(TRANSFER_ENCODING).iter().count(), 2);
        // Chunked first, then another coding: not chunked, so read to the end.
        let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\nraw";
        let (read, _) = read_all(wire, 1024).await.unwrap();
        assert_eq!(&read.body[..], b"raw");
        assert!(!read.reusable);
        // The same length twice, in one line and in two.
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\ncontent-length: 2\r\n\r\n{}";
        let (read, _) = read_all(wire, 1024).await.unwrap();
        assert_eq!(&read.body[..], b"{}");
        assert!(read.reusable);
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused_whatever_the_framing() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\nhello world",
        ] {
            assert!(matches!(read_all(wire, 10).await, Err(WireError::TooLarge)));
        }
    }

    #[tokio::test]
    async fn truncated_and_malformed_answers_are_named() {
        assert!(matches!(
            read_all(b"HTTP/1.1 200 OK\r\ncontent-le", 1024).await,
            Err(WireError::Eof)
        ));
        assert!(matches!(
            read_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab", 1024).await,
            Err(WireError::Eof)
        ));
        assert!(matches!(
            read_all(b"SSH-2.0-OpenSSH\r\n\r\n", 1024).await,
            Err(WireError::Protocol(_))
        ));
        assert!(matches!(
            read_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
                1024
            )
            .await,
            Err(WireError::Protocol(_))
        ));
        assert!(matches!(
            read_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                1024
            )
            .await,
            Err(WireError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn bytes_beyond_the_answer_make_the_connection_unusable() {
        let (read, rest) = read_all(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",
            1024,
        )
        .await
        .unwrap();
        assert!(!read.reusable);
        assert!(!rest.is_empty());
    }

    #[test]
    fn requests_are_encoded_with_the_hub_s_framing_headers_only() {
        let mut request = Request::new(Bytes::from_static(b"{}"));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = "https://127.0.0.1:9001/prefix/v1/x?a=1".parse().unwrap();
        let headers = request.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("content-length", HeaderValue::from_static("999"));
        headers.insert("host", HeaderValue::from_static("evil"));
        let mut out = Vec::new();
        encode(&request, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /prefix/v1/x?a=1 HTTP/1.1\r\nhost: 127.0.0.1:9001\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
        let mut get = Request::new(Bytes::new());
        *get.uri_mut() = "https://h:1/p".parse().unwrap();
        let mut out = Vec::new();
        encode(&get, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /p HTTP/1.1\r\nhost: h:1\r\n\r\n"
        );
        // A length of several digits, and a body that must not be cut by it.
        let body = vec![b'x'; 12_345];
        let mut put = Request::new(Bytes::from(body.clone()));
        *put.method_mut() = Method::PUT;
        *put.uri_mut() = "https://h:1/p".parse().unwrap();
        let mut out = Vec::new();
        encode(&put, &mut out);
        let head = b"PUT /p HTTP/1.1\r\nhost: h:1\r\ncontent-length: 12345\r\n\r\n";
        assert_eq!(&out[..head.len()], head);
        assert_eq!(&out[head.len()..], &body[..]);
    }
}
