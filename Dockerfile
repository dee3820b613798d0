# shopwatch image: build in the full Rust image, run in a slim Debian with only the binary.
# docker compose builds it (`build: .`); on its own: docker build -t shopwatch:local .

FROM rust:1.95-bookworm AS build
# librdkafka is built from source by rdkafka-sys (configure + make, zlib).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config zlib1g-dev python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY actors actors
COPY server server
COPY load load
COPY web web
# No .git in the build context: the commit `--version` names comes from here
# (docker compose build --build-arg SHOPWATCH_COMMIT=$(git rev-parse --short=12 HEAD)).
ARG SHOPWATCH_COMMIT=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p shopwatch --bin shopwatch \
 && cp target/release/shopwatch /usr/local/bin/shopwatch

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/shopwatch shopwatch \
 && mkdir -p /var/lib/shopwatch && chown shopwatch /var/lib/shopwatch
COPY --from=build /usr/local/bin/shopwatch /usr/local/bin/shopwatch
USER shopwatch
WORKDIR /var/lib/shopwatch
VOLUME ["/var/lib/shopwatch"]
EXPOSE 8080 9464
# SIGTERM: final commit, then exit (compose gives it stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["shopwatch"]
CMD ["--profile", "compose", "run"]
