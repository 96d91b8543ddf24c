{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "enricher.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full resource name: the release name plus the chart name, unless the release
name already contains the chart name.
*/}}
{{- define "enricher.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "enricher.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "enricher.labels" -}}
helm.sh/chart: {{ include "enricher.chart" . }}
{{ include "enricher.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels that select the enricher pods. They must never change between
releases, because a Deployment's selector is immutable.
*/}}
{{- define "enricher.selectorLabels" -}}
app.kubernetes.io/name: {{ include "enricher.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "enricher.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "enricher.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: a digest wins over a tag, and the tag defaults to appVersion.
*/}}
{{- define "enricher.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret that the pods load with envFrom.
*/}}
{{- define "enricher.secretName" -}}
{{- default (include "enricher.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
Converts a Go duration such as "1m30s" or "250ms" to seconds. The schema
has already checked the syntax, so every part matches the pattern below.
*/}}
{{- define "enricher.durationSeconds" -}}
{{- $units := dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "ns" 0.000000001 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|h|m|s)" . -1 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $unit := trimPrefix $number . }}
{{- $total = addf $total (mulf (float64 $number) (get $units $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
Mount paths of the files the pods read from Secrets and ConfigMaps.
*/}}
{{- define "enricher.kafkaTLSDir" -}}/etc/enricher/kafka-tls{{- end }}
{{- define "enricher.kafkaOAuthDir" -}}/etc/enricher/kafka-oauth{{- end }}
{{- define "enricher.posthogCADir" -}}/etc/enricher/posthog-ca{{- end }}

{{/*
KEDA's name for a Kafka SASL mechanism that the chart can map to a
TriggerAuthentication of its own. OAUTHBEARER and AWS_MSK_IAM return "",
because KEDA fetches those tokens differently from the enricher.
*/}}
{{- define "enricher.kedaSASL" -}}
{{- $names := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" }}
{{- get $names .Values.kafka.sasl.mechanism }}
{{- end }}

{{/*
Environment variables stored in the ConfigMap, as a dict of name to string.
Optional settings are left out when empty, so that the binary's default
applies.
*/}}
{{- define "enricher.configEnv" -}}
{{- $v := .Values }}
{{- $env := dict }}
{{- $_ := set $env "ENRICHER_KAFKA_BROKERS" (join "," $v.kafka.brokers) }}
{{- $_ = set $env "ENRICHER_KAFKA_TOPICS" (join "," $v.kafka.topics) }}
{{- $_ = set $env "ENRICHER_KAFKA_GROUP" $v.kafka.group }}
{{- with $v.kafka.clientId }}
{{- $_ = set $env "ENRICHER_KAFKA_CLIENT_ID" . }}
{{- end }}
{{- $_ = set $env "ENRICHER_KAFKA_REBALANCE_TIMEOUT" $v.kafka.rebalanceTimeout }}
{{- $_ = set $env "ENRICHER_KAFKA_SESSION_TIMEOUT" $v.kafka.sessionTimeout }}
{{- $_ = set $env "ENRICHER_KAFKA_DIAL_TIMEOUT" $v.kafka.dialTimeout }}
{{- $tls := $v.kafka.tls }}
{{- $_ = set $env "ENRICHER_KAFKA_TLS_ENABLED" (toString $tls.enabled) }}
{{- if $tls.enabled }}
{{- $_ = set $env "ENRICHER_KAFKA_TLS_RELOAD_INTERVAL" $tls.reloadInterval }}
{{- with $tls.serverName }}
{{- $_ = set $env "ENRICHER_KAFKA_TLS_SERVER_NAME" . }}
{{- end }}
{{- if $tls.secretName }}
{{- $dir := include "enricher.kafkaTLSDir" . }}
{{- with $tls.caKey }}
{{- $_ = set $env "ENRICHER_KAFKA_TLS_CA_FILE" (printf "%s/%s" $dir .) }}
{{- end }}
{{- with $tls.certKey }}
{{- $_ = set $env "ENRICHER_KAFKA_TLS_CERT_FILE" (printf "%s/%s" $dir .) }}
{{- end }}
{{- with $tls.keyKey }}
{{- $_ = set $env "ENRICHER_KAFKA_TLS_KEY_FILE" (printf "%s/%s" $dir .) }}
{{- end }}
{{- end }}
{{- end }}
{{- $sasl := $v.kafka.sasl }}
{{- with $sasl.mechanism }}
{{- $_ = set $env "ENRICHER_KAFKA_SASL_MECHANISM" . }}
{{- end }}
{{- with $sasl.username }}
{{- $_ = set $env "ENRICHER_KAFKA_SASL_USERNAME" . }}
{{- end }}
{{- with $sasl.awsRegion }}
{{- $_ = set $env "ENRICHER_KAFKA_SASL_AWS_REGION" . }}
{{- end }}
{{- if eq $sasl.mechanism "OAUTHBEARER" }}
{{- $path := printf "%s/%s" (include "enricher.kafkaOAuthDir" .) $sasl.oauthToken.key }}
{{- $_ = set $env "ENRICHER_KAFKA_SASL_OAUTH_TOKEN_FILE" $path }}
{{- end }}
{{- $_ = set $env "ENRICHER_DLQ_TOPIC" $v.dlq.topic }}
{{- $_ = set $env "ENRICHER_SINK" $v.sink }}
{{- $_ = set $env "ENRICHER_POSTHOG_HOST" $v.posthog.host }}
{{- $_ = set $env "ENRICHER_POSTHOG_GZIP" (toString $v.posthog.gzip) }}
{{- $_ = set $env "ENRICHER_POSTHOG_BATCH_SIZE" (int64 $v.posthog.batchSize | toString) }}
{{- $_ = set $env "ENRICHER_POSTHOG_CLIENTS" (int64 $v.posthog.clients | toString) }}
{{- $_ = set $env "ENRICHER_POSTHOG_FLUSH_INTERVAL" $v.posthog.flushInterval }}
{{- if or $v.posthog.ca.configMapName $v.posthog.ca.secretName }}
{{- $path := printf "%s/%s" (include "enricher.posthogCADir" .) $v.posthog.ca.key }}
{{- $_ = set $env "ENRICHER_POSTHOG_CA_FILE" $path }}
{{- end }}
{{- with $v.proxy.httpsProxy }}
{{- $_ = set $env "HTTPS_PROXY" . }}
{{- end }}
{{- with $v.proxy.noProxy }}
{{- $_ = set $env "NO_PROXY" . }}
{{- end }}
{{- with $v.staticProperties }}
{{- $pairs := list }}
{{- range $key := keys . | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $v.staticProperties $key)) }}
{{- end }}
{{- $_ = set $env "ENRICHER_STATIC_PROPERTIES" (join "," $pairs) }}
{{- end }}
{{- with $v.enrichment.rules }}
{{- $_ = set $env "ENRICHER_RULES" (toJson .) }}
{{- end }}
{{- with $v.enrichment.lookups }}
{{- $_ = set $env "ENRICHER_LOOKUPS" (toJson .) }}
{{- end }}
{{- $_ = set $env "ENRICHER_PRIVACY_MODE" (toString $v.enrichment.privacyMode) }}
{{- with $v.enrichment.redactPatterns }}
{{- $_ = set $env "ENRICHER_REDACT_PATTERNS" (toJson .) }}
{{- end }}
{{- $_ = set $env "ENRICHER_SHUTDOWN_TIMEOUT" $v.shutdownTimeout }}
{{- $_ = set $env "ENRICHER_REVOKE_TIMEOUT" $v.revokeTimeout }}
{{- $_ = set $env "ENRICHER_PROGRESS_TIMEOUT" $v.progressTimeout }}
{{- $_ = set $env "ENRICHER_MAX_IN_FLIGHT" (int64 $v.maxInFlight | toString) }}
{{- $_ = set $env "ENRICHER_MAX_IN_FLIGHT_BYTES" (int64 $v.maxInFlightBytes | toString) }}
{{- $_ = set $env "ENRICHER_COMMIT_INTERVAL" $v.commitInterval }}
{{- $_ = set $env "ENRICHER_LOG_LEVEL" $v.log.level }}
{{- $_ = set $env "ENRICHER_LOG_FORMAT" $v.log.format }}
{{- $_ = set $env "ENRICHER_HTTP_ADDR" (printf ":%d" (int64 $v.httpPort)) }}
{{- toJson $env }}
{{- end }}

{{/*
Environment variables stored in the chart's Secret, as a dict of name to
string.
*/}}
{{- define "enricher.secretEnv" -}}
{{- $env := dict }}
{{- with .Values.posthog.apiKey }}
{{- $_ := set $env "ENRICHER_POSTHOG_API_KEY" . }}
{{- end }}
{{- with .Values.kafka.sasl.password }}
{{- $_ := set $env "ENRICHER_KAFKA_SASL_PASSWORD" . }}
{{- end }}
{{- toJson $env }}
{{- end }}
