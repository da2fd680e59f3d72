package render

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/istioschema"
)

func passthrough(key, value string) *v1alpha1.MeshSettings {
	return &v1alpha1.MeshSettings{Spec: v1alpha1.MeshSettingsSpec{
		MeshConfig: map[string]apiextensionsv1.JSON{key: {Raw: []byte(value)}},
	}}
}

func otel(header v1alpha1.HTTPHeader, grpc bool) *v1alpha1.MeshSettings {
	p := &v1alpha1.OpenTelemetryProvider{Endpoint: v1alpha1.Endpoint{Service: "otel.observability.svc.cluster.local", Port: 4317}}
	if grpc {
		p.GRPC = &v1alpha1.OpenTelemetryGRPC{}
	} else {
		p.HTTP = &v1alpha1.OpenTelemetryHTTP{Path: "/v1/traces", Headers: []v1alpha1.HTTPHeader{header}}
	}
	return &v1alpha1.MeshSettings{Spec: v1alpha1.MeshSettingsSpec{Tracing: &v1alpha1.Tracing{
		Providers: []v1alpha1.TracingProvider{{Name: "otel", OpenTelemetry: p}},
	}}}
}

// A setting is refused one release before it appears (the message names the
// field, the release that added it and what istiod runs) and accepted from
// that release on, for passthrough keys at any depth, enum values and typed
// fields.
func TestDesireRefusesWhatTheTargetReleaseDoesNotRead(t *testing.T) {
	cases := []struct {
		name, added, field string
		ms                 *v1alpha1.MeshSettings
	}{
		{"inboundTrafficPolicy", "1.22", "", passthrough("inboundTrafficPolicy", `{"mode":"LOCALHOST"}`)},
		{"serviceScopeConfigs", "1.27", "spec.meshConfig.serviceScopeConfigs", passthrough("serviceScopeConfigs", `[{"scope":"GLOBAL","servicesSelector":{"matchLabels":{"a":"b"}}}]`)},
		{"hboneIdleTimeout", "1.29", "spec.meshConfig.hboneIdleTimeout", passthrough("hboneIdleTimeout", `"3600s"`)},
		{"defaultTrafficPolicy", "1.31", "spec.meshConfig.defaultTrafficPolicy", passthrough("defaultTrafficPolicy", `{"connectionPool":{"tcp":{"maxConnections":10}}}`)},
		{"serviceEntryVisibility", "1.31", "spec.meshConfig.serviceEntryVisibility", passthrough("serviceEntryVisibility", `{"defaultVisibility":"PUBLIC"}`)},
		{"zoneAwareLbSetting", "1.31", "spec.meshConfig.zoneAwareLbSetting", passthrough("zoneAwareLbSetting", `{}`)},
		{"defaultInboundHttpRetryPolicy", "1.32", "spec.meshConfig.defaultInboundHttpRetryPolicy", passthrough("defaultInboundHttpRetryPolicy", `{"attempts":2}`)},
		{"defaultConfig.fileFlushInterval", "1.29", "spec.meshConfig.defaultConfig.fileFlushInterval", passthrough("defaultConfig", `{"fileFlushInterval":"10s"}`)},
		{"defaultConfig.fileFlushMinSizeKb", "1.29", "spec.meshConfig.defaultConfig.fileFlushMinSizeKb", passthrough("defaultConfig", `{"fileFlushMinSizeKb":64}`)},
		{"defaultConfig.statsCompression", "1.29", "spec.meshConfig.defaultConfig.statsCompression", passthrough("defaultConfig", `{"statsCompression":true}`)},
		{"defaultConfig.connectionSettings", "1.31", "spec.meshConfig.defaultConfig.connectionSettings", passthrough("defaultConfig", `{"connectionSettings":{"profile":"EDGE"}}`)},
		// An enum value inside a list item.
		{"serviceScopeConfigs scope value", "1.27", "", passthrough("serviceScopeConfigs", `[{"scope":"LOCAL"}]`)},
		// Typed fields: an enum value and keys three levels down.
		{"ALLOW_ANY_DYNAMIC_DNS", "1.30", "spec.outboundTrafficPolicy.mode", &v1alpha1.MeshSettings{Spec: v1alpha1.MeshSettingsSpec{
			OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundAllowAnyDynamicDNS}}}},
		{"opentelemetry grpc", "1.24", "spec.tracing.providers[0].opentelemetry.grpc", otel(v1alpha1.HTTPHeader{}, true)},
		{"opentelemetry header envName", "1.26", "spec.tracing.providers[0].opentelemetry.http.headers[0].envName",
			otel(v1alpha1.HTTPHeader{Name: "x-token", EnvName: ptr.To("OTEL_TOKEN")}, false)},
	}
	s := istioschema.Load()
	for _, c := range cases {
		added, _ := istioschema.ParseRelease(c.added)
		for _, r := range s.Releases() {
			tag := fmt.Sprintf("%s.1", r)
			_, err := Desire(c.ms, Current{IstiodVersion: tag})
			if !r.Less(added) {
				if err != nil {
					t.Errorf("%s on istiod %s (added in %s): %v", c.name, tag, c.added, err)
				}
				continue
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("%s on istiod %s (added in %s): want a FieldError, got %v", c.name, tag, c.added, err)
				continue
			}
			if c.field != "" && fe.Field != c.field {
				t.Errorf("%s on %s: field %q, want %q", c.name, tag, fe.Field, c.field)
			}
			if want := "is read by istiod " + c.added + " and later; istiod runs " + tag; !strings.Contains(fe.Error(), want) {
				t.Errorf("%s on %s: %q does not say %q", c.name, tag, fe.Error(), want)
			}
		}
	}
}

