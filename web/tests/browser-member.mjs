// A browser member for the server's end-to-end tests: Debian's Chromium (Playwright) opens the
// join page, its fake microphone plays a WAV file, and it records what it hears from the
// meeting. Driven line by line on stdin; answers one line per command on stdout:
//
//   join <number> <name> [pin]   fill the join form and join → "joined <member id>" or
//                                "refused <text the page shows>"
//   mark                         forget what was heard so far → "marked"
//   heard                        what was heard since the mark → "heard <rate> <base64 s16le>"
//   click <test id>              click a control on the page → "clicked"
//   draw <x1> <y1> <x2> <y2> [test id]  a stroke on the whiteboard, or on the control named
//                                (fractions of its size) → "drawn"
//   text <test id>               a control's text → "text <json string>"
//   shot <file>                  a screenshot of the page → "shot"
//   restart                      an ICE restart, as after a network change → "restarted <ICE state>"
//   login <token>                join as this console user from now on → "logged-in"
//   open <path>                  open a page of the console (logged in: after login) → "opened"
//   wait <test id>               wait (20 s at most) until a control is shown → "shown"
//   fill <test id> <text>        type into a field → "filled"
//   select <test id> <value>     choose an option of a list → "selected"
//   token                        the member's own token → "token <token>"
//   transport                    the protocol of the connection in use → "transport udp|tcp"
//   tiles                        each video tile: its member, screen or camera, the size of
//                                the picture it receives and the colour at its centre →
//                                "tiles <json>"
//   watch <key> [password]       open a live stream's watch page, type the password, play,
//                                and record what the page plays → "watching" or
//                                "refused <text the page shows>"
//   quit                         close the browser and exit
//
// Usage: node browser-member.mjs <base url> <wav file> [lang]
// With CONCLAVE_BROWSER_TCP_ONLY=1, Chromium uses no UDP for WebRTC (as behind a firewall
// that blocks it): only ICE over TCP can connect. With CONCLAVE_BROWSER_CAMERA=<file.y4m>,
// its fake camera shows that file and it joins with the camera on (otherwise off).
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

