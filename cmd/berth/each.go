package main

import (
	"errors"

	"github.com/containerd/errdefs/pkg/errgrpc"
)

// forEach runs do for every name and goes on past a failure, so that one
// missing ID in `rm a b c` does not leave the others in place. It returns
// every failure, one line each; the daemon's errors already name the
// object, so they are not prefixed again. main exits 2 for it.
func forEach(names []string, do func(name string) error) error {
	var errs []error
	for _, name := range names {
		if err := do(name); err != nil {
			errs = append(errs, errgrpc.ToNative(err))
		}
	}
	return errors.Join(errs...)
}
