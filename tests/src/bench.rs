//! What the load binaries share: a hub process of their own (the binary re-executed as
//! `<bin> serve --config F`, on SQLite, with the limits raised) and a closed-loop driver that times
//! every job.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::TestEnv;

pub mod access_log;

/// The config lines appended so that the limits do not interfere with a benchmark.
pub const RAISED_LIMITS: &str = "\n\n# Raised so that the limits do not interfere with the benchmark.\n\
     [rate_limits]\ncaseworker = { per_second = 1000000, burst = 1000000 }\n\
     intake = { per_second = 1000000, burst = 1000000 }\n\
     households_per_hour = 1000000\npeople_per_hour = 1000000\n";

/// A hub running as a separate process of the benchmark.
pub struct BenchHub {
    pub child: tokio::process::Child,
    /// `https://localhost:<port>`.
    pub base: String,
    /// The hub process's id (its CPU and memory are read from `/proc/<pid>`).
    pub pid: String,
    /// `hub.log` beside the config: the hub's output.
    pub log: PathBuf,
}

/// How [`BenchHub::start_with`] starts the hub.
pub struct HubOptions<'a> {
    /// Config lines appended after `edit` (the limits raised out of the benchmark's way).
    pub limits: &'a str,
    /// Environment variables for the hub process only (e.g. `MALLOC_ARENA_MAX`).
    pub env: &'a [(String, String)],
}

impl BenchHub {
    /// Write `env`'s config with a fixed port, [`RAISED_LIMITS`] and `edit`, start this binary as
    /// `serve --config F` (its output in `hub.log` beside the config) and wait until `/readyz`
    /// answers `probe`'s request (at most 60 s).
    pub async fn start(
        env: &TestEnv,
        edit: impl Fn(String) -> String,
        probe: &reqwest::Client,
    ) -> anyhow::Result<BenchHub> {
        let o = HubOptions {
            limits: RAISED_LIMITS,
            env: &[],
        };
        Ok(Self::start_with(env, &o, edit, probe).await?.0)
    }

    /// [`BenchHub::start`] with the caller's limits and environment; returns the hub's config too.
    pub async fn start_with(
        env: &TestEnv,
        o: &HubOptions<'_>,
        edit: impl Fn(String) -> String,
        probe: &reqwest::Client,
    ) -> anyhow::Result<(BenchHub, hub::config::Config)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = env.config(|text| {
            let text = text.replacen(
                "[server]\nlisten = \"127.0.0.1:0\"",
                &format!("[server]\nlisten = \"127.0.0.1:{port}\""),
                1,
            );
            format!("{}{}", edit(text), o.limits)
        })?;
        let log_path = env.path().join("hub.log");
        let log = std::fs::File::create(&log_path)?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(env.config_path())
            .envs(o.env.iter().cloned())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the hub process")?;
        let pid = child.id().context("hub pid")?.to_string();
        let mut hub = BenchHub {
            child,
            base: format!("https://localhost:{port}"),
            pid,
            log: log_path,
        };
        let ready_by = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = hub.child.try_wait()? {
                bail!("hub exited at start-up ({status}):\n{}", hub.log_tail());
            }
            match probe.get(format!("{}/readyz", hub.base)).send().await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > ready_by => {
                    bail!("hub not ready after 60 s:\n{}", hub.log_tail())
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Ok((hub, config))
    }

    /// The last 20 lines of the hub's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Run `total` jobs on `concurrency` workers, closed loop; `job(worker, i)` must succeed. Returns
/// the elapsed seconds and every job's latency.
pub async fn drive<F, Fut>(
    total: usize,
    concurrency: usize,
    job: F,
) -> anyhow::Result<(f64, Vec<Duration>)>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (job, next) = (job.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                job(worker, i).await?;
                times.push(t.elapsed());
            }
            anyhow::Ok(times)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await??);
    }
    Ok((start.elapsed().as_secs_f64(), all))
}
