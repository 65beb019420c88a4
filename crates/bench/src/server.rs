//! The server under test: a child process of the bench, always stopped when the handle is
//! dropped (normal end, error, panic or ctrl-c), and also when the bench itself dies
//! (PR_SET_PDEATHSIG).

use crate::http::{Client, Error};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub log_path: PathBuf,
    spawned_at: Instant,
    stopped: Option<Option<ExitStatus>>,
}

/// A free TCP port on 127.0.0.1 (bound, read and released; the small race is acceptable).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Starts `bin serve --addr … --database … --base-url …`, output to `log_path`.
    pub fn spawn(bin: &Path, database: &str, log_path: PathBuf) -> Result<Server, Error> {
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let base_url = format!("http://{addr}");
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--addr",
            &addr.to_string(),
            "--database",
            database,
            "--base-url",
            &base_url,
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let spawned_at = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start server {}: {e}", bin.display()))?;
        Ok(Server {
            pid: child.id(),
            child,
            addr,
            log_path,
            spawned_at,
            stopped: None,
        })
    }

    /// Polls `GET /healthz` until it answers 200; returns the time since spawn.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<Duration, Error> {
        loop {
            self.check_alive()?;
            let mut c = Client::new(self.addr);
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), c.get("/healthz")).await
                && r.status == 200
            {
                return Ok(self.spawned_at.elapsed());
            }
            if self.spawned_at.elapsed() > timeout {
                return Err(format!(
                    "server did not answer 200 on /healthz within {timeout:?}\n{}",
                    self.log_tail(20)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// An error (with the end of the server's log) if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        if let Some(status) = self.child.try_wait()? {
            self.stopped = Some(Some(status));
            return Err(format!(
                "server exited unexpectedly ({status})\n{}",
                self.log_tail(20)
            )
            .into());
        }
        Ok(())
    }

    /// VmRSS in KiB, from /proc/<pid>/status.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        if tail.is_empty() {
            format!("(server log {} is empty)", self.log_path.display())
        } else {
            format!(
                "--- last lines of {} ---\n{}",
                self.log_path.display(),
                tail.join("\n")
            )
        }
    }

    /// SIGTERM, then wait up to 10 s, then SIGKILL. Idempotent.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(s) = self.stopped {
            return s;
        }
        let status = match self.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
                unsafe {
                    libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match self.child.try_wait() {
                        Ok(Some(s)) => break Some(s),
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        _ => {
                            let _ = self.child.kill();
                            break self.child.wait().ok();
                        }
                    }
                }
            }
        };
        self.stopped = Some(status);
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_cpu_ticks(&stat).map(|t| t as f64 / ticks.max(1) as f64)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A fresh PostgreSQL schema for one run, dropped by [`PgSchema::drop_schema`].
pub struct PgSchema {
    admin_url: String,
    pub name: String,
    /// The URL to hand the server: the admin URL with `options=-csearch_path=<schema>`.
    pub server_url: String,
}

impl PgSchema {
    pub async fn create(url: &str) -> Result<PgSchema, Error> {
        let admin_url = url.to_owned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("bench_{}_{:x}", std::process::id(), nanos);
        let client = pg_connect(&admin_url).await?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await?;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let server_url = format!("{admin_url}{sep}options=-csearch_path%3D{name}");
        Ok(PgSchema {
            admin_url,
            name,
            server_url,
        })
    }

    /// Bytes on disk of the schema's tables with their indexes and TOAST.
    pub async fn size_bytes(&self) -> Result<u64, Error> {
        let client = pg_connect(&self.admin_url).await?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'p')",
                &[&self.name],
            )
            .await?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    pub async fn drop_schema(&self) -> Result<(), Error> {
        let client = pg_connect(&self.admin_url).await?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await?;
        Ok(())
    }
}

async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL at {url}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_parsing() {
        let s = "Name:\tpassport\nVmPeak:\t  1000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(s), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn cpu_parsing() {
        let stat = "123 (pass port) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
