// The real wallet-server for the browser tests: started on a free port with a fresh SQLite
// database in a temporary directory (and the test clock, so business dates are fixed), with a
// small JSON client for making data through the API, as the Rust tests' support module does.

import {spawn, spawnSync} from 'node:child_process';
import {mkdtempSync, rmSync, openSync, readFileSync} from 'node:fs';
import {createServer} from 'node:net';
import {tmpdir} from 'node:os';
import {join, resolve, dirname} from 'node:path';
import {fileURLToPath} from 'node:url';
import {randomUUID} from 'node:crypto';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const PASSWORD = 'correct-horse-battery';
export const ADMIN_LOGIN = 'city-admin';
/** How long the server has to answer GET /healthz after it starts. */
const READY_TIMEOUT_MS = 30_000;
/** Times a request answered 503 (shed, nothing done) is sent again. */
const OVERLOAD_RETRIES_MAX = 5;

function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const {port} = probe.address();
      probe.close(() => done(port));
    });
  });
}

export class Server {
  static async start() {
    const binary = process.env.WALLET_SERVER_BIN || join(ROOT, 'target/debug/wallet-server');
    const dir = mkdtempSync(join(tmpdir(), 'wallet-console-'));
    const env = {
      ...process.env,
      WALLET_DATABASE_URL: join(dir, 'wallet.sqlite3'),
      WALLET_ARGON2: 'm=64,t=1,p=1',
      WALLET_TEST_CLOCK: '1',
      WALLET_MAX_SESSIONS: '1000',
      RUST_LOG: 'warn',
    };
    const created = spawnSync(binary, ['admin', 'create', '--login', ADMIN_LOGIN], {env, input: PASSWORD + '\n', encoding: 'utf8'});
    if (created.status !== 0) throw new Error(`admin create failed: ${created.stderr}${created.error ?? ''}`);
    const port = await freePort();
    const log = openSync(join(dir, 'server.log'), 'a');
    const child = spawn(binary, ['serve'], {env: {...env, WALLET_BIND: `127.0.0.1:${port}`}, stdio: ['ignore', log, log]});
    const server = new Server(`http://127.0.0.1:${port}`, child, dir);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`wallet-server exited: ${server.logTail()}`);
      try {
        if ((await fetch(server.url + '/healthz')).ok) return server;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`wallet-server did not start: ${server.logTail()}`);
      await new Promise((done) => setTimeout(done, 100));
    }
  }

  constructor(url, child, dir) {
    this.url = url;
    this.child = child;
    this.dir = dir;
  }

  logTail() {
    try {
      return readFileSync(join(this.dir, 'server.log'), 'utf8').slice(-4000);
    } catch {
      return '(no log)';
    }
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((done) => this.child.once('exit', done));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, {recursive: true, force: true});
  }

  /** One request: {status, body (parsed JSON, or text for CSV), bytes, headers}. */
  async call(method, path, {token, body, key, accept} = {}) {
    const headers = {Accept: accept || 'application/json'};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (key) headers['Idempotency-Key'] = key === true ? randomUUID() : key;
    const response = await fetch(this.url + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    const bytes = Buffer.from(await response.arrayBuffer());
    const type = response.headers.get('content-type') || '';
    const parsed = type.includes('json') && bytes.length ? JSON.parse(bytes.toString('utf8')) : bytes.toString('utf8');
    return {status: response.status, body: parsed, bytes, headers: response.headers};
  }

  /** As call, but the status must be `expected`; returns the body. */
  async ok(expected, method, path, options) {
    let answer = await this.call(method, path, options);
    // A shed request changed nothing: wait as told and send it again (a few times at most).
    for (let retry = 0; answer.status === 503 && retry < OVERLOAD_RETRIES_MAX; retry++) {
      await new Promise((done) => setTimeout(done, 1000 * Number(answer.headers.get('retry-after') || 1)));
      answer = await this.call(method, path, options);
    }
    if (answer.status !== expected) {
      throw new Error(`${method} ${path}: expected ${expected}, got ${answer.status} ${JSON.stringify(answer.body)}`);
    }
    return answer.body;
  }

  async logIn(login, password = PASSWORD) {
    return (await this.ok(201, 'POST', '/v1/sessions', {body: {login, password}})).token;
  }
}
