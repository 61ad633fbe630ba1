//! The real browser the console tests drive: Debian's headless Chromium through chromedriver
//! (WebDriver, fantoccini), logged in with a demo client certificate picked automatically (an NSS
//! database under a temporary HOME plus Chromium's `AutoSelectCertificateForUrls` policy;
//! `/work/shared/reference/browser-mtls.md`), and the screenshot and wait helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::verification::Setup;

/// Where the screenshots go: `<target>/console-screenshots/`.
pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A HOME whose NSS database holds `who`'s certificate and key and trusts the demo CA, and the
/// policy that lets Chromium present it without asking (read from /etc only; tests run as root).
pub(crate) fn browser_home(pki: &Path, who: &str, home: &Path) -> anyhow::Result<()> {
    let nss = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nss)?;
    let db = format!("sql:{}", nss.display());
    run(Command::new("certutil").args(["-d", &db, "-N", "--empty-password"]))?;
    let p12 = home.join("client.p12");
    run(Command::new("openssl").args([
        "pkcs12",
        "-export",
        "-in",
        &pki.join(format!("{who}.pem")).display().to_string(),
        "-inkey",
        &pki.join(format!("{who}.key")).display().to_string(),
        "-out",
        &p12.display().to_string(),
        "-passout",
        "pass:",
        "-name",
        who,
    ]))?;
    run(Command::new("pk12util").args(["-d", &db, "-i", &p12.display().to_string(), "-W", ""]))?;
    run(Command::new("certutil").args([
        "-d",
        &db,
        "-A",
        "-t",
        "C,,",
        "-n",
        "demo-ca",
        "-i",
        &pki.join("ca.pem").display().to_string(),
    ]))?;
    let policies = Path::new("/etc/chromium/policies/managed");
    std::fs::create_dir_all(policies)?;
    std::fs::write(
        policies.join("jishijiu-autoselect.json"),
        json!({"AutoSelectCertificateForUrls": [
            "{\"pattern\":\"https://127.0.0.1:*\",\"filter\":{}}",
            "{\"pattern\":\"https://localhost:*\",\"filter\":{}}",
        ]})
        .to_string(),
    )?;
    Ok(())
}

/// chromedriver on a free loopback port, with `home` as HOME; killed on drop.
pub(crate) struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_driver(home: &Path) -> anyhow::Result<Driver> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .env("HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "chromedriver not found ({e}): apt-get install chromium chromium-driver libnss3-tools fonts-noto-cjk"
            )
        })?;
    let driver = Driver { child, port };
    // Wait until it listens (it answers within a second or two).
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(driver);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("chromedriver did not start listening on port {port}")
}

pub(crate) async fn browser(driver: &Driver) -> anyhow::Result<Client> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,768", "--lang=zh-CN", "--hide-scrollbars"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    Ok(ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await?)
}

pub(crate) async fn shot(c: &Client, name: &str) -> anyhow::Result<()> {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.png")), c.screenshot().await?)?;
    Ok(())
}

/// A screenshot of one element (the parts of a page below the fold).
pub(crate) async fn shot_of(c: &Client, css: &str, name: &str) -> anyhow::Result<()> {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir)?;
    let el = c.find(Locator::Css(css)).await?;
    // Element screenshots are clipped to the viewport: bring the element into it first.
    c.execute(
        "arguments[0].scrollIntoView({block: 'start'});",
        vec![serde_json::to_value(&el)?],
    )
    .await?;
    let png = el.screenshot().await?;
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

/// The text of `css` once it contains `needle`: after a click that posts a form, the old page's
/// element may still be found (or go stale under the reader) until the new page has loaded.
pub(crate) async fn text_once(c: &Client, css: &str, needle: &str) -> anyhow::Result<String> {
    let start = std::time::Instant::now();
    loop {
        let last = match c.find(Locator::Css(css)).await {
            Ok(el) => el.text().await.map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match last {
            Ok(t) if t.contains(needle) => return Ok(t),
            last if start.elapsed() > std::time::Duration::from_secs(20) => {
                anyhow::bail!("{css} never contained {needle}: {last:?}")
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

pub(crate) async fn text_of(c: &Client, css: &str) -> anyhow::Result<String> {
    Ok(c.wait()
        .for_element(Locator::Css(css))
        .await?
        .text()
        .await?)
}

/// A browser logged in as `who` (its HOME and chromedriver live as long as the returned values).
pub(crate) async fn browser_as(
    s: &Setup,
    who: &str,
) -> anyhow::Result<(tempfile::TempDir, Driver, Client)> {
    let home = tempfile::tempdir()?;
    browser_home(&s.env.path().join("pki"), who, home.path())?;
    let driver = start_driver(home.path()).await?;
    let c = browser(&driver).await?;
    Ok((home, driver, c))
}

/// axe-core's script: `<target>/axe-core/package/axe.min.js`, fetched from the npm registry with
/// `npm pack axe-core@4` the first time (never committed; `.ci/run` fetches it up front).
fn axe_source() -> anyhow::Result<String> {
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = screenshot_dir()
        .parent()
        .map(|t| t.join("axe-core"))
        .ok_or_else(|| anyhow::anyhow!("no target directory"))?;
    let script = dir.join("package/axe.min.js");
    if !script.exists() {
        std::fs::create_dir_all(&dir)?;
        run(Command::new("npm")
            .args(["pack", "--silent", "axe-core@4", "--pack-destination"])
            .arg(&dir))?;
        let tgz = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .ok_or_else(|| {
                anyhow::anyhow!("npm pack axe-core@4 left no .tgz in {}", dir.display())
            })?;
        run(Command::new("tar").arg("xzf").arg(&tgz).arg("-C").arg(&dir))?;
    }
    Ok(std::fs::read_to_string(script)?)
}

/// Run axe-core on the page the browser shows; fail on any `serious` or `critical` violation,
/// naming the rule, its help text and the first offending elements.
pub(crate) async fn axe_check(c: &Client, page: &str) -> anyhow::Result<()> {
    // Injected through WebDriver, which the page's Content-Security-Policy does not govern.
    c.execute(&axe_source()?, vec![]).await?;
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']})
               .then(r => done(r.violations.map(v => ({
                 id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))
               .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
            vec![],
        )
        .await?;
    let bad: Vec<&serde_json::Value> = found
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
                .collect()
        })
        .unwrap_or_default();
    anyhow::ensure!(
        bad.is_empty(),
        "axe-core: serious or critical accessibility violations on {page}: {}",
        serde_json::to_string_pretty(&bad)?
    );
    Ok(())
}
