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

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "version", Short: "Print the client and server versions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Client:\n  Version: %s\n  Go:      %s\n", version.Version, runtime.Version())
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			v, err := introapi.NewIntrospectionClient(c).Version(cmd.Context(), &introapi.VersionRequest{})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Server:\n  Version: %s\n  Go:      %s\n  Root:    %s\n  State:   %s\n", v.Version, v.GoVersion, v.Root, v.State)
			return nil
		},
	}
}

// parseKV parses KEY=VALUE strings.
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
