#!/usr/bin/env bash
# Checks the Helm chart in deploy/helm/enricher and the static binary that the
# Dockerfile builds, with no Docker engine, cluster or network beyond the Go
# module proxy and Debian's packages. Stages, in order:
#
#   binary     builds ./cmd/enricher as the Dockerfile does, checks that it is
#              static and that it exits non-zero naming ENRICHER_KAFKA_BROKERS
#              when started without environment
#   lint       helm lint --strict and helm template with every
#              ci/*-values.yaml, and every ci/invalid/*.yaml must fail to
#              render with the message on its "# expect:" line
#   validate   kubeconform -strict on the rendered manifests, against schemas
#              generated from the Kubernetes OpenAPI spec and the KEDA and
#              prometheus-operator CRDs
#   apiserver  kube-apiserver and etcd on 127.0.0.1, a namespace that enforces
#              Pod Security "restricted", kubectl apply --dry-run=server
#              --validate=strict, the enricher's configuration parser on each
#              Deployment's environment (envcheck), then helm install,
#              upgrade and uninstall
#
# Usage, from the repository root: deploy/helm/test.sh [stage ...]
# With no stage it runs all four. Tools are installed once into
# ENRICHER_TOOLS_DIR (default ~/.cache/enricher-deploy-tools) and reused.
set -euo pipefail

readonly HELM_VERSION=v4.3.2
readonly KUBECONFORM_VERSION=v0.8.0
# The API server, kubectl and the core schemas all come from this release.
readonly KUBERNETES_VERSION=1.36.3
# The KEDA CRDs come from this release. The go.mod of v2.21 declares Go
# 1.27.4, newer than this repository's toolchain.
readonly KEDA_VERSION=v2.20.2
# The newest version of the root module that the Go module proxy serves.
readonly PROMETHEUS_OPERATOR_VERSION=v0.85.0

ROOT=$(pwd)
readonly ROOT
readonly CHART="$ROOT/deploy/helm/enricher"
readonly TOOLS="${ENRICHER_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/enricher-deploy-tools}"
readonly RELEASE=enricher-ci
readonly NAMESPACE=enricher-ci

if [[ ! -f "$CHART/Chart.yaml" ]]; then
	echo "test.sh: $CHART/Chart.yaml not found: run deploy/helm/test.sh from the repository root" >&2
	exit 1
fi

WORK=$(mktemp -d)
readonly WORK
PIDS=()

# cleanup kills the test cluster and removes the scratch directory. It
# sends SIGKILL, because a kube-apiserver whose etcd is gone can take many
# minutes to finish a graceful shutdown, and the cluster keeps no state.
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

log() {
	echo "  $*"
}

# --- tools -----------------------------------------------------------------

