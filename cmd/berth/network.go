package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	netapi "berth.dev/berth/api/networks/v1"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newNetworkCmd) }

// networkView is a network as `berth network` prints it in JSON and YAML.
type networkView struct {
	Name      string              `json:"name"`
	Namespace string              `json:"namespace,omitempty"`
	CNIName   string              `json:"cniName"`
	Bridge    string              `json:"bridge,omitempty"`
	Spec      *netapi.NetworkSpec `json:"spec"`
	File      string              `json:"file"`
	UsedBy    []string            `json:"usedBy,omitempty"`
	Conflist  any                 `json:"conflist,omitempty"`
}

// toNetworkView carries the conflist only for inspect: it is what CNI
// runs, the thing to read when a container gets no address, but a list
// of them is noise.
func toNetworkView(n *netapi.Network, withConflist bool) networkView {
	v := networkView{Name: n.Name, Namespace: n.Namespace, CNIName: n.CniName, Bridge: n.Bridge, Spec: n.Spec, File: n.File, UsedBy: n.UsedBy}
	if withConflist && len(n.Conflist) > 0 {
		v.Conflist = jsonOrString(n.Conflist)
	}
	return v
}

// newNetworkCmd manages networks imperatively. A network made here is the
// same conflist a declared Network writes (validated by the same spec
// rules), so the two can be used interchangeably by containers; rm is
// refused while a container is attached, since CNI DEL of a live
// container's network would leave it without one.
func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Aliases: []string{"networks", "net"}, Short: "Manage CNI networks (the built-in bridge, declared and created ones)"}
	client := func(cmd *cobra.Command) (netapi.NetworksService, func(), error) {
		c, err := g.dial(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		return netapi.NewNetworksClient(c), func() { c.Close() }, nil
	}
	var output string
	var all bool
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List networks (the built-in one and the namespace's)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.List(cmd.Context(), &netapi.ListNetworksRequest{Namespace: g.namespace, AllNamespaces: all})
			if err != nil {
				return err
			}
			var views []networkView
			for _, n := range resp.Networks {
				views = append(views, toNetworkView(n, false))
			}
			// CONTAINERS is a count: the names are inspect's, and a list
			// of them would make the table unreadable on a busy node.
			return printList(cmd.OutOrStdout(), output, views, []string{"NAME", "NAMESPACE", "SUBNET", "BRIDGE", "CONTAINERS", "CNI NAME"}, func(v networkView) []string {
				return []string{v.Name, orDash(v.Namespace), v.Spec.GetSubnet(), orDash(v.Bridge), strconv.Itoa(len(v.UsedBy)), v.CNIName}
			})
		},
	}
	addOutputFlag(ls, &output)
	ls.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list every namespace's")

	var inspectOut string
	inspect := &cobra.Command{
		Use: "inspect NAME", Short: "Show a network: its spec, conflist and the containers on it", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Get(cmd.Context(), &netapi.GetNetworkRequest{Namespace: g.namespace, Name: args[0]})
			if err != nil {
				return err
			}
			// One network's spec and conflist are nested: JSON by
			// default, as image inspect and container info.
			if inspectOut == "table" {
				inspectOut = "json"
			}
			return printObject(cmd.OutOrStdout(), inspectOut, toNetworkView(resp.Network, true))
		},
	}
	addOutputFlag(inspect, &inspectOut)

	var sp netapi.NetworkSpec
	var mtu int
	create := &cobra.Command{
		Use: "create --subnet CIDR [flags] NAME", Short: "Create a bridge network (as a declared Network would be)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Required here, not defaulted: a chosen subnet must not
			// collide with the networks the host already routes, and
			// only the user knows those.
			if sp.Subnet == "" {
				return fmt.Errorf("network create %s: --subnet is required (an IPv4 CIDR such as 10.89.1.0/24)", args[0])
			}
			sp.Mtu = int32(mtu)
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := s.Create(cmd.Context(), &netapi.CreateNetworkRequest{Namespace: g.namespace, Name: args[0], Spec: &sp})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", resp.Network.Name, resp.Network.Spec.GetSubnet(), resp.Network.Bridge)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&sp.Subnet, "subnet", "", "subnet (IPv4 CIDR)")
	f.StringVar(&sp.Gateway, "gateway", "", "gateway (default: the subnet's first address)")
	f.StringVar(&sp.IpRange, "ip-range", "", "addresses handed out (a CIDR inside the subnet)")
	f.BoolVar(&sp.IpMasq, "ip-masq", true, "masquerade traffic leaving the host")
	f.BoolVar(&sp.Isolate, "isolate", false, "drop traffic to and from other berth networks")
	f.IntVar(&mtu, "mtu", 0, "MTU (default: the kernel's)")
	f.StringVar(&sp.Driver, "driver", "", "bridge (default), macvlan or ipvlan")
	f.StringVar(&sp.Master, "master", "", "host interface (macvlan, ipvlan)")

	rm := &cobra.Command{
		Use: "rm NAME...", Aliases: []string{"remove", "delete"}, Short: "Remove networks no container uses", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := client(cmd)
			if err != nil {
				return err
			}
			defer done()
			// Each failure is reported as it happens, naming the
			// network (one in use names its containers), and the rest
			// are still tried.
			var failed []string
			for _, n := range args {
				if _, err := s.Delete(cmd.Context(), &netapi.DeleteNetworkRequest{Namespace: g.namespace, Name: n}); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "berth: network %s: %v\n", n, err)
					failed = append(failed, n)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			if len(failed) > 0 {
				return fmt.Errorf("could not remove %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	cmd.AddCommand(ls, inspect, create, rm)
	return cmd
}

// jsonOrString is a conflist as a JSON value when it parses, else text.
//
// A conflist someone edited by hand may not parse; showing it as text is
// more useful than failing inspect.
func jsonOrString(b []byte) any {
	var v any
	if err := json.Unmarshal(b, &v); err == nil {
		return v
	}
	return string(b)
}
