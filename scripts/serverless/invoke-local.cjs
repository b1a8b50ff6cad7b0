'use strict';

// `serverless invoke local` for this service's bundles. Listed after serverless-esbuild in
// serverless.yml, so its hooks run after that plugin has bundled the function and moved the
// service directory to the bundle folder (.esbuild/.build).
//
// Two things stand in the way without it:
// - The bundles are ES modules named *.mjs (esbuild.config.cjs), and they await their
//   dependencies at the top level. osls 3.x loads a Node handler with require(), trying the
//   handler path with no extension, then .cjs (and .js for an ES module): it never finds an .mjs,
//   and require() could not load one with top-level await anyway. So a one-line CommonJS shim is
//   written where osls looks (<handler path>.cjs), importing the bundle, and removed afterwards.
//   A module that fails to initialise then fails the invocation, as on Lambda, with its error.
// - serverless-esbuild keeps an esbuild context per bundle, whose service child process keeps
//   Node alive. The plugin disposes of them only after a successful invocation; after a failure
//   the command would never exit. Here esbuild is stopped in both cases.
//
// `serverless package` and `deploy` never run these hooks, so the artefacts are unchanged.

const { existsSync, rmSync, writeFileSync } = require('node:fs');
const { basename, dirname, join } = require('node:path');

/** The same esbuild instance serverless-esbuild builds with, so stop() ends its service. */
function serverlessEsbuildsEsbuild() {
  const plugin = require.resolve('serverless-esbuild');
  return require(require.resolve('esbuild', { paths: [dirname(plugin)] }));
}

/**
 * After the invocation has printed its result, Lambda would freeze the process; locally, a
 * handler's idle keep-alive socket or a forgotten timer must not hold the command open either.
 * The timer is unref'd: it only fires when something else still keeps the process alive.
 */
const EXIT_GRACE_MS = 2_000;

class InvokeLocalPlugin {
  constructor(serverless, options, { log }) {
    this.serverless = serverless;
    this.options = options;
    this.log = log;
    this.shim = undefined;
    this.hooks = {
      'before:invoke:local:invoke': () => this.writeShim(),
      'after:invoke:local:invoke': () => this.finish(),
      error: () => (this.isInvokeLocal() ? this.finish() : undefined),
    };
  }

  isInvokeLocal() {
    return this.serverless.processedInput.commands.join(' ') === 'invoke local';
  }

  writeShim() {
    const functionObject = this.serverless.service.getFunction(this.options.function);
    const handler = functionObject.handler;
    const separator = handler.lastIndexOf('.');
    const handlerPath = handler.slice(0, separator);
    const handlerName = handler.slice(separator + 1);
    // Where osls looks: the service directory (the bundle folder by now) joined with the path.
    const base = join(this.serverless.serviceDir, this.options.extraServicePath || '', handlerPath);
    const bundle = `${base}.mjs`;
    // Any of these would be found by osls itself (or stand where the shim would go).
    const ownLookups = [base, `${base}.js`, `${base}.cjs`];
    if (!existsSync(bundle) || ownLookups.some((path) => existsSync(path))) return;
    this.shim = `${base}.cjs`;
    writeFileSync(
      this.shim,
      [
        "'use strict';",
        '// Written by scripts/serverless/invoke-local.cjs for one `serverless invoke local`, then removed.',
        `exports[${JSON.stringify(handlerName)}] = async (event, context) =>`,
        `  (await import(${JSON.stringify(`./${basename(bundle)}`)}))[${JSON.stringify(handlerName)}](event, context);`,
        '',
      ].join('\n'),
    );
    this.log.verbose(`invoke local: ${handlerPath}.cjs imports ${basename(bundle)}`);
    // Lambda starts Node with the function's NODE_OPTIONS; here Node is already running, and
    // --enable-source-maps (serverless.yml) is what points stack traces at the TypeScript.
    if (/(^|\s)--enable-source-maps(\s|$)/.test(process.env.NODE_OPTIONS ?? ''))
      process.setSourceMapsEnabled(true);
  }

  async finish() {
    if (this.shim) rmSync(this.shim, { force: true });
    this.shim = undefined;
    await serverlessEsbuildsEsbuild().stop();
    setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
  }
}

module.exports = InvokeLocalPlugin;
