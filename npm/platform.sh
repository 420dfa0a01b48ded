#!/usr/bin/env bash
# Makes the npm package that carries one platform's binary:
#   npm/platform.sh <node-platform> <node-arch> <binary> <out-dir>
# e.g. npm/platform.sh linux x64 target/release/bitrix24-permissions-mcp target/npm
# The release pipeline runs it once per target; the launcher package (npm/launcher) depends on
# all of them as optional dependencies, and npm installs the one whose os and cpu match.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 <platform> <arch> <binary> <out-dir>" >&2; exit 2; }
platform=$1 arch=$2 binary=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
version=$(node -p "require('$here/launcher/package.json').version")
name="bitrix24-permissions-mcp-$platform-$arch"
exe=bitrix24-permissions-mcp
[ "$platform" = win32 ] && exe=$exe.exe
dir="$out/$name"
rm -rf "$dir"
mkdir -p "$dir/bin"
cp "$binary" "$dir/bin/$exe"
chmod +x "$dir/bin/$exe"
cat > "$dir/package.json" <<JSON
{
  "name": "$name",
  "version": "$version",
  "description": "The bitrix24-permissions-mcp binary for $platform-$arch; install bitrix24-permissions-mcp instead",
  "license": "MIT",
  "os": ["$platform"],
  "cpu": ["$arch"],
  "files": ["bin/$exe"],
  "preferUnplugged": true
}
JSON
echo "$dir"
