//! Running a command in the guest from the host (`lab exec`), over a TCP port forwarded by
//! qemu. The guest side is this same binary (`xtask lab exec-server`), so the protocol can
//! keep stdout, stderr and the exit status apart, which a shell over netcat cannot.
//!
//! ```text
//! request:  "LABX" u32 argc { u32 len, bytes }*argc  u32 stdin_len, stdin bytes
//! response: frames  u8 tag, u32 len, payload
//!           tag 1 stdout bytes | 2 stderr bytes | 3 exit status (i32) | 4 error text
//! ```
//! All integers are big-endian. The exit frame is last; a signal death is 128 + signal.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

const MAGIC: &[u8; 4] = b"LABX";
const MAX_ARGS: u32 = 4096;
const MAX_ARG_LEN: u32 = 1 << 20;
const MAX_STDIN: u32 = 256 << 20;
const MAX_FRAME: u32 = 16 << 20;

const TAG_STDOUT: u8 = 1;
const TAG_STDERR: u8 = 2;
const TAG_EXIT: u8 = 3;
const TAG_ERROR: u8 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub argv: Vec<Vec<u8>>,
    pub stdin: Vec<u8>,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(self.argv.len() as u32).to_be_bytes());
        for a in &self.argv {
            out.extend_from_slice(&(a.len() as u32).to_be_bytes());
            out.extend_from_slice(a);
        }
        out.extend_from_slice(&(self.stdin.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.stdin);
        out
    }

    pub fn read_from(r: &mut impl Read) -> Result<Self> {
        let mut magic = [0u8; 4];
        r.read_exact(&mut magic).context("reading request")?;
        if &magic != MAGIC {
            bail!("bad request magic {magic:02x?}");
        }
        let argc = read_u32(r)?;
        if argc == 0 || argc > MAX_ARGS {
            bail!("bad argument count {argc}");
        }
        let mut argv = Vec::with_capacity(argc as usize);
        for _ in 0..argc {
            argv.push(read_bytes(r, MAX_ARG_LEN, "argument")?);
        }
        let stdin = read_bytes(r, MAX_STDIN, "stdin")?;
        Ok(Self { argv, stdin })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    Error(String),
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let exit;
        let (tag, payload): (u8, &[u8]) = match self {
            Frame::Stdout(b) => (TAG_STDOUT, b),
            Frame::Stderr(b) => (TAG_STDERR, b),
            Frame::Exit(code) => {
                exit = code.to_be_bytes();
                (TAG_EXIT, &exit)
            }
            Frame::Error(s) => (TAG_ERROR, s.as_bytes()),
        };
        let mut out = vec![tag];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// The next frame, or `None` at a clean end of stream.
    pub fn read_from(r: &mut impl Read) -> Result<Option<Self>> {
        let mut tag = [0u8; 1];
        match r.read(&mut tag) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(e).context("reading frame"),
        }
        let payload = read_bytes(r, MAX_FRAME, "frame")?;
        Ok(Some(match tag[0] {
            TAG_STDOUT => Frame::Stdout(payload),
            TAG_STDERR => Frame::Stderr(payload),
            TAG_EXIT => {
                let Ok(b) = <[u8; 4]>::try_from(payload.as_slice()) else {
                    bail!("exit frame of {} bytes", payload.len());
                };
                Frame::Exit(i32::from_be_bytes(b))
            }
            TAG_ERROR => Frame::Error(String::from_utf8_lossy(&payload).into_owned()),
            t => bail!("unknown frame tag {t}"),
        }))
    }
}

fn read_u32(r: &mut impl Read) -> Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).context("truncated message")?;
    Ok(u32::from_be_bytes(b))
}

fn read_bytes(r: &mut impl Read, max: u32, what: &str) -> Result<Vec<u8>> {
    let len = read_u32(r)?;
    if len > max {
        bail!("{what} of {len} bytes exceeds {max}");
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).context("truncated message")?;
    Ok(buf)
}

/// Serves requests forever, one thread per connection.
pub fn serve(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        thread::spawn(move || {
            if let Err(e) = handle(conn) {
                eprintln!("lab exec-server: {e:#}");
            }
        });
    }
    Ok(())
}

fn handle(conn: TcpStream) -> Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let req = Request::read_from(&mut reader)?;
    let out = Arc::new(Mutex::new(conn));
    let send = |frame: Frame| -> Result<()> {
        let mut conn = out.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        conn.write_all(&frame.encode())?;
        Ok(())
    };
    let program = std::ffi::OsStr::from_bytes(&req.argv[0]);
    let mut cmd = Command::new(program);
    cmd.args(req.argv[1..].iter().map(|a| std::ffi::OsStr::from_bytes(a)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if req.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        });
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            send(Frame::Error(format!("{}: {e}", program.to_string_lossy())))?;
            return send(Frame::Exit(127));
        }
    };
    let feeder = child.stdin.take().map(|mut stdin| {
        let data = req.stdin;
        thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    });
    let pumps: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| pump(s, Frame::Stdout, out.clone())),
        child
            .stderr
            .take()
            .map(|s| pump(s, Frame::Stderr, out.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    for p in pumps {
        let _ = p.join();
    }
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let status = child.wait()?;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255);
    send(Frame::Exit(code))
}

