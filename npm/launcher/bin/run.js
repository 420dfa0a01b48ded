#!/usr/bin/env node
// Runs the prebuilt binary that npm installed for this platform (one optional dependency per
// platform; npm installs only the one whose "os" and "cpu" match). stdio is passed through
// untouched: on stdin/stdout the server speaks MCP, and any extra byte would break it.
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");

const pkg = `bitrix24-permissions-mcp-${process.platform}-${process.arch}`;
const exe = process.platform === "win32" ? "bitrix24-permissions-mcp.exe" : "bitrix24-permissions-mcp";

let binary;
try {
  binary = path.join(path.dirname(require.resolve(`${pkg}/package.json`)), "bin", exe);
} catch {
  process.stderr.write(
    `bitrix24-permissions-mcp: no prebuilt binary for ${process.platform}-${process.arch} (npm package ${pkg}).\n` +
      "Prebuilt binaries exist for Linux x64/arm64, macOS x64/arm64 and Windows x64. If yours is one of them, " +
      "reinstall without --no-optional / --omit=optional; otherwise build from source: " +
      "cargo install --git <repository> bitrix24-permissions-mcp\n",
  );
  process.exit(1);
}

const child = spawn(binary, process.argv.slice(2), { stdio: "inherit", windowsHide: true });
// The client stops the server with a signal: pass it on, so the binary shuts down cleanly.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}
child.on("error", (err) => {
  process.stderr.write(`bitrix24-permissions-mcp: cannot start ${binary}: ${err.message}\n`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  if (signal) {
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});
