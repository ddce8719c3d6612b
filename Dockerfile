# onair: multi-stage build. The build stage compiles the server (and the
# standalone TURN relay) with the web app embedded; the runtime stage is a
# slim Debian with just the binaries.
#
#   docker build -t onair .
#   docker compose up            (see docker-compose.yml)

FROM rust:1-bookworm AS build
# cmake + nasm: openh264 and fdk-aac build from source; node/npm: the web app.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake nasm pkg-config nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The dependencies first, in a layer of their own: rebuilt only when a
# manifest or the lock file changes, not for every change to the sources.
# Each crate gets an empty stand-in for its targets (scripts/docker-stubs.sh).
COPY Cargo.toml Cargo.lock build.rs ./
COPY loadtest/Cargo.toml loadtest/
COPY turn/Cargo.toml turn/
COPY scripts/docker-stubs.sh scripts/
RUN scripts/docker-stubs.sh create \
 && cargo build --release --locked -p onair -p onair-turn \
 && scripts/docker-stubs.sh remove
# The web app's tools, also cached until its lock file changes.
COPY web/package.json web/package-lock.json web/
RUN npm ci --prefix web --no-audit --no-fund
COPY . .
# build.rs embeds web/dist. The sources' times are older than the stand-ins'
# builds: touched, so cargo rebuilds the workspace's own crates.
RUN npm run --prefix web build \
 && touch src/lib.rs src/main.rs turn/src/lib.rs turn/src/main.rs build.rs \
 && cargo build --release --locked -p onair -p onair-turn \
 && cp target/release/onair target/release/onair-turn /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/onair onair
COPY --from=build /usr/local/bin/onair /usr/local/bin/onair-turn /usr/local/bin/
USER onair
WORKDIR /var/lib/onair
ENV ONAIR_DATA_DIR=/var/lib/onair
# HTTP (API, WHIP/WHEP, HLS, web UI), RTMP, WebRTC media (one UDP port),
# TURN (built-in relay, with --turn: UDP and TCP). Relayed ports:
# --turn-relay-ports.
EXPOSE 8080/tcp 1935/tcp 8000/tcp 8189/udp 8189/tcp 3478/udp 3478/tcp
VOLUME ["/var/lib/onair"]
# /healthz over the HTTP port (kept there with TLS on): 503 when an engine
# is down, which is when the container should be replaced.
HEALTHCHECK --interval=15s --timeout=6s --start-period=10s --retries=3 \
  CMD ["onair", "health"]
ENTRYPOINT ["onair"]
CMD ["serve"]
