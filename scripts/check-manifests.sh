#!/usr/bin/env bash
# Validates every YAML file in plugin-manifest/: it parses, every document has a known kind with
# the fields that kind requires, references inside a file resolve (bindings → roles, volumes →
# claims, selectors → template labels), the RBAC grants what the plugin needs, the hook
# annotations are quiesce's keys with valid values, the Helm snippet mounts Velero's plugins
# volume at /target, and nginx-local.yaml runs on the cluster of `make cluster-up` (node name,
# imported images). The plugin's own parser checks the ConfigMap rules in tests/integration/manifests.rs
# (`make manifests` runs both). Needs python3 with PyYAML; installs python3-yaml with apt if missing.
# Usage: scripts/check-manifests.sh [DIR]   (default plugin-manifest)
set -euo pipefail
cd "$(dirname "$0")/.."

python=
for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ]; then
    echo "check-manifests: installing python3-yaml (apt)"
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-yaml >/dev/null
    python=/usr/bin/python3
fi

exec "$python" - "${1:-plugin-manifest}" <<'EOF'
import json, pathlib, re, sys
import yaml

DIR = pathlib.Path(sys.argv[1])
problems = []
checked = []

def problem(where, message):
    problems.append(f"{where}: {message}")

def get(obj, path, where, kind=None):
    """obj at dotted path; a problem (and None) when missing or of the wrong type."""
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur or cur[part] is None:
            problem(where, f"missing {path}")
            return None
        cur = cur[part]
    if kind is not None and not isinstance(cur, kind):
        problem(where, f"{path} must be a {kind.__name__}, found {type(cur).__name__}")
        return None
    return cur

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1", "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1",
}
RBAC_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"}
HOOK_FIELDS = {"command", "container", "on-error", "timeout"}
GO_DURATION = re.compile(r"^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$")

def check_metadata(doc, where):
    name = get(doc, "metadata.name", where, str)
    if name and not DNS_SUBDOMAIN.match(name):
        problem(where, f"metadata.name {name!r} is not a valid name")
    ns = doc.get("metadata", {}).get("namespace")
    if doc["kind"] in CLUSTER_SCOPED:
        if ns is not None:
            problem(where, f"{doc['kind']} is cluster-scoped but has metadata.namespace")
    elif not isinstance(ns, str) or not DNS_LABEL.match(ns):
        problem(where, "missing or invalid metadata.namespace")
    for field in ("labels", "annotations"):
        values = doc.get("metadata", {}).get(field) or {}
        for key, value in values.items():
            if not isinstance(value, str):
                problem(where, f"metadata.{field}[{key!r}] must be a string, found {type(value).__name__}")

def check_rules(doc, where):
    rules = get(doc, "rules", where, list) or []
    grants = set()
    for i, rule in enumerate(rules):
        for field in ("apiGroups", "resources", "verbs"):
            if not isinstance(rule.get(field), list) or not rule[field]:
                problem(where, f"rules[{i}].{field} must be a non-empty list")
        for verb in rule.get("verbs") or []:
            if verb not in RBAC_VERBS:
                problem(where, f"rules[{i}] has unknown verb {verb!r}")
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    grants.add((group, resource, verb))
    return grants

def check_binding(doc, where, roles):
    ref = get(doc, "roleRef", where, dict) or {}
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        problem(where, "roleRef.apiGroup must be rbac.authorization.k8s.io")
    expected = "ClusterRole" if doc["kind"] == "ClusterRoleBinding" else ref.get("kind")
    if ref.get("kind") not in ("ClusterRole", "Role") or ref.get("kind") != expected:
        problem(where, f"roleRef.kind {ref.get('kind')!r} is wrong for a {doc['kind']}")
    if (ref.get("kind"), ref.get("name")) not in roles:
        problem(where, f"roleRef {ref.get('kind')}/{ref.get('name')} is not defined in the same file")
    subjects = get(doc, "subjects", where, list) or []
    for i, subject in enumerate(subjects):
        if subject.get("kind") != "ServiceAccount" or not subject.get("name") or not subject.get("namespace"):
            problem(where, f"subjects[{i}] must be a ServiceAccount with name and namespace")

