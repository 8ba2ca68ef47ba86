package oci

import "golang.org/x/sys/unix"

// nonblockNofollow keeps ReadBundle from following a symlink planted as
// config.json or blocking on a FIFO.
const nonblockNofollow = unix.O_NONBLOCK | unix.O_NOFOLLOW | unix.O_CLOEXEC
