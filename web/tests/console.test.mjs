// The web console in a real browser (Debian's Chromium driven by Playwright) against a real
// server: log in, manage rooms, users and trunks, run a live meeting (a real SIP caller, calls
// placed through a trunk), switch to Chinese, log out.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
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
const speechModel = join(homedir(), '.cache', 'conclave', 'models', 'whisper-base.bin');
// What the browser reports the Content-Security-Policy refused, on every page of every test.
const cspViolations = [];

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'conclave-console-'));
  const port = await freePort();
  sipPort = await freeUdpPort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, [
    'serve', '--data-dir', dataDir, '--http-listen', `127.0.0.1:${port}`,
    '--sip-udp', `127.0.0.1:${sipPort}`, '--sip-tcp', '127.0.0.1:0', '--sip-tls', '127.0.0.1:0',
    '--web-dir', join(root, 'web', 'dist'), '--log', 'warn',
    // the minutes' speech model, as scripts/install-deps.sh --test fetches it
    '--speech-model', speechModel, '--minutes-threads', '2',
  ], { env: { ...process.env, CONCLAVE_ADMIN_PASSWORD: password }, stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    // harbour.test: a tenant's own domain name, for its branding (see the branding test).
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--host-resolver-rules=MAP harbour.test 127.0.0.1',
      // the join page's microphone: Chromium's fake one, allowed without asking
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const newPage = browser.newPage.bind(browser);
  browser.newPage = async (...options) => {
    const page = await newPage(...options);
    page.on('console', (message) => {
      if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(message.text());
    });
    return page;
  };
});

/// An administrator's session for API calls: the login answer and the headers to send.
async function adminApi() {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  }).then((r) => r.json());
  return { login, auth: { authorization: `Bearer ${login.token}`, 'content-type': 'application/json' } };
}

/// A page with the administrator logged in through the login form.
/// A guest in room `number`'s meeting from the join page (Chromium's fake microphone beeps).
async function guestIn(number, name, { camera = false } = {}) {
  const guest = await browser.newPage({ locale: 'en-US' });
  await guest.goto(`${base}/join/${number}`);
  await guest.getByTestId('language').selectOption('en');
  await guest.getByTestId('join-name').fill(name);
  if (camera) await guest.getByTestId('join-camera').check();
  await guest.getByTestId('join-submit').click();
  await guest.getByTestId('in-meeting').waitFor();
  return guest;
}

async function loggedIn(options) {
  const page = await browser.newPage(options);
  await page.goto(base);
  await page.getByTestId('username').fill('admin');
  await page.getByTestId('password').fill(password);
  await page.getByTestId('login').click();
  return page;
}

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

test("a user's mail language is chosen in the users form and changed in the list, in English and Chinese", async () => {
  const page = await loggedIn({ locale: 'en-US' });
  await page.getByTestId('tab-users').click();
  await page.getByTestId('field-username').fill('li.na');
  await page.getByTestId('field-display_name').fill('李娜');
  await page.getByTestId('field-password').fill('li-na-password');
  await page.getByTestId('field-email').fill('li.na@example.org');
  await page.locator('form select[name="language"]').selectOption('zh');
  await page.getByTestId('create').click();
  const select = page.getByTestId('user-language-li.na');
  await select.waitFor();
  assert.equal(await select.inputValue(), 'zh');
  const { auth } = await adminApi();
  const user = async () =>
    (await fetch(`${base}/api/v1/users?limit=200`, { headers: auth }).then((r) => r.json()))
      .items.find((u) => u.username === 'li.na');
  assert.equal((await user()).language, 'zh');
  assert.equal((await user()).email, 'li.na@example.org');
  // Back to the room's language, from the list.
  await select.selectOption('');
  for (let i = 0; i < 50 && (await user()).language !== null; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((await user()).language, null);
  // In Chinese: the column and its choices, and English chosen there.
  await page.getByTestId('language').selectOption('zh');
  await page.getByRole('columnheader', { name: '邮件语言' }).waitFor();
  assert.equal(await page.getByTestId('user-language-li.na').locator('option[value=""]').innerText(), '随会议室');
  await page.getByTestId('user-language-li.na').selectOption('en');
  for (let i = 0; i < 50 && (await user()).language !== 'en'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((await user()).language, 'en');
  mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
  await page.screenshot({ path: join(root, 'web', 'test-results', 'users-mail-language-zh.png'), fullPage: true });
  await page.getByTestId('language').selectOption('en');
  await page.close();
});

// A gateway that answers every call busy (sipp as a UAS), for calls placed through a trunk.
const busyScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy gateway">
  <recv request="INVITE" />
  <send>
    <![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" />
</scenario>
`;

test('a chair runs a live meeting from the console: a real SIP caller, muted, someone invited through a trunk (busy) and called again, then the meeting ended', async () => {
  const { login, auth } = await adminApi();
  const room = await fetch(`${base}/api/v1/rooms`, {
    method: 'POST', headers: auth, body: JSON.stringify({ number: '8100', name: 'Console call' }),
  }).then((r) => r.json());

  // sipp calls the room and plays its recording (Debian's sip-tester package).
  const dir = mkdtempSync(join(tmpdir(), 'conclave-sipp-'));
  // `sipp -sd` prints a built-in scenario (and exits non-zero).
  const scenario = spawnSync('sipp', ['-sd', 'uac_pcap'], { encoding: 'utf8' }).stdout
    .replace('pcap/g711a.pcap', '/usr/share/sip-tester/g711a.pcap')
    .replace('pcap/dtmf_2833_1.pcap', '/usr/share/sip-tester/dtmf_2833_1.pcap')
    // The caller stays on the line while the chair works (the meeting is ended from the console).
    .replace('<pause milliseconds="8000"/>', '<pause milliseconds="60000"/>');
  assert.match(scenario, /milliseconds="60000"/);
  writeFileSync(join(dir, 'uac_pcap.xml'), scenario);
  writeFileSync(join(dir, 'busy.xml'), busyScenario);
  const gatewayPort = await freeUdpPort();
  const gateway = spawn('sipp', ['-sf', 'busy.xml', '-i', '127.0.0.1', '-p', String(gatewayPort), '-m', '2', '-nostdin', '-timeout', '60s'],
    { cwd: dir, stdio: 'ignore' });
  let trunk;
  const sipp = spawn('sipp', [`127.0.0.1:${sipPort}`, '-sf', 'uac_pcap.xml', '-s', '8100', '-m', '1', '-l', '1',
    '-i', '127.0.0.1', '-p', String(await freeUdpPort()), '-mp', String((await freeUdpPort()) & ~1), '-nostdin', '-timeout', '30s'],
    { cwd: dir, stdio: 'ignore' });
  try {
    const page = await loggedIn({ locale: 'en-US' });
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

    // Nobody has been called yet; a number no trunk takes is refused next to the form.
    const meeting = page.getByTestId('conference-8100');
    await meeting.getByTestId('calls').getByText('Nobody has been called in this meeting.').waitFor();
    await meeting.getByTestId('invite-number').fill('5550100');
    await meeting.getByTestId('invite').click();
    await meeting.getByTestId('invite-error-number').getByText('no trunk takes 5550100').waitFor();

    // Through a trunk to a gateway that is busy: the call is listed, and its progress arrives
    // over the WebSocket (the page's slow poll would take 10 s).
    trunk = await fetch(`${base}/api/v1/trunks`, {
      method: 'POST', headers: auth, body: JSON.stringify({ name: 'Busy gateway', host: '127.0.0.1', port: gatewayPort }),
    }).then((r) => r.json());
    assert.ok(trunk.id, JSON.stringify(trunk));
    const callEvents = page.evaluate(
      (token) =>
        new Promise((done) => {
          const seen = [];
          const ws = new WebSocket(`ws://${location.host}/api/v1/events?access_token=${token}`);
          ws.onmessage = (m) => {
            const e = JSON.parse(m.data);
            if (e.event?.type === 'call') seen.push(e.event.invitation);
            if (seen.some((i) => i.state === 'busy')) done(seen);
          };
          setTimeout(() => done(seen), 8000);
        }),
      login.token,
    );
    await page.waitForTimeout(300);
    await meeting.getByTestId('invite-number').fill('5550100');
    await meeting.getByTestId('invite-display-name').fill('Li Na');
    await meeting.getByTestId('invite').click();
    const call = meeting.getByTestId('invitation-5550100');
    await call.getByText('Li Na').waitFor();
    await call.getByTestId('call-state').getByText('Busy', { exact: true }).waitFor({ timeout: 5000 });
    assert.equal(await call.getByTestId('call-state').getAttribute('class'), 'badge bad');
    // the first attempt's refusal goes once the second invitation is answered (the call's
    // progress may show before that answer)
    await meeting.getByTestId('invite-error-number').waitFor({ state: 'detached' });
    const progress = await callEvents;
    assert.ok(progress.some((i) => i.number === '5550100' && i.state === 'busy'), JSON.stringify(progress));
    let invitations = (await fetch(`${base}/api/v1/conferences/${room.id}`, { headers: auth }).then((r) => r.json())).invitations;
    assert.deepEqual(invitations.map((i) => [i.name, i.number, i.state]), [['Li Na', '5550100', 'busy']]);
    const firstCall = invitations[0].call_id;

    // Call again everyone missing: the gateway is called once more (and is busy again). The
    // page's roster requests are held meanwhile, so the new call can only reach the list over
    // the WebSocket, replacing the invitation in place.
    assert.equal(await call.getAttribute('data-call-id'), String(firstCall));
    let release;
    const held = new Promise((r) => (release = r));
    await page.route('**/api/v1/conferences', async (route) => {
      await held;
      await route.continue().catch(() => {});
    });
    await meeting.getByTestId('redial').click();
    await meeting.getByTestId('redial-notice').getByText('Called again: Li Na').waitFor();
    await meeting.locator(`[data-testid="invitation-5550100"]:not([data-call-id="${firstCall}"]) [data-state="busy"]`).waitFor({ timeout: 5000 });
    assert.equal(await meeting.locator('[data-testid^="invitation-"]').count(), 1);
    release();
    await page.unroute('**/api/v1/conferences');
    invitations = (await fetch(`${base}/api/v1/conferences/${room.id}`, { headers: auth }).then((r) => r.json())).invitations;
    assert.notEqual(invitations[0].call_id, firstCall);
    assert.equal(invitations[0].state, 'busy');
    assert.equal(await call.getAttribute('data-call-id'), String(invitations[0].call_id));
    await call.getByTestId('call-state').getByText('Busy', { exact: true }).waitFor();

    mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
    await page.screenshot({ path: join(root, 'web', 'test-results', 'console-live.png'), fullPage: true });

    // In Chinese: the call's state and the redial button.
    await page.getByTestId('language').selectOption('zh');
    await meeting.getByRole('heading', { name: '呼叫列表' }).waitFor();
    assert.equal(await call.getByTestId('call-state').innerText(), '忙');
    await meeting.getByRole('button', { name: '重呼未入会成员' }).waitFor();
    await meeting.getByTestId('redial-notice').getByText('已重呼：Li Na').waitFor();
    await meeting.getByRole('heading', { name: '邀请' }).waitFor();
    await page.screenshot({ path: join(root, 'web', 'test-results', 'console-live-zh.png'), fullPage: true });
    await meeting.getByRole('button', { name: '结束会议' }).click();
    await page.getByText('当前没有进行中的会议。').waitFor();
    await page.close();
  } finally {
    sipp.kill('SIGTERM');
    gateway.kill('SIGTERM');
    if (trunk?.id) await fetch(`${base}/api/v1/trunks/${trunk.id}`, { method: 'DELETE', headers: auth });
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an administrator manages SIP trunks: refused fields shown next to them, edited, in Chinese', async () => {
  const page = await loggedIn({ locale: 'en-US' });
  await page.getByTestId('tab-trunks').click();
  await page.getByTestId('page-trunks').waitFor();

  // Port 0 and a pattern that is no regular expression: both refused, each next to its field.
  await page.getByTestId('field-name').fill('Beijing Unicom');
  await page.getByTestId('field-host').fill('sip.unicom.example.cn');
  await page.getByTestId('field-port').fill('0');
  await page.getByTestId('field-username').fill('conclave');
  await page.getByTestId('field-password').fill('trunk-secret');
  await page.getByTestId('add-rule').click();
  await page.getByTestId('rule-0-pattern').fill('(');
  await page.getByTestId('rule-0-replace').fill('+8610$1');
  await page.getByTestId('save-trunk').click();
  await page.getByTestId('error-port').getByText('must be 1 to 65535').waitFor();
  await page.getByTestId('rule-0').getByTestId('error-rewrite[0].pattern').getByText(/not a regular expression/).waitFor();
  assert.equal(await page.getByTestId('trunk-Beijing Unicom').count(), 0);

  // Corrected, it is created: the form keeps what was typed, the password included.
  await page.getByTestId('field-port').fill('5060');
  await page.getByTestId('rule-0-pattern').fill('^0(\\d+)$');
  await page.getByTestId('save-trunk').click();
  const row = page.getByTestId('trunk-Beijing Unicom');
  await row.waitFor();
  assert.equal(await row.getByTestId('registration').innerText(), 'Off');
  assert.equal(await row.getByTestId('registration').getAttribute('data-state'), 'off');
  await row.getByText('sip.unicom.example.cn:5060 · UDP').waitFor();
  await row.getByText('Password set').waitFor();
  await row.getByText('^0(\\d+)$ → +8610$1').waitFor();
  assert.equal(await page.getByTestId('error-port').count(), 0);
  assert.equal(await page.getByTestId('field-name').inputValue(), '');

  // Edited: a priority, TLS; the password is kept when left empty.
  await row.getByRole('button', { name: 'Edit' }).click();
  assert.equal(await page.getByTestId('field-host').inputValue(), 'sip.unicom.example.cn');
  assert.equal(await page.getByTestId('field-password').getAttribute('placeholder'), 'unchanged');
  await page.getByTestId('field-priority').fill('5');
  await page.getByTestId('field-transport').selectOption('tls');
  await page.getByTestId('field-port').fill('5061');
  await page.getByTestId('save-trunk').click();
  await row.getByText('sip.unicom.example.cn:5061 · TLS').waitFor();
  await row.getByRole('cell', { name: '5', exact: true }).waitFor();

  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  }).then((r) => r.json());
  const trunks = await fetch(`${base}/api/v1/trunks`, { headers: { authorization: `Bearer ${login.token}` } }).then((r) => r.json());
  const saved = trunks.find((x) => x.name === 'Beijing Unicom');
  assert.deepEqual(
    [saved.port, saved.transport, saved.priority, saved.username, saved.has_password, saved.rewrite, saved.registration],
    [5061, 'tls', 5, 'conclave', true, [{ pattern: '^0(\\d+)$', replace: '+8610$1' }], 'off'],
  );

  mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-trunks.png'), fullPage: true });

  // In Chinese.
  await page.getByTestId('language').selectOption('zh');
  await page.getByTestId('tab-trunks').getByText('中继').waitFor();
  await page.getByRole('heading', { name: '中继', exact: true }).waitFor();
  await page.getByRole('heading', { name: '新建中继' }).waitFor();
  await page.getByRole('columnheader', { name: '注册状态' }).waitFor();
  assert.equal(await row.getByTestId('registration').innerText(), '不注册');
  await row.getByText('已设置密码').waitFor();
  await page.getByTestId('field-name').fill('Shanghai Telecom');
  await page.getByTestId('field-host').fill('sip.telecom.example.cn');
  await page.getByTestId('field-port').fill('0');
  await page.getByTestId('save-trunk').click();
  await page.getByTestId('error-port').waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-trunks-zh.png'), fullPage: true });

  // Deleted.
  await row.getByRole('button', { name: '删除' }).click();
  await row.waitFor({ state: 'detached' });
  await page.close();
});

