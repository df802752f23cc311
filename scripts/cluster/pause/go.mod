module quiesce.dev/cluster/pause

go 1.22
