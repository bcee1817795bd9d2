# aidhub: a small, non-root image of the release binary.
#   docker build -t aidhub .                       (or --build-arg PGO=1: see below)
#   docker run --rm -p 8443:8443 \
#     -v $PWD/config:/srv/aidhub/config:ro -v $PWD/routes.toml:/srv/aidhub/routes.toml:ro \
#     -v $PWD/certs:/srv/aidhub/certs:ro -v aidhub-data:/srv/aidhub/data aidhub
# The mounted config/hub.toml must listen on 0.0.0.0 inside the container
# ([listen] partners = "0.0.0.0:8443") and should not enable [dev] options.

FROM rust:1-slim-bookworm AS build
# PGO=1: build with a profile of the bench's traffic (.ci/pgo-build; README "Performance"),
# about twice the build time for 12% less CPU per request on the bench.
ARG PGO=0
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY .ci/pgo-build .ci/pgo-build
ENV CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=true
RUN if [ "$PGO" = 1 ]; then .ci/pgo-build target/release/aidhub; \
    else cargo build --release --locked --bin aidhub; fi

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin aidhub \
    && mkdir -p /srv/aidhub/data \
    && chown aidhub /srv/aidhub/data
COPY --from=build /src/target/release/aidhub /usr/local/bin/aidhub
WORKDIR /srv/aidhub
USER 10001:10001
VOLUME ["/srv/aidhub/data"]
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/aidhub"]
CMD ["--config", "config/hub.toml", "serve"]
