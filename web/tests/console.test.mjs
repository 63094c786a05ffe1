// The web console in a real browser (Debian's Chromium driven by Playwright) against a real
// server: log in, manage rooms and users, switch to Chinese, log out.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const root = resolve(import.meta.dirname, '..', '..');
const bin = process.env.CONCLAVE_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug', 'conclave');
const password = 'console-admin-password';

const freePort = () =>
  new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

const freeUdpPort = () =>
  new Promise((ok) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

let server, browser, base, dataDir, sipPort;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'conclave-console-'));
  const port = await freePort();
  sipPort = await freeUdpPort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, [
    'serve', '--data-dir', dataDir, '--http-listen', `127.0.0.1:${port}`,
    '--sip-udp', `127.0.0.1:${sipPort}`, '--sip-tcp', '127.0.0.1:0', '--sip-tls', '127.0.0.1:0',
    '--web-dir', join(root, 'web', 'dist'), '--log', 'warn',
  ], { env: { ...process.env, CONCLAVE_ADMIN_PASSWORD: password }, stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
});

test('an administrator manages rooms and users, in English and Chinese', async () => {
  const page = await browser.newPage({ locale: 'en-US' });
  await page.goto(base);
  await page.getByTestId('username').fill('admin');
  await page.getByTestId('password').fill('wrong password');
  await page.getByTestId('login').click();
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').innerText(), /wrong username or password/);

  await page.getByTestId('password').fill(password);
  await page.getByTestId('login').click();
  await page.getByTestId('page-rooms').waitFor();

  // A room with a bad PIN is refused, with the reason next to the field.
  await page.getByTestId('field-number').fill('8001');
  await page.getByTestId('field-name').fill('Weekly coordination');
  await page.getByTestId('field-pin').fill('12ab');
  await page.getByTestId('create').click();
  await page.getByText('must be 4 to 12 digits').first().waitFor();
  await page.getByTestId('field-number').fill('8001');
  await page.getByTestId('field-name').fill('Weekly coordination');
  await page.getByTestId('field-pin').fill('2468');
  await page.getByTestId('create').click();
  await page.getByRole('cell', { name: 'Weekly coordination' }).waitFor();
  assert.equal(await page.getByRole('cell', { name: '2468' }).count(), 1);

  // A user, then frozen.
  await page.getByTestId('tab-users').click();
  await page.getByTestId('field-username').fill('zhang.wei');
  await page.getByTestId('field-display_name').fill('张伟');
  await page.getByTestId('field-password').fill('zhang-password');
  await page.getByTestId('field-extension').fill('1001');
  await page.getByTestId('create').click();
  const row = page.getByRole('row', { name: /zhang\.wei/ });
  await row.waitFor();
  await row.getByRole('button', { name: 'Freeze' }).click();
  await row.getByText('Frozen').waitFor();

  // The console speaks Chinese.
  await page.getByTestId('language').selectOption('zh');
  await page.getByTestId('tab-rooms').getByText('会议室').waitFor();
  await page.getByTestId('tab-users').click();
  await page.getByRole('row', { name: /zhang\.wei/ }).getByText('已冻结').waitFor();
  mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-zh.png'), fullPage: true });

  // What the console did is what the API holds.
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  }).then((r) => r.json());
  const rooms = await fetch(`${base}/api/v1/rooms`, { headers: { authorization: `Bearer ${login.token}` } }).then((r) => r.json());
  assert.deepEqual(rooms.items.map((r) => [r.number, r.pin]), [['8001', '2468']]);

  await page.getByTestId('logout').click();
  await page.getByTestId('login').waitFor();
  await page.close();
});

test('a chair runs a live meeting from the console: a real SIP caller, muted, then the meeting ended', async () => {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  }).then((r) => r.json());
  const auth = { authorization: `Bearer ${login.token}`, 'content-type': 'application/json' };
  const room = await fetch(`${base}/api/v1/rooms`, {
    method: 'POST', headers: auth, body: JSON.stringify({ number: '8100', name: 'Console call' }),
  }).then((r) => r.json());

  // sipp calls the room and plays its recording (Debian's sip-tester package).
  const dir = mkdtempSync(join(tmpdir(), 'conclave-sipp-'));
  // `sipp -sd` prints a built-in scenario (and exits non-zero).
  const scenario = spawnSync('sipp', ['-sd', 'uac_pcap'], { encoding: 'utf8' }).stdout
    .replace('pcap/g711a.pcap', '/usr/share/sip-tester/g711a.pcap')
    .replace('pcap/dtmf_2833_1.pcap', '/usr/share/sip-tester/dtmf_2833_1.pcap');
  writeFileSync(join(dir, 'uac_pcap.xml'), scenario);
  const sipp = spawn('sipp', [`127.0.0.1:${sipPort}`, '-sf', 'uac_pcap.xml', '-s', '8100', '-m', '1', '-l', '1',
    '-i', '127.0.0.1', '-p', String(await freeUdpPort()), '-mp', String((await freeUdpPort()) & ~1), '-nostdin', '-timeout', '30s'],
    { cwd: dir, stdio: 'ignore' });
  try {
    const page = await browser.newPage({ locale: 'en-US' });
    await page.goto(base);
    await page.getByTestId('username').fill('admin');
    await page.getByTestId('password').fill(password);
    await page.getByTestId('login').click();
    await page.getByTestId('tab-live').click();
    const caller = page.getByTestId('member-sipp');
    await caller.waitFor({ timeout: 10000 });
    // The event WebSocket reports the mute as it happens.
    const events = page.evaluate(
      (token) =>
        new Promise((done) => {
          const seen = [];
          const ws = new WebSocket(`ws://${location.host}/api/v1/events?access_token=${token}`);
          ws.onmessage = (m) => {
            seen.push(JSON.parse(m.data));
            if (seen.some((e) => e.event?.type === 'muted')) done(seen);
          };
          setTimeout(() => done(seen), 8000);
        }),
      login.token,
    );
    await page.waitForTimeout(300);
    await caller.getByRole('button', { name: 'Mute', exact: true }).click();
    await caller.getByText('Muted').waitFor();
    const muted = (await events).find((e) => e.event?.type === 'muted');
    assert.ok(muted, 'a muted event arrived on the WebSocket');
    assert.equal(muted.room_number, '8100');
    assert.equal(muted.actor, 'admin');
    const roster = await fetch(`${base}/api/v1/conferences/${room.id}`, { headers: auth }).then((r) => r.json());
    assert.equal(roster.members[0].muted, true);
    mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
    await page.screenshot({ path: join(root, 'web', 'test-results', 'console-live.png'), fullPage: true });
    await page.getByTestId('conference-8100').getByRole('button', { name: 'End meeting' }).click();
    await page.getByText('No meeting is in progress.').waitFor();
    await page.close();
  } finally {
    sipp.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});
