//! 审计工具: the auditor command line, `hub audit …`.
//!
//! - `verify`: fetches the whole log over mTLS (`--url`) or reads it from a copy of the database
//!   (`--db`), checks the checkpoint signature with the auditor's verifier key (`--vkey`) and
//!   configured witnesses, recomputes every leaf and every tile from the entries, compares each
//!   served tile hash (naming the FIRST bad index), checks consistency with a checkpoint the auditor
//!   trusted before (`--trusted-checkpoint`), and exits non-zero on any disagreement. Progress goes
//!   to stderr.
//! - `search` and `subject-report`: ask the hub, which pseudonymises the resident ID server-side (the
//!   pseudonym key never leaves it) and records the search itself in the log.
//!
//! The verifier does not trust the source: everything is recomputed from entry bytes. A database
//! copy is opened read-only and never migrated ([`open_read_only`]).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tlog::checkpoint::{WitnessPolicy, open_checkpoint};
use tlog::hash::leaf_hash;
use tlog::stored::stored_hash_count;
use tlog::tile::{LogAuditor, Tile, compare_tile, parse_bundle, parse_tile_data, tile_at_size};
use tlog::{Hash, VerifierKey};

use crate::log::{store as logstore, with_db_reader};
use crate::store::Db;

/// `hub audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole log: signatures, every hash, consistency with a trusted checkpoint.
    Verify(VerifyArgs),
    /// Search the log (by resident, actor, case, time range) through the hub.
    Search(SearchArgs),
    /// The subject access report (谁查看了我的数据) for one resident, as JSON or printable HTML.
    SubjectReport(ReportArgs),
}

/// `--actor`: the principal, also when given as the identity URI whose last segment it is.
fn actor_principal(s: &str) -> Result<String, String> {
    let principal = match s.strip_prefix("spiffe://") {
        Some(rest) => rest.rsplit('/').next().unwrap_or_default(),
        None => s,
    };
    if principal.is_empty() {
        return Err(format!(
            "{s}: no principal (expected cw-… or spiffe://…/<principal>)"
        ));
    }
    Ok(principal.to_owned())
}

/// How to reach the hub over mTLS.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Hub base URL, e.g. https://hub.example:8443
    #[arg(long)]
    pub url: Option<String>,
    /// CA certificate (PEM) that signed the hub's server certificate.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM): the auditor's, or the caseworker's for `hub client`.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// Read the log offline from a database copy (sqlite://… or postgres://…) instead of --url.
    #[arg(long)]
    pub db: Option<String>,
    /// The log's verifier key file (`<name>+<hex id>+<base64>`, as in DIR/log.vkey).
    #[arg(long)]
    pub vkey: PathBuf,
    /// Checkpoint origin (default: the verifier key's name).
    #[arg(long)]
    pub origin: Option<String>,
    /// A signed checkpoint this auditor trusted earlier; the log must be consistent with it.
    #[arg(long)]
    pub trusted_checkpoint: Option<PathBuf>,
    /// The verifier key that signed --trusted-checkpoint when it is not --vkey (a checkpoint saved
    /// before a key/origin rotation, see GET /v1/log/rotations); its origin is that key's name.
    #[arg(long)]
    pub trusted_vkey: Option<PathBuf>,
    /// Witness verifier key files (cosignature/v1, as `hub witness keygen` writes witness.vkey);
    /// present cosignatures must verify.
    #[arg(long = "witness")]
    pub witnesses: Vec<PathBuf>,
    /// Cosignatures required from the named witnesses (k of the n `--witness` keys); the
    /// verification fails, naming the witnesses whose cosignature is missing, below it.
    #[arg(long, visible_alias = "quorum", default_value_t = 0)]
    pub witness_quorum: usize,
    /// Write the verified checkpoint here (to pass as --trusted-checkpoint next time).
    #[arg(long)]
    pub save_checkpoint: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// 身份证号 (pseudonymised by the hub; prefer --resident-id-file to keep it out of `ps`).
    #[arg(long)]
    pub resident_id: Option<String>,
    /// A file holding the resident ID.
    #[arg(long)]
    pub resident_id_file: Option<PathBuf>,
    /// Who made the accesses: the principal (`cw-xuzhuang-01`) or the full identity URI
    /// (`spiffe://…/cw-xuzhuang-01`, as `/v1/whoami` shows it).
    #[arg(long, value_parser = actor_principal)]
    pub actor: Option<String>,
    /// The case reference (案件编号) the accesses were made for.
    #[arg(long = "case")]
    pub case_ref: Option<String>,
    /// RFC 3339 start (inclusive).
    #[arg(long)]
    pub from: Option<String>,
    /// RFC 3339 end (exclusive).
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// 身份证号 of the person asking (pseudonymised by the hub; prefer --resident-id-file).
    #[arg(long)]
    pub resident_id: Option<String>,
    /// A file holding the resident ID.
    #[arg(long)]
    pub resident_id_file: Option<PathBuf>,
    /// Write the printable zh-CN HTML page here (otherwise JSON goes to stdout).
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// Entry point of `hub audit`.
pub fn main(cmd: AuditCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cmd {
            AuditCommand::Verify(args) => {
                let quiet = args.quiet;
                match verify(&args, |done, total| {
                    if !quiet {
                        eprintln!("已核验 / verified {done}/{total}");
                    }
                })
                .await?
                {
                    Verdict::Ok { size, root } => {
                        println!(
                            "日志完整 / log verified: {size} entries, root {}",
                            root.to_base64()
                        );
                        Ok(())
                    }
                    Verdict::Bad(f) => {
                        println!("{f}");
                        anyhow::bail!("{f}")
                    }
                    Verdict::Unwitnessed(why) => {
                        println!("{why}");
                        anyhow::bail!("{why}")
                    }
                }
            }
            AuditCommand::Search(a) => {
                let rid = resident_id(&a.resident_id, &a.resident_id_file)?;
                let body = serde_json::json!({
                    "resident_id": rid, "actor": a.actor, "case_ref": a.case_ref,
                    "from": a.from, "to": a.to,
                });
                let v = post_json(&a.remote, "/v1/log/search", &body).await?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                Ok(())
            }
            AuditCommand::SubjectReport(a) => {
                let rid = resident_id(&a.resident_id, &a.resident_id_file)?
                    .context("--resident-id or --resident-id-file is required")?;
                if let Some(out) = &a.html {
                    let body = serde_json::json!({"resident_id": rid, "format": "html"});
                    let html = post(&a.remote, "/v1/log/subject-report", &body).await?;
                    std::fs::write(out, html).with_context(|| format!("{}", out.display()))?;
                    println!("{}", out.display());
                } else {
                    let body = serde_json::json!({"resident_id": rid});
                    let v = post_json(&a.remote, "/v1/log/subject-report", &body).await?;
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                Ok(())
            }
        }
    })
}

