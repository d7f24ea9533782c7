# A small non-root image: a static binary (musl) on distroless.
# docker build -t landing-zone-operator .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools cmake && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY operator operator
COPY tests tests
RUN cargo build --locked --release -p landing-zone-operator --target x86_64-unknown-linux-musl \
 && strip target/x86_64-unknown-linux-musl/release/landing-zone-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/landing-zone-operator /landing-zone-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/landing-zone-operator"]
CMD ["run"]