test('room settings are switched from the rooms list, and a meeting of the history starts again in one click', async () => {
  const { login, auth } = await adminApi();
  const roomOf = async (number) =>
    (await fetch(`${base}/api/v1/rooms?limit=200`, { headers: auth }).then((r) => r.json())).items.find((r) => r.number === number);
  const until = async (what, check) => {
    for (let i = 0; i < 100; i++) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`timed out waiting for ${what}`);
  };
  const meetingsOf = async (number) =>
    (await fetch(`${base}/api/v1/conference-history?q=${number}`, { headers: auth }).then((r) => r.json())).items;

  const page = await loggedIn({ locale: 'en-US' });
  await page.getByTestId('page-rooms').waitFor();

  // A new room: chimes and music on, the PIN for everyone, unless changed in the form.
  assert.equal(await page.getByTestId('field-entry_chime').isChecked(), true);
  assert.equal(await page.getByTestId('field-alone_music').isChecked(), true);
  assert.equal(await page.getByTestId('field-members_skip_pin').isChecked(), false);
  await page.getByTestId('field-number').fill('8200');
  await page.getByTestId('field-name').fill('Night shift');
  await page.getByTestId('field-entry_chime').uncheck();
  await page.getByTestId('create').click();
  const settings = page.getByTestId('room-settings-8200');
  await settings.waitFor();
  assert.equal(await settings.getByTestId('room-entry_chime').isChecked(), false);
  assert.equal(await settings.getByTestId('room-alone_music').isChecked(), true);
  assert.equal(await page.getByTestId('field-entry_chime').isChecked(), true, 'the form is back to the defaults');
  let room = await roomOf('8200');
  assert.deepEqual([room.entry_chime, room.alone_music, room.members_skip_pin, room.release_when_empty], [false, true, false, false]);

  // Switched in place.
  await settings.getByTestId('room-members_skip_pin').check();
  await until('members_skip_pin', async () => (await roomOf('8200')).members_skip_pin === true);
  assert.equal(await settings.getByTestId('room-members_skip_pin').isChecked(), true);
  room = await roomOf('8200');
  assert.deepEqual([room.entry_chime, room.alone_music, room.members_skip_pin], [false, true, true]);

  // A meeting that ends at once (no trunk takes the number it calls) leaves its record.
  const started = await fetch(`${base}/api/v1/conferences`, {
    method: 'POST', headers: auth,
    body: JSON.stringify({ room_id: room.id, members: [{ kind: 'number', number: '5550199', display_name: 'Night desk', role: 'member' }] }),
  });
  assert.equal(started.status, 201);
  await until('the history record', async () => (await meetingsOf('8200')).some((m) => m.ended_at));

  // The history under the live meetings: started again in one click. Nobody answered the
  // first time, so nobody is called back.
  await page.getByTestId('tab-live').click();
  const history = page.getByTestId('history');
  const row = history.locator('[data-room="8200"]').first();
  await row.waitFor();
  await row.getByText('ad hoc').waitFor();
  await row.getByRole('button', { name: 'Start again' }).click();
  await history.getByTestId('restart-notice').getByText('Started again; nobody to call.').waitFor();
  await until('the second meeting', async () => (await meetingsOf('8200')).filter((m) => m.ended_at).length === 2);
  await history.locator('[data-room="8200"]').nth(1).waitFor();
  const audit = await fetch(`${base}/api/v1/audit-events?action=restartConference`, { headers: auth }).then((r) => r.json());
  assert.equal(audit.items.length, 1);
  assert.equal(audit.items[0].target_id, room.id);
  mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-history.png'), fullPage: true });

  // In Chinese.
  await page.getByTestId('language').selectOption('zh');
  await history.getByRole('heading', { name: '最近的会议' }).waitFor();
  await history.getByTestId('restart-notice').getByText('已再次召开，没有需要呼叫的成员。').waitFor();
  await row.getByRole('button', { name: '再次召开' }).waitFor();
  await row.getByText('临时会议').waitFor();
  await page.getByTestId('tab-rooms').click();
  await page.getByTestId('room-settings-8200').getByText('成员免密码入会').waitFor();
  await page.getByTestId('create-form').getByText('入会、离会提示音').waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-rooms-zh.png'), fullPage: true });
  await page.close();
});

test('a system administrator makes a tenant SHA-256 only from its page, in English and Chinese', async () => {
  const page = await loggedIn({ locale: 'en-US' });
  await page.getByTestId('tab-tenants').click();
  await page.getByTestId('page-tenants').waitFor();
  const row = page.getByTestId('tenant-default');
  await row.waitFor();

  // Without a SIP domain it is refused, the reason next to the box.
  await row.getByTestId('tenant-sip-domain').fill('');
  await row.getByTestId('tenant-sha256-only').check();
  await row.getByTestId('tenant-save').click();
  await row.getByTestId('error-sip_sha256_only').getByText(/needs a sip_domain/).waitFor();

  // With one it is saved, and still so after a reload.
  await row.getByTestId('tenant-sip-domain').fill('conf.example.com');
  await row.getByTestId('tenant-save').click();
  await row.getByTestId('tenant-saved').waitFor();
  await page.reload();
  await page.getByTestId('tab-tenants').click();
  await page.getByTestId('tenant-default').waitFor();
  assert.equal(await page.getByTestId('tenant-default').getByTestId('tenant-sip-domain').inputValue(), 'conf.example.com');
  assert.equal(await page.getByTestId('tenant-default').getByTestId('tenant-sha256-only').isChecked(), true);

  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  }).then((r) => r.json());
  const tenants = await fetch(`${base}/api/v1/tenants`, { headers: { authorization: `Bearer ${login.token}` } }).then((r) => r.json());
  const stored = tenants.items.find((x) => x.name === 'default');
  assert.deepEqual([stored.sip_domain, stored.sip_sha256_only], ['conf.example.com', true]);

  // In Chinese; then back to MD5 allowed and no domain, as the other tests expect.
  await page.getByTestId('language').selectOption('zh');
  await page.getByRole('heading', { name: '租户', exact: true }).waitFor();
  await page.getByRole('columnheader', { name: '仅 SHA-256 摘要' }).waitFor();
  await page.getByText(/不再保存其 SIP 密码的 MD5 摘要/).waitFor();
  mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-tenants-zh.png'), fullPage: true });
  const again = page.getByTestId('tenant-default');
  await again.getByTestId('tenant-sha256-only').uncheck();
  await again.getByTestId('tenant-sip-domain').fill('');
  await again.getByTestId('tenant-save').click();
  await again.getByTestId('tenant-saved').waitFor();
  await page.close();
});

