//! The Kubernetes client, built lazily and shared: [`Kube`].
//!
//! The plugin must print its go-plugin handshake before it touches the cluster (a slow or
//! broken API server must not make Velero give up on the plugin), so constructing a
//! [`Kube`] reads nothing and connects nowhere. The first call that needs the
//! cluster builds the `kube::Client`; every later call, concurrent ones included, shares it.
//! A failed build is not remembered: the next call tries again (a kubeconfig may appear, a
//! projected token may be mounted late).
//!
//! Exec gets a client of its own (`Kube::get_for_exec`), built from the same
//! configuration but without kube's built-in retry of 429/503/504 answers (up to 15 hidden
//! retries with exponential backoff): whether a refused exec upgrade is tried again is the
//! hook's `retries` setting, decided, counted and logged by [`crate::exec::retry`] and
//! [`crate::exec::hook`], and a hidden retry loop must not silently spend the hook's timeout. Every
//! other call keeps kube's default retry.
//!
//! This module owns client construction only; the calls are in the sibling modules.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use super::error::chain;

/// Where the client's configuration comes from, in the order Velero's own client factory
/// (client-go's deferred loading rules) looks — so that quiesce talks to the cluster Velero
/// and its built-in plugins talk to:
/// 1. `kubeconfig`, when given (Velero forwards its `--kubeconfig` flag to every plugin):
///    that file only;
/// 2. else the files of `$KUBECONFIG`, else `~/.kube/config`, when one exists;
/// 3. else the in-cluster service account (what the plugin uses in Velero's pod).
///
/// `context` (Velero's `--kubecontext`) replaces the kubeconfig's current context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSource {
    /// An explicit kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of its current one.
    pub context: Option<String>,
}

/// A lazily built `kube::Client`, cheap to clone; clones share one client.
#[derive(Clone)]
pub struct Kube {
    inner: Arc<Inner>,
}

struct Inner {
    source: ClientSource,
    client: OnceCell<kube::Client>,
    /// Same configuration, kube's retry layer off; for exec.
    exec_client: OnceCell<kube::Client>,
}

impl fmt::Debug for Kube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kube")
            .field("source", &self.inner.source)
            .field("built", &self.inner.client.initialized())
            .field("built_for_exec", &self.inner.exec_client.initialized())
            .finish()
    }
}

impl Kube {
    /// A client configured from `source`, built on first use.
    pub fn new(source: ClientSource) -> Self {
        Kube {
            inner: Arc::new(Inner {
                source,
                client: OnceCell::new(),
                exec_client: OnceCell::new(),
            }),
        }
    }

    /// `$KUBECONFIG` or `~/.kube/config`, else in-cluster ([`ClientSource::default`]).
    pub fn infer() -> Self {
        Self::new(ClientSource::default())
    }

    /// This kubeconfig file, its current context.
    pub fn from_kubeconfig_file(path: impl Into<PathBuf>) -> Self {
        Self::new(ClientSource {
            kubeconfig: Some(path.into()),
            context: None,
        })
    }

    /// Wraps a client built elsewhere (tests, a caller that already has one). It serves exec
    /// too, with whatever retry layer it was built with.
    pub fn from_client(client: kube::Client) -> Self {
        Kube {
            inner: Arc::new(Inner {
                source: ClientSource::default(),
                client: OnceCell::new_with(Some(client.clone())),
                exec_client: OnceCell::new_with(Some(client)),
            }),
        }
    }

    /// Where the configuration comes from.
    pub fn source(&self) -> &ClientSource {
        &self.inner.source
    }

    /// Whether a client (for exec or for the other calls) has been built already.
    pub fn is_built(&self) -> bool {
        self.inner.client.initialized() || self.inner.exec_client.initialized()
    }

    /// The shared client, building it on first use. Concurrent first callers wait for one
    /// build. On failure the reason comes back (for `ExecError::NoClient`) and nothing is
    /// cached, so the next call tries again.
    pub(crate) async fn get(&self) -> Result<kube::Client, String> {
        self.inner
            .client
            .get_or_try_init(|| build(&self.inner.source, true))
            .await
            .cloned()
    }

