# syntax=docker/dockerfile:1
# One image for every service: `switchyard serve <service>` (see deploy/kubernetes).
# A static binary on distroless: no shell, no package manager, a non-root user.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
# The same command CI runs (cmd/switchyard TestTheImageBuildsAStaticBinary).
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/switchyard ./cmd/switchyard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchyard /switchyard
USER 65532:65532
EXPOSE 8080
# serve drains on SIGTERM: /readyz turns 503, requests in flight finish, consumers stop.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/switchyard"]
CMD ["serve", "gateway", "--listen", "0.0.0.0:8080"]
