# The hashsched image: both binaries, `stratum-hub` (the entrypoint, so that the hub Deployments
# the operator renders run it with their args alone) and `hashsched` (the operator and CLI; the
# chart runs it as `hashsched operator`). Runtime: glibc, libgcc and CA certificates (TLS pools),
# no shell, non-root user 65532.
#
#   docker build -t ghcr.io/hashsched/hashsched:0.1.0 .
#
# Both base images are arguments: tests/container_image.rs builds this same file on machines
# that cannot pull, passing images it made locally. BuildKit is not required.
ARG BUILDER_IMAGE=docker.io/library/rust:1.89-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY hub hub
COPY operator operator
COPY tests tests
COPY examples examples
# Line tables are for local debugging; the image carries stripped binaries.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TARGET_DIR=/src/target
RUN cargo build --release --locked -p hashsched-hub -p hashsched-operator \
        --bin stratum-hub --bin hashsched \
 && mkdir -p /out \
 && cp target/release/stratum-hub target/release/hashsched /out/

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="hashsched" \
      org.opencontainers.image.description="High-Availability Stratum Hub & Scheduler: stratum-hub and the hashsched operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/hashsched"
COPY --from=build /out/stratum-hub /out/hashsched /usr/local/bin/
USER 65532:65532
# stratum, hub metrics, operator metrics/probes
EXPOSE 3333 9100 8080
ENTRYPOINT ["/usr/local/bin/stratum-hub"]
