// Command stubcli stands in for the berth CLI in the harness's own tests:
// berth --address SOCK ARGS… sends ARGS as one line to stubd and prints the
// reply; a reply starting with "ERR" goes to stderr with exit status 2.
// "stdin" as the only argument sends what it reads from stdin instead.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 3 || os.Args[1] != "--address" {
		fmt.Fprintln(os.Stderr, "usage: stubcli --address SOCK ARGS...")
		os.Exit(64)
	}
	c, err := net.Dial("unix", os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	req := strings.Join(os.Args[3:], " ")
	if req == "stdin" {
		b, _ := io.ReadAll(os.Stdin)
		req = "stdin " + strings.ReplaceAll(string(b), "\n", " ")
	}
	fmt.Fprintln(c, req)
	reply, _ := bufio.NewReader(c).ReadString('\n')
	if strings.HasPrefix(reply, "ERR") {
		fmt.Fprint(os.Stderr, reply)
		os.Exit(2)
	}
	fmt.Print(reply)
}
