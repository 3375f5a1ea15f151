// Starts a real boxoffice server for one test file: its own database, its own Redis key
// prefix and a free port, so client and browser suites never share state with each other
// or with `cargo test`. The binary comes from BOXOFFICE_BIN (scripts/test builds it).
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

export function binary() {
  if (process.env.BOXOFFICE_BIN) return process.env.BOXOFFICE_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(repo, 'target');
  return path.join(target, 'debug', 'boxoffice');
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const pgBase = process.env.E2E_PG_URL || 'postgres://postgres@127.0.0.1:5432';
const redisUrl = process.env.E2E_REDIS_URL || 'redis://127.0.0.1:6379';

/**
 * Starts the server. `env` overrides or adds environment variables (e.g. CORS settings).
 * Returns { url, wsUrl, port, env, stop, createAdmin }.
 */
export async function startServer(env = {}) {
  const tag = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const port = await freePort();
  const fullEnv = {
    ...process.env,
    BOXOFFICE_ENV: 'dev',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: `${pgBase}/bo_e2e_${tag}`,
    DATABASE_POOL_SIZE: '8',
    REDIS_URL: redisUrl,
    REDIS_PREFIX: `bo-e2e-${tag}:`,
    RUST_LOG: process.env.E2E_RUST_LOG || 'warn',
    ...env,
  };
  const child = spawn(binary(), ['serve'], { env: fullEnv, stdio: ['ignore', 'inherit', 'inherit'] });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  child.on('error', (error) => { exited = { error: error.message }; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`boxoffice exited before it was ready: ${JSON.stringify(exited)}`);
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error('boxoffice not ready in 60 s'); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    graphqlUrl: `${url}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    port,
    env: fullEnv,
    /** Runs `boxoffice create-admin` against this server's database. */
    createAdmin(email, password) {
      execFileSync(binary(), ['create-admin', '--email', email, '--password', password], {
        env: fullEnv,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    },
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await done;
        clearTimeout(timer);
      }
      // The database is this run's alone: drop it so repeated runs leave nothing behind.
      try {
        execFileSync('psql', [`${pgBase}/postgres`, '-qc', `DROP DATABASE IF EXISTS "bo_e2e_${tag}" WITH (FORCE)`], {
          stdio: 'ignore',
        });
      } catch { /* psql missing or database gone: nothing to clean */ }
    },
  };
}
