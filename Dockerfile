# wg-bridge container image: the compiled single binary on a distroless base.
#
#   docker build -t wg-bridge .
#   docker run -d --name wg-bridge -p 51820:51820/udp \
#     -v /etc/wg-bridge:/etc/wg-bridge:ro -v wg-bridge-state:/var/lib/wg-bridge wg-bridge
#   docker kill -s HUP wg-bridge        # reload the config
#
# See example.docker-compose.yml for the same with the metrics listener.

# ---- build: the official Deno image compiles main.ts with the permissions of `deno task
# compile` (network; reading the config file) baked in. Same Deno version as the tests.
FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock main.ts ./
COPY lib/ lib/
COPY io/ io/
# npm packages exactly as deno.lock records them; compile embeds them in the binary.
RUN deno install --frozen && deno task compile && ./wg-bridge --version
# An empty directory for the state file, copied below with the runtime user as owner.
RUN mkdir -p /src/state

# ---- run: distroless "cc" carries only glibc, libgcc and CA certificates, which is what the
# compiled binary links against; no shell, no package manager. The :nonroot variant runs as
# uid/gid 65532. Port 51820 is above 1024, so no capability is needed.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/wg-bridge /usr/local/bin/wg-bridge
# The state file keeps every tunnel across restarts and upgrades (README "Restarts"). A volume
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
