// Package version holds the build's version, set by the linker.
package version

// Version is overwritten at build time with -ldflags -X.
var Version = "dev"