fn resident_id(v: &Option<String>, f: &Option<PathBuf>) -> anyhow::Result<Option<String>> {
    match (v, f) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(f)) => Ok(Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("--resident-id-file {}", f.display()))?
                .trim()
                .to_owned(),
        )),
        _ => Ok(None),
    }
}

/// An mTLS client for the hub from PEM files.
pub fn client(remote: &Remote) -> anyhow::Result<(reqwest::Client, String)> {
    let url = remote.url.clone().context("--url is required")?;
    let ca = remote.cacert.as_ref().context("--cacert is required")?;
    let cert = remote.cert.as_ref().context("--cert is required")?;
    let key = remote.key.as_ref().context("--key is required")?;
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("--cacert {}", ca.display()))?
    {
        roots.add(c?)?;
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("--cert {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("--key {}", key.display()))?;
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    Ok((client, url.trim_end_matches('/').to_owned()))
}

async fn post(remote: &Remote, path: &str, body: &serde_json::Value) -> anyhow::Result<String> {
    let (c, base) = client(remote)?;
    let r = c.post(format!("{base}{path}")).json(body).send().await?;
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status.is_success(), "{path}: HTTP {status}: {text}");
    Ok(text)
}

async fn post_json(
    remote: &Remote,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&post(remote, path, body).await?)?)
}

/// The outcome of a full verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok {
        size: u64,
        root: Hash,
    },
    Bad(Failure),
    /// The checkpoint verifies but too few of the named witnesses cosigned it (the message names
    /// the missing ones). Nothing says the log was tampered with; it is not independently
    /// witnessed, so the auditor may not rely on it.
    Unwitnessed(String),
}

/// What was wrong. `first_bad_index` is `None` when the fault is not tied to one entry (a bad
/// signature, a root that differs although every tile matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub first_bad_index: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.first_bad_index {
            Some(i) => write!(
                f,
                "日志被篡改 / log tampered: 首个异常序号 / first bad index {i}: {}",
                self.reason
            ),
            None => write!(f, "日志被篡改 / log tampered: {}", self.reason),
        }
    }
}

/// Where the log comes from.
enum Source {
    Http {
        client: reqwest::Client,
        base: String,
    },
    Db {
        db: Db,
        cache: DbChunk,
    },
}

