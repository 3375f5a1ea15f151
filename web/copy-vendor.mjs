// Copies the pinned production builds that /playground needs from node_modules into
// src/web/assets/vendor/, where the boxoffice binary embeds them (include_bytes!), plus a
// gzip copy of each big file so the server can send the smaller one without compressing
// at run time. Reproduce with:  cd web && npm ci && npm run vendor
// The output is deterministic (fixed gzip level, no timestamps), so a re-run on the same
// lockfile leaves git with nothing to commit.
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '..', 'src', 'web', 'assets', 'vendor');
const nm = path.join(here, 'node_modules');

const files = [
  // [source in node_modules, name in vendor/]
  ['react/umd/react.production.min.js', 'react.production.min.js'],
  ['react-dom/umd/react-dom.production.min.js', 'react-dom.production.min.js'],
  ['graphiql/graphiql.min.js', 'graphiql.min.js'],
  ['graphiql/graphiql.min.css', 'graphiql.min.css'],
  ['graphql-ws/umd/graphql-ws.min.js', 'graphql-ws.min.js'],
];
// Worth compressing ahead of time: GraphiQL's bundle is 3.5 MB, its CSS 0.4 MB.
const gzip = new Set(['graphiql.min.js', 'graphiql.min.css']);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const versions = {};
for (const [src, name] of files) {
  const pkg = src.split('/')[0];
  versions[pkg] = JSON.parse(readFileSync(path.join(nm, pkg, 'package.json'), 'utf8')).version;
  // Drop the source-map comment: the maps are not shipped, and a browser would ask for them.
  const text = readFileSync(path.join(nm, src), 'utf8').replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n')
    .replace(/\n?\/\*# sourceMappingURL=\S+ \*\/\s*$/, '\n');
  writeFileSync(path.join(out, name), text);
  if (gzip.has(name)) writeFileSync(path.join(out, `${name}.gz`), gzipSync(text, { level: 9 }));
}
// Their licenses (all MIT) travel with them, in one file.
const licenses = Object.keys(versions).map((pkg) => {
  const file = ['LICENSE', 'LICENSE.md'].map((f) => path.join(nm, pkg, f)).find((f) => existsSync(f));
  return `${pkg}@${versions[pkg]}\n\n${readFileSync(file, 'utf8').trim()}\n`;
});
writeFileSync(path.join(out, 'LICENSES.txt'), licenses.join('\n----\n\n'));
writeFileSync(path.join(out, 'VERSIONS.json'), `${JSON.stringify(versions, null, 2)}\n`);
console.log(`vendor: ${Object.entries(versions).map(([k, v]) => `${k}@${v}`).join(' ')} -> ${out}`);
