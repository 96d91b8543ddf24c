{{/*
Checks the combinations of values that values.schema.json cannot express
and fails the render with every problem found, one per line.
*/}}
{{- define "enricher.validate" -}}
{{- $v := .Values }}
{{- $errors := list }}

{{- if not $v.kafka.brokers }}
{{- $errors = append $errors "kafka.brokers is required: set at least one bootstrap broker as host:port" }}
{{- end }}

{{- if and (eq $v.sink "posthog") (not $v.posthog.apiKey) (not $v.existingSecret) }}
{{- $errors = append $errors "posthog.apiKey is required for the posthog sink: set it, or set existingSecret to a Secret with the key ENRICHER_POSTHOG_API_KEY" }}
{{- end }}

{{- $shutdown := include "enricher.durationSeconds" $v.shutdownTimeout | float64 }}
{{- if le (float64 $v.terminationGracePeriodSeconds) $shutdown }}
{{- $errors = append $errors (printf "terminationGracePeriodSeconds (%v) must be larger than shutdownTimeout (%s), or Kubernetes kills the pod before it commits its offsets" $v.terminationGracePeriodSeconds $v.shutdownTimeout) }}
{{- end }}

{{- $rebalance := include "enricher.durationSeconds" $v.kafka.rebalanceTimeout | float64 }}
{{- if ge (include "enricher.durationSeconds" $v.revokeTimeout | float64) $rebalance }}
{{- $errors = append $errors (printf "revokeTimeout (%s) must be shorter than kafka.rebalanceTimeout (%s), or the group evicts a member while it delivers" $v.revokeTimeout $v.kafka.rebalanceTimeout) }}
{{- end }}
{{- if le (include "enricher.durationSeconds" $v.progressTimeout | float64) $rebalance }}
{{- $errors = append $errors (printf "progressTimeout (%s) must be longer than kafka.rebalanceTimeout (%s), or a slow rebalance fails the liveness probe" $v.progressTimeout $v.kafka.rebalanceTimeout) }}
{{- end }}

{{- $hpa := $v.autoscaling.hpa }}
{{- $keda := $v.autoscaling.keda }}
{{- if and $hpa.enabled $keda.enabled }}
{{- $errors = append $errors "autoscaling.hpa.enabled and autoscaling.keda.enabled are both true: enable one, because KEDA creates its own HorizontalPodAutoscaler" }}
{{- end }}
{{- if and $hpa.enabled (lt (int $hpa.maxReplicas) (int $hpa.minReplicas)) }}
{{- $errors = append $errors "autoscaling.hpa.maxReplicas must be at least autoscaling.hpa.minReplicas" }}
{{- end }}
{{- if and $hpa.enabled (not $hpa.targetCPUUtilizationPercentage) (not $hpa.targetMemoryUtilizationPercentage) }}
{{- $errors = append $errors "autoscaling.hpa needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage above 0" }}
{{- end }}
{{- $requests := $v.resources.requests | default dict }}
{{- if and $hpa.enabled $hpa.targetCPUUtilizationPercentage (not (hasKey $requests "cpu")) }}
{{- $errors = append $errors "autoscaling.hpa.targetCPUUtilizationPercentage needs resources.requests.cpu, because utilisation is a share of the request" }}
{{- end }}
{{- if and $hpa.enabled $hpa.targetMemoryUtilizationPercentage (not (hasKey $requests "memory")) }}
{{- $errors = append $errors "autoscaling.hpa.targetMemoryUtilizationPercentage needs resources.requests.memory, because utilisation is a share of the request" }}
{{- end }}
{{- if and $keda.enabled (lt (int $keda.maxReplicaCount) (int $keda.minReplicaCount)) }}
{{- $errors = append $errors "autoscaling.keda.maxReplicaCount must be at least autoscaling.keda.minReplicaCount" }}
{{- end }}
{{- if and $keda.enabled $keda.allowIdleConsumers $keda.limitToPartitionsWithLag }}
{{- $errors = append $errors "autoscaling.keda.allowIdleConsumers and autoscaling.keda.limitToPartitionsWithLag cannot both be true: KEDA rejects the trigger" }}
{{- end }}
{{- if and $keda.enabled (has $v.kafka.sasl.mechanism (list "OAUTHBEARER" "AWS_MSK_IAM")) (not $keda.authenticationRef) }}
{{- $errors = append $errors (printf "autoscaling.keda.authenticationRef is required with kafka.sasl.mechanism %s: create a TriggerAuthentication for KEDA's kafka scaler and name it here" $v.kafka.sasl.mechanism) }}
{{- end }}