def check_hook_annotations(annotations, containers, where):
    found = set()
    for key, value in annotations.items():
        for phase in ("pre", "post"):
            prefix = f"{phase}.hook.backup."
            if not key.startswith(prefix):
                continue
            domain, _, field = key[len(prefix):].partition("/")
            if domain == "velero.io":
                problem(where, f"annotation {key} is Velero's own key; quiesce reads {prefix}quiesce.dev/{field}")
                continue
            if domain != "quiesce.dev" or field not in HOOK_FIELDS:
                problem(where, f"unknown hook annotation {key}")
                continue
            found.add((phase, field))
            if field == "command":
                if value.startswith("["):
                    try:
                        argv = json.loads(value)
                    except ValueError as error:
                        problem(where, f"{key} is not a JSON array: {error}")
                        continue
                    if not argv or not all(isinstance(a, str) and a for a in argv):
                        problem(where, f"{key} must be a non-empty JSON array of strings")
            elif field == "container" and value not in containers:
                problem(where, f"{key}={value!r} names no container of the pod ({sorted(containers)})")
            elif field == "on-error" and value not in ("Fail", "Continue"):
                problem(where, f"{key}={value!r} is not Fail or Continue")
            elif field == "timeout" and not GO_DURATION.match(value):
                problem(where, f"{key}={value!r} is not a Go duration such as 30s")
    for phase in ("pre", "post"):
        if any(p == phase for p, _ in found) and (phase, "command") not in found:
            problem(where, f"{phase} hook annotations without {phase}.hook.backup.quiesce.dev/command")
    return found

def check_deployment(doc, where, claims):
    selector = get(doc, "spec.selector.matchLabels", where, dict) or {}
    labels = get(doc, "spec.template.metadata.labels", where, dict) or {}
    for key, value in selector.items():
        if labels.get(key) != value:
            problem(where, f"spec.selector.matchLabels {key}={value} does not select the pod template")
    spec = get(doc, "spec.template.spec", where, dict) or {}
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for name, volume in volumes.items():
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is not None and claim not in claims:
            problem(where, f"volume {name} claims {claim!r}, which is not defined in the same file")
    containers = get(doc, "spec.template.spec.containers", where, list) or []
    names = set()
    for i, container in enumerate(containers):
        if not container.get("name") or not container.get("image"):
            problem(where, f"containers[{i}] needs a name and an image")
        names.add(container.get("name"))
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in volumes:
                problem(where, f"container {container.get('name')} mounts unknown volume {mount.get('name')!r}")
            if not str(mount.get("mountPath", "")).startswith("/"):
                problem(where, f"container {container.get('name')} has a relative mountPath")
    annotations = doc["spec"]["template"].get("metadata", {}).get("annotations") or {}
    return check_hook_annotations(annotations, names, where)

def check_configmap(doc, where):
    data = get(doc, "data", where, dict) or {}
    for key, value in data.items():
        if not isinstance(value, str):
            problem(where, f"data[{key!r}] must be a string")
    labels = doc["metadata"].get("labels") or {}
    if labels.get("velero.io/plugin-config") != "" or labels.get("quiesce.dev/pod-hooks") != "BackupItemActionV2":
        problem(where, 'labels must be velero.io/plugin-config: "" and quiesce.dev/pod-hooks: BackupItemActionV2')
    if "config.yaml" not in data:
        problem(where, 'missing data["config.yaml"]')
        return
    try:
        config = yaml.safe_load(data["config.yaml"])
    except yaml.YAMLError as error:
        problem(where, f'data["config.yaml"] is not YAML: {error}')
        return
    resources = (config or {}).get("hooks", {}).get("resources")
    if not isinstance(resources, list) or not resources:
        problem(where, 'data["config.yaml"] needs hooks.resources, a non-empty list')
        return
    for i, rule in enumerate(resources):
        if not isinstance(rule, dict) or not rule.get("name"):
            problem(where, f"hooks.resources[{i}] needs a name")
            continue
        holds = any((hook.get("exec") or {}).get("holdUntilOutput") for hook in rule.get("pre") or [])
        for phase in ("pre", "post"):
            for j, hook in enumerate(rule.get(phase) or []):
                exec_ = hook.get("exec") or {}
                command = exec_.get("command")
                # A post hook of only stdin ends the session its rule's pre hook holds.
                if phase == "post" and holds and command is None and exec_.get("stdin"):
                    continue
                if not isinstance(command, list) or not command:
                    problem(where, f"hooks.resources[{i}].{phase}[{j}].exec.command must be a non-empty list")

def check_helm_values(values, where):
    inits = get(values, "initContainers", where, list) or []
    ours = [c for c in inits if "velero-plugin-quiesce" in str(c.get("image", ""))]
    if len(ours) != 1:
        problem(where, "initContainers needs exactly one velero-plugin-quiesce image")
        return
    init = ours[0]
    if not init.get("name") or not DNS_LABEL.match(init["name"]):
        problem(where, "the init container needs a valid name")
    if init.get("command") or init.get("args"):
        problem(where, "the init container must not set command/args (the image entrypoint copies)")
    mounts = init.get("volumeMounts") or []
    if {"name": "plugins", "mountPath": "/target"} not in [
        {"name": m.get("name"), "mountPath": m.get("mountPath")} for m in mounts
    ]:
        problem(where, "the init container must mount the chart's `plugins` volume at /target")

