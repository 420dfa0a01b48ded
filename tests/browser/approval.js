// The approval page as a person sees it in Chromium: a write from a client that cannot ask
// waits on a loopback page that shows the complete question; Approve lets exactly that change
// through once, Decline lets nothing through. Usage: node tests/browser/approval.js <binary>
'use strict';

const childProcess = require('child_process');
const readline = require('readline');
const h = require('./harness');

const bin = process.argv[2];
if (!bin) {
  console.error('usage: node tests/browser/approval.js <path to bitrix24-permissions-mcp>');
  process.exit(2);
}

/** The server over stdio, as a client without elicitation drives it. */
class Stdio {
  constructor() {
    this.child = childProcess.spawn(bin, ['--sandbox', '--toolsets', 'all'], {
      env: {
        PATH: process.env.PATH, HOME: process.env.HOME, BITRIX24_LEDGER: 'off',
        BITRIX24_LIMITER_URL: 'memory', BITRIX24_CONFIRM_WRITES: 'auto',
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    this.waiting = new Map();
    this.next = 1;
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => {
      const message = JSON.parse(line);
      const done = this.waiting.get(message.id);
      if (done) {
        this.waiting.delete(message.id);
        done(message);
      }
    });
  }

  request(method, params) {
    const id = this.next++;
    this.child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${method}`)), 20000);
      this.waiting.set(id, (m) => { clearTimeout(timer); resolve(m); });
    });
  }

  async open() {
    await this.request('initialize', {
      protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'browser-check', version: '1' },
    });
    this.child.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
  }

  async call(name, args) {
    const answer = await this.request('tools/call', { name, arguments: args });
    const result = answer.result;
    return { error: Boolean(result.isError), text: result.content.map((c) => c.text).join('\n') };
  }

  stop() { this.child.kill('SIGTERM'); }
}

function linkIn(text) {
  const match = text.match(/http:\/\/127\.0\.0\.1:\d+\/approve\/[a-z0-9]+/);
  h.check(match, `an approval link in: ${text}`);
  return match[0];
}

const CHANGE = { GROUP_ID: 77, USER_ID: 547, ROLE: 'K' };

async function approveOnce() {
  const server = new Stdio();
  const b = await h.launch();
  try {
    await server.open();
    const first = await server.call('sonet_group_user_update', CHANGE);
    h.check(first.error && first.text.includes('nothing has been sent'), `waits: ${first.text}`);
    await b.page.goto(linkIn(first.text));
    const question = await h.text(b.page, '#question');
    for (const line of ['What is sent:', 'New role (ROLE): "K"', '547 "Sara Kim"', 'loses SG77_E']) {
      h.check(question.includes(line), `the page shows "${line}": ${question}`);
    }
    await h.screenshot(b.page, 'approval-page', true);
    await h.click(b.page, '#approve');
    await b.page.waitForSelector('#state');
    h.check((await h.text(b.page, '#state')).startsWith('Approved'), 'approved');
    // Another change is not covered; the approved one goes through once.
    const other = await server.call('sonet_group_user_update', Object.assign({}, CHANGE, { ROLE: 'E' }));
    h.check(other.error, `another change waits for its own approval: ${other.text}`);
    const sent = await server.call('sonet_group_user_update', CHANGE);
    h.check(!sent.error, `sent after approval: ${sent.text}`);
    const again = await server.call('sonet_group_user_update', CHANGE);
    h.check(again.error, 'one approval, one write');
    // The used page says so and offers no buttons.
    await b.page.goto(linkIn(first.text));
    h.equal(await h.count(b.page, '#approve'), 0, 'no Approve button on a used approval');
    h.equal(b.external.length, 0, `requests outside: ${b.external}`);
    h.equal(b.errors.length, 0, `script errors: ${b.errors}`);
  } finally {
    await b.close();
    server.stop();
  }
}

async function declineSendsNothing() {
  const server = new Stdio();
  const b = await h.launch();
  try {
    await server.open();
    const first = await server.call('sonet_group_user_update', CHANGE);
    await b.page.goto(linkIn(first.text));
    await h.click(b.page, '#decline');
    await b.page.waitForSelector('#state');
    h.check((await h.text(b.page, '#state')).startsWith('Declined'), 'declined');
    const after = await server.call('sonet_group_user_update', CHANGE);
    h.check(after.error && after.text.includes('Declined'), `declined: ${after.text}`);
  } finally {
    await b.close();
    server.stop();
  }
}

h.main([
  ['approve on the page: that change, once', approveOnce],
  ['decline on the page: nothing sent', declineSendsNothing],
]);
