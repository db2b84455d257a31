# syntax=docker/dockerfile:1.7
# One Dockerfile for every Storekeeper binary: pick it with
#   docker build --build-arg PACKAGE=user-service -t user-service .
# (PACKAGE is the cargo package; its binary has the same name, except the
# operator whose package and binary are both `storekeeper`, built with the
# workspace's `operator` profile: small code, see Cargo.toml.)
#
# Multi-arch without emulation: the build stage always runs on the
# builder's own platform and cross-compiles for the target one, so
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg PACKAGE=... .
# builds both natively (the release workflow does this). The runtime image
# is distroless, runs as a non-root user and has no shell. Base images are
# pinned by tag here; Renovate pins and updates their digests.

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-bookworm AS build
ARG PACKAGE
ARG BUILDARCH
ARG TARGETARCH
# The operator's release build only: `reference@sha256:...` for every image
# in operator/src/render/images.txt (the release workflow resolves them);
# operator/build.rs pins its images to them. Empty elsewhere: tags.
ARG STOREKEEPER_IMAGE_DIGESTS=""
WORKDIR /src
# A C cross-compiler for the crates that build C (ring, SQLite) when the
# target is not the builder's architecture.
# hadolint ignore=DL3008
RUN set -eu; \
    case "${TARGETARCH}" in \
      amd64) triple="x86_64-unknown-linux-gnu"; gcc="gcc-x86-64-linux-gnu"; libc="libc6-dev-amd64-cross" ;; \
      arm64) triple="aarch64-unknown-linux-gnu"; gcc="gcc-aarch64-linux-gnu"; libc="libc6-dev-arm64-cross" ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac; \
    if [ "${TARGETARCH}" != "${BUILDARCH}" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "${gcc}" "${libc}"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "${triple}"; \
    echo "${triple}" >/rust-target
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=target-${TARGETARCH} \
    set -eu; \
    test -n "${PACKAGE}"; \
    triple=$(cat /rust-target); \
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
           CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
           CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
           CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc; \
    if [ "${TARGETARCH}" = "${BUILDARCH}" ]; then \
      unset CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER CC_aarch64_unknown_linux_gnu \
            CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER CC_x86_64_unknown_linux_gnu; \
    fi; \
    profile=release; \
    if [ "${PACKAGE}" = storekeeper ]; then profile=operator; fi; \
    cargo build --profile "${profile}" --locked --package "${PACKAGE}" --target "${triple}"; \
    cp "target/${triple}/${profile}/${PACKAGE}" /app

FROM gcr.io/distroless/cc-debian12:nonroot
# checkov:skip=CKV_DOCKER_2:Kubernetes probes the admin port (/healthz, /readyz); distroless has no shell for a HEALTHCHECK
ARG PACKAGE
LABEL org.opencontainers.image.source="https://github.com/storekeeper-dev/storekeeper" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.title="${PACKAGE}"
COPY --from=build /app /app
USER 65532:65532
EXPOSE 3000 9000
ENTRYPOINT ["/app"]