// The example, word for word: a revision's istiod, a passthrough key.
func TestReleaseMessage(t *testing.T) {
	ms := passthrough("hboneIdleTimeout", `"3600s"`)
	ms.Spec.Revision = "canary"
	_, err := Desire(ms, Current{IstiodVersion: "1.28.1"})
	const want = "spec.meshConfig.hboneIdleTimeout is read by istiod 1.29 and later; istiod-canary runs 1.28.1"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	// An enum value names the value.
	ms = &v1alpha1.MeshSettings{Spec: v1alpha1.MeshSettingsSpec{OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundAllowAnyDynamicDNS}}}
	_, err = Desire(ms, Current{IstiodVersion: "1.29.0-distroless"})
	const wantEnum = "spec.outboundTrafficPolicy.mode: ALLOW_ANY_DYNAMIC_DNS is read by istiod 1.30 and later; istiod runs 1.29.0-distroless"
	if err == nil || err.Error() != wantEnum {
		t.Fatalf("got %v\nwant %s", err, wantEnum)
	}
}

func TestResolveRelease(t *testing.T) {
	stated := func(v string) *v1alpha1.MeshSettingsSpec {
		return &v1alpha1.MeshSettingsSpec{Target: &v1alpha1.Target{IstiodVersion: v}}
	}
	for _, c := range []struct {
		spec                 *v1alpha1.MeshSettingsSpec
		tag, release, source string
		noteSays             string
	}{
		{&v1alpha1.MeshSettingsSpec{}, "1.28.1-distroless", "1.28", ReleaseFromImageTag, ""},
		{&v1alpha1.MeshSettingsSpec{}, "latest", "1.32", ReleaseAssumed, `tag "latest" names no Istio release`},
		{&v1alpha1.MeshSettingsSpec{}, "", "1.32", ReleaseAssumed, "has no tag"},
		{stated("1.27.3"), "latest", "1.27", ReleaseFromSpec, ""},
		{stated("1.27"), "1.30.0", "1.27", ReleaseFromSpec, ""},
		{&v1alpha1.MeshSettingsSpec{}, "1.40.0", "1.32", ReleaseFromImageTag, "newer than the newest release known"},
		{&v1alpha1.MeshSettingsSpec{}, "1.20.0", "1.22", ReleaseFromImageTag, "older than the oldest release known"},
	} {
		got := ResolveRelease(c.spec, c.tag)
		if got.Release.String() != c.release || got.Source != c.source || (c.noteSays == "") != (got.Note == "") || !strings.Contains(got.Note, c.noteSays) {
			t.Errorf("ResolveRelease(%+v, %q) = %+v; want release %s from %s, note saying %q", c.spec.Target, c.tag, got, c.release, c.source, c.noteSays)
		}
	}
}

// An unknown tag means the newest release: a 1.32 key is written (it was
// refused by the compiled 1.31 type before), and the message says what was
// assumed when the stated release is older.
func TestAssumedAndStatedRelease(t *testing.T) {
	ms := passthrough("defaultInboundHttpRetryPolicy", `{"attempts":2}`)
	d, err := Desire(ms, Current{IstiodVersion: "latest"})
	if err != nil {
		t.Fatalf("latest: %v", err)
	}
	if d.Release.Source != ReleaseAssumed || !strings.Contains(d.Mesh.Document, "defaultInboundHttpRetryPolicy") {
		t.Errorf("latest: release %+v, document %q", d.Release, d.Mesh.Document)
	}
	ms.Spec.Target = &v1alpha1.Target{IstiodVersion: "1.31.2"}
	_, err = Desire(ms, Current{IstiodVersion: "latest"})
	const want = "spec.meshConfig.defaultInboundHttpRetryPolicy is read by istiod 1.32 and later; istiod runs 1.31.2 (spec.target.istiodVersion)"
	if err == nil || err.Error() != want {
		t.Errorf("stated 1.31.2: %v\nwant %s", err, want)
	}
	ms.Spec.Target = nil
	ms.Spec.MeshConfig = map[string]apiextensionsv1.JSON{"hboneIdleTimeout": {Raw: []byte(`"3600s"`)}}
	_, err = Desire(ms, Current{IstiodVersion: "1.40.0"})
	if err != nil {
		t.Errorf("1.40 (newer than the table, checked as 1.32): %v", err)
	}
}

