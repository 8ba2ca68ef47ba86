package main

import (
	"fmt"
	"runtime"
	"sort"
	"strings"

	introapi "berth.dev/berth/api/introspection/v1"
	"berth.dev/berth/version"
	"github.com/spf13/cobra"
)

// versionInfo is `berth version -o json|yaml`; Server is absent when berthd
// could not be asked.
type versionInfo struct {
	Client struct {
		Version   string `json:"version"`
		GoVersion string `json:"goVersion"`
	} `json:"client"`
	Server *serverInfo `json:"server,omitempty"`
}

// serverInfo is what introspection says of berthd; the root and state
// directories are included because "which berthd is this?" is the
// question version is asked on a machine with several (tests, make run).
type serverInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Root      string `json:"root"`
	State     string `json:"state"`
}

// newVersionCmd prints the client's version before it dials, so a user
// with no berthd running (or the wrong --address) still learns which CLI
// they have, and sees the dial error after it.
func newVersionCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "version", Short: "Print the client and server versions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if output != "table" && output != "json" && output != "yaml" {
				return fmt.Errorf("unknown output format %q (table, json, yaml)", output)
			}
			var info versionInfo
			info.Client.Version, info.Client.GoVersion = version.Version, runtime.Version()
			// The client half is printed before dialling, so it shows
			// even when the dial below fails.
			if output == "table" {
				fmt.Fprintf(out, "Client:\n  Version: %s\n  Go:      %s\n", info.Client.Version, info.Client.GoVersion)
			}
			v, err := serverVersion(cmd, g)
			if err == nil {
				info.Server = &serverInfo{v.Version, v.GoVersion, v.Root, v.State}
			}
			if output != "table" {
				// The client part is printed even when berthd is unreachable,
				// as the table does; the exit status still says it failed.
				if perr := printObject(out, output, info); perr != nil {
					return perr
				}
				return err
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Server:\n  Version: %s\n  Go:      %s\n  Root:    %s\n  State:   %s\n", v.Version, v.GoVersion, v.Root, v.State)
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// serverVersion asks introspection, which answers from berthd's start-up
// values and touches no store, so it works on a wedged daemon too.
func serverVersion(cmd *cobra.Command, g *globals) (*introapi.VersionResponse, error) {
	c, err := g.dial(cmd.Context())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return introapi.NewIntrospectionClient(c).Version(cmd.Context(), &introapi.VersionRequest{})
}

// parseKV parses KEY=VALUE strings (--label of every command). A pair
// without "=" or with an empty key is refused: labels are matched by
// selectors and GC rules, where a typo must not pass as an empty label.
func parseKV(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}

// labelString is a labels column: sorted k=v pairs (a map's order would
// shuffle them between runs), "-" for none.
func labelString(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}
