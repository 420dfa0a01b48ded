// The browser-test harness: Debian's Chromium (/usr/bin/chromium) driven by playwright-core,
// which never downloads a browser of its own. Each check is one script beside this file
// (`node tests/browser/<page>.js <binary>`), run by .ci/run with NODE_PATH pointing at the
// npm folder that holds playwright-core. What a script can do with it: run the built binary
// to the end or start it and wait for it to listen, open a file or a URL, read text, click,
// hover, type, and save screenshots under target/browser/.
'use strict';

const { chromium } = require('playwright-core');
const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const OUT = path.join(ROOT, 'target', 'browser');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** The environment a started binary gets: nothing of the caller's but PATH and HOME, and no
 * ledger unless the test names one, so no test writes a person's real state. */
function binaryEnv(extra) {
  return Object.assign(
    { PATH: process.env.PATH, HOME: process.env.HOME || os.tmpdir(), BITRIX24_LEDGER: 'off',
      BITRIX24_LIMITER_URL: 'memory' },
    extra || {},
  );
}

/** Runs the binary to its end: `{status, stdout, stderr}`. */
function run(bin, args, env) {
  const done = childProcess.spawnSync(bin, args, { env: binaryEnv(env), encoding: 'utf8', timeout: 120000 });
  if (done.error) throw done.error;
  return { status: done.status, stdout: done.stdout, stderr: done.stderr };
}

/** Starts the binary and resolves once a stderr line matches `ready` (e.g. the address
 * `serve --http` prints): `{child, match, stop()}`. */
function start(bin, args, env, ready, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = childProcess.spawn(bin, args, { env: binaryEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    const timer = setTimeout(() => { child.kill(); reject(new Error(`not ready: ${seen}`)); }, timeoutMs || 15000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      seen += chunk;
      const match = seen.match(ready);
      if (match) {
        clearTimeout(timer);
        resolve({ child, match, stop: () => child.kill('SIGTERM') });
      }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code}: ${seen}`)); });
  });
}

/** A fresh Chromium with a profile of its own; requests leaving the machine are refused and
 * listed in `external` (pages must be self-contained, tests must stay on loopback). */
async function launch(options) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'b24-chromium-'));
  const context = await chromium.launchPersistentContext(profile, Object.assign({
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1360, height: 860 },
  }, options || {}));
  const external = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    const local = /^(file:|data:|about:|http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/])/.test(url);
    if (local) return route.continue();
    external.push(url);
    return route.abort();
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  return {
    context, page, external, errors,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

async function openFile(page, file) {
  await page.goto('file://' + path.resolve(file));
}

async function text(page, selector) {
  return (await page.locator(selector).first().innerText()).trim();
}

async function count(page, selector) {
  return page.locator(selector).count();
}

async function click(page, selector) {
  await page.locator(selector).first().click();
}

/** Saves a screenshot as target/browser/<name>.png and returns its path. */
async function screenshot(page, name, fullPage) {
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: Boolean(fullPage) });
  return file;
}

/** A fresh path under target/browser/ for a file a test writes. */
function output(name) {
  fs.mkdirSync(OUT, { recursive: true });
  return path.join(OUT, name);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function equal(actual, expected, what) {
  if (actual !== expected) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Runs the named checks in order, prints one line each, and sets the exit code. */
async function main(checks) {
  let failed = 0;
  for (const [name, fn] of checks) {
    const started = Date.now();
    try {
      await fn();
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    }
  }
  console.log(failed ? `${failed} browser check(s) failed` : `all ${checks.length} browser checks pass`);
  process.exitCode = failed ? 1 : 0;
}

module.exports = {
  ROOT, OUT, run, start, launch, openFile, text, count, click, screenshot, output, check, equal, main,
};
