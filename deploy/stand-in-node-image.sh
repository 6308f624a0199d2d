#!/usr/bin/env bash
# Makes a local STAND-IN for the `node:20-slim` base image, for machines that reach Debian's mirror and
# the npm registry but no container registry (CI here). It is not the official image: a Debian bookworm
# minbase (debootstrap) with this machine's Node.js 20 and npm copied in, the `node` user (uid 1000) the
# official image has, Node's headers (node-gyp would download them), and this machine's CA bundle for
# npm. Tagged docker.io/library/node:20-slim in podman's local store, so that the Dockerfile builds
# unchanged with `podman build --pull=never`. Needs root, podman and debootstrap.
#
#   bash deploy/stand-in-node-image.sh
set -euo pipefail

node_bin=$(command -v node)
case "$(node --version)" in
  v20.*) ;;
  *) echo "stand-in-node-image: needs Node.js 20 on this machine, found $(node --version)" >&2; exit 1 ;;
esac
node_prefix=$(dirname "$(dirname "$(readlink -f "$node_bin")")")
npm_dir="$node_prefix/lib/node_modules/npm"
headers="$node_prefix/include/node"
for need in "$npm_dir/bin/npm-cli.js" "$headers/node.h"; do
  [ -e "$need" ] || { echo "stand-in-node-image: $need is missing" >&2; exit 1; }
done
# The mirror apt uses here (one-line or deb822 sources), else Debian's default.
shopt -s nullglob
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
  sed -n -e 's/^deb \(http[^ ]*\) bookworm main.*/\1/p' -e 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p' | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

root=$(mktemp -d /tmp/zgrid-stand-in-node.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "stand-in-node-image: debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$root.log" 2>&1 || {
  tail -n 20 "$root.log" >&2
  exit 1
}
rm -f "$root.log"

install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules" "$root/usr/local/include" "$root/usr/local/etc"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
cp -a "$headers" "$root/usr/local/include/node"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
# Kept apart from /etc/ssl/certs: installing ca-certificates in the image regenerates that bundle.
cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/etc/registry-ca.crt"
printf 'nodedir=/usr/local\ncafile=/usr/local/etc/registry-ca.crt\n' > "$root/usr/local/etc/npmrc"
chroot "$root" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*

tar -C "$root" -c . | podman import --change 'CMD ["node"]' - docker.io/library/node:20-slim > /dev/null
echo "stand-in-node-image: docker.io/library/node:20-slim ($(podman image inspect --format '{{.Size}}' docker.io/library/node:20-slim) bytes, a stand-in)"