test('a tenant administrator sets who may call phone numbers, which numbers and how many, by clicking', async () => {
  const { login, auth } = await adminApi();
  const tenantId = login.user.tenant_id;
  // A tenant administrator, and a plain user to grant the right to.
  for (const [username, display_name, kind] of [['tenant.boss', 'Tenant Boss', 'tenant_admin'], ['li.lei', 'Li Lei', 'user']]) {
    const created = await fetch(`${base}/api/v1/users`, {
      method: 'POST', headers: auth,
      body: JSON.stringify({ username, display_name, password: `${username}-password`, kind }),
    });
    assert.equal(created.status, 201, await created.text());
  }
  const liLei = (await fetch(`${base}/api/v1/users?limit=200`, { headers: auth }).then((r) => r.json())).items.find((u) => u.username === 'li.lei');

  const page = await browser.newPage({ locale: 'en-US' });
  await page.goto(base);
  await page.getByTestId('username').fill('tenant.boss');
  await page.getByTestId('password').fill('tenant.boss-password');
  await page.getByTestId('login').click();
  await page.getByTestId('tab-tenants').click();
  const policy = page.getByTestId('outbound-policy');
  await policy.getByTestId('policy-form').waitFor();

  // The defaults: any number, nobody granted, 10 at once, 100 an hour.
  assert.equal(await policy.getByTestId('policy-pattern-0-input').inputValue(), '\\+?[0-9*#]+');
  assert.equal(await policy.getByTestId('policy-concurrent_calls').inputValue(), '10');
  assert.equal(await policy.getByTestId('policy-calls_per_hour').inputValue(), '100');
  const li = policy.getByTestId('policy-user-li.lei');
  assert.equal(await li.getByRole('checkbox').isChecked(), false);
  await policy.getByTestId('policy-admins').getByText(/Tenant Boss/).waitFor();

  // A pattern that is no regular expression and a limit too high: refused, each next to its field.
  await policy.getByTestId('policy-pattern-0-input').fill('(');
  await policy.getByTestId('policy-concurrent_calls').fill('20000');
  await policy.getByTestId('policy-save').click();
  await policy.getByTestId('error-allowed_patterns[0]').getByText(/not a regular expression/).waitFor();
  await policy.getByTestId('error-concurrent_calls').waitFor();
  await policy.getByTestId('policy-error').getByText('Not saved: see the notes next to the fields.').waitFor();
  mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-outbound-refused.png'), fullPage: true });
  let stored = await fetch(`${base}/api/v1/tenants/${tenantId}/outbound-policy`, { headers: auth }).then((r) => r.json());
  assert.deepEqual(stored.allowed_patterns, ['\\+?[0-9*#]+']);

  // Corrected: national numbers and +86 numbers, 3 at once, 40 an hour, Li Lei granted.
  await policy.getByTestId('policy-pattern-0-input').fill('0\\d{10,11}');
  await policy.getByTestId('add-pattern').click();
  await policy.getByTestId('policy-pattern-1-input').fill('\\+86\\d{11}');
  await policy.getByTestId('policy-concurrent_calls').fill('3');
  await policy.getByTestId('policy-calls_per_hour').fill('40');
  await li.getByRole('checkbox').check();
  await policy.getByTestId('policy-save').click();
  await policy.getByTestId('policy-saved').waitFor();
  assert.equal(await policy.getByTestId('policy-error').count(), 0);
  assert.equal(await policy.getByTestId('error-concurrent_calls').count(), 0);

  // Still so after a reload.
  await page.reload();
  await page.getByTestId('tab-tenants').click();
  await policy.getByTestId('policy-form').waitFor();
  assert.equal(await policy.getByTestId('policy-pattern-0-input').inputValue(), '0\\d{10,11}');
  assert.equal(await policy.getByTestId('policy-pattern-1-input').inputValue(), '\\+86\\d{11}');
  assert.equal(await policy.getByTestId('policy-concurrent_calls').inputValue(), '3');
  assert.equal(await policy.getByTestId('policy-calls_per_hour').inputValue(), '40');
  assert.equal(await policy.getByTestId('policy-user-li.lei').getByRole('checkbox').isChecked(), true);

  // What the page saved is what the API holds.
  stored = await fetch(`${base}/api/v1/tenants/${tenantId}/outbound-policy`, { headers: auth }).then((r) => r.json());
  assert.deepEqual(stored, {
    allowed_patterns: ['0\\d{10,11}', '\\+86\\d{11}'], granted_users: [liLei.id], concurrent_calls: 3, calls_per_hour: 40,
  });
  mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-outbound-en.png'), fullPage: true });

  // In Chinese.
  await page.getByTestId('language').selectOption('zh');
  await policy.getByRole('heading', { name: '外呼电话号码' }).waitFor();
  await policy.getByText('可外呼电话号码的用户').waitFor();
  await policy.getByRole('button', { name: '添加规则' }).waitFor();
  await policy.getByText('同时呼叫数').waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-outbound-zh.png'), fullPage: true });

  // No pattern left: extensions only, said so; then the defaults again, as the other tests expect.
  await policy.getByTestId('policy-pattern-1').getByRole('button', { name: '删除' }).click();
  await policy.getByTestId('policy-pattern-0').getByRole('button', { name: '删除' }).click();
  await policy.getByText('无规则：不能呼叫任何电话号码，只能呼叫分机。').waitFor();
  await policy.getByTestId('policy-save').click();
  await policy.getByTestId('policy-saved').waitFor();
  stored = await fetch(`${base}/api/v1/tenants/${tenantId}/outbound-policy`, { headers: auth }).then((r) => r.json());
  assert.deepEqual(stored.allowed_patterns, []);
  await page.close();
  const reset = await fetch(`${base}/api/v1/tenants/${tenantId}/outbound-policy`, { method: 'PUT', headers: auth, body: '{}' });
  assert.equal(reset.status, 200);
});

test('the directory: a department tree, a person in it found by pinyin initials and number, a group added to a template', async () => {
  const page = await loggedIn({ locale: 'en-US', viewport: { width: 1400, height: 900 } });
  await page.getByTestId('tab-directory').click();
  await page.getByTestId('page-directory').waitFor();

  // A department, a sub-department under it (the new one is selected), another renamed.
  await page.getByTestId('dept-name').fill('Research');
  await page.getByTestId('dept-create').click();
  await page.getByTestId('dept-Research').waitFor();
  await page.getByTestId('dept-name').fill('Backend');
  await page.getByTestId('dept-create').click();
  await page.getByTestId('dept-Backend').waitFor();
  await page.getByRole('heading', { name: 'Research / Backend' }).waitFor();
  // The same name again under the same parent is refused, with the reason.
  await page.getByTestId('dept-Research').click();
  await page.getByTestId('dept-name').fill('Backend');
  await page.getByTestId('dept-create').click();
  await page.getByText('already exists at this place in the tree').waitFor();
  await page.getByTestId('dept-name').fill('');
  await page.getByTestId('dept-all').click();
  await page.getByTestId('dept-name').fill('Sales');
  await page.getByTestId('dept-create').click();
  await page.getByTestId('dept-Sales').waitFor();
  await page.getByTestId('dept-rename').fill('Sales & Marketing');
  await page.getByTestId('dept-rename-save').click();
  await page.getByTestId('dept-Sales & Marketing').waitFor();
  // A department cannot move below itself.
  await page.getByTestId('dept-Research').click();
  await page.getByTestId('dept-parent').selectOption({ label: 'Research / Backend' });
  await page.getByTestId('dept-move').click();
  await page.getByRole('alert').getByText('cannot move below itself').waitFor();

  // A person in Backend, found by pinyin initials and by number from the whole directory.
  await page.getByTestId('dept-Backend').click();
  await page.getByTestId('person-name').fill('张三');
  await page.getByTestId('person-title').fill('Engineer');
  await page.getByTestId('person-mobile').fill('13800138000');
  await page.getByTestId('person-create').click();
  await page.getByTestId('person-张三').waitFor();
  await page.getByTestId('dept-Sales & Marketing').click();
  await page.getByTestId('no-people').waitFor();
  await page.getByTestId('dept-all').click();
  await page.getByTestId('directory-search').fill('zs');
  const zhang = page.getByTestId('person-张三');
  await zhang.waitFor();
  assert.equal(await page.getByTestId('people').locator('tbody tr').count(), 1);
  assert.equal(await zhang.getByTestId('person-department').inputValue(), await page.getByTestId('person-department').locator('option', { hasText: 'Research / Backend' }).getAttribute('value'));
  await page.getByTestId('directory-search').fill('138 0013');
  await zhang.waitFor();
  await page.getByTestId('directory-search').fill('nobody-here');
  await page.getByTestId('no-people').waitFor();

  // A group made of people picked from the directory.
  await page.getByTestId('directory-search').fill('zhangsan');
  await zhang.getByTestId('pick').check();
  await page.getByTestId('group-name').fill('On call');
  await page.getByTestId('group-book').selectOption('enterprise');
  await page.getByTestId('group-create').click();
  await page.getByTestId('group-On call').getByText('张三').waitFor();
  mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-directory-en.png'), fullPage: true });

  // Deleting a department that still has people is refused, and says why.
  await page.getByTestId('dept-Backend').click();
  await page.getByTestId('dept-delete').click();
  await page.getByRole('alert').getByText(/still has 0 sub-department\(s\), 0 user\(s\) and 1 contact/).waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-directory-department-en.png'), fullPage: true });

  // The group into a template in one step.
  await page.getByTestId('tab-templates').click();
  await page.getByTestId('field-name').fill('Incident review');
  await page.getByTestId('create').click();
  const row = page.getByRole('row', { name: /Incident review/ });
  await row.waitFor();
  await row.getByTestId('template-group').selectOption({ label: 'On call' });
  await row.getByTestId('template-group-role').selectOption('chairman');
  await row.getByTestId('template-add-group').click();
  await row.getByRole('cell', { name: '1', exact: true }).waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-templates-group-en.png'), fullPage: true });
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  }).then((r) => r.json());
  const templates = await fetch(`${base}/api/v1/templates`, { headers: { authorization: `Bearer ${login.token}` } }).then((r) => r.json());
  const review = templates.items.find((x) => x.name === 'Incident review');
  assert.deepEqual(review.members.map((m) => [m.kind, m.display_name, m.role]), [['contact', '张三', 'chairman']]);

  // An administrator moves someone to another department from the list.
  await page.getByTestId('tab-directory').click();
  await page.getByTestId('directory-search').fill('zs');
  await page.getByTestId('person-张三').getByTestId('person-department').selectOption({ label: 'Sales & Marketing' });
  await page.getByTestId('directory-search').fill('');
  await page.getByTestId('dept-Sales & Marketing').click();
  await page.getByTestId('person-张三').waitFor();
  await page.getByTestId('dept-Backend').click();
  await page.getByTestId('no-people').waitFor();
  await page.getByTestId('dept-all').click();
  const moved = await fetch(`${base}/api/v1/directory?q=zs`, { headers: { authorization: `Bearer ${login.token}` } }).then((r) => r.json());
  const sales = await fetch(`${base}/api/v1/departments`, { headers: { authorization: `Bearer ${login.token}` } }).then((r) => r.json());
  assert.equal(moved.items[0].department_id, sales.items.find((d) => d.name === 'Sales & Marketing').id);

  // In Chinese.
  await page.getByTestId('language').selectOption('zh');
  await page.getByTestId('tab-directory').click();
  await page.getByRole('heading', { name: '部门', exact: true }).waitFor();
  await page.getByPlaceholder('姓名、拼音首字母或号码').fill('zs');
  await page.getByTestId('person-张三').getByText('企业联系人').waitFor();
  await page.getByTestId('group-On call').getByText('企业').waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-directory-zh.png'), fullPage: true });
  await page.getByTestId('language').selectOption('en');
  await page.close();
});