/// Prefetched range of a database copy: entries `[from, to)` and their stored hashes.
#[derive(Default)]
struct DbChunk {
    from: u64,
    to: u64,
    /// Sorted by index; gaps (deleted rows) are simply absent.
    entries: Vec<(u64, Vec<u8>)>,
    hashes: logstore::HashRange,
    /// The next chunk, being read in the background.
    next: Option<(u64, tokio::task::JoinHandle<anyhow::Result<DbChunk>>)>,
}

const DB_CHUNK_ENTRIES: u64 = 256 * 64;

impl Source {
    async fn checkpoint(&mut self) -> anyhow::Result<String> {
        match self {
            Source::Http { client, base } => {
                let r = client.get(format!("{base}/log/checkpoint")).send().await?;
                anyhow::ensure!(
                    r.status().is_success(),
                    "GET /log/checkpoint: HTTP {}",
                    r.status()
                );
                Ok(r.text().await?)
            }
            Source::Db { db, .. } => Ok(logstore::read_head(db).await?.note),
        }
    }

    /// GET with back-off on 429 (the hub's per-identity budget), honouring `Retry-After`.
    async fn http_get(client: &reqwest::Client, url: String) -> anyhow::Result<Vec<u8>> {
        let mut attempts = 0;
        loop {
            let r = client.get(&url).send().await?;
            if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS && attempts < 120 {
                attempts += 1;
                let wait = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .clamp(1, 30);
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                continue;
            }
            anyhow::ensure!(r.status().is_success(), "GET {url}: HTTP {}", r.status());
            return Ok(r.bytes().await?.to_vec());
        }
    }

    async fn fetch_chunk(db: Db, from: u64, to: u64) -> anyhow::Result<DbChunk> {
        // Two connections, read side by side.
        let (entries, hashes) = tokio::try_join!(
            logstore::read_entries_indexed(&db, from, to),
            logstore::read_hash_range(&db, stored_hash_count(from), stored_hash_count(to)),
        )?;
        Ok(DbChunk {
            from,
            to,
            entries,
            hashes,
            next: None,
        })
    }

    /// Loads the chunk holding `first`, and starts reading the following one in the background so
    /// that reading overlaps hashing.
    async fn ensure_chunk(
        db: &Db,
        cache: &mut DbChunk,
        first: u64,
        size: u64,
    ) -> anyhow::Result<()> {
        if first >= cache.from && first < cache.to {
            return Ok(());
        }
        let to = (first + DB_CHUNK_ENTRIES).min(size);
        let prefetched = match cache.next.take() {
            Some((from, handle)) if from == first => Some(handle.await??),
            Some((_, handle)) => {
                handle.abort();
                None
            }
            None => None,
        };
        let mut chunk = match prefetched {
            Some(c) => c,
            None => Self::fetch_chunk(db.clone(), first, to).await?,
        };
        if to < size {
            let next_to = (to + DB_CHUNK_ENTRIES).min(size);
            chunk.next = Some((to, tokio::spawn(Self::fetch_chunk(db.clone(), to, next_to))));
        }
        *cache = chunk;
        Ok(())
    }

    /// The entries of bundle `t` (as served: missing entries are simply absent).
    async fn bundle(&mut self, t: &Tile, size: u64) -> anyhow::Result<Vec<Vec<u8>>> {
        match self {
            Source::Http { client, base } => {
                let data =
                    Self::http_get(client, format!("{base}/log/{}", t.entries_path())).await?;
                Ok(parse_bundle(&data)?
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect())
            }
            Source::Db { db, cache } => {
                let first = t.n * 256;
                Self::ensure_chunk(db, cache, first, size).await?;
                let end = first + u64::from(t.width);
                let lo = cache.entries.partition_point(|(i, _)| *i < first);
                let hi = cache.entries.partition_point(|(i, _)| *i < end);
                Ok(cache.entries[lo..hi]
                    .iter_mut()
                    .map(|(_, d)| std::mem::take(d))
                    .collect())
            }
        }
    }

    /// The hashes of tile `t` (as served).
    async fn tile(&mut self, t: &Tile, size: u64) -> anyhow::Result<Vec<u8>> {
        match self {
            Source::Http { client, base } => {
                Self::http_get(client, format!("{base}/log/{}", t.path())).await
            }
            Source::Db { db, cache } => {
                if t.level == 0 {
                    Self::ensure_chunk(db, cache, t.n * 256, size).await?;
                    Ok(tlog::tile::read_tile_data(t, &cache.hashes)?)
                } else {
                    Ok(with_db_reader(db, |r| tlog::tile::read_tile_data(t, r)).await?)
                }
            }
        }
    }
}