# install_packages takes COMMAND:PACKAGE pairs and installs the Debian
# packages of the commands that the machine lacks.
install_packages() {
	local missing=() pair
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
	done
	((${#missing[@]} > 0)) || return 0
	[[ $(id -u) -eq 0 ]] || fail "missing commands: run apt-get install ${missing[*]} as root"
	log "installing Debian packages: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# quiet runs a command with its output in $WORK/quiet.log, which it shows
# only when the command fails, so that a cold module cache does not fill
# the log with download lines.
quiet() {
	"$@" >"$WORK/quiet.log" 2>&1 || {
		local status=$?
		cat "$WORK/quiet.log" >&2
		return "$status"
	}
}

# go_install installs a Go command into $TOOLS/NAME-VERSION/ unless it is
# already there, and prints the path of the binary.
go_install() {
	local name=$1 package=$2 version=$3
	local dir="$TOOLS/$name-$version"
	if [[ ! -x "$dir/$name" ]]; then
		echo "  installing $package@$version" >&2
		mkdir -p "$dir"
		GOBIN="$dir" GOFLAGS=-buildvcs=false quiet nice -n 19 go install "$package@$version"
	fi
	echo "$dir/$name"
}

# module_dir downloads a Go module into the module cache and prints its
# directory.
module_dir() {
	local dir
	dir=$(cd "$WORK" && GOFLAGS='' go mod download -json "$1@$2" 2>"$WORK/download.log" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[[ -n "$dir" && -d "$dir" ]] || { cat "$WORK/download.log" >&2; fail "downloading Go module $1@$2 failed"; }
	echo "$dir"
}

HELM=""
helm_bin() {
	if [[ -z "$HELM" ]]; then
		HELM=$(go_install helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION")
	fi
}

# build_kubernetes builds kube-apiserver and kubectl from the k8s.io/kubernetes
# module into $TOOLS/kubernetes-v$KUBERNETES_VERSION/. The module's go.mod
# points the k8s.io staging modules at ./staging, which a module zip leaves
# out, so a scratch copy requires their published v0.X.Y releases instead.
build_kubernetes() {
	local out="$TOOLS/kubernetes-v$KUBERNETES_VERSION"
	if [[ -x "$out/kube-apiserver" && -x "$out/kubectl" ]]; then
		return
	fi
	log "building kube-apiserver and kubectl v$KUBERNETES_VERSION (several minutes on 2 cores; cached afterwards)"
	local src="$WORK/kubernetes"
	cp -r "$(module_dir k8s.io/kubernetes "v$KUBERNETES_VERSION")" "$src"
	chmod -R u+w "$src"
	rm -rf "$src/vendor" "$src/go.work" "$src/go.work.sum"

	local staging="v0.${KUBERNETES_VERSION#1.}"
	local module args=()
	while read -r module; do
		args+=("-dropreplace=$module")
	done < <(sed -n '/^replace (/,/^)/p' "$src/go.mod" | awk '/=>/ {print $1}')
	(cd "$src" && go mod edit "${args[@]}")
	sed -i -E "s#^(\tk8s\.io/[a-z0-9-]+) v0\.0\.0\$#\1 $staging#" "$src/go.mod"

	local version="v$KUBERNETES_VERSION" minor=${KUBERNETES_VERSION#1.}
	minor=${minor%%.*}
	local ldflags="-s -w"
	local pkg
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	done
	mkdir -p "$out.tmp"
	(cd "$src" && GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
		quiet nice -n 19 go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" \
		./cmd/kube-apiserver ./cmd/kubectl)
	rm -rf "$out" "$src"
	mv "$out.tmp" "$out"
}

# --- stage: binary ---------------------------------------------------------

stage_binary() {
	[[ -f "$ROOT/cmd/enricher/main.go" ]] || fail "cmd/enricher/main.go not found: the binary stage needs the enricher's main package"
	grep -q 'CGO_ENABLED=0' "$ROOT/Dockerfile" || fail "Dockerfile does not build with CGO_ENABLED=0"
	grep -q '\./cmd/enricher' "$ROOT/Dockerfile" || fail "Dockerfile does not build ./cmd/enricher"

	# The same command as the Dockerfile's build stage.
	CGO_ENABLED=0 quiet go build -trimpath -ldflags="-s -w" -o "$WORK/enricher" ./cmd/enricher
	go version -m "$WORK/enricher" | grep -q 'CGO_ENABLED=0' || fail "the binary was not built with CGO_ENABLED=0"
	install_packages readelf:binutils
	local headers
	headers=$(readelf -lW "$WORK/enricher")
	grep -q 'LOAD' <<<"$headers" || fail "readelf found no program headers in the binary"
	! grep -qE 'INTERP|DYNAMIC' <<<"$headers" ||
		fail "the binary is dynamically linked, so it cannot run on a distroless static image"
	log "built a static binary ($(du -h "$WORK/enricher" | cut -f1))"

	local output status=0
	output=$(cd "$WORK" && env -i timeout 20 ./enricher 2>&1) || status=$?
	[[ $status -ne 0 ]] || fail "./enricher with no environment exited 0; it must reject the missing configuration"
	[[ $status -ne 124 ]] || fail "./enricher with no environment still ran after 20s; it must exit at once"
	grep -q ENRICHER_KAFKA_BROKERS <<<"$output" ||
		fail "./enricher with no environment exited $status without naming ENRICHER_KAFKA_BROKERS: $output"
	log "./enricher with no environment exited $status and named ENRICHER_KAFKA_BROKERS"
}

# --- stage: lint -----------------------------------------------------------

render() {
	"$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBERNETES_VERSION" "$@"
}

# check_value_comments fails unless every key in values.yaml has a comment
# line right above it. Keys inside a value documented with "# --" are part
# of that value and need none.
check_value_comments() {
	awk '
		/^[[:space:]]*#/ { commented = 1; doc = ($0 ~ /^[[:space:]]*# --/); next }
		/^[[:space:]]*$/ { commented = 0; next }
		/^[[:space:]]*-/ { commented = 0; next }
		{
			indent = match($0, /[^ ]/) - 1
			while (depth > 0 && indent <= open[depth]) depth--
			inside = (depth > 0 && documented[depth])
			if (!inside && !commented) { print FILENAME ":" NR ": no comment above: " $0; bad = 1 }
			if ($0 ~ /:[[:space:]]*$/) { depth++; open[depth] = indent; documented[depth] = inside || (commented && doc) }
			commented = 0
		}
		END { exit bad }
	' "$CHART/values.yaml" || fail "values.yaml has keys without a comment"
}

stage_lint() {
	helm_bin
	check_value_comments
	log "every key in values.yaml has a comment"

	local values name
	mkdir -p "$WORK/rendered"
	for values in "$CHART"/ci/*-values.yaml; do
		name=$(basename "$values" .yaml)
		"$HELM" lint --strict --kube-version "$KUBERNETES_VERSION" --namespace "$NAMESPACE" \
			-f "$values" "$CHART" >"$WORK/lint.log" 2>&1 || { cat "$WORK/lint.log"; fail "helm lint --strict with $name"; }
		render -f "$values" >"$WORK/rendered/$name.yaml" || fail "helm template with $name"
		log "lint and template: $name ($(grep -c '^kind:' "$WORK/rendered/$name.yaml") resources)"
	done

	local expected output
	for values in "$CHART"/ci/invalid/*.yaml; do
		name=$(basename "$values" .yaml)
		expected=$(sed -n '1s/^# expect: //p' "$values")
		[[ -n "$expected" ]] || fail "$values has no '# expect: MESSAGE' first line"
		if output=$(render -f "$values" 2>&1); then
			fail "invalid values $name rendered; expected an error containing: $expected"
		fi
		grep -qF -- "$expected" <<<"$output" ||
			fail "invalid values $name failed with the wrong error; expected: $expected; got: $output"
		log "rejected as expected: $name"
	done

	check_rendering
}

# check_rendering checks properties of the rendered manifests that neither
# the schema nor the API server can see. Output is captured before grep
# reads it, because grep -q would end a pipe early and pipefail would then
# report helm's broken pipe as a failure.
check_rendering() {
	local defaults="$CHART/ci/defaults-values.yaml" values manifest
	render -f "$defaults" --set shutdownTimeout=1m30.5s --set terminationGracePeriodSeconds=91 >/dev/null ||
		fail "a grace period one second above shutdownTimeout 1m30.5s did not render"

	manifest=$(render -f "$defaults" --show-only templates/configmap.yaml)
	! grep -q phc_ci_placeholder_key <<<"$manifest" || fail "the PostHog API key is in the ConfigMap"
	manifest=$(render -f "$CHART/ci/keda-values.yaml" --show-only templates/configmap.yaml)
	! grep -q ci-placeholder <<<"$manifest" || fail "a secret value is in the ConfigMap"

	for values in hpa keda; do
		manifest=$(render -f "$CHART/ci/$values-values.yaml" --show-only templates/deployment.yaml)
		! grep -q '^  replicas:' <<<"$manifest" || fail "the Deployment sets spec.replicas although $values scales it"
	done
	manifest=$(render -f "$defaults" --show-only templates/deployment.yaml)
	grep -q '^  replicas: 1$' <<<"$manifest" || fail "the Deployment without autoscaling does not set spec.replicas"

	check_checksum config log.level=debug
	check_checksum secret posthog.apiKey=phc_rotated
	log "secrets stay out of the ConfigMap, replicas follow autoscaling, checksums follow config"
}

# check_checksum fails unless the checksum/NAME annotation of the pod
# template changes when SETTING changes.
check_checksum() {
	local name=$1 setting=$2 before after
	before=$(render -f "$CHART/ci/defaults-values.yaml" --show-only templates/deployment.yaml)
	after=$(render -f "$CHART/ci/defaults-values.yaml" --set "$setting" --show-only templates/deployment.yaml)
	[[ "$(grep "checksum/$name" <<<"$before")" != "$(grep "checksum/$name" <<<"$after")" ]] ||
		fail "checksum/$name did not change with --set $setting"
}

# --- stage: validate -------------------------------------------------------

generate_schemas() {
	local out="$TOOLS/schemas-k8s-v$KUBERNETES_VERSION-keda-$KEDA_VERSION-promop-$PROMETHEUS_OPERATOR_VERSION"
	if [[ ! -f "$out/.complete" ]]; then
		local k8s keda promop
		k8s=$(module_dir k8s.io/kubernetes "v$KUBERNETES_VERSION")
		keda=$(module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")
		promop=$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")
		rm -rf "$out"
		(cd "$ROOT/deploy/helm/schemagen" && go run . -out "$out" \
			-openapi "$k8s/api/openapi-spec/swagger.json" \
			"$keda/config/crd/bases/keda.sh_scaledobjects.yaml" \
			"$keda/config/crd/bases/keda.sh_triggerauthentications.yaml" \
			"$promop/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
			"$promop/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml")
		touch "$out/.complete"
	fi
	SCHEMAS=$out
}

stage_validate() {
	helm_bin
	[[ -d "$WORK/rendered" ]] || stage_lint
	local kubeconform
	kubeconform=$(go_install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION")
	generate_schemas

	local location="$SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json"
	"$kubeconform" -strict -summary -kubernetes-version "$KUBERNETES_VERSION" \
		-schema-location "$location" "$WORK"/rendered/*.yaml || fail "kubeconform rejected the rendered manifests"

	# The schemas must reject what they are meant to reject, or a pass above
	# proves nothing.
	sed -e 's/^\(      terminationGracePeriodSeconds:\) \(.*\)/\1 "\2"/' \
		"$WORK/rendered/defaults-values.yaml" >"$WORK/wrong-type.yaml"
	sed -e 's/^\(            readOnlyRootFilesystem: true\)$/\1\n            readOnlyRootFileSystem: true/' \
		"$WORK/rendered/defaults-values.yaml" >"$WORK/unknown-field.yaml"
	sed -e 's/^\(        lagThreshold:\) "\(.*\)"/\1 \2/' \
		"$WORK/rendered/keda-values.yaml" >"$WORK/keda-wrong-type.yaml"
	sed -e 's/^\(        for:\) 10m$/\1 600/' \
		"$WORK/rendered/monitoring-values.yaml" >"$WORK/rule-wrong-type.yaml"
	local broken source
	for broken in wrong-type unknown-field keda-wrong-type rule-wrong-type; do
		case $broken in
		keda-*) source="keda-values" ;;
		rule-*) source="monitoring-values" ;;
		*) source="defaults-values" ;;
		esac
		! cmp -s "$WORK/$broken.yaml" "$WORK/rendered/$source.yaml" || fail "could not break the manifest for $broken"
		if "$kubeconform" -strict -schema-location "$location" "$WORK/$broken.yaml" >"$WORK/broken.log" 2>&1; then
			fail "kubeconform accepted a manifest with a $broken error"
		fi
	done
	log "kubeconform rejects a wrong type, an unknown field, and a wrong type in a ScaledObject and in a PrometheusRule"
}

# --- stage: apiserver ------------------------------------------------------

# free_ports prints COUNT distinct TCP ports on 127.0.0.1 that no socket
# uses. They lie below the kernel's ephemeral range, so that an outgoing
# connection cannot take one between this check and the bind.
free_ports() {
	local count=$1 low port ports=()
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range
	((low > 11000)) || fail "the ephemeral port range starts at $low: no room below it for test ports"
	for _ in $(seq 200); do
		port=$((10000 + RANDOM % (low - 10000)))
		if [[ -z "$(ss -Hatn "sport = :$port")" && " ${ports[*]} " != *" $port "* ]]; then
			ports+=("$port")
			if ((${#ports[@]} == count)); then
				echo "${ports[*]}"
				return
			fi
		fi
	done
	fail "found no $count free ports on 127.0.0.1"
}

# check_running fails with the end of LOG when the process PID has exited.
check_running() {
	local name=$1 pid=$2 log=$3
	kill -0 "$pid" 2>/dev/null && return
	tail -n 20 "$log" >&2
	fail "$name exited at startup; the end of its log is above"
}

start_apiserver() {
	local dir="$WORK/cluster" etcd_port peer_port api_port token
	mkdir -p "$dir"
	read -r etcd_port peer_port api_port <<<"$(free_ports 3)"
	[[ -n "$api_port" ]] || fail "could not pick ports for etcd and kube-apiserver"

	etcd --name ci --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" \
		--advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-cluster "ci=http://127.0.0.1:$peer_port" >"$dir/etcd.log" 2>&1 &
	local etcd_pid=$!
	PIDS+=("$etcd_pid")

	openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
	openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
	token=$(openssl rand -hex 24)
	echo "$token,ci-admin,ci-admin,system:masters" >"$dir/tokens.csv"

	# The service CIDR and issuer are names the API server stores; nothing
	# is sent there, because no kubelet or proxy runs.
	"$KUBE/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
		--cert-dir "$dir/certs" --token-auth-file "$dir/tokens.csv" \
		--authorization-mode RBAC \
		--service-cluster-ip-range 10.96.0.0/16 \
		--service-account-issuer https://kubernetes.default.svc \
		--service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
		--endpoint-reconciler-type none --profiling=false >"$dir/apiserver.log" 2>&1 &
	local apiserver_pid=$!
	PIDS+=("$apiserver_pid")

	export KUBECONFIG="$dir/kubeconfig"
	for _ in $(seq 120); do
		[[ -f "$dir/certs/apiserver.crt" ]] && break
		check_running etcd "$etcd_pid" "$dir/etcd.log"
		check_running kube-apiserver "$apiserver_pid" "$dir/apiserver.log"
		sleep 1
	done
	"$KUBECTL" config set-cluster ci --server "https://127.0.0.1:$api_port" \
		--certificate-authority "$dir/certs/apiserver.crt" >/dev/null
	"$KUBECTL" config set-credentials ci-admin --token "$token" >/dev/null
	"$KUBECTL" config set-context ci --cluster ci --user ci-admin >/dev/null
	"$KUBECTL" config use-context ci >/dev/null

	for _ in $(seq 120); do
		if "$KUBECTL" get --raw /readyz >/dev/null 2>&1; then
			log "kube-apiserver v$KUBERNETES_VERSION is ready on 127.0.0.1:$api_port with etcd $(etcd --version | sed -n 's/^etcd Version: //p')"
			return
		fi
		check_running etcd "$etcd_pid" "$dir/etcd.log"
		check_running kube-apiserver "$apiserver_pid" "$dir/apiserver.log"
		sleep 1
	done
	tail -n 20 "$dir/etcd.log" "$dir/apiserver.log" >&2
	fail "kube-apiserver did not become ready within 120s; its log is above"
}

# apply_dry_run sends manifests to the API server with strict field
# validation and fails on any warning, which is how Pod Security reports a
# workload that would violate the namespace's profile. The objects as the
# server would store them go to $WORK/apply.json.
apply_dry_run() {
	local name=$1 file=$2
	"$KUBECTL" apply --dry-run=server --validate=strict -n "$NAMESPACE" -f "$file" -o json >"$WORK/apply.json" 2>"$WORK/apply.err" ||
		{ cat "$WORK/apply.err" >&2; fail "kubectl apply --dry-run=server rejected $name"; }
	if grep -q 'Warning' "$WORK/apply.err"; then
		cat "$WORK/apply.err" >&2
		fail "the API server warned about $name"
	fi
}

# check_env runs the enricher's own configuration parser on the environment
# and mounted files that the Deployment gets, from the objects in the
# namespace followed by those in the JSON files given, which take
# precedence. envcheck's output goes to $WORK/envcheck.log.
check_env() {
	{
		"$KUBECTL" -n "$NAMESPACE" get deployments,configmaps,secrets -o json
		cat "$@"
	} | "$WORK/envcheck" -deployment "$RELEASE" >"$WORK/envcheck.log" 2>&1
}

deployment_annotation() {
	"$KUBECTL" -n "$NAMESPACE" get deployment "$RELEASE" \
		-o "jsonpath={.spec.template.metadata.annotations.checksum/$1}"
}

stage_apiserver() {
	helm_bin
	[[ -d "$WORK/rendered" ]] || stage_lint
	build_kubernetes
	KUBE="$TOOLS/kubernetes-v$KUBERNETES_VERSION"
	KUBECTL="$KUBE/kubectl"
	install_packages etcd:etcd-server ss:iproute2 openssl:openssl
	start_apiserver

	local keda promop crd
	keda=$(module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")
	promop=$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")
	for crd in "$keda"/config/crd/bases/keda.sh_{scaledobjects,triggerauthentications}.yaml \
		"$promop"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml; do
		"$KUBECTL" apply --server-side -f "$crd" >/dev/null
	done
	"$KUBECTL" wait --for condition=Established --timeout 60s \
		crd/scaledobjects.keda.sh crd/triggerauthentications.keda.sh \
		crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com >/dev/null
	log "installed the KEDA and prometheus-operator CRDs"

	"$KUBECTL" create namespace "$NAMESPACE" >/dev/null
	"$KUBECTL" label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=restricted \
		pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/audit=restricted >/dev/null
	# The ServiceAccount controller of kube-controller-manager would create
	# this; the helm test pod runs as it.
	"$KUBECTL" -n "$NAMESPACE" create serviceaccount default >/dev/null

	# The namespace must reject a pod that breaks the restricted profile, or
	# the checks below prove nothing.
	local output
	if output=$(printf '%s\n' 'apiVersion: v1' 'kind: Pod' 'metadata: {name: unrestricted}' \
		'spec: {containers: [{name: c, image: busybox}]}' |
		"$KUBECTL" apply --dry-run=server -n "$NAMESPACE" -f - 2>&1); then
		fail "the namespace accepted a pod without a restricted security context"
	fi
	grep -q 'violates PodSecurity' <<<"$output" || fail "unexpected error for the unrestricted pod: $output"
	log "namespace $NAMESPACE enforces Pod Security restricted"

	"$KUBECTL" -n "$NAMESPACE" apply -f "$CHART/ci/fixtures/external-objects.yaml" >/dev/null
	quiet go build -o "$WORK/envcheck" ./deploy/helm/envcheck

	local values name
	for values in "$WORK"/rendered/*.yaml; do
		name=$(basename "$values" .yaml)
		apply_dry_run "$name" "$values"
		check_env "$WORK/apply.json" || { cat "$WORK/envcheck.log" >&2; fail "the enricher rejects the configuration of $name"; }
		log "server dry run, strict validation, no warnings, configuration accepted: $name"
	done

	# A rule without a source passes the chart's schema, so only the
	# enricher's parser rejects it; envcheck must report that.
	render -f "$CHART/ci/defaults-values.yaml" --set-json 'enrichment.rules=[{"set":"plan"}]' >"$WORK/bad-rule.yaml"
	apply_dry_run bad-rule "$WORK/bad-rule.yaml"
	if check_env "$WORK/apply.json"; then
		fail "envcheck accepted a rule without a source"
	fi
	grep -q 'ENRICHER_RULES\[0\]' "$WORK/envcheck.log" || fail "envcheck failed without naming ENRICHER_RULES[0]: $(cat "$WORK/envcheck.log")"
	log "envcheck rejects a rule that only the enricher can reject"

	"$HELM" install "$RELEASE" "$CHART" -n "$NAMESPACE" -f "$CHART/ci/defaults-values.yaml" >/dev/null
	local before after
	before=$(deployment_annotation config)
	"$HELM" upgrade "$RELEASE" "$CHART" -n "$NAMESPACE" -f "$CHART/ci/defaults-values.yaml" \
		--set log.level=debug >/dev/null
	after=$(deployment_annotation config)
	[[ -n "$before" && "$before" != "$after" ]] || fail "helm upgrade with a new log level did not change checksum/config"
	"$KUBECTL" -n "$NAMESPACE" get configmap "$RELEASE" -o 'jsonpath={.data.ENRICHER_LOG_LEVEL}' | grep -qx debug ||
		fail "helm upgrade did not update the ConfigMap"
	log "helm install, then upgrade rolled the pod template"

	for values in "$CHART"/ci/*-values.yaml; do
		name=$(basename "$values" .yaml)
		"$HELM" upgrade "$RELEASE" "$CHART" -n "$NAMESPACE" -f "$values" >/dev/null ||
			fail "helm upgrade to $name"
		check_env || { cat "$WORK/envcheck.log" >&2; fail "the enricher rejects the configuration installed by $name"; }
		log "helm upgrade: $name (revision $("$HELM" -n "$NAMESPACE" history "$RELEASE" -o json | grep -o '"revision":[0-9]*' | tail -n 1 | cut -d: -f2))"
	done

	"$HELM" uninstall "$RELEASE" -n "$NAMESPACE" >/dev/null
	local left
	left=$("$KUBECTL" -n "$NAMESPACE" get all,configmaps,secrets,serviceaccounts,poddisruptionbudgets,scaledobjects,triggerauthentications,servicemonitors,prometheusrules \
		-l "app.kubernetes.io/instance=$RELEASE" -o name)
	[[ -z "$left" ]] || fail "helm uninstall left resources behind: $left"
	log "helm uninstall removed every resource"
	# NOTE: helm test is not run: with no kubelet the test pod never starts.
	# The server dry run above admitted that pod under the restricted profile.
}

# --- main ------------------------------------------------------------------

STAGES=("$@")
if [[ ${#STAGES[@]} -eq 0 ]]; then
	STAGES=(binary lint validate apiserver)
fi

TIMES=()
total_start=$SECONDS
for stage in "${STAGES[@]}"; do
	case "$stage" in
	binary | lint | validate | apiserver) ;;
	*) fail "unknown stage $stage: use binary, lint, validate or apiserver" ;;
	esac
	echo "== $stage"
	start=$SECONDS
	"stage_$stage"
	TIMES+=("$stage $((SECONDS - start))s")
	echo "-- $stage passed in $((SECONDS - start))s"
done

echo "== deploy/helm/test.sh passed in $((SECONDS - total_start))s: ${TIMES[*]}"