test('the directory is imported from a CSV through the console: a dry run row by row, a refused row fixed, applied; exported; SCIM shown', async () => {
  const page = await browser.newPage({ locale: 'en-US', viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
  await page.goto(base);
  await page.getByTestId('username').fill('admin');
  await page.getByTestId('password').fill(password);
  await page.getByTestId('login').click();
  await page.getByTestId('tab-directory').click();
  await page.getByTestId('page-directory').waitFor();

  // The template, downloaded as the browser saves it.
  const [template] = await Promise.all([page.waitForEvent('download'), page.getByTestId('template-csv').click()]);
  assert.equal(template.suggestedFilename(), 'directory-template.csv');
  const templateText = readFileSync(await template.path(), 'utf8');
  assert.match(templateText, /kind,name,login_name,department,title,extension,mobile,landline,email/);

  const header = 'kind,name,login_name,department,title,extension,mobile,landline,email\n';
  const broken = header
    + 'user,Ada Import,ada.import,Imports/Team A,Engineer,2701,,,ada@example.com\n'
    + 'contact,Bob Import,,Imports/Team A,Driver,,+8613900002702,,\n'
    + 'contact,Carl Import,,Imports,Porter,,,,\n';
  await page.getByTestId('import-file').setInputFiles({ name: 'people.csv', mimeType: 'text/csv', buffer: Buffer.from(broken) });
  await page.getByTestId('import-report').waitFor();
  await page.getByTestId('import-summary').getByText('2 to add, 0 to update, 0 unchanged, 1 refused.').waitFor();
  assert.equal(await page.getByTestId('import-row-2').locator('.badge').innerText(), 'add');
  assert.equal(await page.getByTestId('import-row-4').locator('.badge').innerText(), 'refuse');
  await page.getByTestId('import-row-4').getByText(/no extension|number/i).waitFor();
  assert.equal(await page.getByTestId('import-apply').isDisabled(), true, 'a file with a refused row cannot be applied');
  await page.getByTestId('import-fix').waitFor();
  mkdirSync(join(root, 'web', 'test-results'), { recursive: true });
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-import-dry-run-en.png'), fullPage: true });
  // Nothing was written by the dry run.
  await page.getByTestId('directory-search').fill('Ada Import');
  await page.getByTestId('no-people').waitFor();

  // The file fixed: everything is added, then applied.
  const fixed = broken.replace('contact,Carl Import,,Imports,Porter,,,,', 'contact,Carl Import,,Imports,Porter,,13900002703,,');
  await page.getByTestId('import-file').setInputFiles({ name: 'people.csv', mimeType: 'text/csv', buffer: Buffer.from(fixed) });
  await page.getByTestId('import-summary').getByText('3 to add, 0 to update, 0 unchanged, 0 refused.').waitFor();
  await page.getByTestId('import-summary').getByText('New departments: Imports, Imports/Team A').waitFor();
  await page.getByTestId('import-apply').click();
  await page.getByTestId('import-summary').getByText('Imported.').waitFor();
  await page.getByTestId('directory-search').fill('Import');
  await page.getByTestId('person-Ada Import').waitFor();
  await page.getByTestId('person-Bob Import').waitFor();
  await page.getByTestId('person-Carl Import').waitFor();
  await page.getByTestId('directory-search').fill('');
  await page.getByTestId('dept-Team A').click();
  await page.getByTestId('person-Bob Import').waitFor();
  await page.getByTestId('dept-all').click();

  // The export has them.
  const [exported] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
  assert.equal(exported.suggestedFilename(), 'directory.csv');
  assert.match(readFileSync(await exported.path(), 'utf8'), /contact,Bob Import,,Imports\/Team A,Driver,,\+8613900002702/);

  // SCIM: where to connect and a key for it.
  assert.equal(await page.getByTestId('scim-base-url').innerText(), `${base}/scim/v2`);
  await page.getByTestId('scim-key-create').click();
  const key = (await page.getByTestId('scim-key').locator('code').innerText()).trim();
  const scim = await fetch(`${base}/scim/v2/Users?filter=${encodeURIComponent('userName eq "ada.import"')}`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(scim.status, 200);
  assert.equal((await scim.json()).totalResults, 1);
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-import-applied-en.png'), fullPage: true });

  // In Chinese: the dry run of the broken file again (Chinese headers are read too).
  await page.getByTestId('language').selectOption('zh');
  await page.getByTestId('tab-directory').click();
  await page.getByRole('heading', { name: '导入与导出' }).waitFor();
  const zhFile = '类型,姓名,登录名,部门,职务,分机,手机,座机,邮箱\n'
    + 'user,Ada Import,ada.import,Imports/Team A,Engineer,2701,,,ada@example.com\n'
    + 'contact,Dan Import,,Imports,,,,,\n';
  await page.getByTestId('import-file').setInputFiles({ name: '人员.csv', mimeType: 'text/csv', buffer: Buffer.from(zhFile) });
  await page.getByTestId('import-summary').getByText('新增 0，更新 0，不变 1，拒绝 1。').waitFor();
  await page.getByRole('heading', { name: '集成' }).waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-import-zh.png'), fullPage: true });
  await page.getByTestId('language').selectOption('en');
  await page.close();
});

test('a template is edited whole (room, settings, members from the directory and by number, roles) and started with one click: the server calls the members', async () => {
  const { login, auth } = await adminApi();
  const post = (path, body) => fetch(`${base}/api/v1${path}`, { method: 'POST', headers: auth, body: JSON.stringify(body) }).then((r) => r.json());
  const room = await post('/rooms', { number: '8300', name: 'Weekly sync room' });
  assert.ok(room.id, JSON.stringify(room));
  const ada = await post('/users', { username: 'ada', display_name: 'Ada Lovelace', password: 'analytical-engine-1843', extension: '2301' });
  assert.ok(ada.id, JSON.stringify(ada));
  // A gateway that answers (sipp's built-in UAS) behind a trunk: the number member is called there.
  const dir = mkdtempSync(join(tmpdir(), 'conclave-sipp-'));
  const gatewayPort = await freeUdpPort();
  const gateway = spawn('sipp', ['-sn', 'uas', '-i', '127.0.0.1', '-p', String(gatewayPort), '-m', '1', '-nostdin', '-timeout', '60s'],
    { cwd: dir, stdio: 'ignore' });
  const trunk = await post('/trunks', { name: 'Answering gateway', host: '127.0.0.1', port: gatewayPort, priority: -10 });
  assert.ok(trunk.id, JSON.stringify(trunk));
  try {
    const page = await loggedIn({ locale: 'en-US', viewport: { width: 1400, height: 1000 } });
    await page.getByTestId('tab-templates').click();
    const form = page.getByTestId('create-form');
    await form.getByTestId('field-name').fill('Weekly sync');
    await form.getByTestId('create').click();
    // Without a room it cannot start: the button says why.
    const start = page.getByTestId('start-Weekly sync');
    await start.waitFor();
    assert.equal(await start.isDisabled(), true);

    await page.getByTestId('edit-Weekly sync').click();
    const editor = page.getByTestId('template-editor');
    await editor.getByTestId('tpl-room').selectOption({ label: '8300 · Weekly sync room' });
    await editor.getByTestId('tpl-mute_on_entry').check();
    await editor.getByTestId('tpl-search').fill('ada');
    await editor.getByTestId('tpl-add-Ada Lovelace').click();
    await editor.getByTestId('tpl-member-Ada Lovelace').getByTestId('tpl-member-role').selectOption('chairman');
    await editor.getByTestId('tpl-number').fill('5550123');
    await editor.getByTestId('tpl-number-name').fill('Field office');
    await editor.getByTestId('tpl-add-number').click();
    // A member added by mistake is removed again.
    await editor.getByTestId('tpl-number').fill('5550999');
    await editor.getByTestId('tpl-add-number').click();
    await editor.getByTestId('tpl-member-5550999').getByTestId('tpl-member-remove').click();
    await page.screenshot({ path: join(dataDir, 'template-editor-en.png'), fullPage: true });
    await editor.getByTestId('tpl-save').click();
    await editor.waitFor({ state: 'detached' });

    const templates = await fetch(`${base}/api/v1/templates`, { headers: auth }).then((r) => r.json());
    const saved = templates.items.find((x) => x.name === 'Weekly sync');
    assert.equal(saved.room_id, room.id);
    assert.equal(saved.settings.mute_on_entry, true);
    assert.deepEqual(
      saved.members.map((m) => [m.kind, m.display_name, m.role, m.user_id ?? m.number]),
      [['user', 'Ada Lovelace', 'chairman', ada.id], ['number', 'Field office', 'member', '5550123']],
    );

    // One click: the meeting starts, the server calls everyone (Ada's phone is not
    // registered: said so), and the live page shows the gateway joined.
    await page.getByTestId('start-Weekly sync').click();
    const note = page.getByTestId('start-note');
    await note.waitFor();
    assert.match(await note.innerText(), /Started, calling: .*Ada Lovelace.*Field office/);
    const meeting = page.getByTestId('conference-8300');
    await meeting.waitFor({ timeout: 10000 });
    await meeting.getByText('Field office').first().waitFor({ timeout: 10000 });
    const live = await fetch(`${base}/api/v1/conferences/${room.id}`, { headers: auth }).then((r) => r.json());
    assert.equal(live.members.length, 1, JSON.stringify(live));
    assert.equal(live.members[0].muted, true, 'the template says everyone is muted on entry');

    // The editor in Chinese, for a look.
    await page.getByTestId('language').selectOption('zh');
    await page.getByTestId('tab-templates').click();
    await page.getByTestId('edit-Weekly sync').click();
    await page.getByTestId('template-editor').getByText('会议开始时').waitFor();
    await page.screenshot({ path: join(dataDir, 'template-editor-zh.png'), fullPage: true });
    if (process.env.CONCLAVE_SCREENSHOTS) {
      for (const name of ['template-editor-en.png', 'template-editor-zh.png']) {
        writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, name), readFileSync(join(dataDir, name)));
      }
    }
    await page.close();
    await fetch(`${base}/api/v1/conferences/${room.id}/end`, { method: 'POST', headers: auth });
  } finally {
    gateway.kill();
    await fetch(`${base}/api/v1/trunks/${trunk.id}`, { method: 'DELETE', headers: auth });
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a room is edited whole (a wrong value refused next to its field) and a meeting started in it now with people picked on the spot', async () => {
  const { login, auth } = await adminApi();
  const post = (path, body) => fetch(`${base}/api/v1${path}`, { method: 'POST', headers: auth, body: JSON.stringify(body) }).then((r) => r.json());
  const room = await post('/rooms', { number: '8400', name: 'Crisis room' });
  assert.ok(room.id, JSON.stringify(room));
  const grace = await post('/users', { username: 'grace', display_name: 'Grace Hopper', password: 'cobol-compiler-1959', extension: '2401' });
  assert.ok(grace.id, JSON.stringify(grace));
  const dir = mkdtempSync(join(tmpdir(), 'conclave-sipp-'));
  const gatewayPort = await freeUdpPort();
  const gateway = spawn('sipp', ['-sn', 'uas', '-i', '127.0.0.1', '-p', String(gatewayPort), '-m', '1', '-nostdin', '-timeout', '60s'],
    { cwd: dir, stdio: 'ignore' });
  const trunk = await post('/trunks', { name: 'Answering gateway 2', host: '127.0.0.1', port: gatewayPort, priority: -10 });
  assert.ok(trunk.id, JSON.stringify(trunk));
  try {
    const page = await loggedIn({ locale: 'en-US', viewport: { width: 1400, height: 1000 } });
    await page.getByTestId('page-rooms').waitFor();
    await page.getByTestId('edit-room-8400').click();
    const editor = page.getByTestId('room-editor');
    await editor.getByTestId('room-edit-name').fill('Crisis room (24/7)');
    await editor.getByTestId('room-edit-pin').fill('2468');
    await editor.getByTestId('room-edit-capacity').fill('0');
    await editor.getByTestId('room-edit-max_duration_minutes').fill('90');
    await editor.getByTestId('room-edit-language').selectOption('zh');
    await editor.getByTestId('room-edit-owner').selectOption({ label: 'Grace Hopper' });
    await editor.getByTestId('room-edit-alone_music').uncheck();
    await editor.getByTestId('room-edit-save').click();
    // Refused, with the reason next to the capacity; nothing saved.
    await editor.getByTestId('editor-error').waitFor();
    assert.ok(await editor.locator('small.error').count() >= 1);
    let stored = await fetch(`${base}/api/v1/rooms/${room.id}`, { headers: auth }).then((r) => r.json());
    assert.equal(stored.name, 'Crisis room');
    await editor.getByTestId('room-edit-capacity').fill('25');
    await editor.getByTestId('room-edit-save').click();
    await editor.waitFor({ state: 'detached' });
    stored = await fetch(`${base}/api/v1/rooms/${room.id}`, { headers: auth }).then((r) => r.json());
    assert.deepEqual(
      [stored.name, stored.pin, stored.capacity, stored.max_duration_minutes, stored.language, stored.owner_id, stored.alone_music],
      ['Crisis room (24/7)', '2468', 25, 90, 'zh', grace.id, false],
    );

    // A meeting now: Grace from the directory (her phone is not registered: said so) and a
    // number behind the trunk, which answers and is in the meeting.
    await page.getByTestId('start-now-8400').click();
    const start = page.getByTestId('adhoc-start');
    assert.equal(await start.getByTestId('adhoc-start-button').isDisabled(), true, 'nobody to call yet');
    await start.getByTestId('tpl-search').fill('hopper');
    await start.getByTestId('tpl-add-Grace Hopper').click();
    await start.getByTestId('tpl-member-Grace Hopper').getByTestId('tpl-member-role').selectOption('chairman');
    await start.getByTestId('tpl-number').fill('5550188');
    await start.getByTestId('tpl-number-name').fill('Duty officer');
    await start.getByTestId('tpl-add-number').click();
    await start.getByTestId('adhoc-lock_on_start').check();
    await page.screenshot({ path: join(dataDir, 'adhoc-start-en.png'), fullPage: true });
    await start.getByTestId('adhoc-start-button').click();
    const note = start.getByTestId('adhoc-note');
    await note.waitFor();
    assert.match(await note.innerText(), /Started, calling: .*Grace Hopper.*Duty officer/);
    const meeting = page.getByTestId('conference-8400');
    await meeting.waitFor({ timeout: 10000 });
    await meeting.getByText('Duty officer').first().waitFor({ timeout: 10000 });
    const live = await fetch(`${base}/api/v1/conferences/${room.id}`, { headers: auth }).then((r) => r.json());
    assert.equal(live.locked, true, JSON.stringify(live));
    // The dashboard shows it: the meeting, the member the meeting called, the server's load.
    await page.getByTestId('tab-dashboard').click();
    const dashboard = page.getByTestId('page-dashboard');
    await dashboard.getByTestId('now-8400').waitFor();
    assert.match(await dashboard.getByTestId('stat-people').innerText(), /called by the meeting 1/);
    await dashboard.getByTestId('stat-worker-0').waitFor();
    await page.screenshot({ path: join(dataDir, 'dashboard-en.png'), fullPage: true });
    await page.getByTestId('language').selectOption('zh');
    await dashboard.getByText('当前会议').waitFor();
    await page.screenshot({ path: join(dataDir, 'dashboard-zh.png'), fullPage: true });
    await page.getByTestId('language').selectOption('en');
    // The audit log says what was done to what, in words, with dates in the chosen language.
    await page.getByTestId('tab-audit').click();
    const edited = page.getByTestId('page-audit').locator('tr', { hasText: 'Crisis room (24/7)' }).first();
    await edited.getByText('Changed room').waitFor();
    await edited.getByText('room 8400 · Crisis room (24/7)').waitFor();
    await edited.getByText('done').waitFor();
    await page.getByTestId('language').selectOption('zh');
    const editedZh = page.getByTestId('page-audit').locator('tr', { hasText: 'Crisis room (24/7)' }).first();
    await editedZh.getByText('修改会议室', { exact: true }).waitFor();
    await editedZh.getByText('成功').waitFor();
    assert.match(await editedZh.locator('td').first().innerText(), /\d{4}年\d{1,2}月\d{1,2}日/);
    await page.screenshot({ path: join(dataDir, 'audit-zh.png'), fullPage: true });
    await page.getByTestId('language').selectOption('en');
    if (process.env.CONCLAVE_SCREENSHOTS) {
      for (const name of ['adhoc-start-en.png', 'audit-zh.png', 'dashboard-en.png', 'dashboard-zh.png']) {
        writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, name), readFileSync(join(dataDir, name)));
      }
    }
    await page.close();
    await fetch(`${base}/api/v1/conferences/${room.id}/end`, { method: 'POST', headers: auth });
  } finally {
    gateway.kill();
    await fetch(`${base}/api/v1/trunks/${trunk.id}`, { method: 'DELETE', headers: auth });
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the history page finds meetings by dates, room and attendee, shows who attended and what happened, and exports CSV', async () => {
  const { login, auth } = await adminApi();
  await fetch(`${base}/api/v1/rooms`, { method: 'POST', headers: auth, body: JSON.stringify({ number: '8700', name: 'Harbour watch' }) });
  // A real caller (sipp plays its recording for a few seconds, then hangs up).
  const dir = mkdtempSync(join(tmpdir(), 'conclave-sipp-'));
  const scenario = spawnSync('sipp', ['-sd', 'uac_pcap'], { encoding: 'utf8' }).stdout
    .replace('pcap/g711a.pcap', '/usr/share/sip-tester/g711a.pcap')
    .replace('pcap/dtmf_2833_1.pcap', '/usr/share/sip-tester/dtmf_2833_1.pcap');
  writeFileSync(join(dir, 'uac_pcap.xml'), scenario);
  const sipp = spawnSync('sipp', [`127.0.0.1:${sipPort}`, '-sf', 'uac_pcap.xml', '-s', '8700', '-m', '1', '-l', '1',
    '-i', '127.0.0.1', '-p', String(await freeUdpPort()), '-mp', String((await freeUdpPort()) & ~1), '-nostdin', '-timeout', '30s'],
  { cwd: dir, encoding: 'utf8', timeout: 40000 });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(sipp.status, 0, sipp.stdout + sipp.stderr);
  for (let i = 0; i < 100; i++) {
    const list = await fetch(`${base}/api/v1/conference-history?q=8700`, { headers: auth }).then((r) => r.json());
    if (list.items.length === 1 && list.items[0].ended_at) break;
    await new Promise((r) => setTimeout(r, 100));
  }

  const page = await loggedIn({ locale: 'en-US', viewport: { width: 1400, height: 1000 } });
  await page.getByTestId('tab-historyTab').click();
  const history = page.getByTestId('page-history');
  // By attendee: sipp's caller is "sipp".
  await history.getByTestId('history-participant').fill('sipp');
  await history.getByTestId('history-search').click();
  const row = history.locator('[data-room="8700"]');
  await row.waitFor();
  // Nobody by that name: nothing.
  await history.getByTestId('history-participant').fill('nobody-by-that-name');
  await history.getByTestId('history-search').click();
  await history.getByText('No meetings yet.').or(history.locator('.empty')).first().waitFor();
  assert.equal(await history.locator('[data-room="8700"]').count(), 0);
  // Dates: today finds it, a day long past does not.
  const today = new Date();
  const day = `${today.getFullYear()}-${String(today.getMonth() + 1).padStart(2, '0')}-${String(today.getDate()).padStart(2, '0')}`;
  await history.getByTestId('history-participant').fill('');
  await history.getByTestId('history-from').fill(day);
  await history.getByTestId('history-room').fill('harbour');
  await history.getByTestId('history-search').click();
  await row.waitFor();
  await history.getByTestId('history-to').fill('2020-01-01');
  await history.getByTestId('history-from').fill('2020-01-01');
  await history.getByTestId('history-search').click();
  await history.locator('.empty').first().waitFor();
  await history.getByTestId('history-from').fill(day);
  await history.getByTestId('history-to').fill(day);
  await history.getByTestId('history-search').click();
  await row.waitFor();

  // The meeting's attendance and log.
  await row.getByTestId('history-details').click();
  const details = history.getByTestId('meeting-details');
  await details.getByTestId('attendance').getByRole('cell', { name: 'sipp', exact: true }).first().waitFor();
  await details.getByTestId('attendance').getByText('called in').waitFor();
  await details.getByTestId('meeting-log').getByText(/joined — sipp/).waitFor();
  await page.screenshot({ path: join(dataDir, 'history-en.png'), fullPage: true });
  // Exports: the list and the log, as files.
  const [list] = await Promise.all([page.waitForEvent('download'), history.getByTestId('history-export').click()]);
  const csv = readFileSync(await list.path(), 'utf8');
  assert.match(csv, /^room_number,room_name,started_at,ended_at,minutes,attendees\n8700,Harbour watch,\d+,\d+,\d*,sipp\n$/);
  const [log] = await Promise.all([page.waitForEvent('download'), details.getByTestId('log-export').click()]);
  assert.match(readFileSync(await log.path(), 'utf8'), /^at,actor,kind,detail\n.*joined/s);
  // The address names the page and the meeting open in it: a reload shows them again, Back
  // closes the meeting, then returns to the rooms the user came from; Forward goes again.
  const meetingPath = new URL(page.url()).pathname;
  assert.match(meetingPath, /^\/history\/[A-Za-z0-9-]+$/);
  await page.reload();
  await details.getByTestId('attendance').getByRole('cell', { name: 'sipp', exact: true }).first().waitFor();
  await page.goBack();
  await details.waitFor({ state: 'detached' });
  assert.equal(new URL(page.url()).pathname, '/history');
  await page.goBack();
  await page.getByTestId('page-rooms').waitFor();
  assert.equal(await history.count(), 0);
  await page.goForward();
  await history.locator('[data-room="8700"]').waitFor();
  // A link to the meeting, opened by someone not logged in yet: there after the login.
  const linked = await browser.newPage({ locale: 'en-US' });
  await linked.goto(`${base}${meetingPath}`);
  // the login page, in both languages (docs/screenshots/login-{en,zh}.png)
  await linked.getByTestId('username').waitFor();
  await linked.screenshot({ path: join(dataDir, 'login-en.png'), fullPage: true });
  await linked.getByTestId('language').selectOption('zh');
  await linked.getByTestId('login').getByText('登录').waitFor();
  await linked.screenshot({ path: join(dataDir, 'login-zh.png'), fullPage: true });
  await linked.getByTestId('language').selectOption('en');
  await linked.getByTestId('username').fill('admin');
  await linked.getByTestId('password').fill(password);
  await linked.getByTestId('login').click();
  await linked.getByTestId('meeting-details').getByTestId('attendance').getByRole('cell', { name: 'sipp', exact: true }).first().waitFor();
  assert.equal(await linked.getByTestId('tab-historyTab').getAttribute('class'), 'active');
  await linked.close();
  await history.locator('[data-room="8700"]').getByTestId('history-details').click();
  await page.getByTestId('language').selectOption('zh');
  await details.getByText('呼入').first().waitFor();
  await page.screenshot({ path: join(dataDir, 'history-zh.png'), fullPage: true });
  if (process.env.CONCLAVE_SCREENSHOTS) {
    for (const name of ['history-en.png', 'history-zh.png', 'login-en.png', 'login-zh.png']) {
      writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, name), readFileSync(join(dataDir, name)));
    }
  }
  await page.close();
});

