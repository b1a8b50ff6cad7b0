import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';

/**
 * Starts and stops a real `moto_server` for the integration suite.
 *
 * Every describeWithMoto block gets its own server on a free port, so files never share state.
 * A missing moto skips the block loudly on a laptop, and fails the run in CI: a green CI build
 * must mean the integration tests actually ran.
 */

export const MOTO_COMMAND = 'moto_server';
export const MOTO_INSTALL_HINT = "pip install 'moto[server]==5.2.1'";
/** The account moto answers as; STS GetCallerIdentity returns it. */
export const MOTO_ACCOUNT_ID = '123456789012';
export const MOTO_REGION = 'us-east-1';

const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
const START_ATTEMPTS = 3;

export interface MotoServer {
  /** `http://127.0.0.1:<port>`, for the SDK's `endpoint` or `AWS_ENDPOINT_URL`. */
  readonly endpoint: string;
  /** Wipes every backend, so one server can serve several independent tests. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** What a describeWithMoto body sees: the server only exists once beforeAll has run. */
export interface MotoHandle {
  readonly endpoint: string;
  reset(): Promise<void>;
  /** Environment for code under test that builds its own clients (handlers, the CLI). */
  env(): Record<string, string>;
}

export class MotoNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MotoNotFoundError';
  }
}

export class MotoStartError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MotoStartError';
  }
}

/**
 * Whether `moto_server` is on PATH. A PATH lookup rather than running it: `moto_server -h` costs a
 * second of Python start-up per test file, and a broken install still fails loudly in startMoto.
 */
export function motoAvailable(): boolean {
  return findOnPath(MOTO_COMMAND) !== undefined;
}

function findOnPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory; keep looking.
    }
  }
  return undefined;
}

/** Environment that points every AWS SDK v3 client at moto, with credentials that cannot reach AWS. */
export function motoEnv(endpoint: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: MOTO_REGION,
    AWS_DEFAULT_REGION: MOTO_REGION,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    // moto answers unimplemented calls with an HTML 500, which the SDK would otherwise retry.
    AWS_MAX_ATTEMPTS: '1',
  };
}

export async function startMoto(): Promise<MotoServer> {
  if (!motoAvailable()) {
    throw new MotoNotFoundError(`${MOTO_COMMAND} is not on PATH; ${MOTO_INSTALL_HINT}`);
  }
  // Another process can take the port between freePort() and moto binding it; a retry gets a new one.
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    try {
      return await startOnce(await freePort());
    } catch (error) {
      lastError = error;
    }
  }
  throw new MotoStartError(`${MOTO_COMMAND} did not start after ${START_ATTEMPTS} attempts`, {
    cause: lastError,
  });
}

async function startOnce(port: number): Promise<MotoServer> {
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(MOTO_COMMAND, ['-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, MOTO_EC2_LOAD_DEFAULT_AMIS: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Keep the tail of the output only for the error message; moto logs every request.
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  // A crashed or interrupted test worker must not leave a Python server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const exited = new Promise<never>((_, reject) => {
    child.once('error', (error) =>
      reject(new MotoStartError(`cannot spawn ${MOTO_COMMAND}`, { cause: error })),
    );
    child.once('exit', (code, signal) =>
      reject(new MotoStartError(`${MOTO_COMMAND} exited early (code ${code}, signal ${signal}):\n${output}`)),
    );
  });
  // The race below leaves this promise unobserved once moto is up; it must not become an unhandled rejection.
  exited.catch(() => undefined);

  try {
    await Promise.race([waitForHttp(endpoint), exited]);
  } catch (error) {
    process.removeListener('exit', killOnExit);
    await terminate(child);
    throw error;
  }

  return {
    endpoint,
    async reset() {
      const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!response.ok) throw new MotoStartError(`moto reset answered HTTP ${response.status}`);
    },
    async stop() {
      process.removeListener('exit', killOnExit);
      await terminate(child);
    },
  };
}

async function waitForHttp(endpoint: string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      // Any HTTP answer means Flask is serving; the status does not matter.
      await fetch(`${endpoint}/moto-api/data.json`, { signal: AbortSignal.timeout(1_000) });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new MotoStartError(`${MOTO_COMMAND} did not answer on ${endpoint} within ${STARTUP_TIMEOUT_MS} ms`);
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new MotoStartError('could not determine a free port'));
      });
    });
  });
}

/** A box on stderr that stays visible in a long test log. */
export function motoMissingBanner(detail: string): string {
  const lines = [`MOTO NOT FOUND: ${detail}`, `Install it with: ${MOTO_INSTALL_HINT}`];
  const width = Math.max(...lines.map((line) => line.length)) + 2;
  const bar = '#'.repeat(width + 4);
  return ['', bar, ...lines.map((line) => `## ${line.padEnd(width - 1)}##`), bar, ''].join('\n');
}

/**
 * A describe block backed by its own moto server, started once for the block.
 *
 * Without moto on PATH the block is still collected, so its tests show up as skipped and the count
 * reporter can say how many did not run; when CI=true it throws instead, failing the file.
 * `describe.runIf` is used rather than `.skip`, which Biome forbids (noSkippedTests).
 */
export function describeWithMoto(name: string, body: (moto: MotoHandle) => void): void {
  const available = motoAvailable();
  if (!available) {
    if (process.env.CI === 'true') {
      throw new MotoNotFoundError(
        `${MOTO_COMMAND} is not on PATH and CI=true: the integration suite "${name}" must run in CI. ${MOTO_INSTALL_HINT}`,
      );
    }
    process.stderr.write(`${motoMissingBanner(`integration suite "${name}" NOT run`)}\n`);
  }

  let server: MotoServer | undefined;
  const current = (): MotoServer => {
    if (server === undefined) {
      throw new MotoStartError(
        'moto is not running yet: use the handle inside hooks or tests, not at collection',
      );
    }
    return server;
  };
  const handle: MotoHandle = {
    get endpoint() {
      return current().endpoint;
    },
    reset: () => current().reset(),
    env: () => motoEnv(current().endpoint),
  };

  describe.runIf(available)(name, () => {
    beforeAll(async () => {
      server = await startMoto();
    });
    afterAll(async () => {
      await server?.stop();
      server = undefined;
    });
    body(handle);
  });
}
