// Extracts the Patient and Observation resources held inside the Bundles of HL7's official R4
// example package into test/fixtures/examples/in-bundles.json, every number exactly as HL7 wrote it
// (the round-trip test compares the text of numbers).
//
//   npm pack hl7.fhir.r4.examples@4.0.1 && tar xzf hl7.fhir.r4.examples-4.0.1.tgz
//   node scripts/extract-bundled-examples.ts package
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseExact } from '../src/fhir/json.ts';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/extract-bundled-examples.ts <extracted package directory>');
  process.exit(64);
}
const out: { bundle: string; entry: number; resource: unknown }[] = [];
for (const file of readdirSync(dir).filter((f) => f.startsWith('Bundle-') && f.endsWith('.json')).sort()) {
  const bundle = parseExact(readFileSync(join(dir, file), 'utf8'), true) as { entry?: { resource?: { resourceType?: string } }[] };
  (bundle.entry ?? []).forEach((e, i) => {
    const type = e.resource?.resourceType;
    if (type === 'Patient' || type === 'Observation') out.push({ bundle: file, entry: i, resource: e.resource });
  });
}
writeFileSync(new URL('../test/fixtures/examples/in-bundles.json', import.meta.url), `${JSON.stringify(out, null, 1)}\n`);
console.log(`${out.length} resources from ${new Set(out.map((o) => o.bundle)).size} Bundles`);
