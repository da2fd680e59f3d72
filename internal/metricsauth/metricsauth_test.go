package metricsauth

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/test/harness"
)

func TestMetricsAuth(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "metricsauth Suite")
}

var (
	testEnv  *harness.Env
	admin    *kubernetes.Clientset
	operator *rest.Config // an identity with only config/rbac/metrics_auth_role.yaml
)

var _ = BeforeSuite(func() {
	testEnv = harness.Start()
	admin = kubernetes.NewForConfigOrDie(testEnv.Config)

	By("giving the operator's identity the shipped metrics-auth role and nothing else")
	user, err := testEnv.Env.AddUser(envtest.User{Name: "meshsettings-operator"}, testEnv.Config)
	Expect(err).NotTo(HaveOccurred())
	operator = user.Config()
	raw, err := os.ReadFile(filepath.Join(testEnv.Root, "config", "rbac", "metrics_auth_role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{}
	Expect(yaml.Unmarshal(raw, role)).To(Succeed())
	bind(role, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "meshsettings-operator"})

	By("letting the monitoring/prometheus service account read /metrics, as config/rbac/metrics_reader_role.yaml does")
	raw, err = os.ReadFile(filepath.Join(testEnv.Root, "config", "rbac", "metrics_reader_role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	reader := &rbacv1.ClusterRole{}
	Expect(yaml.Unmarshal(raw, reader)).To(Succeed())
	_, err = admin.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring"}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	for _, sa := range []string{"prometheus", "stranger"} {
		_, err = admin.CoreV1().ServiceAccounts("monitoring").Create(context.Background(),
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	}
	bind(reader, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: "monitoring", Name: "prometheus"})
})

func bind(role *rbacv1.ClusterRole, subject rbacv1.Subject) {
	GinkgoHelper()
	ctx := context.Background()
	_, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{subject},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
}

func token(sa string) string {
	GinkgoHelper()
	tr, err := admin.CoreV1().ServiceAccounts("monitoring").CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

// reviewCounter counts the review requests a Guard sends to the API server.
type reviewCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *reviewCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		switch {
		case strings.HasSuffix(req.URL.Path, "/tokenreviews"):
			c.counts["TokenReview"]++
		case strings.HasSuffix(req.URL.Path, "/subjectaccessreviews"):
			c.counts["SubjectAccessReview"]++
		}
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

func (c *reviewCounter) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// serve runs the filter from FilterProvider in front of a handler that
// answers "metrics", with the API client of the given identity.
func serve(identity *rest.Config) (*httptest.Server, *reviewCounter) {
	counter := &reviewCounter{counts: map[string]int{}}
	cfg := rest.CopyConfig(identity)
	cfg.Wrap(counter.wrap)
	httpClient, err := rest.HTTPClientFor(cfg)
	Expect(err).NotTo(HaveOccurred())
	filter, err := FilterProvider(cfg, httpClient)
	Expect(err).NotTo(HaveOccurred())
	h, err := filter(zap.New(zap.WriteTo(GinkgoWriter)), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "metrics")
	}))
	Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(h)
	DeferCleanup(srv.Close)
	return srv, counter
}

func get(srv *httptest.Server, method, authorization string) (int, string) {
	req, err := http.NewRequest(method, srv.URL+"/metrics", nil)
	Expect(err).NotTo(HaveOccurred())
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := srv.Client().Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, strings.TrimSpace(string(body))
}

