# Build image: compiles the eBPF templates with clang and the agent with cargo.
FROM rust:1.95-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq clang llvm libbpf-dev bpftool && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p huatuo

# Run image: the binary, the shipped config; rules and scripts are built into the binary.
FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/huatuo /usr/bin/huatuo
COPY huatuo-bamai.conf /etc/huatuo/huatuo-bamai.conf
WORKDIR /var/lib/huatuo
EXPOSE 19704
ENTRYPOINT ["/usr/bin/huatuo", "run", "--config", "/etc/huatuo/huatuo-bamai.conf"]
