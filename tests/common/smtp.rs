//! A real local SMTP server for mail tests: aiosmtpd (Debian's
//! python3-aiosmtpd), plain, slow or STARTTLS-only, printing what it gets.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// aiosmtpd printing every message it gets (the Debugging handler).
pub struct Smtp {
    pub port: u16,
    pub child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

/// aiosmtpd with a handler that takes `delay` to accept each message and
/// prints it as the Debugging handler does: a slow mail server, so that
/// mail sent on the request path would show in the answer's time.
const SLOW_HANDLER: &str = r#"
import asyncio, sys, time
from aiosmtpd.controller import Controller
class Slow:
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(float(sys.argv[2]))
        print("---------- MESSAGE FOLLOWS ----------")
        print(envelope.content.decode("utf8", errors="replace"))
        print("------------ END MESSAGE ------------", flush=True)
        return "250 OK"
c = Controller(Slow(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
while True:
    time.sleep(3600)
"#;

/// aiosmtpd that speaks STARTTLS with the certificate in argv[2..4] and
/// takes no mail before it (`require_starttls`); each message is printed
/// with whether it came over TLS.
const STARTTLS_SERVER: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
class Print:
    async def handle_DATA(self, server, session, envelope):
        print("---------- MESSAGE FOLLOWS ----------")
        print("over-tls:", session.ssl is not None)
        print(envelope.content.decode("utf8", errors="replace"))
        print("------------ END MESSAGE ------------", flush=True)
        return "250 OK"
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
c = Controller(Print(), hostname="127.0.0.1", port=int(sys.argv[1]),
               tls_context=ctx, require_starttls=True)
c.start()
while True:
    time.sleep(3600)
"#;

impl Smtp {
    pub async fn start() -> Option<Smtp> {
        Self::start_with_delay(None).await
    }

    pub async fn start_with_delay(delay: Option<Duration>) -> Option<Smtp> {
        Self::start_with(delay, None).await
    }

    /// With `tls` (certificate and key files): STARTTLS, required.
    pub async fn start_with(
        delay: Option<Duration>,
        tls: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Option<Smtp> {
        let python = "/usr/bin/python3";
        let has = std::process::Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has {
            super::missing_service(
                "aiosmtpd",
                "scripts/setup.sh --test installs python3-aiosmtpd",
            );
            return None;
        }
        let port = super::child::free_addr().port();
        let mut cmd = tokio::process::Command::new(python);
        match (delay, tls) {
            (_, Some((cert, key))) => cmd
                .args(["-u", "-c", STARTTLS_SERVER, &port.to_string()])
                .arg(cert)
                .arg(key),
            (None, None) => cmd.args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Debugging",
                "stdout",
            ]),
            (Some(d), None) => cmd.args([
                "-u",
                "-c",
                SLOW_HANDLER,
                &port.to_string(),
                &d.as_secs_f64().to_string(),
            ]),
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait until it accepts connections.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(Smtp { port, child, lines });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not start");
    }

    /// The next mail's text (headers and body), up to its end marker.
    pub async fn next_mail(&mut self) -> String {
        let mut text = String::new();
        let read = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                if line.contains("END MESSAGE") {
                    return;
                }
                text.push_str(&line);
                text.push('\n');
            }
        };
        tokio::time::timeout(Duration::from_secs(15), read)
            .await
            .expect("a mail within 15 s");
        quoted_printable(&text)
    }
}

/// The mail as written before quoted-printable encoding: soft line breaks
/// joined, `=XX` decoded (headers have no such sequences).
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'=', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The 43-character token: in a link's `#token=`, or on a line of its own.
pub fn token_in(mail: &str) -> String {
    if let Some(i) = mail.find("#token=") {
        return mail[i + 7..i + 7 + 43].to_string();
    }
    mail.lines()
        .map(str::trim)
        .find(|l| {
            l.len() == 43
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(|| panic!("no token in {mail}"))
        .to_string()
}
