//! What every page shares: the document head (the vendored style sheet and script), the
//! navigation, which master served the page, and the error page.

use maud::{DOCTYPE, Markup, html};

use dfs_proto::pb::MasterRole;

use crate::http::HttpState;

/// Which part of the dashboard a page belongs to, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/`.
    Overview,
    /// `/servers`.
    Servers,
    /// `/files` and file details.
    Files,
}

/// The master that served a page, as the page footer shows it: each master serves the
/// dashboard, and its charts show its own activity.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Its node id.
    pub node_id: u64,
    /// Its gRPC address.
    pub addr: String,
    /// Whether it leads the group.
    pub leader: bool,
}

impl Origin {
    /// The master behind `state`, from its own view of the group (no network call).
    pub fn of(state: &HttpState) -> Origin {
        let status = state.node.status();
        let node_id = state.node.id();
        let addr = status
            .members
            .iter()
            .find(|m| m.id == node_id)
            .map(|m| m.addr.clone())
            .unwrap_or_default();
        let leader = status
            .members
            .iter()
            .any(|m| m.id == node_id && m.role == MasterRole::Leader as i32);
        Origin {
            node_id,
            addr,
            leader,
        }
    }
}

/// A whole page: `body` under the navigation, with the serving master in the footer.
pub fn page(origin: &Origin, section: Section, title: &str, body: Markup) -> Markup {
    let nav = [
        (Section::Overview, "/", "Overview"),
        (Section::Servers, "/servers", "Servers"),
        (Section::Files, "/files", "Files"),
    ];
    let role = if origin.leader { "leader" } else { "follower" };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dfs" }
                link rel="stylesheet" href="/static/dashboard.css";
                script src="/static/dashboard.js" defer {}
            }
            body {
                header {
                    span.brand { "dfs" }
                    nav {
                        @for (s, href, label) in nav {
                            a.current[s == section] href=(href) { (label) }
                        }
                    }
                    span #served-by.served-by {
                        "served by master " (origin.node_id) " (" (origin.addr) ", " (role) ")"
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The page of a failure: its status and what went wrong, with a way back.
pub fn error_page(status: u16, reason: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (status) " " (reason) " · dfs" }
                link rel="stylesheet" href="/static/dashboard.css";
            }
            body {
                header {
                    span.brand { "dfs" }
                    nav {
                        a href="/" { "Overview" }
                        a href="/servers" { "Servers" }
                        a href="/files" { "Files" }
                    }
                }
                main.error {
                    h1 { (status) " " (reason) }
                    p #error-message { (message) }
                    p { a href="/" { "Back to the overview" } }
                }
            }
        }
    }
}

/// A horizontal bar filled to `percent`, with `label` beside it.
pub fn bar(percent: f64, label: &str) -> Markup {
    let level = if percent >= 90.0 {
        "full"
    } else if percent >= 75.0 {
        "high"
    } else {
        "ok"
    };
    html! {
        span.bar-wrap {
            span.bar { span class={ "fill " (level) } style={ "width:" (format!("{percent:.1}")) "%" } {} }
            span.bar-label { (label) }
        }
    }
}
