// Package realistiod is the suite that proves the operator's writes by what
// a real istiod (pilot-discovery, built by hack/istiod.sh) does with them:
// its effective mesh config (/debug/mesh), its service registry
// (/debug/registryz) and the Envoy config it sends a sidecar over xDS.
// It is its own module so go-control-plane (the xDS client) stays out of the
// operator's go.mod.
package realistiod

import (
	"context"
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	routeType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// Sidecar is what istiod sends one sidecar: clusters, listeners and the
// requested routes.
type Sidecar struct {
	Clusters  map[string]*clusterv3.Cluster
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
}

// FetchSidecar connects to istiod's plaintext xDS port as a sidecar of a
// pod in namespace ns (the pod need not exist) and asks for CDS, LDS and
// then RDS for routes, ACKing each response, as Envoy does.
func FetchSidecar(ctx context.Context, grpcAddr, ns string, routes ...string) (*Sidecar, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = stream.CloseSend() }()
	meta, err := structpb.NewStruct(map[string]any{
		"NAMESPACE":     ns,
		"CLUSTER_ID":    "Kubernetes",
		"ISTIO_VERSION": "1.31.0",
		"LABELS":        map[string]any{"app": "probe"},
	})
	if err != nil {
		return nil, err
	}
	node := &corev3.Node{
		Id:       fmt.Sprintf("sidecar~10.0.0.1~probe.%s~%s.svc.cluster.local", ns, ns),
		Metadata: meta,
	}
	fetch := func(typeURL string, names []string) ([]*anypb.Any, error) {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeURL, ResourceNames: names}); err != nil {
			return nil, err
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				return nil, fmt.Errorf("xDS %s: %w", typeURL, err)
			}
			// ACK, as Envoy does, so istiod counts the config as delivered.
			if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resp.TypeUrl, ResourceNames: names,
				VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
				return nil, err
			}
			if resp.TypeUrl == typeURL {
				return resp.Resources, nil
			}
		}
	}
	sc := &Sidecar{Clusters: map[string]*clusterv3.Cluster{}, Listeners: map[string]*listenerv3.Listener{}, Routes: map[string]*routev3.RouteConfiguration{}}
	res, err := fetch(clusterType, nil)
	if err != nil {
		return nil, err
	}
	for _, a := range res {
		c := &clusterv3.Cluster{}
		if err := a.UnmarshalTo(c); err != nil {
			return nil, err
		}
		sc.Clusters[c.Name] = c
	}
	if res, err = fetch(listenerType, nil); err != nil {
		return nil, err
	}
	for _, a := range res {
		l := &listenerv3.Listener{}
		if err := a.UnmarshalTo(l); err != nil {
			return nil, err
		}
		sc.Listeners[l.Name] = l
	}
	if len(routes) > 0 {
		if res, err = fetch(routeType, routes); err != nil {
			return nil, err
		}
		for _, a := range res {
			r := &routev3.RouteConfiguration{}
			if err := a.UnmarshalTo(r); err != nil {
				return nil, err
			}
			sc.Routes[r.Name] = r
		}
	}
	return sc, nil
}

// CatchAllCluster is where the outbound catch-all sends traffic to unknown
// hosts: BlackHoleCluster (REGISTRY_ONLY) or PassthroughCluster (ALLOW_ANY).
func (s *Sidecar) CatchAllCluster() (string, error) {
	l, ok := s.Listeners["virtualOutbound"]
	if !ok {
		return "", fmt.Errorf("no listener virtualOutbound among %d", len(s.Listeners))
	}
	for _, fc := range l.FilterChains {
		if fc.Name != "virtualOutbound-catchall-tcp" {
			continue
		}
		for _, f := range fc.Filters {
			tp := &tcpproxyv3.TcpProxy{}
			if f.GetTypedConfig() != nil && f.GetTypedConfig().UnmarshalTo(tp) == nil {
				return tp.GetCluster(), nil
			}
		}
	}
	return "", fmt.Errorf("listener virtualOutbound has no catch-all tcp_proxy")
}

// VirtualHost returns the named virtual host of a route configuration.
func (s *Sidecar) VirtualHost(route, name string) (*routev3.VirtualHost, error) {
	rc, ok := s.Routes[route]
	if !ok {
		return nil, fmt.Errorf("no route configuration %q", route)
	}
	var names []string
	for _, vh := range rc.VirtualHosts {
		if vh.Name == name {
			return vh, nil
		}
		names = append(names, vh.Name)
	}
	return nil, fmt.Errorf("route %q has no virtual host %q (has %v)", route, name, names)
}

// OutboundHCM is the HTTP connection manager of the outbound listener of
// port (0.0.0.0_<port>), which carries the tracing config.
func (s *Sidecar) OutboundHCM(port int) (*hcmv3.HttpConnectionManager, error) {
	name := fmt.Sprintf("0.0.0.0_%d", port)
	l, ok := s.Listeners[name]
	if !ok {
		return nil, fmt.Errorf("no listener %s", name)
	}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			h := &hcmv3.HttpConnectionManager{}
			if f.GetTypedConfig() != nil && f.GetTypedConfig().UnmarshalTo(h) == nil {
				return h, nil
			}
		}
	}
	return nil, fmt.Errorf("listener %s has no HTTP connection manager", name)
}

// OpenTelemetry decodes an HTTP connection manager's tracer as the
// OpenTelemetry one.
func OpenTelemetry(h *hcmv3.HttpConnectionManager) (*tracev3.OpenTelemetryConfig, error) {
	p := h.GetTracing().GetProvider()
	if p == nil {
		return nil, fmt.Errorf("no tracer in the HTTP connection manager")
	}
	otel := &tracev3.OpenTelemetryConfig{}
	if err := p.GetTypedConfig().UnmarshalTo(otel); err != nil {
		return nil, fmt.Errorf("tracer %s is not OpenTelemetry: %w", p.GetName(), err)
	}
	return otel, nil
}

// Headers maps the headers an exporter adds to its requests to their values.
func Headers(opts []*corev3.HeaderValueOption) map[string]string {
	out := map[string]string{}
	for _, o := range opts {
		out[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
	}
	return out
}

// Text is a short protojson-ish rendering for failure messages.
func Text(m proto.Message) string {
	s := fmt.Sprint(m)
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}
