# Build: a pure-Rust binary (no libpq, no OpenSSL).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY migrations ./migrations
RUN cargo build --release --locked --bin boxoffice

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 boxoffice
COPY --from=build /src/target/release/boxoffice /usr/local/bin/boxoffice
USER boxoffice
# Production mode: the server refuses to start without a JWT_SECRET of your own (the
# development secret is public, and is refused beyond loopback in any mode), and the
# playground, introspection and public /metrics are off unless enabled.
ENV BOXOFFICE_ENV=prod HOST=0.0.0.0 PORT=8080 LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["boxoffice"]
CMD ["serve"]