test("a tenant's branding: its administrator sets name, slogan, colour and logo; whoever reaches the server by the tenant's domain sees them on the login page", async () => {
  const { login, auth } = await adminApi();
  const tenant = await fetch(`${base}/api/v1/tenants`, {
    method: 'POST', headers: auth, body: JSON.stringify({ name: 'Harbour Authority', sip_domain: 'harbour.test' }),
  }).then((r) => r.json());
  assert.ok(tenant.id, JSON.stringify(tenant));
  const created = await fetch(`${base}/api/v1/users`, {
    method: 'POST', headers: auth,
    body: JSON.stringify({ username: 'harbourmaster', display_name: 'Harbour Master', password: 'lighthouse-keeper-1', kind: 'tenant_admin', tenant_id: tenant.id }),
  });
  assert.equal(created.status, 201);
  const harbour = base.replace('127.0.0.1', 'harbour.test');
  const page = await browser.newPage({ locale: 'en-US', viewport: { width: 1300, height: 900 } });
  await page.goto(harbour);
  await page.getByTestId('username').fill('harbourmaster');
  await page.getByTestId('password').fill('lighthouse-keeper-1');
  await page.getByTestId('login').click();
  await page.getByTestId('tab-tenants').click();
  const editor = page.getByTestId('branding-editor');
  await editor.getByTestId('brand-product').fill('Harbour Meet');
  await editor.getByTestId('brand-slogan').fill('Every ship, every voice');
  await editor.getByTestId('brand-color').fill('#1f6b3a');
  // Not a picture the server takes (an SVG): refused next to the field.
  await editor.getByTestId('brand-logo').setInputFiles({ name: 'logo.svg', mimeType: 'image/svg+xml', buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>') });
  await editor.getByTestId('brand-save').click();
  await editor.getByTestId('brand-logo-error').waitFor();
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
  await editor.getByTestId('brand-logo').setInputFiles({ name: 'logo.png', mimeType: 'image/png', buffer: png });
  await editor.getByTestId('brand-preview').locator('img.logo').waitFor();
  await editor.getByTestId('brand-save').click();
  await editor.getByTestId('branding-saved').waitFor();
  await page.getByTestId('brand').getByText('Harbour Meet').waitFor();
  assert.equal(await page.evaluate(() => document.title), 'Harbour Meet');
  const header = await page.locator('header').first().evaluate((h) => getComputedStyle(h).backgroundColor);
  assert.equal(header, 'rgb(31, 107, 58)');
  await page.getByTestId('logout').click();
  // The login page by the tenant's name shows its brand; by another name, the server's own.
  await page.getByTestId('slogan').getByText('Every ship, every voice').waitFor();
  await page.getByTestId('brand').locator('img.logo').waitFor();
  await page.screenshot({ path: join(dataDir, 'branding-login.png'), fullPage: true });
  await page.goto(base);
  await page.getByTestId('brand').getByText('Conclave').waitFor();
  assert.equal(await page.getByTestId('slogan').count(), 0);
  if (process.env.CONCLAVE_SCREENSHOTS) {
    writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, 'branding-login.png'), readFileSync(join(dataDir, 'branding-login.png')));
  }
  await page.close();
});