{{- $tls := $v.kafka.tls }}
{{- if and $tls.secretName (not $tls.enabled) }}
{{- $errors = append $errors "kafka.tls.secretName is set but kafka.tls.enabled is false" }}
{{- end }}
{{- if and (or $tls.certKey $tls.keyKey) (not (and $tls.certKey $tls.keyKey)) }}
{{- $errors = append $errors "kafka.tls.certKey and kafka.tls.keyKey must be set together" }}
{{- end }}
{{- if and $tls.certKey (not $tls.secretName) }}
{{- $errors = append $errors "kafka.tls.certKey needs kafka.tls.secretName, the Secret that contains the client certificate" }}
{{- end }}

{{- $sasl := $v.kafka.sasl }}
{{- if and (has $sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) (not $sasl.username) }}
{{- $errors = append $errors (printf "kafka.sasl.username is required with kafka.sasl.mechanism %s" $sasl.mechanism) }}
{{- end }}
{{- if and (has $sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) (not $sasl.password) (not $v.existingSecret) }}
{{- $errors = append $errors (printf "kafka.sasl.password is required with kafka.sasl.mechanism %s: set it, or set existingSecret to a Secret with the key ENRICHER_KAFKA_SASL_PASSWORD" $sasl.mechanism) }}
{{- end }}
{{- if and (has $sasl.mechanism (list "OAUTHBEARER" "AWS_MSK_IAM")) $sasl.username }}
{{- $errors = append $errors (printf "kafka.sasl.username must be empty with kafka.sasl.mechanism %s" $sasl.mechanism) }}
{{- end }}
{{- if and (eq $sasl.mechanism "OAUTHBEARER") (not $sasl.oauthToken.secretName) }}
{{- $errors = append $errors "kafka.sasl.oauthToken.secretName is required with kafka.sasl.mechanism OAUTHBEARER" }}
{{- end }}
{{- if and (not $sasl.mechanism) (or $sasl.username $sasl.password) }}
{{- $errors = append $errors "kafka.sasl.username or kafka.sasl.password is set but kafka.sasl.mechanism is empty" }}
{{- end }}

{{- if and $v.posthog.ca.configMapName $v.posthog.ca.secretName }}
{{- $errors = append $errors "posthog.ca.configMapName and posthog.ca.secretName are both set: set one" }}
{{- end }}

{{- if $v.existingSecret }}
{{- if or $v.posthog.apiKey $sasl.password $v.extraSecretEnv }}
{{- $errors = append $errors "existingSecret is set, so the chart renders no Secret: move posthog.apiKey, kafka.sasl.password and extraSecretEnv into that Secret" }}
{{- end }}
{{- end }}

{{- $managed := merge (include "enricher.configEnv" . | fromJson) (include "enricher.secretEnv" . | fromJson) }}
{{- range $name := concat (keys $v.extraEnv) (keys $v.extraSecretEnv) | sortAlpha }}
{{- if or (hasKey $managed $name) (eq $name "ENRICHER_POSTHOG_API_KEY" "ENRICHER_KAFKA_SASL_PASSWORD") }}
{{- $errors = append $errors (printf "%s in extraEnv or extraSecretEnv is set by the chart: use the matching value instead" $name) }}
{{- end }}
{{- end }}
{{- range $name := keys $v.extraEnv | sortAlpha }}
{{- if hasKey $v.extraSecretEnv $name }}
{{- $errors = append $errors (printf "%s is in both extraEnv and extraSecretEnv" $name) }}
{{- end }}
{{- end }}

{{- if $errors }}
{{- fail (printf "\ninvalid values:\n- %s" (join "\n- " $errors)) }}
{{- end }}
{{- end }}