fn pump(
    mut src: impl Read + Send + 'static,
    frame: fn(Vec<u8>) -> Frame,
    out: Arc<Mutex<TcpStream>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let bytes = frame(buf[..n].to_vec()).encode();
            let Ok(mut conn) = out.lock() else { return };
            // A vanished client closes our end of the pipe: the command sees EPIPE.
            if conn.write_all(&bytes).is_err() {
                return;
            }
        }
    })
}

/// Runs `argv` in the guest and relays its output to ours; returns its exit status.
pub fn run(addr: SocketAddr, argv: &[String], stdin: Vec<u8>) -> Result<i32> {
    let stdout = io::stdout();
    let stderr = io::stderr();
    call(addr, argv, stdin, |frame| match frame {
        Frame::Stdout(b) => {
            let mut o = stdout.lock();
            // A closed stdout (e.g. `| head`) is not an error.
            let _ = o.write_all(&b).and_then(|_| o.flush());
        }
        Frame::Stderr(b) => {
            let mut e = stderr.lock();
            let _ = e.write_all(&b).and_then(|_| e.flush());
        }
        Frame::Error(msg) => eprintln!("lab exec: {msg}"),
        Frame::Exit(_) => {}
    })
}

/// Runs `argv` in the guest and returns (exit status, stdout).
pub fn capture(addr: SocketAddr, argv: &[&str]) -> Result<(i32, String)> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let code = call(addr, &argv, Vec::new(), |frame| {
        if let Frame::Stdout(b) = frame {
            out.extend_from_slice(&b);
        }
    })?;
    Ok((code, String::from_utf8_lossy(&out).into_owned()))
}

fn call(
    addr: SocketAddr,
    argv: &[String],
    stdin: Vec<u8>,
    mut on_frame: impl FnMut(Frame),
) -> Result<i32> {
    if argv.is_empty() {
        bail!("no command given");
    }
    let req = Request {
        argv: argv
            .iter()
            .map(|a| std::ffi::OsStr::new(a).as_bytes().to_vec())
            .collect(),
        stdin,
    };
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to the lab exec port {addr}"))?;
    conn.write_all(&req.encode())?;
    let mut reader = BufReader::new(conn);
    loop {
        match Frame::read_from(&mut reader)? {
            Some(Frame::Exit(code)) => return Ok(code),
            Some(frame) => on_frame(frame),
            None => bail!("the guest closed the connection before the command finished"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() -> Result<()> {
        let req = Request {
            argv: vec![b"ipvsadm".to_vec(), b"-ln".to_vec(), Vec::new()],
            stdin: b"-A -t 1.2.3.4:80\n".to_vec(),
        };
        let bytes = req.encode();
        assert_eq!(&bytes[..8], b"LABX\0\0\0\x03");
        assert_eq!(Request::read_from(&mut bytes.as_slice())?, req);
        Ok(())
    }

    #[test]
    fn bad_requests() {
        let cases: &[(&[u8], &str)] = &[
            (b"NOPE", "bad request magic [4e, 4f, 50, 45]"),
            (b"LABX\0\0\0\0", "bad argument count 0"),
            (
                b"LABX\0\0\0\x01\xff\xff\xff\xff",
                "argument of 4294967295 bytes exceeds 1048576",
            ),
            (b"LABX\0\0\0\x01\0\0\0\x05ab", "truncated message"),
            (b"LAB", "reading request"),
        ];
        for (bytes, want) in cases {
            let got = Request::read_from(&mut &bytes[..]).map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_string()), "{bytes:?}");
        }
    }

    #[test]
    fn frame_round_trips() -> Result<()> {
        let frames = [
            Frame::Stdout(b"IP Virtual Server".to_vec()),
            Frame::Stderr(b"oops\n".to_vec()),
            Frame::Error("ipvsadm: not found".into()),
            Frame::Exit(-1),
            Frame::Exit(130),
        ];
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend_from_slice(&f.encode());
        }
        let mut r = stream.as_slice();
        for f in &frames {
            assert_eq!(Frame::read_from(&mut r)?.as_ref(), Some(f));
        }
        assert_eq!(Frame::read_from(&mut r)?, None);
        Ok(())
    }

    #[test]
    fn bad_frames() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x09\0\0\0\0", "unknown frame tag 9"),
            (b"\x03\0\0\0\x02\0\0", "exit frame of 2 bytes"),
            (b"\x01\0\0\0\x09abc", "truncated message"),
        ];
        for (bytes, want) in cases {
            let got = Frame::read_from(&mut &bytes[..]).map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_string()), "{bytes:?}");
        }
    }

    #[test]
    fn server_relays_output_and_status() -> Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                thread::spawn(move || handle(conn));
            }
        });
        let (code, out) = capture(addr, &["sh", "-c", "echo out; echo err >&2; exit 3"])?;
        assert_eq!((code, out.as_str()), (3, "out\n"));
        let (code, out) = capture(addr, &["sh", "-c", "kill -TERM $$"])?;
        assert_eq!((code, out.as_str()), (128 + 15, ""));
        let (code, _) = capture(addr, &["/nonexistent/program"])?;
        assert_eq!(code, 127);
        let mut got = Vec::new();
        let code = call(addr, &["cat".to_string()], b"piped\n".to_vec(), |f| {
            got.push(f)
        })?;
        assert_eq!(code, 0);
        assert_eq!(got, [Frame::Stdout(b"piped\n".to_vec())]);
        Ok(())
    }
}
