#!/usr/bin/env bash
# Regenerates shim.pb.go and shim_ttrpc.pb.go from shim.proto with the
# generators pinned in go.mod (go tool ...). Called from hack/generate.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/" google.golang.org/protobuf/cmd/protoc-gen-go github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc
PATH="$bin:$PATH" protoc -I . -I /usr/include \
	--go_out=paths=source_relative:. \
	--go-ttrpc_out=paths=source_relative:. \
	shim.proto
