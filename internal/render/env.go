package render

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// Version is an Istio minor version read from istiod's image tag.
type Version struct{ Major, Minor int }

var tagVersion = regexp.MustCompile(`^v?(\d+)\.(\d+)`)

// IstiodVersion returns the tag of image ("docker.io/istio/pilot:1.28.1" ->
// "1.28.1"), or "" for an untagged or digest-only image.
func IstiodVersion(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	return image[i+1:]
}

// ParseVersion reads major.minor from a tag such as "1.28.1-distroless";
// ok is false for tags like "latest" whose version cannot be known.
func ParseVersion(tag string) (v Version, ok bool) {
	m := tagVersion.FindStringSubmatch(tag)
	if m == nil {
		return Version{}, false
	}
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	return v, true
}

// Less orders versions.
func (v Version) Less(o Version) bool {
	return v.Major < o.Major || (v.Major == o.Major && v.Minor < o.Minor)
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// removedEnv lists istiod variables newer Istio no longer reads.
var removedEnv = map[string]Version{
	"ENABLE_ENHANCED_RESOURCE_SCOPING":      {1, 25},
	"ENABLE_DEFERRED_CLUSTER_CREATION":      {1, 26},
	"ENABLE_INBOUND_RETRY_POLICY":           {1, 27},
	"EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY": {1, 27},
}

// EnvResult is the istiod environment the spec owns.
type EnvResult struct {
	// Env is sorted by name: a reordered env list is a new pod template and restarts istiod.
	Env []corev1.EnvVar
	// Ignored lists settings skipped because the istiod version does not read them.
	Ignored []v1alpha1.IgnoredSetting
}

type envSetting struct {
	field, name, value string
}

// Env returns the istiod environment entries spec sets. istiodTag is the
// image tag of the running istiod ("" when unknown): variables that version
// no longer reads are left out and reported in Ignored.
func Env(spec *v1alpha1.MeshSettingsSpec, istiodTag string) EnvResult {
	var settings []envSetting
	add := func(field, name, value string) { settings = append(settings, envSetting{field, name, value}) }
	if t := spec.Tracing; t != nil && t.SamplingPercentage != "" {
		add("spec.tracing.samplingPercentage", "PILOT_TRACE_SAMPLING", t.SamplingPercentage)
	}
	if i := spec.Istiod; i != nil {
		if i.CertProvider != "" {
			add("spec.istiod.certProvider", "PILOT_CERT_PROVIDER", i.CertProvider)
		}
		if i.ClusterID != "" {
			add("spec.istiod.clusterID", "CLUSTER_ID", i.ClusterID)
		}
		// istiod parses these with time.ParseDuration, so Go's form is right here.
		if i.WorkloadCertTTL != nil {
			add("spec.istiod.workloadCertTTL", "DEFAULT_WORKLOAD_CERT_TTL", goDuration(i.WorkloadCertTTL.Duration))
		}
		if i.SelfSignedCACertTTL != nil {
			add("spec.istiod.selfSignedCACertTTL", "CITADEL_SELF_SIGNED_CA_CERT_TTL", goDuration(i.SelfSignedCACertTTL.Duration))
		}
		if i.SelfSignedRootCertCheckInterval != nil {
			add("spec.istiod.selfSignedRootCertCheckInterval", "CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL", goDuration(i.SelfSignedRootCertCheckInterval.Duration))
		}
		if i.JWTPubKeyRefreshInterval != nil {
			add("spec.istiod.jwtPubKeyRefreshInterval", "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", goDuration(i.JWTPubKeyRefreshInterval.Duration))
		}
		if f := i.Features; f != nil {
			flag := func(field, name string, v *bool) {
				if v != nil {
					add("spec.istiod.features."+field, name, strconv.FormatBool(*v))
				}
			}
			flag("enhancedResourceScoping", "ENABLE_ENHANCED_RESOURCE_SCOPING", f.EnhancedResourceScoping)
			flag("deferredClusterCreation", "ENABLE_DEFERRED_CLUSTER_CREATION", f.DeferredClusterCreation)
			flag("deferredStatsCreation", "ENABLE_DEFERRED_STATS_CREATION", f.DeferredStatsCreation)
			flag("enhancedDestinationRuleMerge", "ENABLE_ENHANCED_DESTINATIONRULE_MERGE", f.EnhancedDestinationRuleMerge)
			flag("inboundRetryPolicy", "ENABLE_INBOUND_RETRY_POLICY", f.InboundRetryPolicy)
			flag("excludeUnsafe503FromDefaultRetry", "EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY", f.ExcludeUnsafe503FromDefaultRetry)
		}
		for _, e := range i.Env {
			add("spec.istiod.env["+e.Name+"]", e.Name, e.Value)
		}
	}

	version, known := ParseVersion(istiodTag)
	var res EnvResult
	for _, s := range settings {
		if removedIn, removed := removedEnv[s.name]; removed && known && !version.Less(removedIn) {
			res.Ignored = append(res.Ignored, v1alpha1.IgnoredSetting{
				Field:  s.field,
				Name:   s.name,
				Reason: fmt.Sprintf("istiod %s does not read %s (removed in Istio %s)", istiodTag, s.name, removedIn),
			})
			continue
		}
		res.Env = append(res.Env, corev1.EnvVar{Name: s.name, Value: s.value})
	}
	sort.Slice(res.Env, func(a, b int) bool { return res.Env[a].Name < res.Env[b].Name })
	return res
}

// goDuration is time.Duration's String without trailing zero units
// ("24h", not "24h0m0s"); time.ParseDuration reads both.
func goDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// CheckVersion reports settings the running istiod cannot parse at all:
// writing them would make istiod reject the whole mesh document.
func CheckVersion(spec *v1alpha1.MeshSettingsSpec, istiodTag string) error {
	version, known := ParseVersion(istiodTag)
	if !known {
		return nil
	}
	if p := spec.OutboundTrafficPolicy; p != nil && p.Mode == v1alpha1.OutboundAllowAnyDynamicDNS && version.Less(Version{1, 30}) {
		return &FieldError{
			Field: "spec.outboundTrafficPolicy.mode",
			Msg:   fmt.Sprintf("ALLOW_ANY_DYNAMIC_DNS needs Istio 1.30 or later; istiod runs %s and would reject the whole mesh document", istiodTag),
		}
	}
	return nil
}