/// Opens a database copy for `verify --db` strictly read-only: an SQLite file is opened with
/// `mode=ro` and never created (a mistyped path is an error, not a new empty database); a
/// PostgreSQL session runs with `default_transaction_read_only`. No migrations run.
pub async fn open_read_only(url: &str) -> anyhow::Result<Db> {
    use std::str::FromStr as _;
    // The URL may carry a password: never echo it.
    if url.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .context("--db: not a valid sqlite:// URL")?
            .read_only(true)
            .create_if_missing(false)
            // sqlx's SQLite worker hands rows over one by one through a bounded channel (50 by
            // default): with a large log that is a thread wake-up every few rows. A deep channel
            // lets the worker run ahead and the reader drain rows in bursts.
            .row_buffer_size(DB_CHUNK_ENTRIES as usize);
        let path = options.get_filename().to_owned();
        anyhow::ensure!(
            path.is_file(),
            "--db: {}: no such database file (nothing was created)",
            path.display()
        );
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("--db: cannot open {} read-only", path.display()))?;
        Ok(Db::Sqlite(pool))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|_| anyhow::anyhow!("--db: not a valid postgres:// URL"))?
            .options([("default_transaction_read_only", "on")]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("--db: cannot connect to PostgreSQL: {e}"))?;
        Ok(Db::Postgres(pool))
    } else {
        anyhow::bail!("--db: expected a sqlite:// or postgres:// URL")
    }
}