// Other managers' keys the release does not read are listed, not refused;
// the operator's own keys are not listed.
func TestUnreadKeysOfOtherManagers(t *testing.T) {
	helm := "hboneIdleTimeout: 1h\ndefaultConfig:\n  statsCompression: true\n  discoveryAddress: istiod:15012\n"
	ms := passthrough("defaultConfig", `{"concurrency":2}`)
	d, err := Desire(ms, Current{IstiodVersion: "1.28.1", MeshDocument: helm})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"mesh key defaultConfig.statsCompression (not the operator's) is read by istiod 1.29 and later: istiod 1.28 ignores it",
		"mesh key hboneIdleTimeout (not the operator's) is read by istiod 1.29 and later: istiod 1.28 ignores it",
	}
	if strings.Join(d.Unread, "\n") != strings.Join(want, "\n") {
		t.Errorf("unread:\n%s\nwant:\n%s", strings.Join(d.Unread, "\n"), strings.Join(want, "\n"))
	}
	// Keys the operator manages are its own verdict, not a report.
	d, err = Desire(passthrough("hboneIdleTimeout", `"7200s"`), Current{IstiodVersion: "1.29.0", MeshDocument: helm})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range d.Unread {
		if strings.Contains(u, "hboneIdleTimeout") {
			t.Errorf("the operator's own key reported: %s", u)
		}
	}
}

// Typed env settings follow the same target release: on a "latest" image
// (1.32 assumed) a variable removed in 1.27 is ignored; a stated 1.26 writes it.
func TestEnvFollowsTheTargetRelease(t *testing.T) {
	ms := &v1alpha1.MeshSettings{Spec: v1alpha1.MeshSettingsSpec{Istiod: &v1alpha1.Istiod{
		Features: &v1alpha1.IstiodFeatures{InboundRetryPolicy: ptr.To(true)}}}}
	d, err := Desire(ms, Current{IstiodVersion: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Env.Env) != 0 || len(d.Env.Ignored) != 1 || d.Env.Ignored[0].Name != "ENABLE_INBOUND_RETRY_POLICY" {
		t.Errorf("latest (1.32 assumed): env %v, ignored %v", d.Env.Env, d.Env.Ignored)
	}
	ms.Spec.Target = &v1alpha1.Target{IstiodVersion: "1.26.4"}
	d, err = Desire(ms, Current{IstiodVersion: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Env.Env) != 1 || d.Env.Env[0].Name != "ENABLE_INBOUND_RETRY_POLICY" || len(d.Env.Ignored) != 0 {
		t.Errorf("stated 1.26.4: env %v, ignored %v", d.Env.Env, d.Env.Ignored)
	}
}

// An enum value another manager wrote that the release does not know makes
// istiod reject the whole document: MeshDocumentRejected, nothing written;
// the operator setting that key itself takes it over.
func TestForeignEnumValueTheReleaseRejects(t *testing.T) {
	helm := "outboundTrafficPolicy:\n  mode: ALLOW_ANY_DYNAMIC_DNS\ntrustDomain: cluster.local\n"
	ms := passthrough("defaultConfig", `{"concurrency":2}`)
	_, err := Desire(ms, Current{IstiodVersion: "1.28.1", MeshDocument: helm})
	var de *MeshDocumentError
	const want = "outboundTrafficPolicy.mode (written by another manager): ALLOW_ANY_DYNAMIC_DNS is read by istiod 1.30 and later; istiod runs 1.28.1"
	if !errors.As(err, &de) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant a MeshDocumentError saying %q", err, want)
	}
	if _, err := Desire(ms, Current{IstiodVersion: "1.30.0", MeshDocument: helm}); err != nil {
		t.Errorf("1.30 reads it: %v", err)
	}
	if _, err := Desire(registryOnly(), Current{IstiodVersion: "1.28.1", MeshDocument: helm}); err != nil {
		t.Errorf("the spec sets outboundTrafficPolicy: %v", err)
	}
}
