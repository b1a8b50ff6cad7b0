import { execFile } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

/**
 * The CLI against an endpoint that accepts every connection and never answers: what a black-holed
 * proxy or a stuck load balancer looks like from the SDK. Without deadlines the run waits forever;
 * with them it must give up, say why, and change nothing. No moto needed: the server is a bare TCP
 * listener, so this runs wherever the CLI does.
 */

const ROOT = resolve(import.meta.dirname, '../..');
/** What an operator (or a scheduler) will wait for before calling the run hung. */
const ACCEPTABLE_MS = 120_000;

interface SilentServer {
  endpoint: string;
  /** Connections accepted, and how many of them sent a request the server then ignored. */
  stats(): { connections: number; requests: number };
  close(): Promise<void>;
}

async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let connections = 0;
  let requests = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.once('data', () => requests++);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((ready, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ready());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('silent server has no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    stats: () => ({ connections, requests }),
    async close() {
      // server.close() waits for open connections, which this server never ends on its own.
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  const started = performance.now();
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['bin/ami-janitor.js', ...args],
      // Killed past the limit so a regression fails the assertions below instead of hanging the suite.
      { cwd: ROOT, env, timeout: ACCEPTABLE_MS, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const failed = error as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
        done({
          code: failed === null ? 0 : typeof failed.code === 'number' ? failed.code : null,
          signal: failed?.signal ?? null,
          stdout,
          stderr,
          elapsedMs: performance.now() - started,
        });
      },
    );
  });
}

/** The caller's environment minus anything that would change the SDK's defaults or credentials. */
function cleanEnv(endpoint: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('AWS_')) env[key] = value;
  }
  return {
    ...env,
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_EC2_METADATA_DISABLED: 'true',
    POWERTOOLS_LOG_LEVEL: 'SILENT',
  };
}

describe('CLI against an endpoint that never answers', () => {
  let server: SilentServer;

  beforeEach(async () => {
    server = await startSilentServer();
  });

  afterEach(async () => {
    await server.close();
  });

  it(
    'plan gives up within two minutes with exit 3 and a one-line reason, no stack trace',
    async () => {
      // Act
      const result = await runCli(['plan', '--region', 'us-east-1'], cleanEnv(server.endpoint));

      // Assess
      expect(result.signal, `killed after ${Math.round(result.elapsedMs)} ms`).toBeNull();
      expect(result.code, result.stderr).toBe(3);
      expect(result.elapsedMs).toBeLessThan(ACCEPTABLE_MS);
      expect(result.stderr).toMatch(/^ami-janitor: cannot .+: (TimeoutError|ETIMEDOUT|CallDeadlineError)$/m);
      expect(result.stderr).toContain('Nothing was changed.');
      expect(result.stderr).not.toMatch(/^\s+at /m);
      expect(result.stdout).toBe('');
      // The run did reach the endpoint: it was the silence that stopped it, not a refused connection.
      expect(server.stats().requests).toBeGreaterThan(0);
    },
    ACCEPTABLE_MS + 30_000,
  );
});
