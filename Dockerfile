# syntax=docker/dockerfile:1

# Builds the enricher as a static binary and copies it onto distroless
# static, which has CA certificates, /etc/passwd with the nonroot user and
# no shell. deploy/helm/test.sh runs the same go build in CI, because no
# Docker engine runs there.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/enricher ./cmd/enricher

# NOTE: the base image is referenced by tag; pin it by digest in a
# release pipeline that can resolve one.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/enricher /enricher
# 65532 is distroless's nonroot user; the Helm chart runs as the same IDs.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/enricher"]
