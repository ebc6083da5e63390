//! A real browser for the dashboard tests: headless Chromium driven over WebDriver by
//! `chromedriver`, spoken to with the harness's own HTTP client and `serde_json`.
//!
//! [`Browser::start`] runs `chromedriver` on a free port in its own process group, waits until
//! it listens, and opens a session of `chromium --headless=new` with a private profile directory.
//! Dropping the [`Browser`] ends the session and kills the whole process group (driver and
//! browser), also when the test panicked. Screenshots go to [`artifacts_dir`].

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::http::http_request;

/// The key under which WebDriver names an element in its replies.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long the driver may take to start and a session to open.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the dashboard tests leave their screenshots: `$DFS_TEST_ARTIFACTS/dashboard`, or
/// `test-artifacts/dashboard` in the cargo target directory the test was built in.
pub fn artifacts_dir() -> PathBuf {
    let dir = match std::env::var_os("DFS_TEST_ARTIFACTS") {
        Some(root) => PathBuf::from(root).join("dashboard"),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            // target/release/deps/<test> -> target
            let target = exe.ancestors().nth(3).expect("target dir");
            target.join("test-artifacts").join("dashboard")
        }
    };
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A headless Chromium with one WebDriver session.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    /// The private profile (`--user-data-dir`) and the driver's log.
    dir: TempDir,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session with a 1280×900 window.
    pub fn start() -> Browser {
        let dir = tempfile::Builder::new()
            .prefix("dfs-browser")
            .tempdir()
            .expect("browser temp dir");
        let log = fs::File::create(dir.path().join("chromedriver.log")).expect("driver log");
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(log.try_clone().expect("driver log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run chromedriver ({e}): install chromium and chromium-driver")
            });
        let mut browser = Browser {
            driver,
            addr: format!("127.0.0.1:{port}"),
            session: String::new(),
            dir,
        };
        let profile = browser.dir.path().join("profile");
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "unhandledPromptBehavior": "ignore",
                "goog:chromeOptions": {
                    "binary": chromium_binary(),
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1280,900",
                        "--no-first-run", "--no-default-browser-check", "--disable-breakpad",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                },
            }},
        });
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(&browser.addr).is_err() {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                let log = fs::read_to_string(browser.dir.path().join("chromedriver.log"));
                panic!("chromedriver exited ({status}): {log:?}");
            }
            assert!(Instant::now() < deadline, "chromedriver does not listen");
            thread::sleep(Duration::from_millis(50));
        }
        let reply = loop {
            match browser.try_call("POST", "/session", Some(&capabilities)) {
                Ok(reply) => break reply,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("browser session not open yet: {err}");
                    thread::sleep(Duration::from_millis(500));
                }
                Err(err) => panic!("cannot open a browser session: {err}"),
            }
        };
        browser.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {reply}"))
            .to_owned();
        browser
    }

    /// Opens `url` and waits until its document has loaded.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// The address the browser shows.
    pub fn url(&self) -> String {
        self.call_get("/url")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns what
    /// it returns.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
    }

    /// The text of each element matching CSS `selector`, read in one step in the page (so a
    /// part the page refreshes in between cannot go stale under the test).
    pub fn texts(&self, selector: &str) -> Vec<String> {
        let script = "return Array.from(document.querySelectorAll(arguments[0]))\
                      .map((e) => e.innerText.trim())";
        let texts = self.eval(script, json!([selector]));
        texts
            .as_array()
            .map(|list| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                list.iter().map(text).collect()
            })
            .unwrap_or_default()
    }

    /// The text of the first element matching `selector`, or empty when there is none.
    pub fn text(&self, selector: &str) -> String {
        self.texts(selector).into_iter().next().unwrap_or_default()
    }

    /// How many elements match `selector`.
    pub fn count(&self, selector: &str) -> usize {
        self.texts(selector).len()
    }

    /// The first element matching CSS `selector`, if any.
    pub fn find(&self, selector: &str) -> Option<Element<'_>> {
        let body = json!({ "using": "css selector", "value": selector });
        match self.try_call("POST", &self.session_path("/element"), Some(&body)) {
            Ok(value) => Some(self.element(&value)),
            Err(err) if err.contains("no such element") => None,
            Err(err) => panic!("find {selector}: {err}"),
        }
    }

    /// The first element matching `selector`; the test fails if there is none.
    pub fn get(&self, selector: &str) -> Element<'_> {
        self.find(selector)
            .unwrap_or_else(|| panic!("no element matches {selector} on {}", self.url()))
    }

    /// Every element matching `selector`.
    pub fn find_all(&self, selector: &str) -> Vec<Element<'_>> {
        let body = json!({ "using": "css selector", "value": selector });
        let found = self.call("POST", "/elements", body);
        found
            .as_array()
            .map(|list| list.iter().map(|v| self.element(v)).collect())
            .unwrap_or_default()
    }

    /// The text of the open `alert`/`confirm` dialog, if one is open.
    pub fn alert_text(&self) -> Option<String> {
        match self.try_call("GET", &self.session_path("/alert/text"), None) {
            Ok(text) => Some(text.as_str().unwrap_or_default().to_owned()),
            Err(err) if err.contains("no such alert") => None,
            Err(err) => panic!("alert text: {err}"),
        }
    }

    /// Waits for a dialog and returns its text.
    pub fn wait_for_alert(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(text) = self.alert_text() {
                return text;
            }
            assert!(Instant::now() < deadline, "no dialog opened");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Answers the open dialog with OK.
    pub fn accept_alert(&self) {
        self.call("POST", "/alert/accept", json!({}));
    }

    /// Answers the open dialog with Cancel.
    pub fn dismiss_alert(&self) {
        self.call("POST", "/alert/dismiss", json!({}));
    }

    /// Polls `condition` every 200 ms until it holds; fails the test with `what` and a
    /// screenshot named after it if it does not within `limit`.
    pub fn wait_until(&self, limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !condition() {
            if Instant::now() >= deadline {
                let shot = self.screenshot(&format!("timeout-{}", slug(what)));
                panic!(
                    "timed out waiting until {what} (screenshot {})",
                    shot.display()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves a PNG of the window as `<name>.png` in [`artifacts_dir`] and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call_get("/screenshot");
        let png = base64_decode(data.as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let path = artifacts_dir().join(format!("{name}.png"));
        fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    fn element(&self, value: &Value) -> Element<'_> {
        let id = value[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element: {value}"));
        Element {
            browser: self,
            id: id.to_owned(),
        }
    }

    fn session_path(&self, tail: &str) -> String {
        format!("/session/{}{tail}", self.session)
    }

    fn call_get(&self, tail: &str) -> Value {
        self.try_call("GET", &self.session_path(tail), None)
            .unwrap_or_else(|e| panic!("GET {tail}: {e}"))
    }

    fn call(&self, method: &str, tail: &str, body: Value) -> Value {
        self.try_call(method, &self.session_path(tail), Some(&body))
            .unwrap_or_else(|e| panic!("{method} {tail}: {e}"))
    }

    /// One WebDriver command: its `value`, or the error WebDriver named.
    fn try_call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("Content-Type", "application/json; charset=utf-8")]
        };
        let reply = http_request(&self.addr, method, path, headers, body.as_bytes());
        let parsed: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("HTTP {}: not JSON ({e}): {}", reply.status, reply.text()))?;
        let value = parsed["value"].clone();
        if reply.status == 200 {
            Ok(value)
        } else {
            Err(format!(
                "{}: {}",
                value["error"].as_str().unwrap_or("error"),
                value["message"].as_str().unwrap_or_default()
            ))
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = self.try_call("DELETE", &path, None);
        }
        // The driver leads its own process group, which the browser's processes join.
        let group = self.driver.id() as i32;
        // SAFETY: killpg only sends a signal to the group this harness created.
        unsafe {
            libc::killpg(group, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// One element of the page a [`Browser`] shows.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    /// Its rendered text.
    pub fn text(&self) -> String {
        let value = self.browser.call_get(&format!("/element/{}/text", self.id));
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Its DOM property `name` (`value`, `href`, …).
    pub fn property(&self, name: &str) -> Value {
        self.browser
            .call_get(&format!("/element/{}/property/{name}", self.id))
    }

    /// Clicks it.
    pub fn click(&self) {
        self.browser
            .call("POST", &format!("/element/{}/click", self.id), json!({}));
    }

    /// Types `text` into it; on `<input type=file>` the text is the path of a file to choose.
    pub fn send_keys(&self, text: &str) {
        self.browser.call(
            "POST",
            &format!("/element/{}/value", self.id),
            json!({ "text": text }),
        );
    }
}

/// Where Chromium is: Debian's `chromium`, or `$CHROME_BIN`.
fn chromium_binary() -> String {
    if let Ok(bin) = std::env::var("CHROME_BIN") {
        return bin;
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("chromium")
        .to_owned()
}

/// A port no one listens on now: the kernel's choice for a socket bound to port 0.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A file name made of `text`'s letters and digits.
fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect()
}

/// Standard base64 (with padding, as WebDriver sends screenshots) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let mut bits = 0u32;
        for (i, d) in group.iter().enumerate() {
            bits |= u32::from(*d) << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("TWFu"), b"Man");
        assert_eq!(base64_decode("TWE="), b"Ma");
        assert_eq!(base64_decode("TQ=="), b"M");
        assert_eq!(base64_decode(""), b"");
    }
}
