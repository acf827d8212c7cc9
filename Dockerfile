# syntax=docker/dockerfile:1
# Multi-stage build: a static Go binary on a distroless base (no shell, no
# package manager), run as the non-root user "nonroot".

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN scripts/build /out/picstats

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/picstats /usr/local/bin/picstats
# The pictures are in the image too, so "docker run" alone has them;
# docker-compose mounts the repository's images/ over them, read-only.
COPY images/ /images/
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/picstats"]
CMD ["all", "--images", "/images"]
