# The release image for a registry (the release workflow builds it per architecture, natively).
# Its content matches `make image`, which needs no container daemon: the stripped release binary
# on glibc, libgcc and the CA bundle (distroless/cc), user 65532, no shell.
# docker build -t landing-zone-operator .
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY operator operator
COPY tests tests
RUN cargo build --locked --release -p landing-zone-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/landing-zone-operator /landing-zone-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/landing-zone-operator"]
CMD ["run"]