test('long lists come a page at a time: More brings the rest', async () => {
  const { auth } = await adminApi();
  for (let i = 0; i < 105; i++) {
    const r = await fetch(`${base}/api/v1/contacts`, {
      method: 'POST', headers: auth, body: JSON.stringify({ name: `Pager ${String(i).padStart(3, '0')}`, mobile: `1390000${String(i).padStart(4, '0')}`, book: 'personal' }),
    });
    assert.equal(r.status, 201);
  }
  const page = await loggedIn({ locale: 'en-US' });
  await page.getByTestId('tab-contacts').click();
  const list = page.getByTestId('page-contacts');
  await list.getByText('Pager 000').waitFor();
  // One page: 100 rows (other tests' contacts may be among them), then the rest.
  assert.equal(await list.locator('tbody tr').count(), 100);
  assert.ok(await list.getByText('Pager 104').count() === 0 || await list.getByText('Pager 000').count() === 0);
  await list.getByTestId('more').click();
  await list.getByText('Pager 104').waitFor();
  assert.equal(await list.locator('tbody tr', { hasText: 'Pager' }).count(), 105);
  assert.equal(await list.getByTestId('more').count(), 0, 'no more pages');
  await page.close();
});

test('the console runs under its Content-Security-Policy, which refused nothing', async () => {
  const index = await fetch(`${base}/`);
  assert.match(index.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  assert.equal(index.headers.get('x-frame-options'), 'DENY');
  assert.deepEqual(cspViolations, []);
});

test('meetings are booked ahead: a weekly series, a conflict shown in words and booked anyway, one occurrence moved, another cancelled, week and month views, in English and Chinese', async () => {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  }).then((r) => r.json());
  const auth = { authorization: `Bearer ${login.token}`, 'content-type': 'application/json' };
  const get = (path) => fetch(`${base}/api/v1${path}`, { headers: auth }).then((r) => r.json());
  const post = (path, body) => fetch(`${base}/api/v1${path}`, { method: 'POST', headers: auth, body: JSON.stringify(body) }).then((r) => r.json());
  const room = await post('/rooms', { number: '8600', name: 'Board room' });
  assert.ok(room.id, JSON.stringify(room));
  const margaret = await post('/users', { username: 'margaret', display_name: 'Margaret Hamilton', password: 'apollo-guidance-1969', extension: '2601' });
  assert.ok(margaret.id, JSON.stringify(margaret));

  // The Monday at least a week ahead, and that week's Wednesday (dates in Europe/Berlin, the browser's zone here).
  const day = (ms) => new Date(ms).toISOString().slice(0, 10);
  const now = Date.now() + 8 * 86_400_000;
  const monday = day(now + ((8 - new Date(now).getUTCDay()) % 7) * 86_400_000);
  const wednesday = day(Date.parse(monday) + 2 * 86_400_000);

  const page = await browser.newPage({ locale: 'en-US', timezoneId: 'Europe/Berlin', viewport: { width: 1400, height: 1000 } });
  await page.goto(base);
  await page.getByTestId('username').fill('admin');
  await page.getByTestId('password').fill(password);
  await page.getByTestId('login').click();
  await page.getByTestId('page-rooms').waitFor();
  await page.getByTestId('tab-meetings').click();
  await page.getByTestId('page-meetings').waitFor();

  // A weekly series on Mondays and Wednesdays, six times, with Margaret from the directory.
  await page.getByTestId('book-new').click();
  const form = page.getByTestId('booking-form');
  await form.waitFor();
  // The name and PIN are proposed.
  await page.waitForFunction(() => document.querySelector('[data-testid=bk-pin]')?.value.length >= 4);
  assert.equal(await form.getByTestId('bk-zone').inputValue(), 'Europe/Berlin');
  await form.getByTestId('bk-name').fill('Weekly sync');
  await form.getByTestId('bk-room').selectOption({ label: '8600 · Board room' });
  await form.getByTestId('bk-date').fill(monday);
  await form.getByTestId('bk-time').fill('10:00');
  await form.getByTestId('bk-duration').fill('60');
  await form.getByTestId('bk-freq').selectOption('weekly');
  await form.getByTestId('bk-day-MO').check();
  await form.getByTestId('bk-day-WE').check();
  await form.getByTestId('bk-end').selectOption('count');
  await form.getByTestId('bk-count').fill('6');
  await form.getByTestId('tpl-search').fill('Margaret');
  await form.getByTestId('tpl-add-Margaret Hamilton').click();
  await form.getByTestId('bk-presenter').selectOption({ label: 'Margaret Hamilton' });
  await form.getByTestId('bk-save').click();
  await form.waitFor({ state: 'detached' });

  for (let i = 0; i < 3 && (await page.getByTestId(`day-${monday}`).count()) === 0; i++) await page.getByTestId('cal-next').click();
  await page.getByTestId(`day-${monday}`).getByText('Weekly sync').waitFor();
  await page.getByTestId(`day-${wednesday}`).getByText('Weekly sync').waitFor();

  // A second meeting in the same room at the same time: the conflict, in words; booked anyway.
  await page.getByTestId('book-new').click();
  await form.getByTestId('bk-name').fill('Design review');
  await form.getByTestId('bk-room').selectOption({ label: '8600 · Board room' });
  await form.getByTestId('bk-date').fill(monday);
  await form.getByTestId('bk-time').fill('10:30');
  await form.getByTestId('bk-duration').fill('30');
  await form.getByTestId('bk-save').click();
  const conflicts = form.getByTestId('conflicts');
  await conflicts.waitFor();
  assert.match(await conflicts.innerText(), /the room is already booked for “Weekly sync”/);
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-meetings-conflict-en.png'), fullPage: true });
  await conflicts.getByTestId('book-anyway').click();
  await form.waitFor({ state: 'detached' });
  await page.getByTestId(`day-${monday}`).getByText('Design review').waitFor();

  // Wednesday's occurrence moved to 14:00, only that one.
  await page.getByTestId(`day-${wednesday}`).getByText('Weekly sync').click();
  const occ = page.getByTestId('occurrence');
  await occ.getByTestId('occ-time').fill('14:00');
  await occ.getByTestId('occ-scope').selectOption('this');
  await occ.getByTestId('occ-move').click();
  await occ.waitFor({ state: 'detached' });
  await page.getByTestId(`day-${wednesday}`).locator('button.occ.moved').getByText('14:00').waitFor();

  // Monday's occurrence cancelled.
  await page.getByTestId(`day-${monday}`).getByText('Weekly sync').click();
  await occ.getByTestId('occ-cancel-one').click();
  await occ.waitFor({ state: 'detached' });
  await page.getByTestId(`day-${monday}`).locator('button.occ.cancelled').getByText('Weekly sync').waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-meetings-week-en.png'), fullPage: true });

  // The whole series renamed: the moved and the cancelled occurrences stay as they are.
  await page.getByTestId(`day-${wednesday}`).getByText('Weekly sync').click();
  await occ.getByTestId('occ-edit-series').click();
  await form.getByTestId('bk-name').fill('Weekly sync (team)');
  await form.getByTestId('bk-save').click();
  await form.waitFor({ state: 'detached' });
  await page.getByTestId(`day-${wednesday}`).locator('button.occ.moved').getByText('Weekly sync (team)').waitFor();
  await page.getByTestId(`day-${monday}`).locator('button.occ.cancelled').getByText('Weekly sync (team)').waitFor();

  // The month view shows the series' occurrences of the month.
  await page.getByTestId('view-month').click();
  await page.getByTestId('calendar-month').waitFor();
  await page.getByTestId(`day-${wednesday}`).getByText('Weekly sync').waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-meetings-month-en.png'), fullPage: true });

  // In Chinese.
  await page.getByTestId('language').selectOption('zh');
  await page.getByTestId('tab-meetings').getByText('会议预约').waitFor();
  await page.getByTestId('view-month').getByText('月').waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-meetings-month-zh.png'), fullPage: true });
  await page.getByTestId('view-week').click();
  await page.getByTestId(`day-${wednesday}`).getByText('Weekly sync').click();
  await page.getByTestId('occurrence').getByText('调整时间或时长').waitFor();
  // No mail server is configured here: the organiser is told no invitation was mailed.
  await page.getByTestId('occurrence').getByText('未发送邮件').waitFor();
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-meetings-week-zh.png'), fullPage: true });
  await page.getByTestId('occ-close').click();
  await page.getByTestId('book-new').click();
  await form.getByTestId('bk-name').fill('设计评审');
  await form.getByTestId('bk-room').selectOption({ label: '8600 · Board room' });
  await form.getByTestId('bk-date').fill(wednesday);
  await form.getByTestId('bk-time').fill('14:15');
  await form.getByTestId('bk-freq').selectOption('monthly_weekday');
  await form.getByTestId('bk-save').click();
  await conflicts.waitFor();
  assert.match(await conflicts.innerText(), /会议室已被“Weekly sync \(team\)”/);
  await page.screenshot({ path: join(root, 'web', 'test-results', 'console-meetings-conflict-zh.png'), fullPage: true });
  await form.getByTestId('bk-cancel').click();

  // The calendar feed: an address that serves iCalendar, revoked.
  await page.getByTestId('feed-create').click();
  const url = await page.getByTestId('feed-url').inputValue();
  const ics = await fetch(url).then((r) => r.text());
  assert.match(ics, /BEGIN:VCALENDAR/);
  assert.match(ics, /SUMMARY:Weekly sync/);
  await page.getByTestId('feed-revoke').click();
  await page.getByText('该订阅地址已失效。').waitFor();
  assert.equal((await fetch(url)).status, 404);

  // What the console did is what the API holds.
  const bookings = (await get('/bookings')).items;
  const series = bookings.find((b) => b.name === 'Weekly sync (team)');
  assert.equal(series.rrule, 'FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6');
  assert.equal(series.time_zone, 'Europe/Berlin');
  assert.equal(series.start_local.slice(0, 16), `${monday}T10:00`);
  assert.deepEqual(series.members.map((m) => [m.display_name, m.presenter]), [['Margaret Hamilton', true]]);
  assert.ok(bookings.find((b) => b.name === 'Design review'));
  assert.ok(!bookings.find((b) => b.name === '设计评审'));
  const from = Date.parse(monday) - 86_400_000;
  const occurrences = (await get(`/bookings/${series.id}/occurrences?from=${from}&to=${from + 30 * 86_400_000}`)).items;
  assert.equal(occurrences.length, 6);
  assert.equal(occurrences[0].cancelled, true);
  assert.equal(occurrences[1].moved, true);
  assert.equal(occurrences[1].start_local.slice(0, 16), `${wednesday}T14:00`);
  assert.equal(occurrences.filter((o) => o.moved || o.cancelled).length, 2);
  await page.close();
});

