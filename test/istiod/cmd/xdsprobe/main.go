// Command xdsprobe connects to istiod's plaintext xDS port as a sidecar and
// prints what that sidecar would enforce: where traffic to unknown hosts goes
// (the outbound mode) and the retry policy of one service's route. make demo
// runs it when istiod is available.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	realistiod "github.com/meshsettings/meshsettings-operator/test/istiod"
)

func main() {
	addr := flag.String("addr", "", "istiod's plaintext gRPC (xDS) address")
	ns := flag.String("namespace", "default", "namespace of the sidecar")
	route := flag.String("route", "9080", "route configuration (port) to read")
	vhost := flag.String("vhost", "", "virtual host whose first route's retry policy to print (host:port)")
	want := flag.String("want-catchall", "", "wait (up to 30s) until the catch-all cluster is this one: istiod pushes a mesh change shortly after it reads it")
	flag.Parse()
	if err := probe(*addr, *ns, *route, *vhost, *want); err != nil {
		fmt.Fprintln(os.Stderr, "xdsprobe:", err)
		os.Exit(1)
	}
}

func probe(addr, ns, route, vhost, want string) error {
	var sc *realistiod.Sidecar
	var catchAll string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if sc, err = realistiod.FetchSidecar(context.Background(), addr, ns, route); err != nil {
			return err
		}
		if catchAll, err = sc.CatchAllCluster(); err != nil {
			return err
		}
		if want == "" || catchAll == want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("catch-all cluster is %s, want %s", catchAll, want)
		}
	}
	meaning := map[string]string{
		"BlackHoleCluster":   "REGISTRY_ONLY: traffic to hosts outside the registry is dropped",
		"PassthroughCluster": "ALLOW_ANY: traffic to hosts outside the registry passes through",
	}[catchAll]
	fmt.Printf("sidecar in %s, outbound catch-all -> %s (%s)\n", ns, catchAll, meaning)
	if _, err := sc.VirtualHost(route, "block_all"); err == nil {
		fmt.Printf("route %s: virtual host block_all answers unknown hosts with 502\n", route)
	}
	if _, err := sc.VirtualHost(route, "allow_any"); err == nil {
		fmt.Printf("route %s: virtual host allow_any forwards unknown hosts\n", route)
	}
	if vhost == "" {
		return nil
	}
	vh, err := sc.VirtualHost(route, vhost)
	if err != nil {
		return err
	}
	if len(vh.Routes) == 0 || vh.Routes[0].GetRoute().GetRetryPolicy() == nil {
		fmt.Printf("route %s, %s: no retry policy\n", route, vhost)
		return nil
	}
	rp := vh.Routes[0].GetRoute().GetRetryPolicy()
	codes := make([]string, 0, len(rp.GetRetriableStatusCodes()))
	for _, c := range rp.GetRetriableStatusCodes() {
		codes = append(codes, fmt.Sprint(c))
	}
	fmt.Printf("route %s, %s: retry %d times on %s", route, vhost, rp.GetNumRetries().GetValue(), rp.GetRetryOn())
	if len(codes) > 0 {
		fmt.Printf(" (status codes %s)", strings.Join(codes, ","))
	}
	if t := rp.GetPerTryTimeout(); t != nil {
		fmt.Printf(", per try %s", t.AsDuration())
	}
	fmt.Println()
	return nil
}
