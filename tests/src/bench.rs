//! What the load binaries share: a hub process of their own (the binary re-executed as
//! `<bin> serve --config F`, on SQLite, with the limits raised) and a closed-loop driver that times
//! every job.

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
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        env.config(|text| {
            let text = text.replacen(
                "[server]\nlisten = \"127.0.0.1:0\"",
                &format!("[server]\nlisten = \"127.0.0.1:{port}\""),
                1,
            );
            format!("{}{RAISED_LIMITS}", edit(text))
        })?;
        let log = std::fs::File::create(env.path().join("hub.log"))?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(env.config_path())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the hub process")?;
        let base = format!("https://localhost:{port}");
        let ready_by = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("hub exited at start-up ({status})");
            }
            match probe.get(format!("{base}/readyz")).send().await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > ready_by => bail!("hub not ready after 60 s"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Ok(BenchHub { child, base })
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
