//! moto's server on loopback, started for a test (or the local stack) and stopped when dropped.

use super::HarnessError;
use super::template::{project_python, workspace_root};
use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";
/// The account moto reports for every request.
pub const ACCOUNT_ID: &str = "123456789012";

pub struct Moto {
    server: Server,
    port: u16,
    log_path: PathBuf,
}

enum Server {
    /// A process of its own (`MOTO_SERVER`).
    Own(Child),
    /// Forked by this process's [`Forks`]: its pid, and the pid of the parent that forked it.
    Forked { pid: u32, parent: u32 },
}

/// `scripts/moto-server.py --serve-forks`, started at the first [`Moto::start`] of this process:
/// it imports moto and builds the stack's services once, then forks a server per start, ready in
/// milliseconds where a new Python process takes seconds of CPU (a test binary starts one per test).
/// It ends with this process: its standard input closes, and it stops the servers left; a server
/// dies with it, however it ends.
struct Forks {
    process: Child,
    requests: ChildStdin,
    answers: BufReader<ChildStdout>,
    /// Written only when it fails (each server writes to its own log).
    failures: ChildStderr,
}

static FORKS: Mutex<Option<Forks>> = Mutex::new(None);

impl Forks {
    /// `scripts/moto-server.py` run by [`project_python`].
    fn start() -> Result<Self, HarnessError> {
        let mut command = Command::new(project_python());
        command.arg(workspace_root().join("scripts/moto-server.py")).args(["-H", "127.0.0.1", "--serve-forks"]);
        let mut process =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
                HarnessError::new(format!("starting moto ({command:?}) failed ({e}); run `make setup` first"))
            })?;
        let (Some(requests), Some(answers), Some(failures)) =
            (process.stdin.take(), process.stdout.take(), process.stderr.take())
        else {
            return Err(HarnessError::new("moto's server: no pipes to its standard input and outputs"));
        };
        Ok(Self { process, requests, answers: BufReader::new(answers), failures })
    }

    /// Sends one line and reads the answer's line.
    fn ask(&mut self, request: &str) -> Result<String, HarnessError> {
        let asked = writeln!(self.requests, "{request}").and_then(|()| self.requests.flush());
        let mut answer = String::new();
        let read = asked.and_then(|()| self.answers.read_line(&mut answer));
        match read {
            Ok(n) if n > 0 && !answer.starts_with("error") => Ok(answer.trim().to_string()),
            Ok(n) if n > 0 => Err(HarnessError::new(format!("moto's server parent, asked `{request}`: {answer}"))),
            _ => {
                // Its pipes are broken: it is stopped (its servers with it), so that its error
                // output ends; the next start starts another.
                let _ = self.process.kill();
                let _ = self.process.wait();
                let mut failure = String::new();
                let _ = self.failures.read_to_string(&mut failure);
                Err(HarnessError::new(format!(
                    "moto's server parent, asked `{request}`, answered {answer:?}: {failure}"
                )))
            }
        }
    }

    /// A new server on `port`, its output to `log_path`: its pid and its parent's. The parent is
    /// started on first use, and again if it has exited.
    fn serve(port: u16, log_path: &Path) -> Result<Server, HarnessError> {
        let mut forks = FORKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(running) = forks.as_mut()
            && !matches!(running.process.try_wait(), Ok(None))
        {
            *forks = None;
        }
        if forks.is_none() {
            *forks = Some(Self::start()?);
        }
        let Some(running) = forks.as_mut() else {
            return Err(HarnessError::new("moto's server parent did not start"));
        };
        let answer = running.ask(&format!("serve {port} {}", log_path.display()))?;
        let pid = answer
            .parse()
            .map_err(|_| HarnessError::new(format!("moto's server parent answered {answer:?}, not a pid")))?;
        Ok(Server::Forked { pid, parent: running.process.id() })
    }

    /// Stops server `pid` if its parent is the one running: a server of an earlier parent died
    /// with it.
    fn stop(pid: u32, parent: u32) {
        let mut forks = FORKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(running) = forks.as_mut().filter(|running| running.process.id() == parent) {
            let _ = running.ask(&format!("stop {pid}"));
        }
    }
}

/// Why a server did not start: its port was taken by another process, or anything else.
enum Launch {
    PortTaken(HarnessError),
    Failed(HarnessError),
}

/// Whether process `pid` has exited (gone, or a zombie its parent has not reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| HarnessError::new(format!("no free port: {e}")))?;
    Ok(listener.local_addr().map_err(|e| HarnessError::new(e.to_string()))?.port())
}

/// What werkzeug writes to a server's log once its socket listens on `port`.
fn listening_line(port: u16) -> Vec<u8> {
    format!("Running on http://127.0.0.1:{port}\n").into_bytes()
}

/// A log file of this launch alone, empty: the readiness check reads it, so it must hold nothing
/// another server wrote (another process's moto on the same port, a run killed before it removed
/// its log).
fn new_log(port: u16) -> Result<(PathBuf, std::fs::File), HarnessError> {
    static LAUNCHES: AtomicUsize = AtomicUsize::new(0);
    let launch = LAUNCHES.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("tributary-moto-{}-{port}-{launch}.log", std::process::id()));
    let file = std::fs::File::create(&path).map_err(|e| HarnessError::new(format!("{}: {e}", path.display())))?;
    Ok((path, file))
}

