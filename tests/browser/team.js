// The team server as a person uses it in Chromium: sign in on the sandbox's stand-in for
// Bitrix24 sign-in, get a personal token, have a client use it, and approve that client's
// change on the server's approval page, which another person cannot open.
// Usage: node tests/browser/team.js <binary>
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('./harness');

const bin = process.argv[2];
if (!bin) {
  console.error('usage: node tests/browser/team.js <path to bitrix24-permissions-mcp>');
  process.exit(2);
}

/** A team server on the sandbox with a ledger of its own. */
async function teamServer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'b24-team-'));
  const server = await h.start(bin, ['--sandbox', 'serve', '--http', '127.0.0.1:0'], {
    BITRIX24_LEDGER: path.join(dir, 'ledger.sqlite3'), BITRIX24_CONFIRM_WRITES: 'auto',
    BITRIX24_TOOLSETS: 'all',
  }, /serving MCP at (http:\/\/\S+)\n/);
  const mcp = server.match[1];
  return { mcp, base: mcp.replace(/\/mcp$/, ''), stop: server.stop };
}

/** One MCP session over HTTP with a bearer token, as a client without elicitation. */
async function session(mcp, token) {
  let id = 0;
  let sessionId = null;
  const post = async (body) => {
    const headers = {
      'content-type': 'application/json', accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
    };
    if (sessionId) Object.assign(headers, { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' });
    const response = await fetch(mcp, { method: 'POST', headers, body: JSON.stringify(body) });
    sessionId = sessionId || response.headers.get('mcp-session-id');
    // A JSON body, or server-sent events whose data lines carry the answer.
    const text = await response.text();
    const candidates = [text, ...text.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5))];
    for (const c of candidates) {
      try {
        const message = JSON.parse(c);
        if (message && message.id !== undefined) return message;
      } catch (e) { /* not this one */ }
    }
    return null;
  };
  await post({ jsonrpc: '2.0', id: ++id, method: 'initialize', params: {
    protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'browser-team', version: '1' } } });
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return {
    async call(name, args) {
      const answer = await post({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name, arguments: args } });
      const r = answer.result;
      return { error: Boolean(r.isError), text: r.content.map((c) => c.text).join('\n'), structured: r.structuredContent };
    },
  };
}

/** Signs in as the person named on the stand-in's page; their token, from the page. */
async function signIn(page, base, who) {
  await page.goto(`${base}/`);
  await h.click(page, '#signin');
  await page.waitForSelector('a.person');
  await page.locator('a.person', { hasText: who }).click();
  await page.waitForSelector('#token');
  h.check((await h.text(page, '#person')).startsWith(who), `signed in as ${who}`);
  return h.text(page, '#token');
}

async function signInAndApprove() {
  const server = await teamServer();
  const oleg = await h.launch();
  const ann = await h.launch();
  try {
    const token = await signIn(oleg.page, server.base, 'Oleg Petrov');
    await h.screenshot(oleg.page, 'team-signed-in', true);
    h.check(/^b24p_[a-z0-9]+$/.test(token), `a personal token: ${token}`);
    await signIn(ann.page, server.base, 'Ann Lee');
    const client = await session(server.mcp, token);
    const read = await client.call('landing_site_get_rights', { id: 645 });
    h.equal(JSON.stringify(read.structured.result), '["read"]', "Oleg's own rights on site 645");
    const change = { GROUP_ID: 77, USER_ID: 45 };
    const first = await client.call('sonet_group_user_add', change);
    const link = (first.text.match(/http:\/\/127\.0\.0\.1:\d+\/approve\/[a-z0-9]+/) || [])[0];
    h.check(first.error && link && link.startsWith(server.base), `a link on the team server: ${first.text}`);
    // Another signed-in person cannot open it.
    await ann.page.goto(link);
    h.check((await h.text(ann.page, '#problem')).includes('someone else'), 'refused to Ann');
    h.equal(await h.count(ann.page, '#approve'), 0, 'no Approve button for Ann');
    await oleg.page.goto(link);
    const question = await h.text(oleg.page, '#question');
    h.check(question.includes('Oleg Petrov (user 503)') && question.includes('45'), `the question: ${question}`);
    await h.screenshot(oleg.page, 'team-approval', true);
    await h.click(oleg.page, '#approve');
    await oleg.page.waitForSelector('#state');
    h.check((await h.text(oleg.page, '#state')).startsWith('Approved'), 'approved');
    const sent = await client.call('sonet_group_user_add', change);
    h.check(!sent.error, `sent after approval: ${sent.text}`);
    const history = await client.call('permission_history', {});
    const row = history.structured.changes[0];
    h.check(row.asked_by.startsWith('Oleg Petrov (user 503)') && row.approved_by.includes('Oleg Petrov (user 503)'),
      `recorded under Oleg: ${JSON.stringify(row)}`);
    h.equal(oleg.external.length + ann.external.length, 0, 'requests outside the machine');
    h.equal(oleg.errors.length + ann.errors.length, 0, 'script errors');
  } finally {
    await oleg.close();
    await ann.close();
    server.stop();
  }
}

async function consentNamesTheClientEscaped() {
  const server = await teamServer();
  const b = await h.launch();
  try {
    const registered = await fetch(`${server.base}/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: '<img src=x onerror=alert(1)>Evil', redirect_uris: ['http://127.0.0.1:9/cb'] }),
    }).then((r) => r.json());
    const query = new URLSearchParams({
      response_type: 'code', client_id: registered.client_id, redirect_uri: 'http://127.0.0.1:9/cb',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 's',
    });
    await b.page.goto(`${server.base}/authorize?${query}`);
    h.check((await h.text(b.page, '#client')).includes('<img'), 'the name is shown as text');
    h.equal(await h.count(b.page, 'img'), 0, 'no markup from the client');
    await h.click(b.page, '#allow');
    await b.page.waitForSelector('a.person');
    h.check(b.page.url().includes('/oauth/authorize/'), `on to the portal's sign-in: ${b.page.url()}`);
    h.equal(b.errors.length, 0, `script errors: ${b.errors}`);
  } finally {
    await b.close();
    server.stop();
  }
}

h.main([
  ['sign in, a personal token, approve your own change; another person cannot', signInAndApprove],
  ['the consent page shows the client name as text and goes on to the portal', consentNamesTheClientEscaped],
]);
