# wg-bridge container image: the compiled single binary on a distroless base.
#
#   docker build -t wg-bridge .
#   docker run -d --name wg-bridge -p 51820:51820/udp \
#     -v /etc/wg-bridge:/etc/wg-bridge:ro -v wg-bridge-state:/var/lib/wg-bridge wg-bridge
#   docker kill -s HUP wg-bridge        # reload the config
#
# The sandboxed image (no FFI; the portable datapath, several times slower, see docs/deployment.md):
#   docker build --build-arg COMPILE_TASK=compile:sandboxed -t wg-bridge:sandboxed .
#
# See example.docker-compose.yml for the same with the metrics listener.

# ---- build: the official Deno image compiles main.ts with the permissions of `deno task
# compile` (network; reading the config file; FFI for the Linux datapath) baked in, or of
# `deno task compile:sandboxed` (the same without FFI). Same Deno version as the tests.
FROM denoland/deno:2.9.6 AS build
ARG COMPILE_TASK=compile
WORKDIR /src
COPY deno.json deno.lock main.ts ./
COPY cmd/ cmd/
COPY lib/ lib/
COPY io/ io/
# npm packages exactly as deno.lock records them; compile embeds them in the binary.
RUN deno install --frozen && deno task "$COMPILE_TASK" && ./wg-bridge --version
# An empty directory for the state file, copied below with the runtime user as owner.
RUN mkdir -p /src/state

# ---- run: distroless "cc" carries only glibc, libgcc and CA certificates, which is what the
# compiled binary links against; no shell, no package manager. The Linux datapath opens
# "libc.so.6" with dlopen: that is the glibc the binary already runs on
# (/lib/x86_64-linux-gnu or /lib/aarch64-linux-gnu in this image), so it loads here and the
# start-up line says "datapath: linux". The :nonroot variant runs as uid/gid 65532. Port
# 51820 is above 1024, so no capability is needed (without CAP_NET_ADMIN the datapath's
# socket buffers are capped by net.core.rmem_max/wmem_max, as on the host).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/wg-bridge /usr/local/bin/wg-bridge
# The state file keeps every tunnel across restarts and upgrades (docs/operations.md, "Restarts"). A volume
# here starts out owned by nonroot; without one Docker makes an anonymous volume.
COPY --from=build --chown=65532:65532 /src/state /var/lib/wg-bridge
VOLUME /var/lib/wg-bridge
USER nonroot
EXPOSE 51820/udp
# Config: mount a directory at /etc/wg-bridge, not a single file. Editors replace files on
# save, and a single-file bind mount keeps showing the old one, so SIGHUP would reload stale
# config.
ENTRYPOINT ["/usr/local/bin/wg-bridge"]
CMD ["--config", "/etc/wg-bridge/config.json", "--state-file", "/var/lib/wg-bridge/state"]
