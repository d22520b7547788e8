//! The pages people use: one askama template per page, one struct per template.
//!
//! Pages are rendered once per request from what the hub knows (the
//! distributors a vendor may choose, the demo credentials when they are in
//! use); everything live happens in the page scripts under `assets/`, which
//! talk to the hub through the official Socket.IO browser client. Whatever
//! a person types reaches the page only through `textContent`.

use askama::Template;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use socketioxide::adapter::Adapter;

use super::{ClientScript, WebState};
use crate::config::{DEMO_ADMIN_TOKEN, DEMO_DISTRIBUTORS, DEMO_VENDORS};
use crate::domain::{DistributorId, LAB_DRIVERS, VendorId};

/// What the shared layout (`base.html`) needs from every page.
#[derive(Debug)]
pub(crate) struct Layout {
    /// The `href` of the navigation link to mark as current.
    pub nav: &'static str,
    /// The page script under `/assets/`; pages without one load no client.
    pub script: Option<&'static str>,
    /// Whether the page script talks Socket.IO (then the browser client loads first).
    pub socket: bool,
    pub client: ClientScript,
    pub version: &'static str,
}

impl Layout {
    /// A page whose script (if any) talks Socket.IO.
    pub(super) fn new<A: Adapter>(
        state: &WebState<A>,
        nav: &'static str,
        script: Option<&'static str>,
    ) -> Self {
        Self {
            nav,
            script,
            socket: script.is_some(),
            client: state.client.clone(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// A page whose script only uses plain HTTP (no Socket.IO client to load).
    pub(super) fn without_socket<A: Adapter>(
        state: &WebState<A>,
        nav: &'static str,
        script: &'static str,
    ) -> Self {
        Self {
            socket: false,
            ..Self::new(state, nav, Some(script))
        }
    }

    /// The navigation bar: (href, label).
    pub(crate) fn links(&self) -> [(&'static str, &'static str); 6] {
        [
            ("/", "Home"),
            ("/vendor", "Vendor"),
            ("/distributor", "Distributor"),
            ("/chat", "Chat"),
            ("/inspector", "Inspector"),
            ("/learn", "Learn"),
        ]
    }

    pub(crate) fn is_current(&self, href: &str) -> bool {
        self.nav == href
    }
}

/// The sign-in card of a console (`templates/signin.html`).
#[derive(Debug)]
pub(crate) struct SignIn {
    /// `Vendor` or `Distributor`.
    pub role: &'static str,
    /// `vendors` or `distributors`, for the demo hint.
    pub plural: &'static str,
    /// The handshake field of the identity (`vendorId`, `distributorId`).
    pub id_field: &'static str,
    /// The demo identities, while the demo set is in use.
    pub demo: Vec<Account>,
    /// The lab identities a person may sign in as with no token, while
    /// `/caps` is served (`None` otherwise): the lab stores that sent a
    /// pickup since the hub started, or the lab drivers.
    pub lab: Option<Vec<String>>,
}

/// A demo identity and its token, shown only while the demo set is in use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Account {
    pub id: &'static str,
    pub token: &'static str,
}

fn accounts(pairs: &[(&'static str, &'static str)]) -> Vec<Account> {
    pairs
        .iter()
        .map(|&(id, token)| Account { id, token })
        .collect()
}

/// `/`: what the hub is, its namespaces, links, demo credentials.
#[derive(Debug, Template)]
#[template(path = "index.html")]
pub(crate) struct IndexPage {
    pub layout: Layout,
    pub vendors: Vec<Account>,
    pub distributors: Vec<Account>,
    pub admin_token: Option<&'static str>,
    /// Whether `/caps` is served.
    pub caps: bool,
}

/// `/vendor`: sign in, ask for pickups, follow the orders.
#[derive(Debug, Template)]
#[template(path = "vendor.html")]
pub(crate) struct VendorPage {
    pub layout: Layout,
    pub signin: SignIn,
    /// The distributors a pickup may be sent to.
    pub distributors: Vec<String>,
}

/// `/distributor`: sign in, take pickups, move orders, go offline.
#[derive(Debug, Template)]
#[template(path = "distributor.html")]
pub(crate) struct DistributorPage {
    pub layout: Layout,
    pub signin: SignIn,
}

/// `/chat`: the Socket.IO chat example, with rooms.
#[derive(Debug, Template)]
#[template(path = "chat.html")]
pub(crate) struct ChatPage {
    pub layout: Layout,
}

/// `/inspector`: namespaces, rooms, sockets, queues and the activity feed.
#[derive(Debug, Template)]
#[template(path = "inspector.html")]
pub(crate) struct InspectorPage {
    pub layout: Layout,
    pub admin_token: Option<&'static str>,
}

/// Any path the hub does not serve.
#[derive(Debug, Template)]
#[template(path = "not_found.html")]
pub(crate) struct NotFoundPage {
    pub layout: Layout,
    pub path: String,
}

/// Renders a page with headers that keep injected markup inert.
pub(super) fn render(page: &impl Template, client: &ClientScript, status: StatusCode) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(client.content_security_policy()),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

fn demo<A: Adapter, T>(state: &WebState<A>, value: T) -> Option<T> {
    state.hub.credentials.is_demo.then_some(value)
}

pub(crate) async fn index<A: Adapter>(State(state): State<WebState<A>>) -> Response {
    let page = IndexPage {
        layout: Layout::new(&state, "/", None),
        vendors: demo(&state, accounts(&DEMO_VENDORS)).unwrap_or_default(),
        distributors: demo(&state, accounts(&DEMO_DISTRIBUTORS)).unwrap_or_default(),
        admin_token: demo(&state, DEMO_ADMIN_TOKEN),
        caps: state.hub.caps.is_some(),
    };
    render(&page, &state.client, StatusCode::OK)
}

pub(crate) async fn vendor<A: Adapter>(State(state): State<WebState<A>>) -> Response {
    let page = VendorPage {
        layout: Layout::new(&state, "/vendor", Some("vendor.js")),
        signin: SignIn {
            role: "Vendor",
            plural: "vendors",
            id_field: VendorId::FIELD,
            demo: demo(&state, accounts(&DEMO_VENDORS)).unwrap_or_default(),
            lab: state.hub.caps.as_ref().map(|sandbox| {
                sandbox
                    .stores()
                    .iter()
                    .map(|id| id.as_str().to_owned())
                    .collect()
            }),
        },
        // A lab store sends its pickups to the lab drivers only.
        distributors: state
            .hub
            .credentials
            .distributors()
            .map(|d| d.as_str().to_owned())
            .chain(state.hub.caps.as_ref().map(|_| LAB_DRIVERS.to_owned()))
            .collect(),
    };
    render(&page, &state.client, StatusCode::OK)
}

pub(crate) async fn distributor<A: Adapter>(State(state): State<WebState<A>>) -> Response {
    let page = DistributorPage {
        layout: Layout::new(&state, "/distributor", Some("distributor.js")),
        signin: SignIn {
            role: "Distributor",
            plural: "distributors",
            id_field: DistributorId::FIELD,
            demo: demo(&state, accounts(&DEMO_DISTRIBUTORS)).unwrap_or_default(),
            lab: state
                .hub
                .caps
                .as_ref()
                .map(|_| vec![LAB_DRIVERS.to_owned()]),
        },
    };
    render(&page, &state.client, StatusCode::OK)
}

pub(crate) async fn chat<A: Adapter>(State(state): State<WebState<A>>) -> Response {
    let page = ChatPage {
        layout: Layout::new(&state, "/chat", Some("chat.js")),
    };
    render(&page, &state.client, StatusCode::OK)
}

pub(crate) async fn inspector<A: Adapter>(State(state): State<WebState<A>>) -> Response {
    let page = InspectorPage {
        layout: Layout::new(&state, "/inspector", Some("inspector.js")),
        admin_token: demo(&state, DEMO_ADMIN_TOKEN),
    };
    render(&page, &state.client, StatusCode::OK)
}

pub(crate) async fn not_found<A: Adapter>(
    State(state): State<WebState<A>>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    not_found_page(&state, uri.path())
}

/// The 404 page for `path`.
pub(super) fn not_found_page<A: Adapter>(state: &WebState<A>, path: &str) -> Response {
    let page = NotFoundPage {
        layout: Layout::new(state, "", None),
        path: path.to_owned(),
    };
    render(&page, &state.client, StatusCode::NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(nav: &'static str, script: Option<&'static str>) -> Layout {
        Layout {
            nav,
            script,
            socket: script.is_some(),
            client: ClientScript::Cdn,
            version: "0.0.0",
        }
    }

    #[test]
    fn what_a_person_typed_is_escaped() {
        let page = NotFoundPage {
            layout: layout("", None),
            path: "/<img src=x onerror=alert(1)>".into(),
        };
        let html = page.render().expect("renders");
        assert!(
            html.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{html}"
        );
        assert!(!html.contains("<img src=x"), "{html}");
    }

    #[test]
    fn pages_load_the_pinned_cdn_client_with_its_integrity_hash() {
        let page = ChatPage {
            layout: layout("/chat", Some("chat.js")),
        };
        let html = page.render().expect("renders");
        assert!(
            html.contains(
                r#"<script src="https://cdn.socket.io/4.8.1/socket.io.min.js" integrity="sha384-"#
            ),
            "{html}"
        );
        assert!(html.contains(r#"<script src="/assets/chat.js"></script>"#));
        assert!(html.contains(r#"<a href="/chat" aria-current="page">"#));
    }
}