const [base, wav, lang = 'en'] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`, '--autoplay-policy=no-user-gesture-required',
    ...(process.env.CONCLAVE_BROWSER_CAMERA ? [`--use-file-for-fake-video-capture=${process.env.CONCLAVE_BROWSER_CAMERA}`,
      '--auto-select-desktop-capture-source=Entire screen', '--enable-usermedia-screen-capturing'] : []),
    ...(process.env.CONCLAVE_BROWSER_TCP_ONLY ? ['--webrtc-ip-handling-policy=disable_non_proxied_udp'] : []),
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ locale: lang === 'zh' ? 'zh-CN' : 'en-US', permissions: ['microphone'] });
const page = await context.newPage();
await page.addInitScript((l) => localStorage.setItem('conclave.lang', l), lang);

const say = (line) => process.stdout.write(`${line}\n`);

/// Records what the page plays from now on into window.heard (a ScriptProcessor: simple, and
/// enough here): the meeting's audio ('meeting') or the stream page's player ('player').
async function record(what) {
  await page.evaluate((what) => {
    const context = new AudioContext({ sampleRate: 16000 });
    const source = what === 'meeting'
      ? context.createMediaStreamSource(window.conclaveJoin.remote)
      : context.createMediaElementSource(document.querySelector('[data-testid="watch-player"]'));
    const tap = context.createScriptProcessor(4096, 1, 1);
    window.heard = [];
    tap.onaudioprocess = (e) => window.heard.push(Float32Array.from(e.inputBuffer.getChannelData(0)));
    source.connect(tap);
    tap.connect(context.destination);
    window.heardRate = context.sampleRate;
  }, what);
}

async function join(number, name, pin) {
  await page.goto(`${base}/join/${number}`);
  await page.getByTestId('join-name').fill(name);
  if (pin) await page.getByTestId('join-pin').fill(pin);
  await page.getByTestId('join-camera').setChecked(!!process.env.CONCLAVE_BROWSER_CAMERA);
  await page.getByTestId('join-submit').click();
  const outcome = await Promise.race([
    page.getByTestId('in-meeting').waitFor({ timeout: 15000 }).then(() => 'in'),
    page.getByTestId('join-error').waitFor({ timeout: 15000 }).then(() => 'refused'),
  ]);
  if (outcome === 'refused') return `refused ${await page.getByTestId('join-error').innerText()}`;
  // record what the meeting sends, from the start
  await record('meeting');
  const member = await page.evaluate(() => window.conclaveJoin.member);
  return `joined ${member}`;
}

async function watch(key, password) {
  await page.goto(`${base}/watch/${key}`);
  await page.getByTestId('watch').waitFor({ timeout: 15000 });
  if (password) {
    await page.getByTestId('watch-password').fill(password);
    await page.getByTestId('watch-submit').click();
    const outcome = await Promise.race([
      page.getByTestId('watch-play').waitFor({ timeout: 15000 }).then(() => 'open'),
      page.getByTestId('watch-error').waitFor({ timeout: 15000 }).then(() => 'refused'),
    ]);
    if (outcome === 'refused') return `refused ${await page.getByTestId('watch-error').innerText()}`;
  }
  // what the page's player plays, recorded from the audio element itself
  await record('player');
  await page.getByTestId('watch-play').click();
  await page.getByTestId('watch-playing').waitFor({ timeout: 20000 });
  return 'watching';
}

/// What each tile shows: the picture's size and the colour at its centre (read through a
/// canvas from the video element itself).
async function tiles() {
  return page.evaluate(() => Array.from(document.querySelectorAll('[data-testid^="join-tile-"]')).map((figure) => {
    const video = figure.querySelector('video');
    let rgb = null;
    if (video && video.videoWidth > 0) {
      const canvas = document.createElement('canvas');
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      const g = canvas.getContext('2d');
      g.drawImage(video, 0, 0);
      rgb = Array.from(g.getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data.slice(0, 3));
    }
    return {
      member: figure.dataset.member ? Number(figure.dataset.member) : null,
      screen: figure.dataset.screen === 'yes',
      polled: figure.dataset.polled === 'yes',
      width: video?.videoWidth ?? 0,
      rgb,
    };
  }));
}

async function heard() {
  const { rate, pcm } = await page.evaluate(() => {
    const all = window.heard.flatMap((b) => Array.from(b));
    const pcm = new Int16Array(all.length);
    all.forEach((v, i) => { pcm[i] = Math.max(-32768, Math.min(32767, Math.round(v * 32767))); });
    let bin = '';
    const bytes = new Uint8Array(pcm.buffer);
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { rate: window.heardRate, pcm: btoa(bin) };
  });
  return `heard ${rate} ${pcm}`;
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const [command, ...args] = line.trim().split(/\s+/);
  try {
    if (command === 'join') say(await join(args[0], args[1], args[2]));
    else if (command === 'watch') say(await watch(args[0], args[1]));
    else if (command === 'mark') { await page.evaluate(() => { window.heard = []; }); say('marked'); }
    else if (command === 'heard') say(await heard());
    else if (command === 'tiles') say(`tiles ${JSON.stringify(await tiles())}`);
    else if (command === 'click') { await page.getByTestId(args[0]).click(); say('clicked'); }
    else if (command === 'draw') {
      // a stroke on the whiteboard, from (x1, y1) to (x2, y2) in fractions of its size
      const [x1, y1, x2, y2] = args.slice(0, 4).map(Number);
      const box = await page.getByTestId(args[4] ?? 'whiteboard-canvas').boundingBox();
      await page.mouse.move(box.x + x1 * box.width, box.y + y1 * box.height);
      await page.mouse.down();
      for (let i = 1; i <= 20; i++) {
        await page.mouse.move(box.x + (x1 + ((x2 - x1) * i) / 20) * box.width, box.y + (y1 + ((y2 - y1) * i) / 20) * box.height);
      }
      await page.mouse.up();
      say('drawn');
    }
    else if (command === 'open') { await page.goto(new URL(args[0], base).href); say('opened'); }
    else if (command === 'wait') { await page.getByTestId(args[0]).first().waitFor({ timeout: 20000 }); say('shown'); }
    else if (command === 'fill') { await page.getByTestId(args[0]).fill(args.slice(1).join(' ')); say('filled'); }
    else if (command === 'select') { await page.getByTestId(args[0]).selectOption(args[1]); say('selected'); }
    else if (command === 'text') say(`text ${JSON.stringify(await page.getByTestId(args[0]).innerText())}`);
    else if (command === 'shot') { await page.screenshot({ path: args[0], fullPage: true }); say('shot'); }
    else if (command === 'restart') {
      const state = await page.evaluate(async () => {
        const j = window.conclaveJoin;
        const before = j.pc.localDescription.sdp.match(/a=ice-ufrag:(\S+)/)[1];
        await j.restart();
        const after = j.pc.localDescription.sdp.match(/a=ice-ufrag:(\S+)/)[1];
        if (before === after) return 'not-restarted';
        for (let i = 0; i < 100 && !['connected', 'completed'].includes(j.pc.iceConnectionState); i++) {
          await new Promise((r) => setTimeout(r, 100));
        }
        return j.pc.iceConnectionState;
      });
      say(`restarted ${state}`);
    } else if (command === 'login') {
      await page.addInitScript((token) => sessionStorage.setItem('conclave.token', token), args[0]);
      say('logged-in');
    } else if (command === 'transport') {
      const protocol = await page.evaluate(async () => {
        for (let i = 0; i < 100; i++) {
          const stats = await window.conclaveJoin.pc.getStats();
          let pair = null;
          stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
          if (pair) return stats.get(pair.localCandidateId)?.protocol ?? 'unknown';
          await new Promise((r) => setTimeout(r, 100));
        }
        return `none (ICE ${window.conclaveJoin.pc.iceConnectionState})`;
      });
      say(`transport ${protocol}`);
    } else if (command === 'token') say(`token ${await page.evaluate(() => window.conclaveJoin.token)}`);
    else if (command === 'quit') break;
    else say(`error unknown command ${command}`);
  } catch (err) {
    say(`error ${String(err.message ?? err).split('\n')[0]}`);
  }
}
await browser.close();
