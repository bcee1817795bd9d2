//! The real, independent ECS: `ts43-test-ecs` 1.3.0 from PyPI, started on a loopback port
//! it picks itself (the launcher binds port 0 and prints it), with TLS from the stage
//! PKI, its own SQLite file, and two virtual carriers by PLMN: `00101…` downloads at once,
//! `00102…` answers delayed download and is ready after two polls. Subscribers and
//! profiles are seeded through its admin API. Tests skip (printing why) when the package
//! is missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The admin key of the test ECS (loopback only).
pub const ADMIN_KEY: &str = "ecsAdminKeyForTests1";

/// The launcher: bind port 0, print it, serve.
const LAUNCHER: &str = r#"
import socket, sys, uvicorn
from ts43ecs.config import Settings
from ts43ecs.main import create_app
from ts43ecs.__main__ import build_uvicorn_config
s = Settings()
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(sock.getsockname()[1], flush=True)
config = build_uvicorn_config(s, create_app(s), s.ssl_certfile, s.ssl_keyfile)
uvicorn.Server(config).run(sockets=[sock])
"#;

const CARRIERS: &str = "carriers:\n  delayed:\n    plmns: [\"00102\"]\n    overlay:\n      settings:\n        odsa_delayed_download: true\n";

/// A running test ECS, stopped (by its own pid) when dropped.
pub struct Ecs {
    child: Child,
    /// Its port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Ecs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the package is installed; prints why not.
pub fn available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import ts43ecs"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: the ts43-test-ecs package is not installed (pip install ts43-test-ecs==1.3.0)"
        );
    }
    ok
}

/// Starts an ECS with the stage PKI's `ecs` certificate.
pub fn start(certs: &Path) -> Result<Ecs, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (cert, key) = aidhub::pki::partner_server(certs, aidhub::stage::ECS_ENTITY);
    let at = |name: &str| -> PathBuf { dir.path().join(name) };
    std::fs::write(at("carriers.yaml"), CARRIERS).map_err(|e| e.to_string())?;
    let mut child = Command::new("python3")
        .args(["-c", LAUNCHER])
        .current_dir(dir.path())
        .env("ECS_SSL_CERTFILE", &cert)
        .env("ECS_SSL_KEYFILE", &key)
        .env(
            "ECS_DATABASE_URL",
            format!("sqlite+aiosqlite:///{}", at("ecs.db").display()),
        )
        .env("ECS_JWT_PRIVATE_KEY_PATH", at("jwt.pem"))
        .env("ECS_AUDIT_LOG_FILE", at("audit.log"))
        .env("ECS_CARRIERS_FILE", at("carriers.yaml"))
        .env("ECS_SNAPSHOT_DIR", at("snapshots"))
        .env("ECS_ADMIN_API_KEY", ADMIN_KEY)
        .env("ECS_ODSA_DELAYED_READY_AFTER_POLLS", "2")
        .env("ECS_LOG_LEVEL", "WARNING")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let port = line
        .trim()
        .parse()
        .map_err(|_| format!("the ECS launcher printed {line:?}"))?;
    Ok(Ecs {
        child,
        port,
        _dir: dir,
    })
}

/// A `[[carrier]]` table for an ECS on `port`, answering within `timeout_ms`.
pub fn carrier_toml(id: &str, port: u16, timeout_ms: u64) -> String {
    format!(
        "[[carrier]]\nid = \"{id}\"\nbase_path = \"/ts43/{id}\"\necs_url = \"https://127.0.0.1:{port}/\"\n\
         ecs_ca = [\"certs/ca.pem\"]\nserver_name = \"localhost\"\ntimeout_ms = {timeout_ms}\n\
         [carrier.limits]\nrate = 200.0\ndevice_rate = 50.0\ndevice_burst = 50\n\n"
    )
}
