'use strict';

// `serverless invoke local` for this service's bundles. Listed after serverless-esbuild in
// serverless.yml, so its hooks run after that plugin has bundled the function and moved the
// service directory to the bundle folder (.esbuild/.build).
//
// Two things stand in the way without it:
// - The bundles are ES modules named *.mjs (esbuild.config.cjs), and they await their
//   dependencies at the top level. osls 3.x loads a Node handler with require(), trying the
//   handler path with no extension, then .cjs (and .js for an ES module): it never finds an .mjs,
//   and require() could not load one with top-level await anyway. So a small CommonJS shim is
//   written where osls looks (<handler path>.cjs), importing the bundle, and removed afterwards.
//   A module that fails to initialise then fails the invocation, as on Lambda, with its error.
// - serverless-esbuild keeps an esbuild context per bundle, whose service child process keeps
//   Node alive. It disposes of them once the invocation step is over, but not when that step
//   throws (a handler osls cannot load, say): the command then never exits. Here esbuild is
//   stopped either way.
//
// `serverless package` and `deploy` run none of this. They only remove a shim an interrupted
// invocation left in the bundle folder, since serverless-esbuild zips every file it finds there.

const { existsSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { basename, dirname, join } = require('node:path');

const SHIM_MARK = '// Written by scripts/serverless/invoke-local.cjs for one `serverless invoke local`.';

/**
 * After the invocation has printed its result, Lambda would freeze the process; locally, a
 * handler's idle keep-alive socket or a forgotten timer must not hold the command open either.
 * The timer is unref'd: it only fires when something else still keeps the process alive.
 */
const EXIT_GRACE_MS = 2_000;

/** The same esbuild instance serverless-esbuild builds with, so stop() ends its service. */
function serverlessEsbuildsEsbuild() {
  const plugin = require.resolve('serverless-esbuild');
  return require(require.resolve('esbuild', { paths: [dirname(plugin)] }));
}

function isShim(path) {
  try {
    return readFileSync(path, 'utf8').includes(SHIM_MARK);
  } catch {
    return false;
  }
}

/** `src/handlers/sweep.handler` as osls splits it: the module path and the export. */
function splitHandler(handler) {
  const separator = handler.lastIndexOf('.');
  return { path: handler.slice(0, separator), name: handler.slice(separator + 1) };
}

class InvokeLocalPlugin {
  constructor(serverless, options, { log }) {
    this.serverless = serverless;
    this.options = options;
    this.log = log;
    this.shim = undefined;
    this.hooks = {
      'before:package:cleanup': () => this.removeStaleShims(),
      'before:invoke:local:invoke': () => this.writeShim(),
      'after:invoke:local:invoke': () => this.finish(),
      error: () => (this.isInvokeLocal() ? this.finish() : undefined),
    };
  }

  isInvokeLocal() {
    return this.serverless.processedInput.commands.join(' ') === 'invoke local';
  }

  writeShim() {
    const handler = splitHandler(this.serverless.service.getFunction(this.options.function).handler);
    // Where osls looks: the service directory (the bundle folder by now) joined with the path.
    const base = join(this.serverless.serviceDir, this.options.extraServicePath || '', handler.path);
    const bundle = `${base}.mjs`;
    const shim = `${base}.cjs`;
    // Any of these osls would find by itself; a shim of ours left behind is simply rewritten.
    const found =
      [base, `${base}.js`].some((path) => existsSync(path)) || (existsSync(shim) && !isShim(shim));
    if (!existsSync(bundle) || found) return;
    const name = JSON.stringify(handler.name);
    writeFileSync(
      shim,
      [
        "'use strict';",
        SHIM_MARK,
        `exports[${name}] = async (event, context) =>`,
        `  (await import(${JSON.stringify(`./${basename(bundle)}`)}))[${name}](event, context);`,
        '',
      ].join('\n'),
    );
    this.shim = shim;
    this.log.verbose(`invoke local: ${handler.path}.cjs imports ${basename(bundle)}`);
    // Lambda starts Node with the function's NODE_OPTIONS; here Node is already running, and
    // --enable-source-maps (serverless.yml) is what points stack traces at the TypeScript.
    if (/(^|\s)--enable-source-maps(\s|$)/.test(process.env.NODE_OPTIONS ?? '')) {
      process.setSourceMapsEnabled(true);
    }
  }

  async finish() {
    if (this.shim) rmSync(this.shim, { force: true });
    this.shim = undefined;
    await serverlessEsbuildsEsbuild().stop();
    setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
  }

  removeStaleShims() {
    const esbuild = this.serverless.pluginManager.plugins.find(
      (plugin) => plugin.constructor.name === 'EsbuildServerlessPlugin',
    );
    const buildDir = esbuild?.buildDirPath;
    if (typeof buildDir !== 'string') return;
    for (const functionObject of Object.values(this.serverless.service.functions ?? {})) {
      if (typeof functionObject.handler !== 'string') continue;
      const shim = join(buildDir, `${splitHandler(functionObject.handler).path}.cjs`);
      if (isShim(shim)) rmSync(shim, { force: true });
    }
  }
}

module.exports = InvokeLocalPlugin;
