// serve.mjs — a tiny static server for the wasm package (src/, dist/, test pages) on http://127.0.0.1.
import { createReadStream, statSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
};

/**
 * Serves files under root; resolves to {url, close()}. With proxy (an http:// base URL), requests to /v1/*
 * are forwarded there: a collector on the page's own origin.
 */
export async function serve(root, port = 0, { proxy } = {}) {
  root = resolve(root);
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (proxy && path.startsWith('/v1/')) {
      const headers = { ...req.headers };
      delete headers.host;
      const up = request(new URL(req.url, proxy), { method: req.method, headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.writeHead(502).end());
      req.pipe(up);
      return;
    }
    const file = join(root, path);
    let ok = file.startsWith(root + '/');
    try {
      ok = ok && statSync(file).isFile();
    } catch {
      ok = false;
    }
    if (!ok) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const s = await serve(new URL('../..', import.meta.url).pathname, Number(process.argv[2] ?? 8080));
  console.log(`serving bindings/wasm on ${s.url}/test/browser/page.html`);
}
