package e2e

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// freeAddr returns a localhost address nothing listens on.
func freeAddr() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := l.Addr().String()
	Expect(l.Close()).To(Succeed())
	return addr
}

func fetch(url, token string) (int, string) {
	GinkgoHelper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// The metrics server's certificate is self-signed when none is mounted.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return resp.StatusCode, string(body)
}

var _ = Describe("the operator's metrics and pprof endpoints", func() {
	It("serves /metrics over HTTPS only to a scraper the API server authorizes", func() {
		metrics, pprof := freeAddr(), freeAddr()
		startOperator("operator-metrics", "--metrics-bind-address="+metrics, "--pprof-bind-address="+pprof)

		By("a scraper with the metrics-reader role, and one without")
		kubectl("create", "namespace", "monitoring")
		DeferCleanup(func() { kubectl("delete", "namespace", "monitoring", "--wait=false") })
		kubectl("create", "serviceaccount", "prometheus", "-n", "monitoring")
		kubectl("create", "serviceaccount", "stranger", "-n", "monitoring")
		kubectl("create", "clusterrole", "e2e-metrics-reader", "--verb=get", "--non-resource-url=/metrics")
		DeferCleanup(func() { kubectl("delete", "clusterrole", "e2e-metrics-reader") })
		kubectl("create", "clusterrolebinding", "e2e-metrics-reader", "--clusterrole=e2e-metrics-reader", "--serviceaccount=monitoring:prometheus")
		DeferCleanup(func() { kubectl("delete", "clusterrolebinding", "e2e-metrics-reader") })
		reader := strings.TrimSpace(kubectl("create", "token", "prometheus", "-n", "monitoring"))
		stranger := strings.TrimSpace(kubectl("create", "token", "stranger", "-n", "monitoring"))

		url := "https://" + metrics + "/metrics"
		Eventually(func() int { code, _ := fetch(url, ""); return code }, 30*time.Second, 200*time.Millisecond).
			Should(Equal(http.StatusUnauthorized))
		code, body := fetch(url, stranger)
		Expect(code).To(Equal(http.StatusForbidden))
		Expect(body).To(ContainSubstring("Authorization denied for user system:serviceaccount:monitoring:stranger"))
		code, body = fetch(url, reader)
		Expect(code).To(Equal(http.StatusOK))
		Expect(body).To(ContainSubstring(`controller_runtime_reconcile_total{controller="meshsettings"`))

		By("pprof on its own localhost address")
		resp, err := http.Get("http://" + pprof + "/debug/pprof/cmdline")
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		cmdline, err := io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(cmdline)).To(ContainSubstring("--pprof-bind-address=" + pprof))
	})
})
