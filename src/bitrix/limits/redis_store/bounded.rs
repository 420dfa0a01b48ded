//! A Redis connection that never reads more than [`MAX_REPLY_BYTES`] of one reply. redis-rs
//! buffers a reply whole whatever its length, and its values cost about five times that: a
//! 64 MiB answer (something at the URL that is not the Redis this server set up, or a script
//! changed under it) took 336 MB. Each command here answers a few bytes, so a longer reply is
//! refused (the store's `StoreError::ReplyTooLarge`) and the connection dropped. redis-rs still writes the
//! commands and parses the replies; only the socket is this module's.

use std::{
    io::{self, BufReader, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    time::Duration,
};

use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ConnectionLike, ErrorKind, Parser, RedisError,
    RedisResult, Value,
};

/// The longest reply read: a state is at most 4 KiB, and every other reply is a number or a
/// word. The state's own bound is kept by the script that reads it (`BOUNDED_GET`).
pub const MAX_REPLY_BYTES: u64 = 64 * 1024;

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct Bounded {
    reader: BufReader<Box<dyn Stream>>,
    parser: Parser,
    db: i64,
    open: bool,
    /// Whether a reply was refused for its length.
    overflowed: bool,
}

impl Bounded {
    /// Connects as `info` says, with `timeout` on connecting and on every read and write,
    /// then authenticates and selects the database the URL names.
    pub fn connect(info: &ConnectionInfo, timeout: Duration) -> RedisResult<Self> {
        let stream: Box<dyn Stream> = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Box::new(tcp(host, *port, timeout)?),
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let socket = std::os::unix::net::UnixStream::connect(path)?;
                socket.set_read_timeout(Some(timeout))?;
                socket.set_write_timeout(Some(timeout))?;
                Box::new(socket)
            }
            other => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "this server connects to Redis over TCP or a Unix socket only",
                    format!("{other:?}"),
                )));
            }
        };
        let settings = info.redis_settings();
        let mut link = Self {
            reader: BufReader::new(stream),
            parser: Parser::new(),
            db: settings.db(),
            open: true,
            overflowed: false,
        };
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password).query::<()>(&mut link)?;
        }
        if link.db != 0 {
            redis::cmd("SELECT").arg(link.db).query::<()>(&mut link)?;
        }
        Ok(link)
    }

    /// Whether a reply was refused for being longer than [`MAX_REPLY_BYTES`].
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

fn tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"));
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl ConnectionLike for Bounded {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        let sent = self.reader.get_mut().write_all(cmd);
        if let Err(e) = sent {
            self.open = false;
            return Err(e.into());
        }
        let mut reply = Read::take(&mut self.reader, MAX_REPLY_BYTES);
        let value = self.parser.parse_value(&mut reply);
        if reply.limit() == 0 {
            // The rest of the reply is still on its way: this connection is done.
            self.open = false;
            self.overflowed = true;
            return Err(RedisError::from(io::Error::other(format!(
                "a reply longer than {MAX_REPLY_BYTES} bytes"
            ))));
        }
        if value.is_err() {
            self.open = false;
        }
        value
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        // Not used here (no pipelines); answered one reply at a time all the same.
        let mut first = Some(cmd);
        let mut values = Vec::with_capacity(count);
        for i in 0..offset + count {
            let value = match first.take() {
                Some(cmd) => self.req_packed_command(cmd)?,
                None => self.req_packed_command(&[])?,
            };
            if i >= offset {
                values.push(value);
            }
        }
        Ok(values)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        Cmd::new().arg("PING").query::<()>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}