/// Verifies the whole log; `progress(done, total)` is called every 64 bundles and at the end.
pub async fn verify(
    args: &VerifyArgs,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<Verdict> {
    let vkey_text = std::fs::read_to_string(&args.vkey)
        .with_context(|| format!("--vkey {}", args.vkey.display()))?;
    let vkey = VerifierKey::parse(vkey_text.trim()).context("--vkey: not a verifier key")?;
    let origin = args
        .origin
        .clone()
        .unwrap_or_else(|| vkey.name().to_owned());
    let mut witnesses = Vec::new();
    for w in &args.witnesses {
        let t = std::fs::read_to_string(w).with_context(|| format!("--witness {}", w.display()))?;
        witnesses.push(VerifierKey::parse(t.trim()).context("--witness: not a verifier key")?);
    }
    let policy = WitnessPolicy {
        witnesses,
        quorum: args.witness_quorum,
    };
    let mut source = match (&args.db, &args.remote.url) {
        (Some(url), _) => Source::Db {
            db: open_read_only(url).await?,
            cache: DbChunk::default(),
        },
        (None, Some(_)) => {
            let (client, base) = client(&args.remote)?;
            Source::Http { client, base }
        }
        (None, None) => anyhow::bail!("give --url (with --cacert/--cert/--key) or --db"),
    };
    let note = source.checkpoint().await?;
    anyhow::ensure!(
        policy.quorum <= policy.witnesses.len(),
        "--quorum {} is more than the {} --witness key(s) given",
        policy.quorum,
        policy.witnesses.len()
    );
    let signed = match open_checkpoint(note.as_bytes(), &origin, &vkey, &policy) {
        Ok(s) => s,
        Err(e @ tlog::Error::QuorumNotMet { .. }) => {
            return Ok(Verdict::Unwitnessed(format!("见证人联署不足 / {e}")));
        }
        Err(e) => {
            return Ok(Verdict::Bad(Failure {
                first_bad_index: None,
                reason: format!("检查点签名无效 / checkpoint signature does not verify: {e}"),
            }));
        }
    };
    let (size, root) = (signed.checkpoint.size, signed.checkpoint.root);
    let trusted = match &args.trusted_checkpoint {
        Some(p) => {
            let t = std::fs::read(p)
                .with_context(|| format!("--trusted-checkpoint {}", p.display()))?;
            let s = match &args.trusted_vkey {
                Some(k) => {
                    let text = std::fs::read_to_string(k)
                        .with_context(|| format!("--trusted-vkey {}", k.display()))?;
                    let key = VerifierKey::parse(text.trim())
                        .context("--trusted-vkey: not a verifier key")?;
                    open_checkpoint(&t, key.name(), &key, &WitnessPolicy::default())
                        .context("--trusted-checkpoint: does not verify with --trusted-vkey")?
                }
                None => open_checkpoint(&t, &origin, &vkey, &WitnessPolicy::default())
                    .context("--trusted-checkpoint: does not verify with --vkey")?,
            };
            if s.checkpoint.size > size {
                return Ok(Verdict::Bad(Failure {
                    first_bad_index: None,
                    reason: format!(
                        "log shrank: trusted size {} > current {size}",
                        s.checkpoint.size
                    ),
                }));
            }
            Some((s.checkpoint.size, s.checkpoint.root))
        }
        None => None,
    };
    let verdict = verify_entries(&mut source, size, root, trusted, &mut progress).await?;
    if let (Verdict::Ok { .. }, Some(out)) = (&verdict, &args.save_checkpoint) {
        std::fs::write(out, &note)
            .with_context(|| format!("--save-checkpoint {}", out.display()))?;
    }
    Ok(verdict)
}

async fn verify_entries(
    source: &mut Source,
    size: u64,
    root: Hash,
    trusted: Option<(u64, Hash)>,
    progress: &mut impl FnMut(u64, u64),
) -> anyhow::Result<Verdict> {
    let bad = |i: Option<u64>, reason: String| {
        Ok(Verdict::Bad(Failure {
            first_bad_index: i,
            reason,
        }))
    };
    let mut auditor = LogAuditor::new();
    let started = Instant::now();
    if let Some((0, r)) = trusted
        && r != tlog::hash::empty_root()
    {
        return bad(
            None,
            "trusted checkpoint of size 0 has a non-empty root".into(),
        );
    }
    let bundles = size.div_ceil(256);
    for n in 0..bundles {
        let t = tile_at_size(0, n, size).context("bundle within size")?;
        let first = n * 256;
        let entries = match source.bundle(&t, size).await {
            Ok(e) => e,
            Err(e) => return bad(Some(first), format!("{}: {e:#}", t.entries_path())),
        };
        let served = match source.tile(&t, size).await {
            Ok(d) => d,
            Err(e) => return bad(Some(first), format!("{}: {e:#}", t.path())),
        };
        let served = match parse_tile_data(&t, &served) {
            Ok(h) => h,
            Err(e) => return bad(Some(first), e.to_string()),
        };
        let w = usize::from(t.width);
        let mut leaves = Vec::with_capacity(entries.len());
        for i in 0..w.max(entries.len()) {
            let got = entries.get(i).map(|e| leaf_hash(e));
            if let Some(h) = got {
                leaves.push(h);
            }
            if got.is_none() || served.get(i).copied() != got {
                let reason = match (entries.get(i), served.get(i)) {
                    (None, _) => "entry missing (deleted or bundle short)".to_owned(),
                    (Some(_), None) => "extra entry (inserted)".to_owned(),
                    _ => "entry does not match its stored leaf hash (edited, reordered, inserted or deleted)".to_owned(),
                };
                return bad(Some(first + i as u64), reason);
            }
        }
        // Each entry's leaf hash was computed once above (and matched the served tile).
        for h in leaves {
            auditor.push_leaf_hash(h);
            if let Some((ts, tr)) = trusted
                && auditor.size() == ts
                && auditor.root() != tr
            {
                return bad(
                    None,
                    format!(
                        "root at trusted size {ts} differs: the log is not consistent with the trusted checkpoint"
                    ),
                );
            }
        }
        let mut tiles = auditor.take_tiles();
        if n + 1 == bundles {
            tiles.extend(auditor.partial_tiles());
        }
        for (tile, hashes) in tiles.into_iter().filter(|(t, _)| t.level > 0) {
            let served = match source.tile(&tile, size).await {
                Ok(d) => d,
                Err(e) => return bad(Some(tile.first_entry()), format!("{}: {e:#}", tile.path())),
            };
            if let Err(f) = compare_tile(&tile, &hashes, &served) {
                return bad(f.first_bad_index, f.reason);
            }
        }
        if n % 64 == 63 || n + 1 == bundles {
            progress(auditor.size(), size);
        }
    }
    if auditor.root() != root {
        return bad(
            None,
            "recomputed root differs from the signed checkpoint".into(),
        );
    }
    tracing::debug!(size, secs = started.elapsed().as_secs_f64(), "log verified");
    Ok(Verdict::Ok { size, root })
}

#[cfg(test)]
mod tests {
    use super::actor_principal;

    #[test]
    fn actor_is_the_principal_or_the_identity_uri() {
        for (input, expected) in [
            ("cw-xuzhuang-01", Ok("cw-xuzhuang-01")),
            (
                "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-xuzhuang-01",
                Ok("cw-xuzhuang-01"),
            ),
            ("spiffe://jishijiu.jining/caseworker/", Err(())),
        ] {
            assert_eq!(
                actor_principal(input).as_deref().map_err(|_| ()),
                expected,
                "{input}"
            );
        }
    }
}
