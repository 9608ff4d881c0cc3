// helpers.mjs — the real test receiver (tests/support/otlp_receiver.py) out of process, and child-process runs.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PKG = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(PKG, '../..');
const PYTHON = join(ROOT, '.venv/bin/python');
const RECEIVER = join(ROOT, 'tests/support/otlp_receiver.py');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the receiver on a free port; resolves when it is listening. cors: false, true or 'credentials'. */
export async function startReceiver({ cors = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'polytel-wasm-rx-'));
  const portFile = join(dir, 'port');
  const args = [RECEIVER, '--port', '0', '--port-file', portFile];
  if (cors) args.push(cors === 'credentials' ? '--cors-credentials' : '--cors');
  const child = spawn(PYTHON, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; i < 300 && !existsSync(portFile); i++) {
    if (child.exitCode !== null) throw new Error(`receiver exited: ${stderr}`);
    await sleep(50);
  }
  if (!existsSync(portFile)) throw new Error(`receiver did not start: ${stderr}`);
  const port = Number(readFileSync(portFile, 'utf8').trim());
  const endpoint = `http://127.0.0.1:${port}`;
  const control = async (path, body) => {
    const res = await fetch(endpoint + path, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`receiver ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  return {
    endpoint,
    port,
    received: () => control('/_control/received'),
    reset: () => control('/_control/reset', {}),
    faults: (list) => control('/_control/faults', list),
    /** Polls received() until pred(got) is true or timeoutMs passes; returns the last snapshot. */
    async waitFor(pred, timeoutMs = 10000) {
      const end = Date.now() + timeoutMs;
      let got = await this.received();
      while (!pred(got) && Date.now() < end) {
        await sleep(50);
        got = await this.received();
      }
      return got;
    },
    async stop() {
      try {
        await control('/_control/stop', {});
      } catch {
        /* already gone */
      }
      if (child.exitCode === null) {
        await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A port nothing listens on, for a dead collector: below the kernel's ephemeral range (32768-60999), which random-port
 * servers (every suite's receivers and collectors bind port 0) are handed ports from, and checked refused. A port
 * picked there and closed (as before) could be handed to a neighbour suite's server before the test used it: the
 * test's records then went to that server (unconfirmed instead of refused, under load).
 */
export async function closedPort() {
  for (let i = 0; i < 20; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const refused = await new Promise((res) => {
      const c = connect({ host: '127.0.0.1', port });
      c.once('connect', () => { c.destroy(); res(false); });
      c.once('error', (e) => res(e.code === 'ECONNREFUSED'));
    });
    if (refused) return port;
  }
  throw new Error('closedPort: 20 ports in 20000-31999 accepted connections or failed oddly');
}

/** Runs `node script` with env (on top of a clean copy of ours); resolves {code, stdout, stderr}. */
export function runNode(script, env = {}, args = []) {
  const base = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(OTEL_|POLYTEL_|TELEMETRY_ENABLED$)/.test(k)) base[k] = v;
  }
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...base, ...env }, cwd: PKG });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** Attributes of a normalized record as a plain object. */
export const count = (list, pred) => list.filter(pred).length;
export { sleep };
