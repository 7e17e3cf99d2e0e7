/// <reference lib="dom" />
// The cluster page (`GET /_dashboard`) and the JSON it reads: ring shares, published ring checksums,
// hottest keys; then the page itself in a real browser (Debian's Chromium driven by puppeteer-core)
// against three CLI nodes: it loads with no console errors, shows 3 members and their shares, renders a
// hostile key as text, and follows a member's leave. `DASHBOARD_SCREENSHOT=docs/dashboard.png` also
// writes the screenshot the README shows.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Group, GroupRegistry } from '../../src/group.js';
import { ringShares } from '../../src/node/dashboard.js';
import { createHttpFront } from '../../src/node/http.js';
import { Ring } from '../../src/ring.js';
import { countingOrigin, startCliCluster, stopCli } from '../support/cli-node.js';
import { httpGet, listenLocal } from '../support/http.js';
import { sleep, waitFor } from '../support/wait.js';

test('ringShares: each member’s share of a fixed key sample, summing to 1', () => {
  const three = ringShares(['10.0.0.1:9090', '10.0.0.2:9090', '10.0.0.3:9090']);
  const values = Object.values(three);
  assert.equal(values.length, 3);
  assert.ok(Math.abs(values.reduce((a, b) => a + b, 0) - 1) < 1e-9);
  for (const v of values) assert.ok(v > 0.3 && v < 0.37, String(v));
  assert.deepEqual(ringShares(['a:1']), { 'a:1': 1 });
  assert.deepEqual(ringShares([]), {});
});

test('/_hotkeys lists each group’s hottest keys by rate; /_dashboard is one page with a strict CSP', async () => {
  const registry = new GroupRegistry();
  const g = new Group({ name: 'g', cacheBytes: 1 << 20, getter: async (k) => `v:${k}`, registry });
  for (const [key, times] of [
    ['cold', 1],
    ['warm', 5],
    ['<b>hot</b>', 40],
  ] as const) {
    for (let i = 0; i < times; i++) await g.get(key);
  }
  const front = createHttpFront({ registry });
  const base = await listenLocal(front);
  try {
    const hot = JSON.parse((await httpGet(`${base}/_hotkeys`)).text);
    const keys = hot.groups.g.map((k: { key: string }) => k.key);
    assert.deepEqual(keys, ['<b>hot</b>', 'warm', 'cold']);
    assert.equal(hot.groups.g[0].cache, 'main');
    assert.ok(hot.groups.g[0].minuteQps > hot.groups.g[1].minuteQps);
    const res = await fetch(`${base}/_dashboard`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const html = await res.text();
    // Self-contained: no external script, stylesheet or image, no innerHTML anywhere.
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    assert.doesNotMatch(html, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  } finally {
    front.close();
    g.close();
  }
});

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

test('the page in Chromium: 3 members with their shares, a hostile key shown as text, a leave followed', {
  skip:
    !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM} (apt-get install chromium): browser test skipped`,
}, async () => {
  const { default: puppeteer } = await import('puppeteer-core');
  const origin = await countingOrigin();
  const { nodes, ports } = await startCliCluster(3, () => ({ GOSSIPCACHE_ORIGIN: origin.url }));
  const userDataDir = mkdtempSync(join(tmpdir(), 'gossipcache-chromium-'));
  let browser: Awaited<ReturnType<typeof puppeteer.launch>> | undefined;
  try {
    // One ring everywhere, and every member has published it (what the page's "its ring" column reads).
    await waitFor('one ring of 3, published by every member', async () => {
      const views = await Promise.all(
        nodes.map(async (n) => JSON.parse((await httpGet(`${n.http}/_cluster`)).text)),
      );
      return views.every(
        (v) =>
          v.ring.length === 3 &&
          v.ringChecksum === views[0].ringChecksum &&
          v.members.every((m: { ringChecksum: string }) => m.ringChecksum === v.ringChecksum),
      );
    });
    // A hostile key that node 0 owns, read often enough to top its hottest keys; and some traffic.
    const ring = new Ring({ labels: ports.map((p) => `127.0.0.1:${p.grpc}`) });
    let xss = '';
    for (let i = 0; ; i++) {
      xss = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>${i}`;
      if (ring.owner(xss) === `127.0.0.1:${ports[0].grpc}`) break;
    }
    for (let i = 0; i < 30; i++) await httpGet(`${nodes[0].http}/default/${encodeURIComponent(xss)}`);
    for (let i = 0; i < 40; i++) await httpGet(`${nodes[i % 3].http}/default/item-${i % 20}`);

    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      userDataDir,
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 1440, height: 900 });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warn') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    await page.goto(`${nodes[0].http}/_dashboard`, { waitUntil: 'load' });

    const members = () =>
      page.$$eval('#members-body tr', (rows) =>
        rows.map((r) => ({
          state: (r as HTMLElement).dataset.state,
          share: r.querySelector('.share')?.textContent ?? '',
          ring: r.querySelector('.ring')?.textContent ?? '',
        })),
      );
    await page.waitForFunction(
      () => document.querySelectorAll('#members-body tr[data-state="alive"]').length === 3,
      { timeout: 15_000 },
    );
    const three = await members();
    assert.equal(three.length, 3);
    const shares = three.map((m) => Number.parseFloat(m.share));
    for (const s of shares) assert.ok(s > 28 && s < 39, `share ${s}%`);
    assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 100) < 0.5);
    assert.ok(
      three.every((m) => m.ring.includes('same')),
      JSON.stringify(three),
    );
    assert.equal(await page.$$eval('#ring [data-ring-member]', (e) => e.length), 3);
    assert.match(await page.$eval('#agreement', (e) => e.textContent ?? ''), /All 3 live members/);

    // Traffic while the page polls (bounded: sequential gets for at most 20 s): the charts draw it.
    let trafficOn = true;
    const traffic = (async () => {
      const until = Date.now() + 20_000;
      for (let i = 0; trafficOn && Date.now() < until; i++) {
        const key = `item-${Math.floor(Math.random() ** 2 * 60)}`;
        await httpGet(`${nodes[i % 3].http}/default/${key}`);
        await sleep(5);
      }
    })();
    try {
      await page.waitForFunction(
        () => {
          const v = document.querySelector('[data-chart="gets"] .value')?.textContent ?? '';
          return document.querySelectorAll('[data-chart="gets"] path').length > 0 && Number.parseFloat(v) > 0;
        },
        { timeout: 15_000 },
      );
      // More points, so the screenshot shows lines rather than dots.
      if (process.env.DASHBOARD_SCREENSHOT) await sleep(14_000);
      if (process.env.DASHBOARD_SCREENSHOT) {
        await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT as `${string}.png` });
      }
    } finally {
      trafficOn = false;
      await traffic;
    }
    // The hostile key is among the hottest, shown as text.
    const hotKeys = await page.$$eval('#hotkeys-body td.key', (tds) => tds.map((td) => td.textContent));
    assert.ok(hotKeys.includes(xss), JSON.stringify(hotKeys));
    assert.equal(await page.evaluate(() => (window as { __xss?: number }).__xss), undefined);
    assert.equal(await page.$$eval('#hotkeys img, #hotkeys script', (e) => e.length), 0);
    // Handoff counters exist on this version: the chart shows a rate, not "not counted".
    const handoffs = await page.$eval('[data-chart="handoffs"] .value', (e) => e.textContent ?? '');
    assert.match(handoffs, /^\d/);
    const groupRow = await page.$eval('#groups-body tr[data-group="default"]', (tr) => tr.textContent ?? '');
    assert.match(groupRow, /%/);

    // Node 2 leaves: the page shows it `left`, off the ring, and two members sharing the keys.
    assert.equal(await stopCli(nodes[2]), 0);
    await page.waitForFunction(
      () =>
        document.querySelectorAll('#members-body tr[data-state="alive"]').length === 2 &&
        document.querySelectorAll('#members-body tr[data-state="left"]').length === 1 &&
        document.querySelectorAll('#ring [data-ring-member]').length === 2,
      { timeout: 15_000 },
    );
    const two = (await members()).filter((m) => m.state === 'alive');
    assert.equal(two.length, 2);
    for (const m of two) {
      const s = Number.parseFloat(m.share);
      assert.ok(s > 45 && s < 55, `share ${s}% after the leave`);
    }
    assert.deepEqual(problems, []);
  } finally {
    await browser?.close();
    rmSync(userDataDir, { recursive: true, force: true });
    await Promise.all(nodes.map((n) => stopCli(n)));
    await origin.close();
  }
});

