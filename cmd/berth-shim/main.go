// Command berth-shim runs one container for berthd; see package shim.
package main

import (
	"os"

	"berth.dev/berth/shim"
)

func main() { os.Exit(shim.Main(os.Args[1:])) }
