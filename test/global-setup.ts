import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

// Tests never write into the working tree: the default data directory (./data) must be as the
// run found it, or the next `npm start` would silently adopt a test's keyring and signing key.
const DATA = new URL('../data', import.meta.url).pathname;

function snapshot(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true }).map(String).sort().map((f) => `${f} ${statSync(join(dir, f)).mtimeMs}`);
}

let before: string[] = [];

export function setup(): void {
  before = snapshot(DATA);
}

export function teardown(): void {
  const after = snapshot(DATA);
  if (JSON.stringify(after) !== JSON.stringify(before)) {
    throw new Error(`the tests wrote into ./data (${after.filter((f) => !before.includes(f)).join(', ')}): give each test a data directory of its own`);
  }
}