test('a guest joins a meeting from the join page, in Chinese and English, on a phone-sized screen', async () => {
  const { auth } = await adminApi();
  const room = await fetch(`${base}/api/v1/rooms`, {
    method: 'POST', headers: auth, body: JSON.stringify({ number: '8450', name: 'Flood response', pin: '5150' }),
  }).then((r) => r.json());
  assert.ok(room.id, JSON.stringify(room));
  const shots = [];
  const shot = async (page, name) => {
    const path = join(dataDir, name);
    await page.screenshot({ path, fullPage: true });
    shots.push(name);
  };

  // The console links each room to its join page.
  const admin = await loggedIn({ locale: 'en-US' });
  await admin.getByTestId('join-room-8450').waitFor();
  assert.equal(await admin.getByTestId('join-room-8450').getAttribute('href'), '/join/8450');
  await admin.close();

  // A phone-sized screen, in Chinese: the number comes from the link; the form checks first.
  const page = await browser.newPage({ locale: 'zh-CN', viewport: { width: 390, height: 780 }, isMobile: true, hasTouch: true });
  await page.goto(`${base}/join/8450`);
  await page.getByTestId('language').selectOption('zh');
  assert.equal(await page.getByTestId('join-number').inputValue(), '8450');
  await page.getByTestId('join-submit').click();
  await page.getByText('请填写姓名。').waitFor();
  await shot(page, 'join-zh.png');
  await page.getByTestId('join-name').fill('李娜');
  await page.getByTestId('join-pin').fill('0000');
  await page.getByTestId('join-submit').click();
  await page.getByTestId('join-error').getByText('密码错误。').waitFor();
  await page.getByTestId('join-pin').fill('5150');
  await page.getByTestId('join-submit').click();
  await page.getByTestId('in-meeting').waitFor();
  await page.getByTestId('join-roster').getByText('李娜').waitFor();
  await page.getByTestId('join-mute').getByText('静音').waitFor();
  // touch-sized controls
  const box = await page.getByTestId('join-leave').boundingBox();
  assert.ok(box.height >= 44, `the Leave button is ${box.height}px high`);
  await page.getByTestId('join-mute').click();
  await page.getByTestId('join-mute').getByText('取消静音').waitFor();
  await shot(page, 'meeting-zh.png');

  // The same meeting in English, on a desktop: the guest is there, talking or not.
  const desk = await browser.newPage({ locale: 'en-US' });
  await desk.goto(`${base}/join/8450`);
  await desk.getByTestId('language').selectOption('en');
  await desk.getByTestId('join-name').fill('Sam');
  await desk.getByTestId('join-pin').fill('5150');
  await desk.getByTestId('join-submit').click();
  await desk.getByTestId('join-roster').getByText('李娜').waitFor();
  await desk.getByTestId('join-roster').getByText('Sam').waitFor();
  await shot(desk, 'meeting-en.png');
  await desk.getByTestId('join-leave').click();
  await desk.getByTestId('join-left').getByText('You have left the meeting.').waitFor();
  await shot(desk, 'join-en.png');
  await page.getByTestId('join-leave').click();
  await page.getByTestId('join-left').waitFor();
  await page.close();
  await desk.close();
  if (process.env.CONCLAVE_SCREENSHOTS) {
    for (const name of shots) writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, name), readFileSync(join(dataDir, name)));
  }
  assert.deepEqual(cspViolations, [], 'the join page keeps to the Content-Security-Policy');
});

test('a chair records a meeting from the console and plays it back — its video and each voice — from the recordings library, in English and Chinese', async () => {
  const { auth } = await adminApi();
  const room = await fetch(`${base}/api/v1/rooms`, {
    method: 'POST', headers: auth, body: JSON.stringify({ number: '8460', name: 'Budget review' }),
  }).then((r) => r.json());
  assert.ok(room.id, JSON.stringify(room));
  // Ada's camera is on (Chromium's fake one): the recording shows the meeting's layout too
  const guest = await guestIn('8460', 'Ada', { camera: true });

  const page = await loggedIn({ locale: 'en-US' });
  await page.getByTestId('tab-live').click();
  const meeting = page.getByTestId('conference-8460');
  await meeting.getByTestId('record').getByText('Record', { exact: true }).waitFor();
  await meeting.getByTestId('record').click();
  await meeting.getByTestId('recording-on').waitFor();
  await page.waitForTimeout(5000);
  await meeting.getByTestId('record').getByText('Stop recording').click();
  await meeting.getByTestId('recording-on').waitFor({ state: 'detached' });
  await guest.getByTestId('join-leave').click();
  await guest.close();

  await page.getByTestId('tab-recordings').click();
  const library = page.getByTestId('page-recordings');
  const row = library.locator('[data-testid^="recording-"]').filter({ hasText: '8460' }).first();
  await row.getByText('Finished').waitFor({ timeout: 15000 });
  await row.getByRole('button', { name: 'Open' }).click();
  const detail = page.getByTestId('recording-detail');
  await detail.getByText('Whole meeting (mix)').waitFor();
  // Ada's track (its number says in what order the tracks began: her voice or the picture)
  const adaRow = detail.locator('[data-testid^="track-"]').filter({ hasText: 'Ada' });
  await adaRow.waitFor();
  const ada = Number((await adaRow.getAttribute('data-testid')).replace('track-', ''));
  assert.ok(ada >= 1, `Ada's track is ${ada}`);
  await detail.getByTestId(`play-${ada}`).click();
  const audio = detail.getByTestId(`audio-${ada}`);
  await audio.waitFor();
  // Chromium decodes the Ogg Opus track: it lasts about as long as the recording ran
  const seconds = await audio.evaluate((el) => new Promise((done) => {
    const report = () => done(el.duration);
    if (el.readyState >= 1) report();
    else el.addEventListener('loadedmetadata', report);
    el.addEventListener('error', () => done(-1));
    setTimeout(() => done(-2), 5000);
  }));
  assert.ok(seconds > 2 && seconds < 30, `the track plays for ${seconds} s`);
  // the video: the layout as it was composed (1280×720), with the mix; it plays
  await detail.getByTestId('recording-video').getByText('Video of the meeting').waitFor();
  await detail.getByTestId('play-video').click();
  const player = detail.getByTestId('video-player');
  await player.waitFor();
  const video = await player.evaluate((el) => new Promise((done) => {
    const report = () => done({ width: el.videoWidth, height: el.videoHeight, duration: el.duration, time: el.currentTime });
    el.addEventListener('error', () => done({ error: el.error?.message ?? 'error' }));
    // (a user's click on its controls plays it with sound; a script only muted)
    el.muted = true;
    el.play().catch(() => {});
    const played = () => (el.currentTime > 1 ? report() : setTimeout(played, 100));
    played();
    setTimeout(report, 8000);
  }));
  assert.ok(video.width === 1280 && video.height === 720 && video.time > 1, `the video plays: ${JSON.stringify(video)}`);
  // the whole meeting's waveform, and a lane per person with when they spoke
  await detail.getByTestId('play-0').click();
  await detail.locator('[data-testid="waveform"][data-drawn="yes"]').waitFor();
  await detail.getByTestId('lanes').locator(`[data-testid^="lane-${ada}-"]`).first().waitFor();
  await detail.getByTestId('share-password').fill('sesame42');
  await detail.getByTestId('recording-visibility').getByText('Make public').click();
  await detail.getByText('Public').first().waitFor();
  // anyone with the link and its password plays it, without an account
  const shareLink = await detail.getByTestId('share-link').innerText();
  assert.equal(await detail.getByTestId('share-password-shown').innerText(), 'sesame42');
  const outsider = await browser.newPage({ locale: 'en-US' });
  await outsider.goto(shareLink);
  await outsider.getByTestId('language').selectOption('en');
  await outsider.getByTestId('shared-password').fill('wrong1');
  await outsider.getByTestId('shared-submit').click();
  await outsider.getByTestId('shared-error').getByText('Wrong password.').waitFor();
  await outsider.getByTestId('shared-password').fill('sesame42');
  await outsider.getByTestId('shared-submit').click();
  await outsider.getByTestId(`shared-track-${ada}`).getByText('Ada').waitFor();
  const played = await outsider.getByTestId('shared-audio-0').evaluate((el) => new Promise((done) => {
    el.addEventListener('loadedmetadata', () => done(el.duration));
    el.addEventListener('error', () => done(-1));
    el.preload = 'metadata';
    el.load();
    setTimeout(() => done(-2), 5000);
  }));
  assert.ok(played > 2, `the shared mix plays for ${played} s`);
  await outsider.close();
  const path = (name) => join(dataDir, name);
  await page.screenshot({ path: path('recordings-en.png'), fullPage: true });
  await page.getByTestId('language').selectOption('zh');
  await detail.getByText('整场会议（混音）').waitFor();
  await detail.getByText('会议视频（分屏画面与混音）').first().waitFor();
  await library.getByText('已完成').first().waitFor();
  await page.screenshot({ path: path('recordings-zh.png'), fullPage: true });
  // deleted, after the confirmation
  page.once('dialog', (d) => d.accept());
  await detail.getByTestId('recording-delete').click();
  await detail.waitFor({ state: 'detached' });
  const left = await fetch(`${base}/api/v1/recordings?q=8460`, { headers: auth }).then((r) => r.json());
  assert.deepEqual(left.items, []);
  await page.close();
  if (process.env.CONCLAVE_SCREENSHOTS) {
    for (const name of ['recordings-en.png', 'recordings-zh.png']) writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, name), readFileSync(path(name)));
  }
  assert.deepEqual(cspViolations, [], 'playing a recording keeps to the Content-Security-Policy');
});

