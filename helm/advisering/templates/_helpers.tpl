{{/* Names, after Bitnami's common chart: name, fullname, labels, selectors. */}}
{{- define "advisering.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "advisering.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's full name: fullname-component, within 63 characters. */}}
{{- define "advisering.componentName" -}}
{{- printf "%s-%s" (include "advisering.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{- define "advisering.labels" -}}
app.kubernetes.io/name: {{ include "advisering.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: advisering
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component: {root, component}. */}}
{{- define "advisering.componentLabels" -}}
{{ include "advisering.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "advisering.selectorLabels" -}}
app.kubernetes.io/name: {{ include "advisering.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "advisering.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "advisering.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "advisering.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Topic declarations: the chart's copy of topics/*.yaml (not acls.yaml), a list of dicts. */}}
{{- define "advisering.topicFiles" -}}
{{- $out := list -}}
{{- range $path, $_ := .Files.Glob "files/topics/*.yaml" -}}
{{- if ne (base $path) "acls.yaml" -}}
{{- $out = append $out ($.Files.Get $path | fromYaml) -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "topics" $out) -}}
{{- end -}}

{{/* The partitions of advisering.case-events: the override or the declaration. */}}
{{- define "advisering.inputPartitions" -}}
{{- $n := 0 -}}
{{- range (include "advisering.topicFiles" . | fromJson).topics -}}
{{- if eq .name "advisering.case-events" }}{{ $n = .partitions }}{{ end -}}
{{- end -}}
{{- if .Values.topics.partitions }}{{ $n = .Values.topics.partitions }}{{ end -}}
{{- int $n -}}
{{- end -}}

{{/* The partitions of the worker's internal topics (the citizen-events declaration). */}}
{{- define "advisering.workerPartitions" -}}
{{- $n := 0 -}}
{{- range (include "advisering.topicFiles" . | fromJson).topics -}}
{{- if eq .name "{worker_app_id}-citizen-events" }}{{ $n = .partitions }}{{ end -}}
{{- end -}}
{{- if .Values.topics.partitions }}{{ $n = .Values.topics.partitions }}{{ end -}}
{{- int $n -}}
{{- end -}}

{{/*
Checks a JSON schema cannot make, because they compare values or depend on
several: called at the top of every workload template, so nothing renders.
*/}}
{{- define "advisering.validate" -}}
{{- $v := .Values -}}
{{- if not $v.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers is required: the existing Kafka cluster's bootstrap servers" -}}
{{- end -}}
{{- $partitions := include "advisering.inputPartitions" . | int -}}
{{- if and $v.worker.enabled (gt (int $v.worker.replicas) $partitions) -}}
{{- fail (printf "worker.replicas (%d) must not exceed the partitions of advisering.case-events (%d): a worker beyond them gets no partition and stands idle" (int $v.worker.replicas) $partitions) -}}
{{- end -}}
{{- $internal := include "advisering.workerPartitions" . | int -}}
{{- if and $v.worker.enabled (gt (int $v.worker.replicas) $internal) -}}
{{- fail (printf "worker.replicas (%d) must not exceed the partitions of the worker's internal topics (%d, ADVISERING_WORKER_PARTITIONS)" (int $v.worker.replicas) $internal) -}}
{{- end -}}
{{- if and $v.keda.enabled (gt (int $v.keda.maxReplicaCount) $partitions) -}}
{{- fail (printf "keda.maxReplicaCount (%d) must not exceed the partitions of advisering.case-events (%d)" (int $v.keda.maxReplicaCount) $partitions) -}}
{{- end -}}
{{- if and $v.keda.enabled (gt (int $v.keda.minReplicaCount) (int $v.keda.maxReplicaCount)) -}}
{{- fail "keda.minReplicaCount must not exceed keda.maxReplicaCount" -}}
{{- end -}}
{{- if le (int $v.worker.terminationGracePeriodSeconds) (int $v.worker.shutdownGraceSeconds) -}}
{{- fail "worker.terminationGracePeriodSeconds must exceed worker.shutdownGraceSeconds: the worker must leave its group before Kubernetes kills it" -}}
{{- end -}}
{{- if and $v.serve.enabled (not $v.secrets.pseudonymKey.existingSecret) -}}
{{- fail "secrets.pseudonymKey.existingSecret is required: the name of a Secret holding ADVISERING_PSEUDONYM_KEY (serve's HTTP ingest)" -}}
{{- end -}}
{{- if and $v.inbox.enabled (not $v.secrets.tokenSecret.existingSecret) -}}
{{- fail "secrets.tokenSecret.existingSecret is required: the name of a Secret holding ADVISERING_TOKEN_SECRET (the inbox)" -}}
{{- end -}}
{{- if and $v.inbox.enabled (gt (int $v.inbox.replicas) 1) (not $v.inbox.database.existingSecret) -}}
{{- fail (printf "inbox.replicas (%d) above 1 needs inbox.database.existingSecret: a Secret with a postgresql:// URL. The SQLite store is one file that one replica writes (docs/operators.md, The inbox on PostgreSQL)" (int $v.inbox.replicas)) -}}
{{- end -}}
{{- if and $v.inbox.enabled (gt (int $v.inbox.replicas) 1) (not (has "ReadWriteMany" $v.inbox.persistence.accessModes)) -}}
{{- fail "inbox.replicas above 1 needs inbox.persistence.accessModes [ReadWriteMany]: every replica must read the one token revocation file on that volume" -}}
{{- end -}}
{{- if and $v.auditSink.enabled (not $v.auditSink.database.existingSecret) (not $v.inbox.database.existingSecret) -}}
{{- fail "auditSink.enabled needs the audit store on PostgreSQL: auditSink.database.existingSecret or inbox.database.existingSecret (a Secret with a postgresql:// URL). With SQLite the sink and the inbox's insight API would need one file on two pods (docs/operators.md, The audit store on PostgreSQL)" -}}
{{- end -}}
{{- if and (or $v.serve.enabled $v.worker.enabled) (not $v.secrets.sources.existingSecret) -}}
{{- fail "secrets.sources.existingSecret is required: the name of a Secret holding the sources file (API-key hashes and grants)" -}}
{{- end -}}
{{- $own := $v.kafka.componentSecrets -}}
{{- $users := $v.strimzi.componentUsers.enabled -}}
{{- $covered := and (or (not $v.worker.enabled) $own.worker $users) (or (not $v.serve.enabled) $own.serve $users) (or (not $v.inbox.enabled) $own.inbox $users) (or (not $v.auditSink.enabled) $own.auditSink $users) (or (not $v.hookJob.enabled) $own.hookJob (and $users $v.strimzi.topics.enabled)) -}}
{{- if and (ne $v.kafka.securityProtocol "PLAINTEXT") (not $v.kafka.existingSecret) (not $v.strimzi.user.enabled) (eq $v.kafka.securityProtocol "SASL_SSL") (not $covered) -}}
{{- fail "kafka.existingSecret is required with kafka.securityProtocol SASL_SSL (or kafka.componentSecrets for every enabled component, or strimzi.user)" -}}
{{- end -}}
{{- if and (or $v.strimzi.user.enabled $v.strimzi.componentUsers.enabled) $v.strimzi.namespace (ne $v.strimzi.namespace .Release.Namespace) -}}
{{- fail "strimzi.user needs strimzi.namespace empty or the release's namespace: Strimzi writes the user's password Secret next to the KafkaUser, and pods read Secrets of their own namespace only" -}}
{{- end -}}
{{- if and $v.hookJob.enabled $v.rules.deploy (not $v.rules.existingConfigMap) -}}
{{- fail "rules.existingConfigMap is required when rules.deploy is true: a ConfigMap of the municipality's rule files" -}}
{{- end -}}
{{- if and $v.worker.enabled (not $v.rules.verifyKeys.existingConfigMap) -}}
{{- fail "rules.verifyKeys.existingConfigMap is required: a ConfigMap with the operators' public key(s); workers apply only rule sets signed by them (ADVISERING_RULES_VERIFY_KEYS_FILE)" -}}
{{- end -}}
{{- if and $v.hookJob.enabled $v.rules.deploy (not $v.rules.signingKey.existingSecret) -}}
{{- fail "rules.signingKey.existingSecret is required when the hook Job deploys rules: a Secret with the operators' Ed25519 private key (ADVISERING_RULES_SIGNING_KEY_FILE)" -}}
{{- end -}}
{{- end -}}

{{/*
The Kafka user's Secret and its keys for one component (dict "root" "component"):
the component's own Secret (kafka.componentSecrets), else Strimzi's user Secret,
else kafka.existingSecret.
*/}}
{{- define "advisering.kafkaSecret" -}}
{{- $v := .root.Values -}}
{{- $own := get $v.kafka.componentSecrets .component | default "" -}}
{{- $user := include "advisering.componentKafkaUser" . -}}
{{- if $own -}}
{{- toJson (dict "name" $own "usernameKey" $v.kafka.usernameKey "passwordKey" $v.kafka.passwordKey) -}}
{{- else if $user -}}
{{- toJson (dict "name" (printf "%s-%s" (include "advisering.fullname" .root) $user) "usernameKey" "" "passwordKey" "password") -}}
{{- else if $v.strimzi.user.enabled -}}
{{- toJson (dict "name" (include "advisering.fullname" .root) "usernameKey" "" "passwordKey" "password") -}}
{{- else -}}
{{- toJson (dict "name" $v.kafka.existingSecret "usernameKey" $v.kafka.usernameKey "passwordKey" $v.kafka.passwordKey) -}}
{{- end -}}
{{- end -}}

{{/*
The acls.yaml component whose Strimzi KafkaUser (strimzi.componentUsers) a chart
component logs in as; empty when none: the hook Job applies topics (more than the
operator may) unless Strimzi manages them.
*/}}
{{- define "advisering.componentKafkaUser" -}}
{{- $v := .root.Values -}}
{{- if $v.strimzi.componentUsers.enabled -}}
{{- $users := dict "worker" "worker" "serve" "serve" "inbox" "serve" "auditSink" "audit-sink" "hookJob" (ternary "operator" "" $v.strimzi.topics.enabled) -}}
{{- get $users .component -}}
{{- end -}}
{{- end -}}

{{/*
Environment every component shares: Kafka and its credentials, paths, logs.
Called with (dict "root" $ "component" "worker"|"serve"|"inbox"|"auditSink"|"hookJob").
*/}}
{{- define "advisering.commonEnv" -}}
{{- $root := .root -}}
- name: ADVISERING_BOOTSTRAP_SERVERS
  value: {{ $root.Values.kafka.bootstrapServers | quote }}
- name: ADVISERING_TOPICS_DIR
  value: /etc/advisering/topics
- name: ADVISERING_WORKER_APP_ID
  value: {{ $root.Values.worker.appId | quote }}
# The worker's internal topics (topics apply creates the citizen-events one).
- name: ADVISERING_WORKER_PARTITIONS
  value: {{ include "advisering.workerPartitions" $root | quote }}
- name: ADVISERING_LOG_FORMAT
  value: json
- name: HOME
  value: /tmp
- name: ADVISERING_KAFKA_SECURITY_PROTOCOL
  value: {{ $root.Values.kafka.securityProtocol | quote }}
{{- if eq $root.Values.kafka.securityProtocol "SASL_SSL" }}
{{- $s := include "advisering.kafkaSecret" . | fromJson }}
- name: ADVISERING_KAFKA_SASL_MECHANISM
  value: {{ $root.Values.kafka.saslMechanism | quote }}
- name: ADVISERING_KAFKA_SASL_USERNAME
{{- if $s.usernameKey }}
  valueFrom:
    secretKeyRef: {name: {{ $s.name | quote }}, key: {{ $s.usernameKey | quote }}}
{{- else }}
  value: {{ $s.name | quote }}
{{- end }}
- name: ADVISERING_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $s.name | quote }}, key: {{ $s.passwordKey | quote }}}
{{- end }}
{{- if $root.Values.kafka.caSecret }}
- name: ADVISERING_KAFKA_SSL_CA_FILE
  value: /etc/advisering/kafka-ca/{{ $root.Values.kafka.caKey }}
{{- end }}
{{- if eq $root.Values.kafka.securityProtocol "SSL" }}
- name: ADVISERING_KAFKA_SSL_CERT_FILE
  value: /etc/advisering/kafka-client/client.crt
- name: ADVISERING_KAFKA_SSL_KEY_FILE
  value: /etc/advisering/kafka-client/client.key
{{- end }}
{{- end -}}

{{/*
The component's client certificate Secret for mutual TLS (kafka.securityProtocol SSL);
fails naming the value when it is missing. Called with (dict "root" $ "component" ...).
*/}}
{{- define "advisering.clientCertSecret" -}}
{{- $name := get .root.Values.kafka.clientCertSecrets .component | default "" -}}
{{- required (printf "kafka.clientCertSecrets.%s is required when kafka.securityProtocol is SSL" .component) $name -}}
{{- end -}}

{{/* The client certificate's volume (SSL only): readable by the pod's group only. */}}
{{- define "advisering.clientCertVolume" -}}
{{- if eq .root.Values.kafka.securityProtocol "SSL" }}
- name: kafka-client
  secret:
    secretName: {{ include "advisering.clientCertSecret" . }}
    defaultMode: 0440
    items:
      - {key: {{ .root.Values.kafka.clientCertKey | quote }}, path: client.crt}
      - {key: {{ .root.Values.kafka.clientKeyKey | quote }}, path: client.key}
{{- end }}
{{- end -}}

{{- define "advisering.clientCertMount" -}}
{{- if eq .root.Values.kafka.securityProtocol "SSL" }}
- name: kafka-client
  mountPath: /etc/advisering/kafka-client
  readOnly: true
{{- end }}
{{- end -}}

{{- define "advisering.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
fsGroup: {{ .Values.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "advisering.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Volumes every pod has: /tmp, the topic declarations, the Kafka CA. */}}
{{- define "advisering.commonVolumes" -}}
- name: tmp
  emptyDir: {}
- name: topics
  configMap:
    name: {{ include "advisering.componentName" (dict "root" . "component" "topics") }}
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.caSecret }}
{{- end }}
{{- end -}}

{{- define "advisering.commonMounts" -}}
- name: tmp
  mountPath: /tmp
- name: topics
  mountPath: /etc/advisering/topics
  readOnly: true
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  mountPath: /etc/advisering/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "advisering.sourcesVolume" -}}
- name: sources
  secret:
    secretName: {{ .Values.secrets.sources.existingSecret }}
    items:
      - key: {{ .Values.secrets.sources.key }}
        path: sources.yaml
{{- end -}}

{{- define "advisering.pullSecrets" -}}
{{- with .Values.image.pullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
serve and the inbox terminating TLS themselves (httpTls.existingSecret, a
kubernetes.io/tls Secret): the env, volume and mount; empty without it.
*/}}
{{- define "advisering.httpTlsEnv" -}}
{{- if .Values.httpTls.existingSecret }}
- name: ADVISERING_SERVE_TLS_CERT_FILE
  value: /etc/advisering/http-tls/tls.crt
- name: ADVISERING_SERVE_TLS_KEY_FILE
  value: /etc/advisering/http-tls/tls.key
{{- end }}
{{- end -}}

{{- define "advisering.httpTlsVolume" -}}
{{- if .Values.httpTls.existingSecret }}
- name: http-tls
  secret:
    secretName: {{ .Values.httpTls.existingSecret }}
    defaultMode: 0440
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
{{- end }}
{{- end -}}

{{- define "advisering.httpTlsMount" -}}
{{- if .Values.httpTls.existingSecret }}
- name: http-tls
  mountPath: /etc/advisering/http-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* The probes' and the scrape's scheme: HTTPS when serve terminates TLS. */}}
{{- define "advisering.httpScheme" -}}
{{- ternary "HTTPS" "HTTP" (not (empty .Values.httpTls.existingSecret)) -}}
{{- end -}}


{{/*
The audit store's Secret (name, key) when it is on PostgreSQL: auditSink.database,
else the inbox's database (the audit tables then live beside the inbox's); "{}"
with neither (SQLite: no audit-sink pod, see advisering.validate).
*/}}
{{- define "advisering.auditDatabase" -}}
{{- $v := .Values -}}
{{- if $v.auditSink.database.existingSecret -}}
{{- toJson (dict "name" $v.auditSink.database.existingSecret "key" $v.auditSink.database.key) -}}
{{- else if $v.inbox.database.existingSecret -}}
{{- toJson (dict "name" $v.inbox.database.existingSecret "key" $v.inbox.database.key) -}}
{{- else -}}
{{- "{}" -}}
{{- end -}}
{{- end -}}
