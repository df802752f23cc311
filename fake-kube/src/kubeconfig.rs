//! Kubeconfig rendering: a single cluster/context/user pointing at the fake server with a dummy
//! bearer token and namespace `default`. The CA is always included, even for `http://`, because
//! kube-rs 5 with rustls builds its TLS stack before looking at the scheme and fails without a CA
//! where the OS has no trust store (spec §1, "kube TLS gotcha").

use base64::Engine as _;

/// The bearer token written into generated kubeconfigs.
pub const DUMMY_TOKEN: &str = "fake-kube-token";

/// Renders the kubeconfig YAML.
pub(crate) fn render(server_url: &str, ca_pem: &str) -> String {
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fake-kube
  cluster:
    server: {server_url}
    certificate-authority-data: {ca_data}
contexts:
- name: fake-kube
  context:
    cluster: fake-kube
    user: fake-kube
    namespace: default
current-context: fake-kube
users:
- name: fake-kube
  user:
    token: {DUMMY_TOKEN}
preferences: {{}}
"
    )
}
