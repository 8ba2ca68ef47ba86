package cri

// builtinPauseName is the record name of the pause image berth builds
// itself when the configured sandbox image is absent (sandbox.go).
const builtinPauseName = "berth.local/pause:builtin"
