{{/* Names and labels. */}}
{{- define "sealbox.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sealbox.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sealbox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sealbox.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sealbox.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "sealbox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sealbox.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Paths inside the containers; the server's flags and the mounts both come from here. */}}
{{- define "sealbox.stateMount" -}}/var/lib/sealbox{{- end -}}
{{- define "sealbox.signerKey" -}}/var/lib/sealbox/signer.key{{- end -}}
{{- define "sealbox.bpffsMount" -}}/sys/fs/bpf{{- end -}}
{{- define "sealbox.modulesMount" -}}/etc/sealbox/modules{{- end -}}
{{- define "sealbox.tokenMount" -}}/run/secrets/sealbox/token{{- end -}}
{{- define "sealbox.decryptMount" -}}/run/secrets/sealbox/decrypt{{- end -}}
{{- define "sealbox.cgroupMount" -}}/host/cgroup{{- end -}}

{{/* The host directories: per release, and per node inside the state directory (subPathExpr). */}}
{{- define "sealbox.stateHostPath" -}}
{{ trimSuffix "/" .Values.hostPaths.state }}/{{ .Release.Name }}
{{- end -}}
{{- define "sealbox.pinHostPath" -}}
{{ trimSuffix "/" .Values.hostPaths.bpffs }}/sealbox/{{ .Release.Name }}
{{- end -}}

{{/* Host names clients may use for the Service (--allow-host), then the user's. */}}
{{- define "sealbox.allowHosts" -}}
{{- $svc := include "sealbox.fullname" . -}}
{{- $hosts := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- concat $hosts .Values.serve.allowHosts | uniq | toJson -}}
{{- end -}}

{{/* The container's arguments for `runtime serve`, as a JSON list. */}}
{{- define "sealbox.serveArgs" -}}
{{- $v := .Values -}}
{{- $args := list "serve" -}}
{{- range $v.modules.files -}}
{{- $args = concat $args (list "--module" (printf "%s/%s" (include "sealbox.modulesMount" $) .)) -}}
{{- end -}}
{{- $args = concat $args (list "--customer" $v.customer "--key" (include "sealbox.signerKey" .)) -}}
{{- if not $v.decryptKey.none -}}
{{- $args = concat $args (list "--decrypt-key" (printf "%s/%s" (include "sealbox.decryptMount" .) $v.decryptKey.key)) -}}
{{- end -}}
{{- $args = concat $args (list "--state-dir" (printf "%s/serve" (include "sealbox.stateMount" .))) -}}
{{- if $v.kernelMeter.enabled -}}
{{- $args = concat $args (list "--meter-pin-dir" (printf "%s/serve" (include "sealbox.bpffsMount" .))) -}}
{{- else -}}
{{- $args = append $args "--no-kernel-meter" -}}
{{- end -}}
{{- $args = concat $args (list "--listen" (printf "0.0.0.0:%v" $v.serve.port) "--token-file" (printf "%s/%s" (include "sealbox.tokenMount" .) $v.token.key)) -}}
{{- range (include "sealbox.allowHosts" . | fromJsonArray) -}}
{{- $args = concat $args (list "--allow-host" .) -}}
{{- end -}}
{{- $args = concat $args (list "--prepay-min-units" ($v.serve.prepayMinUnits | int64 | toString) "--prepay-max-units" ($v.serve.prepayMaxUnits | int64 | toString) "--refresh-secs" ($v.serve.refreshSecs | int64 | toString)) -}}
{{- with $v.serve.maxPrice -}}{{- $args = concat $args (list "--max-price" .) -}}{{- end -}}
{{- with $v.serve.maxMemoryPages -}}{{- $args = concat $args (list "--max-memory-pages" (. | int64 | toString)) -}}{{- end -}}
{{- with $v.serve.maxFuel -}}{{- $args = concat $args (list "--max-fuel" (. | int64 | toString)) -}}{{- end -}}
{{- with $v.serve.maxDeadlineMs -}}{{- $args = concat $args (list "--max-deadline-ms" (. | int64 | toString)) -}}{{- end -}}
{{- with $v.serve.maxInputBytes -}}{{- $args = concat $args (list "--max-input-bytes" (. | int64 | toString)) -}}{{- end -}}
{{- if gt (int $v.serve.verbosity) 0 -}}{{- $args = append $args (printf "-%s" (repeat (int $v.serve.verbosity) "v")) -}}{{- end -}}
{{- toJson $args -}}
{{- end -}}

{{/* The container's arguments for `runtime meter --tls`, as a JSON list. */}}
{{- define "sealbox.meterArgs" -}}
{{- $v := .Values -}}
{{- $m := $v.meter -}}
{{- $args := list "meter" "--tls" "--cgroup" (printf "%s/%s" (include "sealbox.cgroupMount" .) (trimPrefix "/" $m.cgroup)) "--billing" (printf "%s/%s" (include "sealbox.modulesMount" .) $m.tariff) "--side" $m.side -}}
{{- range $m.tlsPorts -}}{{- $args = concat $args (list "--port" (. | int64 | toString)) -}}{{- end -}}
{{- $args = concat $args (list "--customer" $v.customer "--key" (include "sealbox.signerKey" .)) -}}
{{- if not $v.decryptKey.none -}}
{{- $args = concat $args (list "--decrypt-key" (printf "%s/%s" (include "sealbox.decryptMount" .) $v.decryptKey.key)) -}}
{{- end -}}
{{- $args = concat $args (list "--state-dir" (printf "%s/meter" (include "sealbox.stateMount" .)) "--tls-pin-dir" (printf "%s/tls" (include "sealbox.bpffsMount" .)) "--listen" (printf "0.0.0.0:%v" $m.port)) -}}
{{- $args = concat $args (list "--batch-ms" ($m.batchMs | int64 | toString) "--refresh-secs" ($m.refreshSecs | int64 | toString) "--prepay-min-units" ($m.prepayMinUnits | int64 | toString) "--prepay-max-units" ($m.prepayMaxUnits | int64 | toString)) -}}
{{- with $m.maxPrice -}}{{- $args = concat $args (list "--max-price" .) -}}{{- end -}}
{{- if gt (int $m.verbosity) 0 -}}{{- $args = append $args (printf "-%s" (repeat (int $m.verbosity) "v")) -}}{{- end -}}
{{- toJson $args -}}
{{- end -}}

{{/* Capabilities, exactly: docs/DEPLOY.md "Privileges" lists the same. */}}
{{- define "sealbox.serveCapabilities" -}}
{{- if .Values.kernelMeter.enabled -}}["BPF","PERFMON"]{{- else -}}[]{{- end -}}
{{- end -}}
{{- define "sealbox.meterCapabilities" -}}["BPF","PERFMON","NET_ADMIN"]{{- end -}}

{{/* Cross-field rules the schema cannot say clearly; each failure names the value to fix. */}}
{{- define "sealbox.validate" -}}
{{- $v := .Values -}}
{{- $hasCM := ne $v.modules.configMap "" -}}
{{- $hasVol := not (empty $v.modules.volume) -}}
{{- if and $hasCM $hasVol -}}
{{- fail "modules: set modules.configMap or modules.volume, not both" -}}
{{- end -}}
{{- if not (or $hasCM $hasVol) -}}
{{- fail "modules: no module source: set modules.configMap (a ConfigMap holding the sealed modules) or modules.volume (a volume source)" -}}
{{- end -}}
{{- if $v.meter.enabled -}}
{{- if has $v.meter.tariff $v.modules.files -}}
{{- fail (printf "meter.tariff %q is also in modules.files: a tariff is billed by `runtime meter`, never served (exit 39)" $v.meter.tariff) -}}
{{- end -}}
{{- if contains ".." $v.meter.cgroup -}}
{{- fail (printf "meter.cgroup %q: must stay below meter.cgroupRoot (no ..)" $v.meter.cgroup) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.kind "DaemonSet") (gt (int $v.replicas) 1) -}}
{{- fail "replicas is for kind: Deployment; a DaemonSet runs one pod per node" -}}
{{- end -}}
{{- if gt (int64 $v.serve.prepayMinUnits) (int64 $v.serve.prepayMaxUnits) -}}
{{- fail "serve.prepayMinUnits is larger than serve.prepayMaxUnits" -}}
{{- end -}}
{{- end -}}