test('the page in Chromium: members that publish another ring are flagged; member names are text', {
  skip:
    !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM} (apt-get install chromium): browser test skipped`,
}, async () => {
  const { default: puppeteer } = await import('puppeteer-core');
  // A front whose cluster view has one member still on an older ring, and one with a hostile id.
  const hostile = '<img src=x onerror="window.__xss=3">';
  const ring = ['10.0.0.1:9090', '10.0.0.2:9090', '10.0.0.3:9090'];
  const view = {
    self: ring[0],
    ring,
    ringChecksum: 'aaaaaaaa',
    shares: ringShares(ring),
    members: [
      { id: 'n1', grpcAddr: ring[0], state: 'alive', incarnation: 1, ringChecksum: 'aaaaaaaa' },
      { id: hostile, grpcAddr: ring[1], state: 'alive', incarnation: 4, ringChecksum: 'aaaaaaaa' },
      { id: 'n3', grpcAddr: ring[2], state: 'suspect', incarnation: 2, ringChecksum: 'bbbbbbbb' },
      { id: 'gone', grpcAddr: '10.0.0.4:9090', state: 'dead', incarnation: 7, ringChecksum: 'cccccccc' },
    ],
  };
  const front = createHttpFront({
    registry: { get: () => undefined, list: () => [] },
    cluster: () => view,
    metrics: { contentType: 'text/plain; version=0.0.4', text: async () => '' },
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  const userDataDir = mkdtempSync(join(tmpdir(), 'gossipcache-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    userDataDir,
  });
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${(e as Error).message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    await page.goto(`http://127.0.0.1:${(front.address() as AddressInfo).port}/_dashboard`);
    await page.waitForFunction(() => document.querySelectorAll('#members-body tr').length === 4, {
      timeout: 15_000,
    });
    const rows = await page.$$eval('#members-body tr', (trs) =>
      trs.map((tr) => ({ id: tr.getAttribute('data-id'), ring: tr.querySelector('.ring')?.textContent })),
    );
    const ringOf = (id: string) => rows.find((r) => r.id === id)?.ring ?? '';
    assert.match(ringOf('n1'), /same/);
    assert.match(ringOf('n3'), /✗ bbbbbbbb/, 'a live member on another ring is flagged');
    assert.doesNotMatch(ringOf('gone'), /✗/, 'dead members are not compared');
    assert.match(
      await page.$eval('#agreement', (e) => e.textContent ?? ''),
      /1 member\(s\) see another ring: n3/,
    );
    assert.match(await page.$eval('#dot', (e) => e.className), /warn/);
    // The hostile id is a row's text, not markup.
    assert.ok(rows.some((r) => r.id === hostile));
    assert.equal(await page.$$eval('#members img', (e) => e.length), 0);
    assert.equal(await page.evaluate(() => (window as { __xss?: number }).__xss), undefined);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    rmSync(userDataDir, { recursive: true, force: true });
    front.close();
  }
});