test('a chair streams a meeting live from the console, shares its link and password, and schedules the next one, in English and Chinese', async () => {
  const { auth } = await adminApi();
  const room = await fetch(`${base}/api/v1/rooms`, {
    method: 'POST', headers: auth, body: JSON.stringify({ number: '8470', name: 'Quarterly all-hands' }),
  }).then((r) => r.json());
  assert.ok(room.id, JSON.stringify(room));
  // Ada's camera is on: the stream shows the meeting's layout
  const guest = await guestIn('8470', 'Ada', { camera: true });

  const page = await loggedIn({ locale: 'en-US' });
  await page.getByTestId('tab-live').click();
  const meeting = page.getByTestId('conference-8470');
  await meeting.getByTestId('stream').click();
  const panel = meeting.getByTestId('stream-on');
  await panel.getByTestId('stream-password').waitFor();
  const password = await panel.getByTestId('stream-password').innerText();
  assert.match(password, /^\d{6}$/);
  const link = await panel.getByTestId('stream-link').innerText();
  assert.match(link, /\/watch\/[A-Za-z0-9]{22}$/);

  // a viewer opens the shared link: a wrong password is refused, the right one plays
  const viewer = await browser.newPage({ locale: 'en-US' });
  await viewer.goto(link);
  await viewer.getByTestId('language').selectOption('en');
  await viewer.getByTestId('watch-title').getByText('Quarterly all-hands').waitFor();
  await viewer.getByTestId('watch-password').fill('000000' === password ? '111111' : '000000');
  await viewer.getByTestId('watch-submit').click();
  await viewer.getByTestId('watch-error').getByText('Wrong password.').waitFor();
  await viewer.getByTestId('watch-password').fill(password);
  await viewer.getByTestId('watch-submit').click();
  await viewer.getByTestId('watch-play').click();
  await viewer.getByTestId('watch-playing').waitFor({ timeout: 20000 });
  // the picture plays too: the layout at 1280×720
  const width = await viewer.getByTestId('watch-player').evaluate((el) => new Promise((done) => {
    const check = () => (el.videoWidth > 0 && el.currentTime > 0.5 ? done(el.videoWidth) : setTimeout(check, 100));
    check();
    setTimeout(() => done(el.videoWidth), 15000);
  }));
  assert.equal(width, 1280, 'the stream plays the layout');
  const shot = (name) => join(dataDir, name);
  await viewer.screenshot({ path: shot('watch-en.png'), fullPage: true });
  await viewer.getByTestId('language').selectOption('zh');
  await viewer.getByText('正在播放（比会议晚几秒）。').waitFor();
  await viewer.screenshot({ path: shot('watch-zh.png'), fullPage: true });

  // the streams page: live now, with the viewer counted; schedule the next one
  await page.getByTestId('tab-streams').click();
  const streams = page.getByTestId('page-streams');
  const live = streams.getByTestId('streams-live');
  await live.getByText('Quarterly all-hands', { exact: true }).waitFor();
  await streams.getByTestId('stream-room').selectOption(room.id);
  await streams.getByTestId('stream-title').fill('Next quarter');
  await streams.getByTestId('stream-at').fill('2030-01-15T09:30');
  await streams.getByTestId('stream-schedule').click();
  await streams.getByTestId('streams-scheduled').getByText('Next quarter').waitFor();
  await page.screenshot({ path: shot('streams-en.png'), fullPage: true });
  await page.getByTestId('language').selectOption('zh');
  await streams.getByText('未开始').first().waitFor();
  await page.screenshot({ path: shot('streams-zh.png'), fullPage: true });
  await page.getByTestId('language').selectOption('en');

  // stopped from the live page: the viewer's page says the stream is over
  await page.getByTestId('tab-live').click();
  await meeting.getByTestId('stream-stop').click();
  await meeting.getByTestId('stream').waitFor();
  await viewer.getByTestId('watch-ended').waitFor({ timeout: 30000 });
  const list = await fetch(`${base}/api/v1/streams?state=ended`, { headers: auth }).then((r) => r.json());
  assert.ok(list.items.some((s) => s.room_number === '8470' && s.peak_listeners >= 1), JSON.stringify(list));
  await guest.getByTestId('join-leave').click();
  await Promise.all([guest.close(), viewer.close(), page.close()]);
  if (process.env.CONCLAVE_SCREENSHOTS) {
    for (const name of ['streams-en.png', 'streams-zh.png', 'watch-en.png', 'watch-zh.png']) writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, name), readFileSync(shot(name)));
  }
  assert.deepEqual(cspViolations, [], 'streaming keeps to the Content-Security-Policy');
});

test('the minutes of a meeting: a line per utterance with its speaker, a click plays it, the owner corrects one, downloads, search and links, in English and Chinese', async () => {
  assert.ok(spawnSync('test', ['-f', speechModel]).status === 0, `the speech model is at ${speechModel} (scripts/fetch-speech-model.sh)`);
  const { auth } = await adminApi();
  const room = await fetch(`${base}/api/v1/rooms`, {
    method: 'POST', headers: auth, body: JSON.stringify({ number: '8480', name: 'Weekly sync', auto_record: true, alone_music: false, entry_chime: false }),
  }).then((r) => r.json());
  assert.ok(room.id, JSON.stringify(room));
  // Ada speaks from a browser: Chromium's fake microphone plays a sentence (espeak-ng), then
  // a pause, again and again
  const speech = join(dataDir, 'ada.wav');
  const spoken = spawnSync('espeak-ng', ['-v', 'en-us', '-w', speech, 'The budget was approved by the board on Monday.']);
  assert.equal(spoken.status, 0, `espeak-ng: ${spoken.stderr}`);
  // two seconds of silence after it: each time round is an utterance of its own
  const padded = spawnSync('python3', ['-c', `import wave, sys
r = wave.open(sys.argv[1]); p = r.getparams(); frames = r.readframes(r.getnframes()); r.close()
w = wave.open(sys.argv[1], 'wb'); w.setparams(p); w.writeframes(frames + b'\\0' * (2 * p.framerate * p.sampwidth)); w.close()`, speech]);
  assert.equal(padded.status, 0, `padding: ${padded.stderr}`);
  const speaker = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${speech}`],
  });
  const ada = await speaker.newPage({ locale: 'en-US' });
  await ada.goto(`${base}/join/8480`);
  await ada.getByTestId('language').selectOption('en');
  await ada.getByTestId('join-name').fill('Ada');
  await ada.getByTestId('join-submit').click();
  await ada.getByTestId('in-meeting').waitFor();
  await ada.waitForTimeout(9000);
  await ada.getByTestId('join-leave').click();
  await speaker.close();

  const page = await loggedIn({ locale: 'en-US', acceptDownloads: true });
  await page.getByTestId('tab-recordings').click();
  const library = page.getByTestId('page-recordings');
  const row = library.locator('[data-testid^="recording-"]').filter({ hasText: '8480' }).first();
  await row.getByText('Finished').waitFor({ timeout: 20000 });
  await row.getByRole('button', { name: 'Open' }).click();
  const detail = page.getByTestId('recording-detail');
  const minutes = detail.getByTestId('minutes');
  await minutes.locator('[data-testid="minutes-state"][data-state="done"]').waitFor({ timeout: 300000 });
  const lines = minutes.getByTestId('minutes-lines').locator('li');
  if (await lines.count() === 0) {
    const list = await fetch(`${base}/api/v1/recordings?q=8480`, { headers: auth }).then((r) => r.json());
    const id = list.items[0].id;
    const m = await fetch(`${base}/api/v1/recordings/${id}/minutes`, { headers: auth }).then((r) => r.json());
    const u = await fetch(`${base}/api/v1/recordings/${id}/utterances`, { headers: auth }).then((r) => r.json());
    assert.fail(`the minutes have lines: ${JSON.stringify(m)} ${JSON.stringify(u)}`);
  }
  assert.match((await minutes.getByTestId('minutes-lines').innerText()).toLowerCase(), /approved by the board/);
  // a whole sentence (the first line may be the end of one, cut by her joining)
  const first = lines.filter({ hasText: /approved by the board/i }).first();
  assert.match(await first.innerText(), /Ada/);
  // a click plays exactly that line
  await first.getByTestId('minutes-play').click();
  const clip = minutes.getByTestId('clip-audio');
  const seconds = await clip.evaluate((el) => new Promise((done) => {
    const report = () => done(el.duration);
    if (el.readyState >= 1 && el.src) report();
    else el.addEventListener('loadedmetadata', report);
    el.addEventListener('error', () => done(-1));
    setTimeout(() => done(-2), 5000);
  }));
  assert.ok(seconds > 1.5 && seconds < 8, `the line plays for ${seconds} s`);
  await first.and(page.locator('.playing')).waitFor();
  // the owner corrects it; what was recognized stays beside
  await first.getByTestId('minutes-edit').click();
  await first.getByTestId('minutes-edit-text').fill('The budget was approved by the board on Monday, unanimously.');
  await first.getByTestId('minutes-save').click();
  await first.getByText('unanimously').waitFor();
  await first.getByText('edited').waitFor();
  // downloaded as Markdown (Word, PDF and JSON alike)
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    minutes.getByTestId('minutes-export').getByRole('button', { name: 'Markdown' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'minutes-8480.md');
  const markdown = readFileSync(await download.path(), 'utf8');
  assert.match(markdown, /\*\*Ada:\*\* The budget was approved by the board on Monday, unanimously\./);
  const link = markdown.split('\n').find((l) => l.includes('unanimously'))?.match(/\]\((http[^)]+#recording=[^)]+)\)/)?.[1];
  assert.ok(link, markdown);
  await page.screenshot({ path: join(dataDir, 'minutes-en.png'), fullPage: true });
  await page.getByTestId('language').selectOption('zh');
  await minutes.getByText('纪要由语音识别生成').waitFor();
  await page.screenshot({ path: join(dataDir, 'minutes-zh.png'), fullPage: true });
  await page.getByTestId('language').selectOption('en');
  // search finds the line, and opens its recording there
  await library.getByTestId('minutes-search-q').fill('unanimously');
  await library.getByTestId('minutes-search').getByRole('button', { name: 'Search' }).click();
  const hit = library.getByTestId('minutes-hits').locator('li').first();
  await hit.getByText('Ada').waitFor();
  await hit.locator('mark').getByText('unanimously').waitFor();
  await hit.getByRole('button').click();
  await detail.getByTestId('minutes').locator('li.playing').waitFor();
  // the exported line's link opens the console on that line, playing it: in a new tab,
  // after signing in, and in the open console
  const fresh = await browser.newPage({ locale: 'en-US' });
  await fresh.goto(link.replace(/^http:\/\/[^/]+/, base));
  await fresh.getByTestId('username').fill('admin');
  await fresh.getByTestId('password').fill(password);
  await fresh.getByTestId('login').click();
  await fresh.getByTestId('minutes').locator('li.playing').getByText('unanimously').waitFor();
  await fresh.close();
  await page.getByTestId('tab-rooms').click();
  await page.evaluate((hash) => { window.location.hash = hash; }, link.slice(link.indexOf('#')));
  await page.getByTestId('minutes').locator('li.playing').getByText('unanimously').waitFor();
  await page.close();
  if (process.env.CONCLAVE_SCREENSHOTS) {
    for (const name of ['minutes-en.png', 'minutes-zh.png']) writeFileSync(join(process.env.CONCLAVE_SCREENSHOTS, name), readFileSync(join(dataDir, name)));
  }
  assert.deepEqual(cspViolations, [], 'the minutes keep to the Content-Security-Policy');
});
