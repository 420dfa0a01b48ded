// The `report` command's HTML page, as a person sees it in Chromium: the matrix, a right's
// source on hover, the filter, escaped portal text, nothing loaded from outside, and a page
// of a thousand people. Usage: node tests/browser/report.js <built binary>
'use strict';

const h = require('./harness');

const bin = process.argv[2];
if (!bin) {
  console.error('usage: node tests/browser/report.js <path to bitrix24-permissions-mcp>');
  process.exit(2);
}

/** Writes an HTML report with the sandbox and opens it; returns the browser. */
async function reportPage(name, args) {
  const file = h.output(`${name}.html`);
  const done = h.run(bin, ['--sandbox', 'report', ...args, '--format', 'html', '--output', file]);
  h.equal(done.status, 0, `report ${args.join(' ')} exit status (stderr: ${done.stderr})`);
  const browser = await h.launch();
  await h.openFile(browser.page, file);
  return browser;
}

async function oneWorkgroup() {
  const b = await reportPage('report-workgroup', ['workgroup', '77']);
  try {
    const { page } = b;
    h.equal(await page.title(), 'Who holds which rights: workgroup', 'title');
    h.equal(await h.count(page, '#matrix tbody tr'), 3, 'people');
    h.equal(await h.text(page, '#matrix thead th:nth-child(2)'), 'workgroup 77 (Website relaunch)', 'column');
    const oleg = page.locator('#matrix tbody tr', { hasText: 'Oleg Petrov' });
    const owner = oleg.locator('.right', { hasText: 'owner' }).first();
    const tip = owner.locator('.tip');
    h.check(!(await tip.isVisible()), 'the source is hidden until hovered');
    await owner.hover();
    h.check(await tip.isVisible(), 'hovering shows the source');
    const source = await tip.innerText();
    h.check(source.includes('SG77_A') && source.includes('through a workgroup role'), `source: ${source}`);
    await h.screenshot(page, 'report-workgroup-hover');
    h.check(await page.locator('.sandbox').isVisible(), 'the sandbox notice is shown');
    h.equal(b.external.length, 0, `requests outside: ${b.external}`);
    h.equal(b.errors.length, 0, `script errors: ${b.errors}`);
  } finally {
    await b.close();
  }
}

async function thousandPeople() {
  const started = Date.now();
  const b = await reportPage('report-1000-people', [
    '--sandbox-size', 'large', 'workgroup', '1000', '1001', '1002', '1003',
  ]);
  try {
    const { page } = b;
    const rows = await h.count(page, '#matrix tbody tr');
    h.check(rows >= 1000, `a thousand people or more, got ${rows}`);
    h.equal(await h.count(page, '#matrix thead th'), 5, 'a column per workgroup');
    // Portal text is text: the name with markup characters shows as written, makes no element.
    const chloe = page.locator('#matrix tbody tr', { hasText: "Chloé O'Hara & <Sons>" });
    h.equal(await chloe.count(), 1, 'the name shows literally');
    h.equal(await page.locator('sons').count(), 0, 'no element came out of a name');
    // The filter narrows a thousand rows to one.
    await page.fill('#filter', 'chloé');
    h.equal(await h.text(page, '#shown'), `1 of ${rows} people`, 'filtered count');
    h.check(await chloe.isVisible(), 'the match stays visible');
    await chloe.locator('.right').first().hover();
    await h.screenshot(page, 'report-1000-people-filtered');
    await page.fill('#filter', 'nobody-has-this-name');
    h.check(await page.locator('#none').isVisible(), 'an empty filter says so');
    await page.fill('#filter', '');
    h.equal(await h.text(page, '#shown'), `${rows} of ${rows} people`, 'all rows back');
    await h.click(page, '#notes summary');
    h.check((await h.text(page, '#notes')).includes('could not be read') || (await h.text(page, '#notes')).length > 0, 'notes open');
    await h.screenshot(page, 'report-1000-people');
    h.equal(b.external.length, 0, `requests outside: ${b.external}`);
    h.equal(b.errors.length, 0, `script errors: ${b.errors}`);
    console.log(`     ${rows} people, written and checked in ${Date.now() - started} ms`);
  } finally {
    await b.close();
  }
}

async function tasksAndUnknowns() {
  const b = await reportPage('report-tasks', ['task', '8017', '8020', '--users', '7,503,547', '--action', 'EDIT']);
  try {
    const { page } = b;
    h.equal(await h.count(page, '#matrix tbody tr'), 1, 'only the creator may edit');
    h.check((await h.text(page, '#matrix thead')).includes('incomplete'), 'columns say they are incomplete');
    await h.click(page, '#notes summary');
    const notes = await h.text(page, '#notes');
    h.check(notes.includes('everyone not in users') && notes.includes('cannot see this task'), `notes: ${notes}`);
    await h.screenshot(page, 'report-tasks', true);
  } finally {
    await b.close();
  }
}

h.main([
  ['one workgroup: a right shows its source on hover', oneWorkgroup],
  ['tasks: what is not known is said', tasksAndUnknowns],
  ['a page of a thousand people: escaped, filterable, self-contained', thousandPeople],
]);
