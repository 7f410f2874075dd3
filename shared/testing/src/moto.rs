//! moto's server on loopback, started for a test (or the local stack) and stopped when dropped.

use super::HarnessError;
use super::template::workspace_root;
use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";
/// The account moto reports for every request.
pub const ACCOUNT_ID: &str = "123456789012";

pub struct Moto {
    child: Child,
    port: u16,
    log_path: PathBuf,
}

/// `MOTO_SERVER` when set (an executable taking moto_server's flags), else `scripts/moto-server.py`
/// (moto with DynamoDB requests serialised, see the script) run by the project's `.venv` Python
/// (see `scripts/setup.sh`), else by `python3` from `PATH`.
fn moto_command() -> Command {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return Command::new(path);
    }
    let root = workspace_root();
    let venv_python = root.join(".venv/bin/python");
    let mut command = Command::new(if venv_python.exists() { venv_python } else { PathBuf::from("python3") });
    command.arg(root.join("scripts/moto-server.py"));
    command
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| HarnessError::new(format!("no free port: {e}")))?;
    Ok(listener.local_addr().map_err(|e| HarnessError::new(e.to_string()))?.port())
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it accepts connections.
    pub async fn start() -> Result<Self, HarnessError> {
        Self::start_on(free_port()?).await
    }

    pub async fn start_on(port: u16) -> Result<Self, HarnessError> {
        let log_path = std::env::temp_dir().join(format!("tributary-moto-{port}.log"));
        let log =
            std::fs::File::create(&log_path).map_err(|e| HarnessError::new(format!("{}: {e}", log_path.display())))?;
        let log_err = log.try_clone().map_err(|e| HarnessError::new(e.to_string()))?;
        let mut command = moto_command();
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| {
                HarnessError::new(format!("starting moto ({command:?}) failed ({e}); run `make setup` first"))
            })?;
        let mut moto = Self { child, port, log_path };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                let log = std::fs::read_to_string(&moto.log_path).unwrap_or_default();
                return Err(HarnessError::new(format!("moto_server exited with {status}: {log}")));
            }
            if Instant::now() > deadline {
                return Err(HarnessError::new("moto_server did not listen within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}
