//! A fake GitHub API on 127.0.0.1 (wiremock), for the tests of `github/`
//! and of `compare --github`; never the real API.

use wiremock::{Mock, MockServer, Request};

/// A fake API and the runtime that drives its setup.
pub struct FakeGithub {
    rt: tokio::runtime::Runtime,
    pub server: MockServer,
}

impl FakeGithub {
    pub fn new() -> FakeGithub {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(MockServer::start());
        FakeGithub { rt, server }
    }

    pub fn mount(&self, mock: Mock) {
        self.rt.block_on(mock.mount(&self.server));
    }

    /// The API's base URL, with an Enterprise-style `prefix` or none.
    pub fn url(&self, prefix: &str) -> String {
        format!("{}{prefix}", self.server.uri())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.rt
            .block_on(self.server.received_requests())
            .unwrap_or_default()
    }

    /// Requests with this method whose path contains `path_part`.
    pub fn matching(&self, verb: &str, path_part: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method.as_str() == verb && r.url.path().contains(path_part))
            .collect()
    }

    pub fn count(&self, verb: &str, path_part: &str) -> usize {
        self.matching(verb, path_part).len()
    }
}