REQUIRED_GRANTS = {  # what the plugin uses (plugin-manifest/README.md §3)
    ("ClusterRole", "", "pods", "get"), ("ClusterRole", "", "pods", "list"),
    ("ClusterRole", "", "pods/exec", "create"), ("ClusterRole", "", "pods/exec", "get"),
    ("ClusterRole", "", "events", "create"),
    ("ClusterRole", "snapshot.storage.k8s.io", "volumesnapshots", "get"),
    ("ClusterRole", "snapshot.storage.k8s.io", "volumesnapshots", "list"),
    ("ClusterRole", "snapshot.storage.k8s.io", "volumesnapshots", "watch"),
    ("Role", "", "configmaps", "list"),
    ("Role", "velero.io", "podvolumebackups", "get"), ("Role", "velero.io", "podvolumebackups", "list"),
    ("Role", "velero.io", "podvolumebackups", "watch"),
}

files = sorted(list(DIR.glob("**/*.yaml")) + list(DIR.glob("**/*.yml")))
if not files:
    problem(str(DIR), "no YAML files")
for path in files:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as error:
        problem(str(path), f"does not parse: {error}")
        continue
    if not docs:
        problem(str(path), "holds no YAML document")
        continue
    if path.name == "helm-values.yaml":
        before = len(problems)
        check_helm_values(docs[0], str(path))
        if len(problems) == before:
            checked.append(f"{path.name}: Helm values (initContainers)")
        continue
    before = len(problems)
    roles, claims, grants, hooks, bound = set(), set(), set(), set(), set()
    for doc in docs:  # first pass: what bindings and volumes may refer to
        if isinstance(doc, dict) and doc.get("kind") in ("ClusterRole", "Role"):
            roles.add((doc["kind"], (doc.get("metadata") or {}).get("name")))
        if isinstance(doc, dict) and doc.get("kind") == "PersistentVolumeClaim":
            claims.add((doc.get("metadata") or {}).get("name"))
    kinds = []
    for index, doc in enumerate(docs):
        where = f"{path}[{index}]"
        if not isinstance(doc, dict) or "kind" not in doc:
            problem(where, "not a Kubernetes object (no kind)")
            continue
        kind = doc["kind"]
        kinds.append(kind)
        where = f"{path}[{index}] {kind}"
        if kind not in API_VERSIONS:
            problem(where, f"unexpected kind {kind}")
            continue
        if doc.get("apiVersion") != API_VERSIONS[kind]:
            problem(where, f"apiVersion must be {API_VERSIONS[kind]}, found {doc.get('apiVersion')!r}")
        check_metadata(doc, where)
        if kind in ("ClusterRole", "Role"):
            grants |= {(kind, g, r, v) for g, r, v in check_rules(doc, where)}
        elif kind in ("ClusterRoleBinding", "RoleBinding"):
            check_binding(doc, where, roles)
            ref = doc.get("roleRef") or {}
            bound.add((ref.get("kind"), ref.get("name")))
        elif kind == "ConfigMap":
            check_configmap(doc, where)
        elif kind == "PersistentVolumeClaim":
            if not get(doc, "spec.accessModes", where, list):
                problem(where, "spec.accessModes must be a non-empty list")
            get(doc, "spec.resources.requests.storage", where)
        elif kind == "Deployment":
            hooks |= check_deployment(doc, where, claims)
    for kind, name in sorted(roles - bound):
        problem(str(path), f"{kind} {name} is bound by no binding in the file")
    if path.name == "rbac.yaml":
        for missing in sorted(REQUIRED_GRANTS - grants):
            kind, group, resource, verb = missing
            problem(str(path), f"no {kind} grants {verb} on {resource} (apiGroup {group!r})")
    if path.name == "example-app.yaml":
        for needed in (("pre", "command"), ("pre", "container"), ("post", "command"), ("post", "container")):
            if needed not in hooks:
                problem(str(path), f"the example needs the {needed[0]}.hook.backup.quiesce.dev/{needed[1]} annotation")
    if path.name == "nginx-local.yaml":  # for the cluster of `make cluster-up` (scripts/cluster)
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "Deployment":
                continue
            spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
            if spec.get("nodeName") != "localhost":
                problem(str(path), "that cluster has no scheduler: the pod template needs nodeName: localhost")
            for container in spec.get("containers") or []:
                if not str(container.get("image", "")).startswith("localhost/") or container.get("imagePullPolicy") != "Never":
                    problem(str(path), f"container {container.get('name')}: that cluster has no registry: a localhost/ image with imagePullPolicy: Never")
    if len(problems) == before:
        checked.append(f"{path.name}: {', '.join(kinds)}")

for line in checked:
    print(f"check-manifests: ok {line}")
if problems:
    for line in problems:
        print(f"check-manifests: FAIL {line}", file=sys.stderr)
    sys.exit(1)
print(f"check-manifests: {len(files)} files valid")
EOF
