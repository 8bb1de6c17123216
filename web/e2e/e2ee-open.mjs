// The cross-implementation check in the Go-to-JavaScript direction: run
// with `node web/e2e/e2ee-open.mjs FILE`, it opens with web/static/e2ee.js
// an artifacts file in e2ee-fixture.mjs's format that the Go client
// (internal/e2eeclient's tests) made: envelopes, messages, files, safety
// numbers and the key backup. It prints {"opened": [...]} and exits 0, or
// prints why and exits 1.
import { readFileSync } from 'node:fs';
import { openArtifacts } from './e2ee-fixture.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node web/e2e/e2ee-open.mjs ARTIFACTS.json');
  process.exit(2);
}
try {
  const opened = await openArtifacts(JSON.parse(readFileSync(file, 'utf8')));
  console.log(JSON.stringify({ opened }));
} catch (err) {
  console.error(`e2ee.js could not open ${file}: ${err.reason ?? ''} ${err.message}`);
  process.exit(1);
}
