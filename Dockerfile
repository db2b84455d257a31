# syntax=docker/dockerfile:1.7
# One Dockerfile for every Storekeeper binary: pick it with
#   docker build --build-arg PACKAGE=user-service -t user-service .
# (PACKAGE is the cargo package; its binary has the same name, except the
# operator whose package and binary are both `storekeeper`.)
# The runtime image is distroless, runs as a non-root user and has no shell.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
ARG PACKAGE
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    test -n "${PACKAGE}" \
    && cargo build --release --locked --package "${PACKAGE}" \
    && cp "target/release/${PACKAGE}" /app

FROM gcr.io/distroless/cc-debian12:nonroot
# checkov:skip=CKV_DOCKER_2:Kubernetes probes the admin port (/healthz, /readyz); distroless has no shell for a HEALTHCHECK
COPY --from=build /app /app
USER 65532:65532
EXPOSE 3000 9000
ENTRYPOINT ["/app"]
