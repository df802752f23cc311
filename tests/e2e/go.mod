module quiesce.dev/e2e

go 1.24
