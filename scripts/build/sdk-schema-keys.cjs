// esbuild plugin that lets the bundler drop the AWS SDK schemas a handler never uses.
//
// Each `@aws-sdk/client-*` package describes every shape of its service in one generated module
// (`dist-es/schemas/schemas_0.js`: 1.3 MB for EC2). Its trait objects use computed keys
// (`{ [_xN]: _TSa }`, where `const _xN = "xmlName"`), and esbuild keeps any statement with a
// computed key because converting a key to a property name could run code. So a client brought in
// every shape of its service, whatever commands were imported: 537 kB of the sweep bundle was
// EC2 shapes for the 18 operations it calls. Writing each such key as the string literal it
// already is (`{ "xmlName": _TSa }`) changes no value, and leaves statements esbuild can prove pure
// and tree-shake.
const { readFile } = require('node:fs/promises');

const SCHEMA_MODULE = /[\\/]@aws-sdk[\\/]client-[^\\/]+[\\/]dist-es[\\/]schemas[\\/]schemas_\d+\.js$/;

/** `const _xN = "xmlName";` at the start of a line: the generated module's string constants. */
const STRING_CONSTANT = /^const (_\w+) = ("(?:[^"\\\n]|\\.)*");$/gm;
const COMPUTED_KEY = /\[(_\w+)\]:/g;

/**
 * The module's source with every computed key that names one of its string constants written as
 * that string. A key naming anything else is left as it is.
 */
function inlineSchemaKeys(source) {
  const constants = new Map();
  for (const [, name, literal] of source.matchAll(STRING_CONSTANT)) constants.set(name, literal);
  let inlined = 0;
  const contents = source.replace(COMPUTED_KEY, (key, name) => {
    const literal = constants.get(name);
    if (literal === undefined) return key;
    inlined++;
    return `${literal}:`;
  });
  return { contents, inlined };
}

const sdkSchemaKeys = {
  name: 'ami-janitor-sdk-schema-keys',
  setup(build) {
    build.onLoad({ filter: SCHEMA_MODULE }, async (args) => {
      const { contents } = inlineSchemaKeys(await readFile(args.path, 'utf8'));
      return { contents, loader: 'js' };
    });
  },
};

module.exports = { inlineSchemaKeys, sdkSchemaKeys, SCHEMA_MODULE };
