/**
 * `GET /install.sh`: the POSIX sh script behind `curl -fsSL <server>/install.sh | sh`. It picks the
 * artefact for this machine from the latest signed manifest, checks its size and SHA-256 against
 * the manifest, lets the new agent verify the manifest's signature with its built-in root (and
 * record this server in its config), and only then moves it into place: a failure at any step
 * leaves nothing installed. sh cannot check an Ed25519 signature, so up to that step the script
 * trusts TLS to this server.
 *
 * It parses the manifest with tr and sed: the signed payload is canonical JSON whose values
 * (versions, artefact names, hex digests, sizes) hold no quotes or backslashes.
 */
export function installScript(server: string): string {
  const quoted = `'${server.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh
# Installs ferry, the SFTP agent, from ${server}:
#   curl -fsSL ${server}/install.sh | sh
# FERRY_INSTALL_DIR  where the executable goes (default ~/.local/bin; /usr/local/bin as root)
# FERRY_KEY          a license key to activate this machine with, unattended
# FERRY_INSTALL_PLATFORM  linux-x64 or node, instead of what this machine is
set -eu
server=${quoted}

fail() { printf 'ferry install: %s\\n' "$*" >&2; exit 1; }
say() { printf 'ferry install: %s\\n' "$*" >&2; }

command -v curl >/dev/null 2>&1 || fail "curl is needed"
if command -v sha256sum >/dev/null 2>&1; then sha256() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then sha256() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
else fail "sha256sum or shasum is needed to check the download"; fi

os=$(uname -s)
arch=$(uname -m)
platform=\${FERRY_INSTALL_PLATFORM:-}
if [ -z "$platform" ]; then
  case "$os/$arch" in
    Linux/x86_64 | Linux/amd64) platform=linux-x64 ;;
    *)
      major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
      [ "$major" -ge 20 ] 2>/dev/null || fail "no ferry build for $os/$arch (elsewhere ferry needs Node.js 20 or later, then run this again)"
      platform=node ;;
  esac
fi

manifest=$(curl -fsS "$server/download/latest/manifest.json") || fail "cannot download the release manifest from $server"
plain=$(printf '%s\\n' "$manifest" | tr -d '\\\\' | tr '{}' '\\n\\n')
value() { printf '%s\\n' "$2" | sed -n "s/.*\\"$1\\":\\"*\\([A-Za-z0-9._-]*\\).*/\\1/p" | head -n 1; }
version=$(value version "$plain")
line=$(printf '%s\\n' "$plain" | grep "\\"platform\\":\\"$platform\\"" | head -n 1 || true)
[ -n "$version" ] || fail "the release manifest from $server cannot be read"
[ -n "$line" ] || fail "no ferry build for $os/$arch ($platform) in release $version"
name=$(value name "$line")
sha=$(value sha256 "$line")
size=$(value size "$line")

dir=\${FERRY_INSTALL_DIR:-}
if [ -z "$dir" ]; then
  if [ "$(id -u)" = 0 ]; then dir=/usr/local/bin; else dir="$HOME/.local/bin"; fi
fi
if [ "$platform" = node ]; then
  work=$(mktemp -d)
else
  # Downloaded into the install folder: the rename into place is atomic, and it runs where /tmp may not.
  mkdir -p "$dir" || fail "cannot create $dir"
  work=$(mktemp -d "$dir/.ferry-install.XXXXXX") || fail "cannot write to $dir"
fi
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

say "downloading ferry $version ($platform)"
curl -fsS -o "$work/$name" "$server/download/$version/$name" || fail "the download of $name from $server failed: nothing was installed"
got_size=$(wc -c < "$work/$name" | tr -d ' ')
got_sha=$(sha256 "$work/$name")
if [ "$got_size" != "$size" ] || [ "$got_sha" != "$sha" ]; then
  fail "$name does not match the release manifest (SHA-256 $got_sha, $got_size bytes; expected $sha, $size bytes): nothing was installed"
fi

if [ "$platform" = node ]; then
  command -v npm >/dev/null 2>&1 || fail "npm is needed to install the ferry npm package"
  npm install --global --silent "$work/$name" >&2 || fail "npm install --global $name failed"
  ferry=$(command -v ferry || printf '%s/bin/ferry' "$(npm prefix --global)")
  "$ferry" verify-install --server "$server" || fail "the installed ferry refused release $version"
else
  chmod 755 "$work/$name"
  # The new agent checks the manifest's signature with its own root before it is put in place.
  "$work/$name" verify-install --server "$server" || fail "the downloaded ferry refused release $version: nothing was installed"
  mv -f "$work/$name" "$dir/ferry" || fail "cannot replace $dir/ferry"
  ferry="$dir/ferry"
  case ":$PATH:" in *":$dir:"*) ;; *) say "$dir is not on your PATH: add it, or run $ferry" ;; esac
fi

say "ferry $version is installed: $ferry"
if [ -n "\${FERRY_KEY:-}" ]; then
  "$ferry" activate --key "$FERRY_KEY" || fail "ferry is installed, but activating FERRY_KEY failed"
else
  say "next: ferry activate --trial (or ferry activate --key KEY)"
fi
`;
}
