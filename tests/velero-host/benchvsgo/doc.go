// Package benchvsgo measures velero-plugin-quiesce (Rust) side by side with a
// Go plugin built with Velero's framework, through the same Velero client
// code (process.RestartableProcess, go-plugin, the BIA v2 gRPC client).
//
// The benchmark is behind the benchvsgo build tag so that `go test ./...`
// (and run.sh) never runs it:
//
//	cd tests/velero-host && go test -tags benchvsgo -count=1 -timeout 30m -v -run TestBenchVsGo ./benchvsgo/
//
// Flags (after the package): -launches N (default 20), -calls N per launch
// (default 100), -warmup N calls per launch not measured (default 5).
// QUIESCE_PLUGIN_BIN selects a given Rust binary; otherwise the test runs
// `cargo build --release --bin velero-plugin-quiesce`.
package benchvsgo
