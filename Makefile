# Image URL to use all building/pushing image targets
IMG ?= ghcr.io/meshsettings/meshsettings-operator:latest

# Kubernetes version of the envtest control plane (hack/envtest.sh: setup-envtest, else built from source).
ENVTEST_K8S_VERSION ?= 1.36.3

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

# Setting SHELL to bash allows bash commands to be executed by recipes.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

CONTAINER_TOOL ?= docker

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests into config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases
	cp config/crd/bases/*.yaml charts/meshsettings-operator/crds/
	@# render validates against the CRD embedded in the binary: the same generated file.
	cp config/crd/bases/mesh.meshsettings.io_meshsettings.yaml internal/admission/

.PHONY: generate
generate: controller-gen schema ## Generate DeepCopy methods and apply configurations, and the per-release Istio schema.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" applyconfiguration:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: schema
schema: ## Regenerate internal/istioschema/schema.txt from the protos of one istio.io/api release per minor (hack/schemagen; module cache, else the Go module proxy).
	cd hack/schemagen && go run -mod=readonly . -o ../../internal/istioschema/schema.txt

.PHONY: test-schema
test-schema: ## Fail when regenerating internal/istioschema/schema.txt would change it (run before generate rewrites it).
	cd hack/schemagen && go test -mod=readonly -count=1 ./...

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (.golangci.yml) over the root module's packages (test/oracle, test/helmchart and the other nested modules are not linted).
	$(GOLANGCI_LINT) run ./...

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint and apply the fixes it can make itself.
	$(GOLANGCI_LINT) run --fix ./...

.PHONY: test
test: test-schema manifests generate fmt vet envtest ## Run unit, envtest and e2e tests.
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test ./... -coverprofile cover.out
	cd test/helmchart && KUBEBUILDER_ASSETS="$(abspath $(ENVTEST_ASSETS))" go test -mod=readonly ./...
	@# test/bench's own unit tests (its measurements run in `make bench`).
	cd test/bench && go test -mod=readonly -count=1 .
	$(MAKE) test-oracle
	$(MAKE) test-helm
	$(MAKE) test-istiod

# The pure packages: everything but the envtest suites runs in seconds.
UNIT_PKGS ?= ./api/... ./internal/... ./controllers/... ./test/gitops/... ./test/harness/... ./test/textdiff/...
# The envtest suites are the Ginkgo suites (hack/envtest-suites.sh lists them).
ENVTEST_SUITES = $(shell hack/envtest-suites.sh)

.PHONY: test-unit
test-unit: ## Run the pure packages' tests only (api, internal/..., the pure parts of controllers): no API server, seconds.
	@# KUBEBUILDER_ASSETS points nowhere, so an envtest suite missed by ENVTEST_SUITES fails here instead of running.
	KUBEBUILDER_ASSETS=/nonexistent go test -skip '^($(ENVTEST_SUITES))$$' $(UNIT_PKGS)

.PHONY: test-oracle
test-oracle: ## Check rendered mesh documents with Istio's own parser and validation (module test/oracle), then fuzz render and internal/meshcheck (against Istio's verdicts) for 20s each.
	cd test/oracle && go test ./... && go test -run='^$$' -fuzz=FuzzRenderOracle -fuzztime=20s . && go test -run='^$$' -fuzz=FuzzMeshCheck -fuzztime=20s .

.PHONY: test-helm
test-helm: envtest ## Run the operator beside Istio's real istio-discovery chart with the real Helm 4 and Helm 3 CLIs and a real istiod (module test/helm); prints generation counts per step and the handoff gap.
	@# Each tool is built once and cached outside the clone; `go test` without a package argument shows the tables of a passing run too.
	helm4=$$(hack/helm.sh 4) && helm3=$$(hack/helm.sh 3) && istiod=$$(hack/istiod.sh) && \
		cd test/helm && KUBEBUILDER_ASSETS="$(abspath $(ENVTEST_ASSETS))" HELM4_BINARY="$$helm4" HELM3_BINARY="$$helm3" ISTIOD_BINARY="$$istiod" \
		go test -mod=readonly -count=1 -timeout 30m -ginkgo.no-color

.PHONY: test-istiod
test-istiod: envtest ## Prove the operator's writes against a real istiod (module test/istiod); builds and caches istiod first (minutes, once).
	@# hack/istiod.sh prints the cached binary's path (building it the first time); ISTIOD_BINARY set wins.
	ISTIOD_BINARY="$$(hack/istiod.sh)" && cd test/istiod && ISTIOD_BINARY="$$ISTIOD_BINARY" \
		KUBEBUILDER_ASSETS="$(abspath $(ENVTEST_ASSETS))" go test -mod=readonly -count=1 -timeout 30m -ginkgo.no-color

.PHONY: bench
bench: manifests envtest ## Benchmarks of the operator binary on a local control plane (latency curve 1k-50k namespaces, CPU per namespace event, writes, memory, helm upgrade side by side; module test/bench) and of render; see BENCHMARKS.md. BENCH_ARGS=-strict fails on a missed target.
	@# Writes docs/bench/convergence.svg, the chart BENCHMARKS.md links. test/bench is its own module (the Helm v4 SDK stays out of go.mod).
	cd test/bench && KUBEBUILDER_ASSETS="$(abspath $(ENVTEST_ASSETS))" go run -mod=readonly . \
		-render-bench "./internal/render/ ./internal/rendercmd/" -svg "$(abspath docs/bench/convergence.svg)" -pods 50000 $(BENCH_ARGS)

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager binary.
	go build -o bin/manager .

.PHONY: run
run: manifests generate fmt vet ## Run the operator from your host against the current kubeconfig.
	go run ./main.go

.PHONY: docker-build
docker-build: ## Build the manager image.
	$(CONTAINER_TOOL) build -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push the manager image.
	$(CONTAINER_TOOL) push ${IMG}

.PHONY: build-installer
build-installer: manifests generate kustomize ## Write dist/install.yaml: CRD, RBAC and the manager Deployment.
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=${IMG}
	$(KUSTOMIZE) build config/default > dist/install.yaml

##@ Demo

.PHONY: demo
demo: manifests envtest ## Run the operator on a built-in local control plane (no cluster needed); with a cached istiod (or DEMO_ISTIOD=1, which builds it) also istiod's own view.
	@# istiod only when it is already built, unless DEMO_ISTIOD=1 asks for the build (minutes, once).
	istiod=$$(if [ "$(DEMO_ISTIOD)" = 1 ]; then hack/istiod.sh; else hack/istiod.sh --cached || true; fi) && \
		KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" ISTIOD_BINARY="$$istiod" go run ./hack/demo

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install the CRD into the cluster of the current kubeconfig.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall the CRD. ignore-not-found=true ignores missing resources.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the operator to the cluster of the current kubeconfig.
	cd config/manager && $(KUSTOMIZE) edit set image controller=${IMG}
	$(KUSTOMIZE) build config/default | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Undeploy the operator. ignore-not-found=true ignores missing resources.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p $(LOCALBIN)

KUBECTL ?= kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint

KUSTOMIZE_VERSION ?= v5.8.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0
# v2.15.0 is built with (and lints) Go 1.26.
GOLANGCI_LINT_VERSION ?= v2.15.0

.PHONY: envtest
envtest: ## Provide (once, cached) kube-apiserver, etcd and kubectl for envtest: setup-envtest's download, else a build from source; link them into bin/k8s.
	$(eval ENVTEST_ASSETS := $(shell ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/envtest.sh || echo FAILED))
	@if [ "$(ENVTEST_ASSETS)" = FAILED ]; then echo "envtest: could not provide the control plane binaries (see above)"; exit 1; fi
	@echo "envtest assets: $(ENVTEST_ASSETS)"

.PHONY: helm
helm: ## Build (once, cached) the Helm 4 and Helm 3 CLIs (hack/helm/v4, hack/helm/v3) for the Helm tests; prints their paths.
	@hack/helm.sh 4
	@hack/helm.sh 3

.PHONY: istiod
istiod: ## Build (once, cached) istiod (pilot-discovery) from the pinned istio.io/istio for the real-istiod tests; prints its path.
	@hack/istiod.sh

.PHONY: istiod-env
istiod-env: ## Regenerate internal/render/istiod_env.txt (the env vars the pinned istiod reads) from `pilot-discovery collateral`.
	hack/istiod-env.sh

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Download golangci-lint locally if necessary.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $${package} ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef
