{{- define "polaris.labels" -}}
app.kubernetes.io/name: polaris
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "polaris.env" -}}
- name: POLARIS_KAFKA_BOOTSTRAP
  value: {{ .Values.kafka.bootstrap | quote }}
- name: POLARIS_REDIS_URL
  value: {{ .Values.redis.url | quote }}
- name: POLARIS_NEO4J_URI
  value: {{ .Values.neo4j.uri | quote }}
- name: POLARIS_NEO4J_USER
  value: {{ .Values.neo4j.user | quote }}
- name: POLARIS_WEAVIATE_HTTP
  value: {{ .Values.weaviate.http | quote }}
- name: POLARIS_WEAVIATE_GRPC
  value: {{ .Values.weaviate.grpc | quote }}
- name: POLARIS_METRICS_PORT
  value: {{ .Values.metricsPort | quote }}
- name: POLARIS_TOPOLOGY_FILE
  value: /etc/polaris/topology.yaml
- name: POLARIS_POSTGRES_DSN
  valueFrom: {secretKeyRef: {name: {{ .Release.Name }}-polaris, key: postgres-dsn}}
- name: POLARIS_NEO4J_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Release.Name }}-polaris, key: neo4j-password}}
{{- end -}}
