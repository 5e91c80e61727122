//! One raw HTTP/1.1 request on loopback: how the test bed steers the launcher and how the tests
//! speak to the emulators as a plain client would, without an HTTP client library.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `method path` with `body` (as `application/json`) to `address` (`127.0.0.1:PORT`, or
/// `http://127.0.0.1:PORT`) on a fresh connection; returns the status code and the body.
pub async fn request(address: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    request_with_headers(address, method, path, &[("Content-Type", "application/json")], body).await
}

/// [`request`] with these headers instead of the JSON content type (an AWS JSON protocol call
/// names its own content type and target).
pub async fn request_with_headers(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let address = address.strip_prefix("http://").unwrap_or(address);
    let stream = TcpStream::connect(address).await?;
    let headers: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A server that refuses a body may answer and close before reading all of it: what matters
    // is the answer, so write and read errors are not the error: a missing answer is.
    let (mut reader, mut writer) = stream.into_split();
    let (_, answer) = tokio::join!(writer.write_all(request.as_bytes()), async {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        answer
    });
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split_whitespace().nth(1).and_then(|code| code.parse().ok()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not an HTTP answer: {answer:?}"))
    })?;
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    Ok((status, body))
}