    /// The shared exec client (see the module docs: no hidden retry of refused upgrades),
    /// built on first use like [`Kube::get`].
    pub(crate) async fn get_for_exec(&self) -> Result<kube::Client, String> {
        self.inner
            .exec_client
            .get_or_try_init(|| build(&self.inner.source, false))
            .await
            .cloned()
    }
}

/// Builds a client from `source`, with or without kube's default retry of 429/503/504. Must
/// run inside the Tokio runtime that will use it (the client spawns its request buffer there).
async fn build(source: &ClientSource, default_retry: bool) -> Result<kube::Client, String> {
    let mut config = config_of(source).await?;
    config.default_retry = default_retry;
    kube::Client::try_from(config).map_err(|e| format!("cannot build client: {}", chain(&e)))
}

/// The configuration [`ClientSource`] describes.
async fn config_of(source: &ClientSource) -> Result<kube::Config, String> {
    let kubeconfig = match &source.kubeconfig {
        Some(path) => Some(
            Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {}", path.display(), chain(&e)))?,
        ),
        None => match Kubeconfig::read() {
            Ok(kubeconfig) => Some(kubeconfig),
            // client-go skips kubeconfig files that do not exist; none at all means in-cluster.
            Err(KubeconfigError::FindPath) => None,
            Err(KubeconfigError::ReadConfig(error, _))
                if error.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(error) => return Err(format!("invalid kubeconfig: {}", chain(&error))),
        },
    };
    let Some(kubeconfig) = kubeconfig else {
        return kube::Config::incluster().map_err(|error| {
            format!(
                "no kubeconfig (no --kubeconfig flag, $KUBECONFIG or ~/.kube/config) and no \
                 in-cluster configuration ({})",
                chain(&error)
            )
        });
    };
    let options = KubeConfigOptions {
        context: source.context.clone(),
        ..KubeConfigOptions::default()
    };
    let place = match &source.kubeconfig {
        Some(path) => format!("kubeconfig {}", path.display()),
        None => "kubeconfig".to_owned(),
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| format!("invalid {place}: {}", chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn constructing_reads_nothing_and_a_failed_build_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let client = Kube::from_kubeconfig_file(&path);
        assert!(!client.is_built());
        let Err(error) = client.get().await else {
            panic!("a missing kubeconfig must not give a client");
        };
        assert!(error.contains("cannot read kubeconfig"), "{error}");
        assert!(!client.is_built());

        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n\
             users:\n- name: u\n  user:\n    token: t\n",
        )
        .unwrap();
        // Whether the build now succeeds depends on the host's trust store (kube with rustls
        // and no CA in the kubeconfig); what matters is that it is attempted again.
        match client.get().await {
            Ok(_) => assert!(client.is_built()),
            Err(error) => assert!(!error.contains("cannot read kubeconfig"), "{error}"),
        }
    }

    #[tokio::test]
    async fn an_explicit_kubeconfig_and_context_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n\
             - name: a\n  cluster:\n    server: http://127.0.0.1:1001\n\
             - name: b\n  cluster:\n    server: http://127.0.0.1:1002\n\
             contexts:\n- name: a\n  context:\n    cluster: a\n    user: u\n\
             - name: b\n  context:\n    cluster: b\n    user: u\n\
             users:\n- name: u\n  user:\n    token: t\n",
        )
        .unwrap();
        let server = |context: Option<&str>| {
            let source = ClientSource {
                kubeconfig: Some(path.clone()),
                context: context.map(str::to_owned),
            };
            async move { config_of(&source).await.unwrap().cluster_url.to_string() }
        };
        assert_eq!(server(None).await, "http://127.0.0.1:1001/");
        assert_eq!(server(Some("b")).await, "http://127.0.0.1:1002/");
        let missing = ClientSource {
            kubeconfig: Some(dir.path().join("nowhere")),
            context: None,
        };
        let error = config_of(&missing).await.unwrap_err();
        assert!(error.starts_with("cannot read kubeconfig"), "{error}");
    }
}
