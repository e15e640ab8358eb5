// Bundles the dashboard's page (coordinator/dashboard/web: Preact, htm, uPlot) with esbuild into
// dist/coordinator/dashboard/web: app.js, app.css (uPlot's styles and ours) and index.html.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const out = 'dist/coordinator/dashboard/web';
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ['coordinator/dashboard/web/app.ts'], bundle: true, minify: true, format: 'iife', target: ['es2020'],
  outfile: `${out}/app.js`, legalComments: 'none', logLevel: 'warning',
});
const require = createRequire(import.meta.url);
const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
writeFileSync(`${out}/app.css`, `${uplotCss}\n${readFileSync('coordinator/dashboard/web/style.css', 'utf8')}`);
copyFileSync('coordinator/dashboard/web/index.html', `${out}/index.html`);
