# quiesce — everyday commands. `make demo` and `make test` are the two a newcomer needs.
CARGO ?= cargo
BIN := velero-plugin-quiesce
MUSL := x86_64-unknown-linux-musl

.PHONY: help demo demo-replay build release test lint deny soak bench bench-vs-go conformance clean image image-smoke manifests cluster-up cluster-down e2e

## help: list these targets
help:
	@sed -n -e 's/^## \([a-z-]*:\)/\1/p' -e 's/^## /    /p' $(MAKEFILE_LIST)

## demo: Velero's hook walkthrough on a real single-node cluster with a real velero server
## (cluster-up first: root, Debian; the first run builds Kubernetes and Velero, ~16 min on 2 cores)
demo: cluster-up
	scripts/cluster/demo.sh

## demo-replay: the quick look (no root, seconds): launch the plugin as Velero does and walk it
## through discovery and one backup, against a fake API server
demo-replay:
	$(CARGO) build --locked --bin $(BIN) --example demo
	$(CARGO) run --locked --quiet --example demo

## build: debug build of the plugin binary
build:
	$(CARGO) build --locked --bin $(BIN)

## release: static, size-optimised, stripped binary in dist/ (musl; glibc +crt-static fallback)
release:
	@mkdir -p dist
	@if rustup target add $(MUSL) >/dev/null 2>&1; then \
		CC_x86_64_unknown_linux_musl=$${CC_x86_64_unknown_linux_musl:-$$(command -v musl-gcc || echo gcc)} \
		$(CARGO) build --locked --release --bin $(BIN) --target $(MUSL) && \
		cp $${CARGO_TARGET_DIR:-target}/$(MUSL)/release/$(BIN) dist/$(BIN); \
	else \
		echo "musl target unavailable; building a static glibc binary instead"; \
		RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --locked --release --bin $(BIN) \
			--target x86_64-unknown-linux-gnu && \
		cp $${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/$(BIN) dist/$(BIN); \
	fi
	@# static-pie keeps a .dynamic section for self-relocation; what must be absent is an
	@# interpreter and any needed shared library.
	@if readelf -l dist/$(BIN) | grep -q INTERP || readelf -d dist/$(BIN) | grep -q NEEDED; then \
		echo "dist/$(BIN) is not static:"; readelf -d dist/$(BIN) | grep NEEDED; exit 1; \
	fi
	@ls -l dist/$(BIN)

## test: every test of the workspace (unit, integration against the real binary, fake API server)
test:
	$(CARGO) test --locked --workspace

## lint: formatting, clippy (warnings are errors, the crate's lints included) and the module layering
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	python3 scripts/check-layers.py

## deny: cargo-deny licenses, bans, sources (advisories only when the RustSec DB can be fetched)
deny:
	scripts/deny.sh

## soak: 1 000 pods under injected faults, release build, prints the README numbers
soak:
	$(CARGO) test --locked --release --test soak -- --nocapture

## bench: host contract (handshake, RSS, Execute, Shutdown, size), exec overhead, freeze windows
bench:
	$(CARGO) bench --locked --bench host_contract --bench exec_overhead --bench freeze_window

## bench-vs-go: the release binary vs a Go plugin (Velero's framework) through Velero's own client
bench-vs-go:
	cd tests/velero-host && go test -tags benchvsgo -count=1 -timeout 30m -v -run TestBenchVsGo ./benchvsgo/

## conformance: the Go harness on Velero's own plugin registry and manager (VELERO_LINES=all for 1.16–1.18)
conformance:
	tests/velero-host/run.sh

clean:
	$(CARGO) clean
	rm -rf dist


## image: reproducible OCI image (FROM scratch, the static binary only), built twice to check the
## digest, exported as dist/velero-plugin-quiesce-<version>.oci.tar (installs buildah if missing)
image: release
	scripts/image.sh

## image-smoke: run the image with podman as Velero's init container does, check /target and the
## copied plugin (installs podman and runc if missing)
image-smoke: image
	scripts/image-smoke.sh

## manifests: validate plugin-manifest/ (YAML, kinds, fields) and load its examples with the
## plugin's own parser
manifests:
	scripts/check-manifests.sh
	$(CARGO) test --locked --test integration manifests::

## cluster-up: a real single-node Kubernetes (etcd, kube-apiserver, kube-controller-manager,
## kubelet, containerd, runc; no scheduler), S3 and velero server with the aws plugin and quiesce,
## all on 127.0.0.1, state in .cluster/ (root, Debian). Builds what is missing, then prints the
## lines to use it: eval "$$(make -s cluster-up | grep '^export ')"
cluster-up:
	scripts/cluster/up.sh

## cluster-down: stop it, by PID; WIPE=1 also removes its state (built binaries stay in .cluster/bin)
cluster-down:
	scripts/cluster/down.sh $(if $(filter 1,$(WIPE)),--wipe)

## e2e: the end-to-end scenarios on the real cluster (tests/e2e); starts the stack if it is not
## running, and stops it again afterwards
e2e:
	scripts/cluster/e2e.sh