/// Ports tried by [`Moto::start`] before it gives up.
const PORTS_TRIED: usize = 5;

impl Moto {
    /// Starts moto on a free loopback port and waits until it listens there.
    pub async fn start() -> Result<Self, HarnessError> {
        Self::start_on_first_free(free_port).await
    }

    /// `free_port` finds a port nobody listens on when asked; another process (the demo runs
    /// beside the tests and starts a dozen servers) can take it before moto binds it. moto then
    /// exits, and the next port is tried.
    async fn start_on_first_free(
        mut next_port: impl FnMut() -> Result<u16, HarnessError>,
    ) -> Result<Self, HarnessError> {
        let mut tried = 1;
        loop {
            match Self::launch(next_port()?).await {
                Ok(moto) => return Ok(moto),
                Err(Launch::PortTaken(error)) if tried >= PORTS_TRIED => return Err(error),
                Err(Launch::PortTaken(_)) => tried += 1,
                Err(Launch::Failed(error)) => return Err(error),
            }
        }
    }

    /// A server forked by [`Forks`], or `MOTO_SERVER` when set (an executable taking moto_server's
    /// flags, started as a process of its own).
    pub async fn start_on(port: u16) -> Result<Self, HarnessError> {
        Self::launch(port).await.map_err(|(Launch::PortTaken(error) | Launch::Failed(error))| error)
    }

    async fn launch(port: u16) -> Result<Self, Launch> {
        let (log_path, log) = new_log(port).map_err(Launch::Failed)?;
        let server = Self::spawn(port, &log_path, log).map_err(|error| {
            let _ = std::fs::remove_file(&log_path);
            Launch::Failed(error)
        })?;
        let mut moto = Self { server, port, log_path };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        let listening = listening_line(port);
        loop {
            // A connection alone could reach another process listening on the port: the server's
            // log says when it is its own socket that listens.
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
                && std::fs::read(&moto.log_path).is_ok_and(|log| log.windows(listening.len()).any(|w| w == listening))
            {
                return Ok(moto);
            }
            let status = match &mut moto.server {
                Server::Own(child) => child.try_wait().ok().flatten().map(|status| status.to_string()),
                Server::Forked { pid, .. } => exited(*pid).then(|| "an error".to_string()),
            };
            if let Some(status) = status {
                let log = String::from_utf8_lossy(&std::fs::read(&moto.log_path).unwrap_or_default()).into_owned();
                let error = HarnessError::new(format!("moto's server on port {port} exited with {status}: {log}"));
                return Err(if log.contains("Address already in use") {
                    Launch::PortTaken(error)
                } else {
                    Launch::Failed(error)
                });
            }
            if Instant::now() > deadline {
                return Err(Launch::Failed(HarnessError::new(format!(
                    "moto's server did not listen on port {port} within 60 s"
                ))));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A server forked by [`Forks`], or `MOTO_SERVER` when set, its output to `log`.
    fn spawn(port: u16, log_path: &Path, log: std::fs::File) -> Result<Server, HarnessError> {
        let Some(path) = std::env::var_os("MOTO_SERVER") else {
            return Forks::serve(port, log_path);
        };
        let log_err = log.try_clone().map_err(|e| HarnessError::new(e.to_string()))?;
        let mut command = Command::new(path);
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| HarnessError::new(format!("starting moto ({command:?}) failed ({e})")))?;
        Ok(Server::Own(child))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's output: werkzeug's lines, and a line per request answered 5xx.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        match &self.server {
            Server::Own(child) => child.id(),
            Server::Forked { pid, .. } => *pid,
        }
    }

    /// An SDK configuration aimed at this server, with moto's dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint()).await
    }
}

/// The SDK configuration for a local endpoint, built without touching the process environment.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    tributary_aws::sdk_config_loader()
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

impl Drop for Moto {
    fn drop(&mut self) {
        match &mut self.server {
            Server::Own(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Server::Forked { pid, parent } => Forks::stop(*pid, *parent),
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_another_process_listens_on_is_not_taken_for_motos() {
        let stranger = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = stranger.local_addr().unwrap().port();
        let error = match Moto::start_on(port).await {
            Ok(_) => panic!("a connection to another process's port was taken for moto's"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("Address already in use"), "{error}");
    }

    #[tokio::test]
    async fn a_port_another_moto_listens_on_is_not_taken_for_this_ones() {
        let first = Moto::start().await.unwrap();
        let error = match Moto::start_on(first.port()).await {
            Ok(_) => panic!("the first server's log was read as the second's"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("Address already in use"), "{error}");
        let log = std::fs::read_to_string(first.log_path()).unwrap();
        assert!(log.contains(&format!("Running on http://127.0.0.1:{}", first.port())), "{log}");
    }

    #[tokio::test]
    async fn start_moves_on_to_the_next_port_when_one_is_taken() {
        let stranger = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = stranger.local_addr().unwrap().port();
        let mut ports = vec![taken];
        let moto = Moto::start_on_first_free(|| ports.pop().map_or_else(free_port, Ok)).await.unwrap();
        assert_ne!(moto.port(), taken);
        let tables = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await).list_tables().send().await.unwrap();
        assert!(tables.table_names().is_empty());
    }
}