var _ = Describe("the metrics filter", func() {
	It("serves a scraper that may get /metrics, and reviews its token once", func() {
		srv, reviews := serve(operator)
		tok := token("prometheus")
		code, body := get(srv, http.MethodGet, "Bearer "+tok)
		Expect(code).To(Equal(http.StatusOK))
		Expect(body).To(Equal("metrics"))
		Expect(reviews.get()).To(Equal(map[string]int{"TokenReview": 1, "SubjectAccessReview": 1}))

		By("answering the next scrapes from the cache")
		for range 3 {
			code, _ = get(srv, http.MethodGet, "bearer "+tok)
			Expect(code).To(Equal(http.StatusOK))
		}
		Expect(reviews.get()).To(Equal(map[string]int{"TokenReview": 1, "SubjectAccessReview": 1}))
	})

	It("answers 401 without a bearer token, and sends no review", func() {
		srv, reviews := serve(operator)
		for _, auth := range []string{"", "Bearer ", "Basic dXNlcjpwYXNz", token("prometheus")} {
			code, body := get(srv, http.MethodGet, auth)
			Expect(code).To(Equal(http.StatusUnauthorized), "Authorization: %q", auth)
			Expect(body).To(Equal("Unauthorized"))
		}
		Expect(reviews.get()).To(BeEmpty())
	})

	It("answers 401 to a token the API server rejects, and remembers the rejection", func() {
		srv, reviews := serve(operator)
		for range 2 {
			code, body := get(srv, http.MethodGet, "Bearer not-a-token")
			Expect(code).To(Equal(http.StatusUnauthorized))
			Expect(body).To(Equal("Unauthorized"))
		}
		Expect(reviews.get()).To(Equal(map[string]int{"TokenReview": 1}))
	})

	It("answers 403 to an authenticated user without the reader role, naming the user", func() {
		srv, _ := serve(operator)
		code, body := get(srv, http.MethodGet, "Bearer "+token("stranger"))
		Expect(code).To(Equal(http.StatusForbidden))
		Expect(body).To(Equal("Authorization denied for user system:serviceaccount:monitoring:stranger"))
	})

	It("authorizes the HTTP method as the verb: the reader role grants get, not post", func() {
		srv, _ := serve(operator)
		code, body := get(srv, http.MethodPost, "Bearer "+token("prometheus"))
		Expect(code).To(Equal(http.StatusForbidden))
		Expect(body).To(ContainSubstring("system:serviceaccount:monitoring:prometheus"))
	})

	It("answers 500 when the operator may not review tokens, rather than letting the scraper in", func() {
		nobody, err := testEnv.Env.AddUser(envtest.User{Name: "no-rbac"}, operator)
		Expect(err).NotTo(HaveOccurred())
		srv, _ := serve(nobody.Config())
		code, body := get(srv, http.MethodGet, "Bearer "+token("prometheus"))
		Expect(code).To(Equal(http.StatusInternalServerError))
		Expect(body).To(Equal("Authentication failed"))
	})
})

func TestTTLCacheStaysBounded(t *testing.T) {
	var c ttlCache[bool]
	for i := range maxEntries * 3 {
		c.put(strings.Repeat("k", i+1), true, allowTTL)
		if len(c.entries) > maxEntries {
			t.Fatalf("cache holds %d entries after %d puts, bound is %d", len(c.entries), i+1, maxEntries)
		}
	}
	if v, ok := c.get(strings.Repeat("k", maxEntries*3)); !ok || !v {
		t.Fatalf("the newest entry is gone: %v %v", v, ok)
	}
}

func TestAccessKeyDistinguishesUsers(t *testing.T) {
	base := authenticationv1.UserInfo{Username: "u", Groups: []string{"a", "b"}, Extra: map[string]authenticationv1.ExtraValue{"x": {"1"}}}
	same := authenticationv1.UserInfo{Username: "u", Groups: []string{"b", "a"}, Extra: map[string]authenticationv1.ExtraValue{"x": {"1"}}}
	if accessKey(&base, "get", "/metrics") != accessKey(&same, "get", "/metrics") {
		t.Fatal("group order changed the key")
	}
	others := []authenticationv1.UserInfo{
		{Username: "v", Groups: base.Groups, Extra: base.Extra},
		{Username: "u", Groups: []string{"a"}, Extra: base.Extra},
		{Username: "u", Groups: base.Groups, Extra: map[string]authenticationv1.ExtraValue{"x": {"2"}}},
		{Username: "u", Groups: base.Groups},
	}
	for _, o := range others {
		if accessKey(&base, "get", "/metrics") == accessKey(&o, "get", "/metrics") {
			t.Errorf("%+v shares the key of %+v", o, base)
		}
	}
	if accessKey(&base, "get", "/metrics") == accessKey(&base, "post", "/metrics") ||
		accessKey(&base, "get", "/metrics") == accessKey(&base, "get", "/healthz") {
		t.Error("verb or path not in the key")
	}
}
