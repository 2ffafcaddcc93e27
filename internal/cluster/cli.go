package cluster

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rtcgate/rtcgate/internal/cli"
)

// RegisterCLI adds `list nodes`. On a single node (c nil) it says so.
func (c *Cluster) RegisterCLI(reg *cli.Registry) {
	reg.Handle("list nodes", "", "the cluster's live nodes: id, addresses, sessions, last heartbeat", func(ctx context.Context, _ []string, w io.Writer) {
		if c == nil {
			io.WriteString(w, "Not a cluster: cluster-redis is not set\n")
			return
		}
		nodes, now, err := c.Nodes(ctx)
		if err != nil {
			fmt.Fprintf(w, "Error: cluster-redis unreachable: %v\n", err)
			return
		}
		fmt.Fprintf(w, "%-32s %-22s %-22s %8s %s\n", "Node", "Client", "HTTP", "Sessions", "Last heartbeat")
		for _, n := range nodes {
			ago := time.Duration(now-n.Heartbeat) * time.Millisecond
			fmt.Fprintf(w, "%-32s %-22s %-22s %8d %s (%s ago)\n", n.ID, n.Client, n.HTTP, n.Sessions,
				time.UnixMilli(n.Heartbeat).UTC().Format("2006-01-02T15:04:05.000Z"), ago.Round(time.Millisecond))
		}
	})
}
